//! Performance figures for the journal, as a plain `fn main` harness.
//!
//! Run with `cargo build --release && cargo bench --bench journal`; see benches/README.md.
//!
//! 1. Journal overhead per primitive call: the same runbook of 2,000 reads (or 500
//!    failovers, each an intent and an answer) runs on the embedded simulator on a virtual
//!    clock with and without a journal; the difference divided by the calls is the cost of
//!    recording them, each record synced to disk.
//! 2. Resume: a run of 10,000 reads against `runbook simulator serve` (through the `azure`
//!    backend) is killed right after its last read was recorded; `runbook resume` then
//!    replays the 10,000 records and finishes. The whole resume process is timed.
//! 3. The same two with the journal in Blob Storage (`[state]`), on Azurite (set up by
//!    `.ci/deps azurite`, started on a free loopback port): the overhead per record, the
//!    fence's conditional read before each mutating request, and a resume of 10,000 records
//!    read back from the store.

use runbook::backend::inventory::Inventory;
use runbook::run::{run_on, RunOptions, Venue};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn inventory(vms: usize) -> Inventory {
    let mut text = String::from("start = \"2026-11-26T02:00:00Z\"\n");
    for i in 0..vms {
        text.push_str(&format!("\n[[items]]\nname = \"vm-{i:04}\"\n"));
    }
    Inventory::parse(&text, "bench inventory").expect("the bench inventory parses")
}

/// One run of `script` on a virtual clock; with a journal in `dir` or without one.
fn timed_run(dir: &Path, script: &str, vms: usize, journal: bool) -> Duration {
    let path = dir.join("bench.rhai");
    std::fs::write(&path, script).expect("write the runbook");
    let opts = RunOptions {
        journal,
        ..RunOptions::unattended(&path)
    };
    let start = Instant::now();
    let (outcome, _) =
        run_on(&opts, Venue::simulator_virtual(inventory(vms)), false).expect("the run starts");
    let took = start.elapsed();
    assert!(
        outcome.failure.is_none() && !outcome.not_started,
        "the bench runbook must succeed: {:?}",
        outcome.failure
    );
    took
}

fn overhead(name: &str, script: &str, vms: usize, calls: usize, records: usize) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    overhead_in(dir.path(), name, script, vms, calls, records);
}

/// [`overhead`] with the runbook in `dir` (whose runbook.toml may name a `[state]`).
fn overhead_in(dir: &Path, name: &str, script: &str, vms: usize, calls: usize, records: usize) {
    timed_run(dir, script, vms, true);
    let plain = median(
        (0..RUNS)
            .map(|_| timed_run(dir, script, vms, false))
            .collect(),
    );
    let journaled = median(
        (0..RUNS)
            .map(|_| timed_run(dir, script, vms, true))
            .collect(),
    );
    let per_call = journaled.saturating_sub(plain) / calls as u32;
    let per_record = journaled.saturating_sub(plain) / records as u32;
    println!(
        "{name}: without journal {plain:.1?}, with journal {journaled:.1?} (medians of {RUNS}); overhead {per_call:.1?} per call, {per_record:.1?} per synced record"
    );
}

fn reads(n: usize) -> String {
    format!("for i in 0..{n} {{ status(\"vm-0000\"); }}\n")
}

fn failovers(n: usize) -> String {
    format!(
        "let jobs = [];\nfor i in 0..{n} {{ let name = if i < 10 {{ `vm-000${{i}}` }} else if i < 100 {{ `vm-00${{i}}` }} else {{ `vm-0${{i}}` }}; jobs.push(failover(name, #{{ kind: \"planned\" }})); }}\nwait_all(jobs);\n"
    )
}

