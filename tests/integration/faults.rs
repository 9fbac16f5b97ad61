//! The fault suite: the simulator server with each fault the network brings (redirects to a
//! recorder, bursts of 503, 404s just after a job was created, answers that are not the
//! documented ones, lost answers), each run through the binary with client credentials and
//! every log on (`RUNBOOK_LOG=trace`). For every fault: no operation reaches the service
//! twice, the VM ends failed over and protected again (after a resume where the run
//! stopped), nothing arrives at the recorder, and neither the secret nor a token shows in
//! the output, the journal or the report.

use crate::common::Recorder;
use crate::durable::{run_ids, text, RUN_PLAN};
use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::backend::Backend;
use runbook::clock::{Clock, RealClock};
use runbook::simulator::faults::{Fault, FaultKind};
use runbook::simulator::{Server, ServerOptions};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "fault-suite-secret-7d1e";
const OPERATIONS: [&str; 3] = ["planned_failover", "commit", "reverse_replicate"];

/// A simulator server for one VM that issues tokens for client credentials only.
pub(crate) fn start(speed: f64) -> (SocketAddr, Arc<Server>, Arc<Simulator>) {
    let inventory = Inventory::parse(
        "start = \"2026-11-26T00:00:00Z\"\n\n[[items]]\nname = \"web-01\"\n",
        "fault inventory",
    )
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(RealClock::new(speed));
    let sim = Arc::new(Simulator::new(&inventory, clock, false));
    let options = ServerOptions {
        token: String::new(),
        speed,
        client_id: Some("app-1".into()),
        client_secret: Some(SECRET.into()),
        ..ServerOptions::default()
    };
    let (addr, server) = crate::common::serve(sim.clone(), options);
    (addr, server, sim)
}

/// A project with target `sim` at `addr` (its token endpoint too) and the plan.
pub(crate) fn project(addr: SocketAddr, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        format!("[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://{addr}\"\nauthority = \"http://{addr}\"\npoll_min = \"20ms\"\ntimeout = \"2s\"\nlisting_delay = \"3s\"\n{extra}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("plan.rhai"), crate::azure::ONE_VM).unwrap();
    dir
}

/// The binary in `dir` with client credentials and every log on.
pub(crate) fn command(dir: &Path, args: &[&str], secret: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(args)
        .current_dir(dir)
        .env("RUNBOOK_LOG", "trace")
        .env("NO_COLOR", "1")
        .env_remove("AZURE_ACCESS_TOKEN")
        .env_remove("RUNBOOK_CRASH_AT")
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", secret)
        .stdin(Stdio::null());
    cmd
}

/// Why `shown` is not clean: the secret, an issued or forged token, a bearer header.
pub(crate) fn leak(shown: &str) -> Option<&'static str> {
    let lower = shown.to_lowercase();
    [SECRET, "rbsim.", "forged-token"]
        .into_iter()
        .find(|s| shown.contains(s))
        .or_else(|| lower.contains("bearer ").then_some("bearer "))
}

/// How many times each operation reached web-01.
fn issued(server: &Server) -> Vec<u64> {
    let stats = server.stats();
    OPERATIONS
        .iter()
        .map(|op| {
            stats
                .get(&format!("issued web-01 {op}"))
                .copied()
                .unwrap_or(0)
        })
        .collect()
}

/// One fault: where it stops the run (text its output must show), or `None` when the run
/// gets through it.
struct Case {
    name: &'static str,
    faults: fn(&str) -> Vec<Fault>,
    stops: Option<&'static str>,
}

fn fault(on: &str, kind: FaultKind, times: u32) -> Fault {
    Fault::new(on, kind, times)
}

fn to(on: &str, kind: FaultKind, origin: &str) -> Vec<Fault> {
    vec![Fault {
        to: Some(origin.to_string()),
        ..fault(on, kind, 1)
    }]
}

