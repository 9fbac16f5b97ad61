//! Team runs: the journal and the lock in Azure Blob Storage, against Azurite (set up by
//! `.ci/deps azurite`, started here on a free loopback port with a temporary folder). Two
//! "machines" are two project folders with their own HOME and the same store: a run killed
//! on A is resumed on B and every operation reaches each VM once; two starts at once run
//! once; B approves A's step and follows it; a paused holder stops itself once B took over;
//! a store that goes away stops the run before anything unjournaled is issued. No blob
//! holds a secret.

use crate::durable::{assert_once_and_protected, killed, start_server, text, PLAN, TOKEN};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A secret a machine has in its environment, which must reach no blob.
const CLIENT_SECRET: &str = "team-test-client-secret-7f3a";
/// Azurite's published account key.
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite on loopback, stopped on drop.
pub(crate) struct Azurite {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        Azurite::start_in(dir, 0)
    }

    /// Azurite on `port` (0: a free one) keeping its blobs in `dir`.
    fn start_in(dir: tempfile::TempDir, port: u16) -> Azurite {
        let main = crate::common::deps("azurite");
        let mut child = Command::new("node")
            .arg(main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs Azurite");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .split("listens on http://127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("Azurite says where it listens");
        Azurite { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    /// Stops it gracefully (its blobs stay in its folder); returns the folder and port.
    fn stop(mut self) -> (tempfile::TempDir, u16) {
        // SAFETY: kill(2) on our child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let port = self.port;
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again; the folder moves out once.
        let dir = unsafe { std::ptr::read(&me.dir) };
        (dir, port)
    }

    /// Every blob of `container`: its name and its bytes.
    fn blobs(&self, container: &str) -> Vec<(String, Vec<u8>)> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let azure = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account("devstoreaccount1")
            .with_access_key(EMULATOR_KEY)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let all: Vec<object_store::ObjectMeta> = azure.list(None).try_collect().await.unwrap();
            let mut out = Vec::new();
            for meta in all {
                let bytes = azure
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                out.push((meta.location.to_string(), bytes.to_vec()));
            }
            out
        })
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A machine: its own project folder (the same runbook.toml and runbooks) and HOME.
pub(crate) struct Machine {
    pub project: tempfile::TempDir,
    home: tempfile::TempDir,
    endpoint: String,
    lease: f64,
}

impl Machine {
    /// A machine with target `sim` at `addr` and its runs in `az://CONTAINER/team`.
    pub fn new(azurite: &Azurite, addr: SocketAddr, container: &str, lease: f64) -> Machine {
        let project = crate::durable::project(addr);
        let toml = std::fs::read_to_string(project.path().join("runbook.toml")).unwrap();
        std::fs::write(
            project.path().join("runbook.toml"),
            format!("{toml}\n[state]\nurl = \"az://{container}/team\"\n"),
        )
        .unwrap();
        Machine {
            project,
            home: tempfile::tempdir().unwrap(),
            endpoint: azurite.endpoint(),
            lease,
        }
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.project.path().join(name), text).unwrap();
    }

    fn command(&self, args: &[&str], crash: Option<&str>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.args(args)
            .current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env("AZURE_ACCESS_TOKEN", TOKEN)
            .env("AZURE_CLIENT_SECRET", CLIENT_SECRET)
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURE_STORAGE_ENDPOINT", &self.endpoint)
            .env("RUNBOOK_STATE_LEASE_SECONDS", self.lease.to_string())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_CRASH_AT")
            .stdin(Stdio::null());
        if let Some(point) = crash {
            cmd.env("RUNBOOK_CRASH_AT", point);
        }
        cmd
    }

    pub fn run(&self, args: &[&str], crash: Option<&str>) -> Output {
        self.command(args, crash).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args, None)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The runs in the store, as this machine lists them.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["runs", "--format", "json"], None);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn show(&self, id: &str) -> String {
        text(&self.run(&["show", id], None))
    }

    /// Runs `args` until it is not refused because `id` still runs (its lease lives).
    fn once_expired(&self, id: &str, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.run(args, None);
            let live = text(&out).contains(&format!("run {id} is still running"));
            if !live {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "the lease never expired: {}",
                text(&out)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Waits until `done`, for at most 60 s.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const RUN_PLAN: [&str; 6] = [
    "run",
    "plan.rhai",
    "--target",
    "sim",
    "--yes",
    "--no-progress",
];

const STEP: &str = "manual_step(\"Stop the batch jobs\", #{ timeout: \"10m\" });\nlet j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\n";

fn run_id(m: &Machine) -> String {
    let runs = m.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0]["id"].as_str().unwrap().to_string()
}

/// Waits until the run of machine `m` is waiting at `step` (the store says so).
fn waiting(m: &Machine, step: u32) -> String {
    let mut id = String::new();
    until(&format!("a run waits at step {step}"), || {
        let runs = m.runs();
        let Some(run) = runs.first() else {
            return false;
        };
        id = run["id"].as_str().unwrap().to_string();
        let out = m.run(&["approve", &id, "999"], None);
        text(&out).contains(&format!("waits at step {step} "))
    });
    id
}

#[test]
fn a_run_killed_on_one_machine_is_resumed_on_another_and_issues_everything_once() {
    let azurite = Azurite::start();
    let points = [
        "2:after",
        "4:before",
        "6:torn",
        "9:after",
        "13:before",
        "18:after",
    ];
    for (n, point) in points.iter().enumerate() {
        let (addr, server, sim) = start_server();
        let container = format!("kill-{n}");
        let a = Machine::new(&azurite, addr, &container, 2.0);
        let b = Machine::new(&azurite, addr, &container, 2.0);
        let out = a.run(&RUN_PLAN, Some(point));
        assert!(killed(&out), "{point}: {}", text(&out));
        let id = run_id(&b);
        assert!(
            !b.project.path().join(".runbook").exists(),
            "nothing is kept on the machine"
        );
        let resumed = b.once_expired(&id, &["resume", &id, "--no-progress"]);
        assert!(resumed.status.success(), "{point}: {}", text(&resumed));
        assert_once_and_protected(&server, &sim, point);
        let shown = a.show(&id);
        assert!(shown.contains("end: succeeded"), "{point}: {shown}");
        assert!(shown.contains("resumed by"), "{point}: {shown}");
    }
    let blobs: Vec<(String, Vec<u8>)> = (0..points.len())
        .flat_map(|n| azurite.blobs(&format!("kill-{n}")))
        .collect();
    assert!(
        blobs.iter().any(|(name, _)| name.contains("/journal/"))
            && blobs.iter().any(|(name, _)| name.contains("/locks/")),
        "the store holds the journals and the locks: {:?}",
        blobs.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &blobs {
        for secret in [TOKEN, CLIENT_SECRET, EMULATOR_KEY, &EMULATOR_KEY[..20]] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` is in blob {name}"
            );
        }
    }
}

#[test]
fn two_machines_starting_at_once_run_once_and_the_other_approves_and_watches() {
    let azurite = Azurite::start();
    let (addr, server, _) = start_server();
    let a = Machine::new(&azurite, addr, "together", 60.0);
    let b = Machine::new(&azurite, addr, "together", 60.0);
    let args = [
        "run",
        "step.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
    ];
    a.write("step.rhai", STEP);
    b.write("step.rhai", STEP);
    let mut first = a.spawn(&args);
    let mut second = b.spawn(&args);
    let id = waiting(&b, 1);
    // Exactly one of them runs; the other was refused, naming the holder.
    let (refused, runner) = loop {
        if let Some(status) = second.try_wait().unwrap() {
            assert!(!status.success());
            break (second, first);
        }
        if let Some(status) = first.try_wait().unwrap() {
            assert!(!status.success());
            break (first, second);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let message = text(&refused.wait_with_output().unwrap());
    assert!(
        message.contains(&format!("is locked by run {id}")) && message.contains("last renewed"),
        "{message}"
    );
    assert_eq!(
        b.runs().len(),
        1,
        "the refused run left nothing in the store"
    );
    let watch = b.spawn(&["runs", "--watch"]);
    let approved = b.run(&["approve", &id, "stop the batch jobs"], None);
    assert!(approved.status.success(), "{}", text(&approved));
    let out = runner.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let watched = text(&watch.wait_with_output().unwrap());
    assert!(
        watched.contains("INTENT planned_failover of app-01") && watched.contains("end: succeeded"),
        "{watched}"
    );
    assert_eq!(
        server.stats().get("issued app-01 planned_failover"),
        Some(&1)
    );
    let report = text(&b.run(&["report", &id, "--format", "json"], None));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["approvals"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        report.to_string().contains(&runbook::journal::hostname()),
        "who approved, from where: {report}"
    );
    let listed = b.runs();
    assert_eq!(listed[0]["state"], "succeeded", "{listed:?}");
}

#[test]
fn a_paused_holder_stops_itself_once_another_machine_took_over() {
    let azurite = Azurite::start();
    let (addr, server, _) = start_server();
    let a = Machine::new(&azurite, addr, "paused", 3.0);
    let b = Machine::new(&azurite, addr, "paused", 3.0);
    a.write("step.rhai", STEP);
    b.write("step.rhai", STEP);
    let first = a.spawn(&[
        "run",
        "step.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
    ]);
    let id = waiting(&b, 1);
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(first.id() as i32, libc::SIGSTOP);
    }
    // Its lease is live a moment longer: a resume is refused, naming the holder.
    let refused = b.run(&["resume", &id, "--no-progress"], None);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("holds its vault's lease")
            && text(&refused).contains(&format!("process {}", first.id())),
        "{}",
        text(&refused)
    );
    // Once it expired, B takes the run over and waits at the same step.
    until("the paused holder's lease expired", || {
        b.runs()[0]["state"].as_str() != Some("running")
    });
    let mut resumed = b.spawn(&["resume", &id, "--no-progress"]);
    until("B resumed the run", || {
        if b.show(&id).contains("resumed by") {
            return true;
        }
        // Refused: the store's clock (whole seconds) had the lease live a moment longer.
        if resumed.try_wait().unwrap().is_some() {
            resumed = b.spawn(&["resume", &id, "--no-progress"]);
        }
        false
    });
    // SAFETY: as above.
    unsafe {
        libc::kill(first.id() as i32, libc::SIGCONT);
    }
    let stopped = first.wait_with_output().unwrap();
    let said = text(&stopped);
    assert!(!stopped.status.success(), "{said}");
    assert!(
        said.contains("lost the lease") && said.contains("holds it now"),
        "it says why it stops: {said}"
    );
    let approved = b.run(&["approve", &id, "1"], None);
    assert!(approved.status.success(), "{}", text(&approved));
    let out = resumed.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        server.stats().get("issued app-01 planned_failover"),
        Some(&1)
    );
    let shown = b.show(&id);
    assert_eq!(
        shown.matches("end:").count(),
        1,
        "A wrote nothing after B took over: {shown}"
    );
}

#[test]
fn a_store_that_goes_away_stops_the_run_and_it_resumes_later() {
    let azurite = Azurite::start();
    let (addr, server, sim) = start_server();
    let a = Machine::new(&azurite, addr, "away", 2.0);
    let plan = PLAN.replacen(
        "let commits = [];",
        "manual_step(\"Check the application\", #{ timeout: \"10m\" });\nlet commits = [];",
        1,
    );
    a.write("plan.rhai", &plan);
    let first = a.spawn(&RUN_PLAN);
    let id = waiting(&a, 1);
    let (dir, port) = azurite.stop();
    let out = first.wait_with_output().unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("lease"), "it says why it stopped: {said}");
    assert_eq!(server.stats().get("issued app-01 commit"), None, "{said}");
    let azurite = Azurite::start_in(dir, port);
    let b = Machine::new(&azurite, addr, "away", 2.0);
    b.write("plan.rhai", &plan);
    // The stopped run's lease may outlive the store's absence by a moment: the resume is
    // refused (and asked again) until it expired.
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed = loop {
        let mut child = b.spawn(&["resume", &id, "--no-progress"]);
        let refused = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            let asked = b.run(&["approve", &id, "999"], None);
            if text(&asked).contains("waits at step 1 ") {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !refused {
            break child;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            text(&out).contains(&format!("run {id} is still running")) && Instant::now() < deadline,
            "{}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(b.run(&["approve", &id, "1"], None).status.success());
    let out = resumed.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_once_and_protected(&server, &sim, "after the store came back");
}

/// A holder put to sleep between its intent and its request (a laptop lid closed at the
/// worst moment): another machine takes the run over and issues the operation; when the
/// first wakes up, its fence finds the lease gone and it never sends its request.
#[test]
fn a_holder_paused_between_its_intent_and_its_request_never_sends_it() {
    const ONE: &str = "let j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\n";
    // Where the intent is, from a clean run with a local journal.
    let intent = {
        let (addr, _server, _) = start_server();
        let local = crate::durable::project(addr);
        std::fs::write(local.path().join("one.rhai"), ONE).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args([
                "run",
                "one.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ])
            .current_dir(local.path())
            .env("AZURE_ACCESS_TOKEN", TOKEN)
            .env_remove("RUNBOOK_CRASH_AT")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let runs = local.path().join(".runbook/runs");
        let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
        let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
        journal
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["type"] == "intent")
            .unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    let azurite = Azurite::start();
    let (addr, server, _) = start_server();
    let a = Machine::new(&azurite, addr, "asleep", 3.0);
    let b = Machine::new(&azurite, addr, "asleep", 3.0);
    a.write("one.rhai", ONE);
    b.write("one.rhai", ONE);
    let first = a
        .command(
            &[
                "run",
                "one.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
            Some(&format!("{intent}:stop")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Asleep with its intent written and its request not sent.
    until("the first machine is asleep after its intent", || {
        std::fs::read_to_string(format!("/proc/{}/stat", first.id()))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("T"))
    });
    assert_eq!(server.stats().get("issued app-01 planned_failover"), None);
    let id = run_id(&b);
    let resumed = b.once_expired(&id, &["resume", &id, "--no-progress"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(
        server.stats().get("issued app-01 planned_failover"),
        Some(&1),
        "{}",
        text(&resumed)
    );
    // SAFETY: kill(2) on our child's pid.
    unsafe {
        libc::kill(first.id() as i32, libc::SIGCONT);
    }
    let woke = first.wait_with_output().unwrap();
    let said = text(&woke);
    assert!(!woke.status.success(), "{said}");
    assert_eq!(
        server.stats().get("issued app-01 planned_failover"),
        Some(&1),
        "the machine that slept sent its request after all: {said}"
    );
}