/// Starts `runbook simulator serve` on a free loopback port; returns the child and port.
fn serve(binary: &Path, dir: &Path) -> (std::process::Child, u16) {
    let inventory = dir.join("inventory.toml");
    std::fs::write(&inventory, "[[items]]\nname = \"vm-0000\"\n").expect("write inventory");
    for port in 18500..18600u16 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut child = Command::new(binary)
            .args(["simulator", "serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--inventory")
            .arg(&inventory)
            .args(["--speed", "1000", "--no-throttle", "--token", "bench"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no free port for the simulator server");
}

fn resume_figure(state: Option<&str>, runs: usize) {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/runbook");
    if !binary.exists() {
        println!("resume of 10,000 records: skipped (build target/release/runbook first)");
        return;
    }
    let reads = 10_000;
    let mut times = Vec::new();
    for n in 0..runs {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (mut server, port) = serve(&binary, dir.path());
        let section = state.map_or_else(String::new, |c| {
            format!("\n[state]\nurl = \"az://{c}-{n}/bench\"\n")
        });
        std::fs::write(
            dir.path().join("runbook.toml"),
            format!("[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://127.0.0.1:{port}\"\nreads_per_second = 1000000\n{section}"),
        )
        .expect("write runbook.toml");
        std::fs::write(dir.path().join("plan.rhai"), self::reads(reads)).expect("write runbook");
        let run = |args: &[&str], crash: Option<String>| {
            let mut cmd = Command::new(&binary);
            cmd.args(args)
                .current_dir(dir.path())
                .env("AZURE_ACCESS_TOKEN", "bench")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(c) = crash {
                cmd.env("RUNBOOK_CRASH_AT", c);
            }
            cmd.status().expect("run the binary")
        };
        // Record 1 is the header; the reads are records 2 to 10,001.
        let crashed = run(
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
            Some(format!("{}:after", reads + 1)),
        );
        assert!(!crashed.success(), "the run was to be killed");
        let id = run_id(&binary, dir.path());
        // In the store, the killed run's lease must expire first
        // (RUNBOOK_STATE_LEASE_SECONDS=1): a resume refused meanwhile is not timed.
        let mut tries = 0;
        loop {
            let start = Instant::now();
            let resumed = run(&["resume", &id, "--no-progress"], None);
            if resumed.success() {
                times.push(start.elapsed());
                break;
            }
            tries += 1;
            assert!(state.is_some() && tries < 60, "the resume must succeed");
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = server.kill();
        let _ = server.wait();
    }
    let m = median(times.clone());
    let place = if state.is_some() {
        "from Blob Storage (Azurite)"
    } else {
        "from the local journal"
    };
    println!(
        "resume replaying {reads} recorded reads {place}, whole process: median {m:.1?} (min {:.1?}, max {:.1?}; target < 1 s, ratio {:.2})",
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
        m.as_secs_f64()
    );
}

/// The one run in `dir`'s project, as `runbook runs` lists it.
fn run_id(binary: &Path, dir: &Path) -> String {
    let out = Command::new(binary)
        .args(["runs", "--format", "json"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .expect("runbook runs");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the runs as JSON");
    runs[0]["id"].as_str().expect("a run").to_string()
}

/// Azurite on a free loopback port, in a temporary folder; killed on drop.
struct Azurite(std::process::Child, #[allow(dead_code)] tempfile::TempDir);

impl Azurite {
    fn start() -> Option<(Azurite, u16)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let deps = Command::new("bash")
            .arg(root.join(".ci/deps"))
            .arg("azurite")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let main = String::from_utf8_lossy(&deps.stdout)
            .lines()
            .last()?
            .to_string();
        let dir = tempfile::tempdir().ok()?;
        let mut child = Command::new("node")
            .arg(main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--silent"])
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--loose"])
            .arg("--location")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let port = std::io::BufRead::lines(std::io::BufReader::new(stdout))
            .map_while(Result::ok)
            .find_map(|l| {
                l.split("listens on http://127.0.0.1:")
                    .nth(1)?
                    .trim()
                    .parse()
                    .ok()
            })?;
        Some((Azurite(child, dir), port))
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fence's conditional read: 200 of them, each a round trip to the store.
fn fence_figure() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(
        dir.path().join("runbook.toml"),
        "[state]\nurl = \"az://bench-fence/bench\"\n",
    )
    .expect("write runbook.toml");
    let store = runbook::journal::store::discover(Some(dir.path())).expect("the store opens");
    store
        .create_run(runbook::clock::Timestamp::from_system(
            std::time::SystemTime::now(),
        ))
        .expect("the container is made");
    let holder = runbook::journal::store::Holder {
        run: "bench".into(),
        user: "bench".into(),
        host: "bench".into(),
        pid: 1,
        since: "now".into(),
        target: "bench".into(),
    };
    let lock = store.lock("bench-vault", holder, false).expect("the lease");
    let start = Instant::now();
    for _ in 0..200 {
        lock.fence().expect("the lease is ours");
    }
    println!(
        "fence (a conditional read of the lease before each mutating request): {:.2?} each (200 in a row)",
        start.elapsed() / 200
    );
}

fn main() {
    overhead("2,000 reads", &reads(2_000), 1, 2_000, 2_000);
    overhead("500 failovers", &failovers(500), 500, 500, 1_500);
    resume_figure(None, 5);
    let Some((azurite, port)) = Azurite::start() else {
        println!("Blob Storage figures: skipped (`.ci/deps azurite` or node failed)");
        return;
    };
    std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
    std::env::set_var(
        "AZURE_STORAGE_ENDPOINT",
        format!("http://127.0.0.1:{port}/devstoreaccount1"),
    );
    std::env::set_var("RUNBOOK_STATE_LEASE_SECONDS", "1");
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(
        dir.path().join("runbook.toml"),
        "[state]\nurl = \"az://bench-overhead/bench\"\n",
    )
    .expect("write runbook.toml");
    println!("with the journal in Blob Storage (Azurite on loopback):");
    overhead_in(dir.path(), "  2,000 reads", &reads(2_000), 1, 2_000, 2_000);
    overhead_in(
        dir.path(),
        "  500 failovers",
        &failovers(500),
        500,
        500,
        1_500,
    );
    fence_figure();
    resume_figure(Some("bench-resume"), 3);
    drop(azurite);
}