const CASES: &[Case] = &[
    Case {
        name: "a 307 from the token endpoint",
        faults: |o| to("POST token", FaultKind::TemporaryRedirect, o),
        stops: Some("307 Temporary Redirect, a redirect to `127.0.0.1:"),
    },
    Case {
        name: "a 307 to the failover's POST",
        faults: |o| to("POST plannedFailover", FaultKind::TemporaryRedirect, o),
        stops: Some("307 Temporary Redirect, a redirect to `127.0.0.1:"),
    },
    Case {
        name: "a 302 to a job read",
        faults: |o| to("GET job", FaultKind::Found, o),
        stops: Some("302 Found, a redirect to `127.0.0.1:"),
    },
    Case {
        name: "12 answers of 503 to job reads",
        faults: |_| vec![fault("GET job", FaultKind::Unavailable, 12)],
        stops: None,
    },
    Case {
        name: "two 404s just after a job was created",
        faults: |_| vec![fault("GET job", FaultKind::NotFound, 2)],
        stops: None,
    },
    Case {
        name: "404s to a job read for longer than a new job takes to be listed",
        faults: |_| vec![fault("GET job", FaultKind::NotFound, 30)],
        stops: Some("the service does not know job"),
    },
    Case {
        name: "7 unreadable job reads",
        faults: |_| vec![fault("GET job", FaultKind::Malformed, 7)],
        stops: None,
    },
    Case {
        name: "an HTML page as the failover's answer",
        faults: |_| vec![fault("POST plannedFailover", FaultKind::Html, 1)],
        stops: Some("not its documented answer"),
    },
    Case {
        name: "a 200 without job headers to the failover",
        faults: |_| {
            vec![fault(
                "POST plannedFailover",
                FaultKind::AcceptWithoutJob,
                1,
            )]
        },
        stops: None,
    },
    Case {
        name: "a commit accepted, then its answer lost",
        faults: |_| {
            vec![Fault {
                delay_ms: Some(100),
                ..fault("POST failoverCommit", FaultKind::AcceptThenHang, 1)
            }]
        },
        stops: None,
    },
    Case {
        name: "a reverse replication dropped before the service took it",
        faults: |_| {
            vec![Fault {
                delay_ms: Some(0),
                ..fault("POST reProtect", FaultKind::Drop, 1)
            }]
        },
        stops: Some("may have been issued"),
    },
];

