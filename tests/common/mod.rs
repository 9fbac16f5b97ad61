//! Helpers shared by the integration tests.

use runbook::backend::sim::Simulator;
use runbook::diagnostics::Code;
use runbook::simulator::{Server, ServerOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

/// The package root (tests run with it as the working folder).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `runbook` binary with `args` in the package root, with no standard input.
/// Not for `run` or `resume`: a run keeps its journal in its project, which would be the
/// repository's `runbooks/`; run a copy instead ([`examples`] and [`cli_in`]).
pub fn cli(args: &[&str]) -> Output {
    assert!(
        !matches!(args.first(), Some(&"run" | &"resume")) || args.contains(&"--help"),
        "`runbook {}` from the package root would write a journal into the repository: run a copy of the runbook in a temporary folder (common::examples and cli_in)",
        args.join(" ")
    );
    cli_in(&root(), args)
}

/// What `.ci/deps TOOL` prints last: the tool, set up once in its cache (under its lock,
/// so tests and CI running it at once do not race).
pub fn deps(tool: &str) -> String {
    let out = Command::new("bash")
        .arg(root().join(".ci/deps"))
        .arg(tool)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs .ci/deps");
    assert!(
        out.status.success(),
        ".ci/deps {tool} failed (python needs python3 with venv and PyPI; mermaid needs node, npm and the npm registry):\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_else(|| panic!(".ci/deps {tool} prints where the tool is"))
        .to_string()
}

/// Runs the example `runbooks/NAME` of a copy made by [`examples`] on the embedded
/// simulator, a millionfold sped up, its manual steps confirmed, with plain progress.
pub fn run_example(examples: &Path, name: &str) -> Output {
    let runbook = format!("runbooks/{name}");
    cli_in(
        examples,
        &[
            "run",
            &runbook,
            "--auto-approve",
            "--speed",
            "1000000",
            "--no-progress",
        ],
    )
}

/// A temporary copy of the example runbooks: `runbooks/` (the runbooks, their inventories
/// and runbook.toml, without any `.runbook/` of runs) inside the returned folder, so a run
/// of one keeps its journal there.
pub fn examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let copy = dir.path().join("runbooks");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(root().join("runbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

pub fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("the runbook binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One expectation of a fixture: a code, and where (`file:line` or `line` in the fixture).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub code: String,
    pub file: Option<String>,
    pub line: Option<usize>,
}

/// Reads `// expect: RB101 4, RB108 lib/steps.rhai:7, RB009` from a fixture's first lines.
pub fn expectations(text: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let Some(list) = line.trim_start_matches("//").trim().strip_prefix("expect:") else {
            continue;
        };
        for item in list.split(',') {
            let mut parts = item.split_whitespace();
            let code = parts.next().expect("a code").to_string();
            assert!(
                Code::parse(&code).is_some(),
                "unknown code {code} in an expectation"
            );
            let (file, line) = match parts.next() {
                None => (None, None),
                Some(place) => match place.rsplit_once(':') {
                    Some((file, line)) => (
                        Some(file.to_string()),
                        Some(line.parse().expect("a line number")),
                    ),
                    None => (None, Some(place.parse().expect("a line number"))),
                },
            };
            out.push(Expected { code, file, line });
        }
    }
    out.sort();
    out
}

/// The fixture's `// inventory: NAME` (default `inventory.toml`; `none` for no inventory).
pub fn inventory_of(text: &str) -> Option<String> {
    let named = text
        .lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| {
            l.trim_start_matches("//")
                .trim()
                .strip_prefix("inventory:")
                .map(|s| s.trim().to_string())
        });
    match named.as_deref() {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None => Some("inventory.toml".to_string()),
    }
}

/// Serves `sim` over HTTP on a free loopback port, on a runtime thread of its own that
/// outlives the clients (and runners) the test starts.
pub fn serve(sim: Arc<Simulator>, options: ServerOptions) -> (SocketAddr, Arc<Server>) {
    let server = Server::with_options(sim, options);
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = server.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            runbook::simulator::serve(listener, shared, std::future::pending())
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), server)
}

/// A loopback server that records every byte it receives and answers each request with a
/// forged success (a token and a "Succeeded" job in one JSON): where a fault redirects to, to
/// prove that nothing (no secret, no token, no request) ever arrives there.
pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen, count) = (received.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = r#"{"access_token":"forged-token-0451","token_type":"Bearer","expires_in":3600,"id":"forged","name":"forged","properties":{"state":"Succeeded","scenarioName":"PlannedFailover","activityId":"forged"}}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder {
            addr,
            received,
            connections,
        }
    }

    /// `http://127.0.0.1:PORT`, for a fault's `to`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, and how many connections brought it.
    pub fn received(&self) -> (usize, String) {
        (
            self.connections.load(std::sync::atomic::Ordering::SeqCst),
            String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned(),
        )
    }
}

/// Runs `check` on every item on `threads` threads at once; returns the errors, in no order.
pub fn in_parallel<T: Sync>(
    items: &[T],
    threads: usize,
    check: impl Fn(&T) -> Result<(), String> + Sync,
) -> Vec<String> {
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = check(item) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    failures.into_inner().unwrap()
}