/// One case, end to end; `Err` says what went wrong.
fn run_case(case: &Case) -> Result<(), String> {
    let name = case.name;
    let recorder = Recorder::start();
    let (addr, server, sim) = start(3000.0);
    for f in (case.faults)(&recorder.origin()) {
        server.arm(f);
    }
    let dir = project(addr, "");
    let out = command(dir.path(), &RUN_PLAN, SECRET).output().unwrap();
    let mut shown = text(&out);
    let (connections, received) = recorder.received();
    if connections > 0 {
        return Err(format!(
            "{name}: the redirect was followed: {connections} connection(s) to it brought: {received}"
        ));
    }
    match (case.stops, out.status.code()) {
        (None, Some(0)) => {}
        (Some(why), Some(1)) if shown.contains(why) => {
            // The fault is gone: a resume finishes the run without issuing anything twice
            // (a run again, when it stopped before it started: reading the live state for
            // its plan).
            server.clear_faults();
            let again = match run_ids(dir.path()).pop() {
                Some(id) => command(
                    dir.path(),
                    &["resume", id.as_str(), "--no-progress"],
                    SECRET,
                ),
                None => command(dir.path(), &RUN_PLAN, SECRET),
            }
            .output()
            .unwrap();
            shown.push_str(&text(&again));
            if !again.status.success() {
                return Err(format!("{name}: the resume failed: {}", text(&again)));
            }
        }
        (stops, code) => {
            return Err(format!(
                "{name}: expected {} but the run exited {code:?}: {shown}",
                stops.map_or("success".to_string(), |s| format!("a stop showing `{s}`"))
            ))
        }
    }
    if issued(&server) != [1, 1, 1] {
        return Err(format!(
            "{name}: operations reached the service {:?} times: {:?}",
            issued(&server),
            server.stats()
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let web = rt.block_on(sim.item("web-01")).unwrap();
    if (web.active_location.as_str(), web.replicating) != ("recovery", true) {
        return Err(format!("{name}: web-01 ended {web:?}"));
    }
    if recorder.received().0 > 0 {
        return Err(format!("{name}: the resume followed the redirect"));
    }
    let id = run_ids(dir.path()).pop().ok_or("no run folder")?;
    for args in [
        vec!["report", id.as_str()],
        vec!["report", id.as_str(), "--format", "json"],
        vec!["show", id.as_str()],
    ] {
        shown.push_str(&text(&command(dir.path(), &args, SECRET).output().unwrap()));
    }
    let journal = dir
        .path()
        .join(".runbook/runs")
        .join(&id)
        .join("journal.jsonl");
    shown.push_str(&std::fs::read_to_string(journal).unwrap());
    if let Some(what) = leak(&shown) {
        return Err(format!("{name}: `{what}` shows: {shown}"));
    }
    Ok(())
}

#[test]
fn every_fault_issues_each_operation_once_ends_right_and_leaks_nothing() {
    let failures = crate::common::in_parallel(CASES, 3, run_case);
    assert!(
        failures.is_empty(),
        "{} of {} faults failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_wrong_client_secret_is_rejected_credentials_and_exits_2() {
    const WRONG: &str = "not-the-secret-3e9a";
    let (addr, server, _) = start(3000.0);
    let dir = project(addr, "");
    for args in [&RUN_PLAN[..], &["status", "--target", "sim"][..]] {
        let out = command(dir.path(), args, WRONG).output().unwrap();
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(
            shown.contains("the credentials were rejected")
                && shown.contains("invalid_client")
                && shown.contains("AZURE_CLIENT_SECRET"),
            "{args:?}: {shown}"
        );
        assert!(
            !shown.contains("could not be reached") && !shown.contains("RB111"),
            "{args:?}: {shown}"
        );
        assert!(!shown.contains(WRONG), "the secret shows: {shown}");
        assert_eq!(leak(&shown), None, "{shown}");
    }
    assert!(!server.stats().keys().any(|k| k.starts_with("issued")));
}

/// Runs `args` until its progress shows `line`, then kills it; returns what it printed.
fn kill_when_shown(dir: &Path, args: &[&str], line: &str) -> String {
    use std::io::BufRead;
    let mut child = command(dir, args, SECRET)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains(line) {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("never showed `{line}`: {seen}");
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

#[test]
fn a_huge_retry_after_is_capped_shown_on_the_progress_line_and_resumed() {
    let (addr, server, sim) = start(3000.0);
    let storm = |on: &str| Fault {
        retry_after_s: Some(100_000),
        ..fault(on, FaultKind::TooManyRequests, 1)
    };
    let dir = project(addr, "");
    // A read waits at most five minutes, a POST one: each wait is shown, and the operator
    // (here, the test) may stop the run and resume it. The first read is the live state's,
    // for the run's plan: then nothing has started yet.
    server.arm(storm("GET items"));
    let shown = kill_when_shown(
        dir.path(),
        &RUN_PLAN,
        "throttled by the service: retrying in 5m",
    );
    assert_eq!(leak(&shown), None, "{shown}");
    assert!(run_ids(dir.path()).is_empty(), "nothing ran");
    server.arm(storm("POST plannedFailover"));
    let shown = kill_when_shown(
        dir.path(),
        &RUN_PLAN,
        "throttled by the service: retrying in 1m",
    );
    assert!(
        shown.contains("[+00:00:"),
        "on the run's progress line: {shown}"
    );
    let id = run_ids(dir.path()).remove(0);
    let resume = ["resume", id.as_str(), "--no-progress"];
    let done = command(dir.path(), &resume, SECRET).output().unwrap();
    assert!(done.status.success(), "{}", text(&done));
    assert_eq!(issued(&server), [1, 1, 1], "{:?}", server.stats());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let web = rt.block_on(sim.item("web-01")).unwrap();
    assert_eq!(
        (web.active_location.as_str(), web.replicating),
        ("recovery", true)
    );
}

#[test]
fn job_reads_without_retry_after_come_after_poll_min_then_half_as_long_again() {
    use runbook::backend::azure::{auth::Credential, Azure, TargetConfig};
    use runbook::backend::{Direction, Operation, OperationRequest};
    // Real time: the job stays NotStarted for seconds.
    let (addr, server, _) = start(1.0);
    let target = TargetConfig {
        poll_min: "20ms".into(),
        authority: format!("http://{addr}"),
        ..TargetConfig::new("s", "g", "v", &format!("http://{addr}"))
    };
    let credential = Credential::ClientSecret {
        authority: format!("http://{addr}"),
        tenant: "tenant-1".into(),
        client_id: "app-1".into(),
        secret: SECRET.into(),
    };
    let azure = Azure::new(&target, credential).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let intervals = rt.block_on(async {
        let request = OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            ..OperationRequest::new(Operation::PlannedFailover)
        };
        let job = azure.start("web-01", &request).await.unwrap();
        // The job's reads carry no Retry-After, as on the real service.
        server.arm(fault("GET job", FaultKind::NoRetryAfter, 100));
        let mut intervals = Vec::new();
        for _ in 0..6 {
            let info = azure.job(&job.id).await.unwrap();
            let next = info.retry_after.unwrap();
            intervals.push((info.state, next));
            // What a wait does: ask again when told.
            tokio::time::sleep(next).await;
        }
        intervals
    });
    assert_eq!(
        server.stats().get("fault no-retry-after"),
        Some(&5),
        "every read but the first (the 202's answer, within poll_min) reached the service: {:?}",
        server.stats()
    );
    let shown: Vec<String> = intervals
        .iter()
        .map(|(s, d)| format!("{s} {}ms", d.as_millis()))
        .collect();
    assert!(
        intervals[0].1 <= Duration::from_millis(30),
        "the first read after poll_min (20ms), not 30 s: {shown:?}"
    );
    for pair in intervals.windows(2) {
        let ((before, last), (now, next)) = (&pair[0], &pair[1]);
        if before == now {
            let ratio = next.as_secs_f64() / last.as_secs_f64();
            assert!((ratio - 1.5).abs() < 0.01, "half as long again: {shown:?}");
        } else {
            assert_eq!(
                *next,
                Duration::from_millis(20),
                "a change: poll_min: {shown:?}"
            );
        }
    }
}

#[test]
fn refusals_show_the_services_error_code_and_no_job_failure() {
    let (addr, server, _) = start(3000.0);
    let dir = project(addr, "");
    // A failover the service refuses (409, for a reason the simulation does not model),
    // then one it throttles every time it is sent.
    std::fs::write(
        dir.path().join("plan.rhai"),
        "wait_job(failover(\"web-01\", #{ kind: \"planned\" }));\n",
    )
    .unwrap();
    let run = || {
        let out = command(dir.path(), &RUN_PLAN, SECRET).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        text(&out)
    };
    server.arm(fault("POST plannedFailover", FaultKind::Conflict, 1));
    let refused = run();
    assert!(
        refused.contains("error[RB122]")
            && refused.contains("the service refused the request with Conflict")
            && refused.contains("(request id "),
        "{refused}"
    );
    assert!(
        !refused.contains("in state Conflict") && !refused.contains("RB111"),
        "the code is not a state, and no job failed: {refused}"
    );
    server.arm(fault("POST plannedFailover", FaultKind::TooManyRequests, 5));
    let throttled = run();
    assert!(
        throttled.contains("error[RB122]")
            && throttled.contains("throttled 5 times and not issued")
            && !throttled.contains("RB111"),
        "{throttled}"
    );
    assert_eq!(
        server.stats().get("issued web-01 planned_failover"),
        None,
        "neither POST reached the item: {:?}",
        server.stats()
    );
}
