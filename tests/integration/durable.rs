//! Durable runs, at the process level: a runner killed with SIGKILL anywhere (before,
//! during and after mutating calls, and while writing its journal) and then resumed
//! issues every operation exactly once per item, as the simulator server counts them.
//! Also: locks, refusals to resume, journal repair and failures, approvals from another
//! terminal.

use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::backend::Backend;
use runbook::clock::{Clock, RealClock};
use runbook::simulator::{Server, ServerOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

pub(crate) const TOKEN: &str = "durable-test-token";
const VMS: [&str; 2] = ["app-01", "app-02"];
const OPERATIONS: [&str; 3] = ["planned_failover", "commit", "reverse_replicate"];

/// A live run of the plan, unattended.
pub(crate) const RUN_PLAN: [&str; 6] = [
    "run",
    "plan.rhai",
    "--target",
    "sim",
    "--yes",
    "--no-progress",
];

/// A new run of the plan that takes a stale lock over.
pub(crate) const TAKE_OVER: [&str; 7] = [
    "run",
    "plan.rhai",
    "--target",
    "sim",
    "--yes",
    "--take-over",
    "--no-progress",
];

pub(crate) const PLAN: &str = r#"// Fail two VMs over, verify and commit them, and protect them again.
let names = ["app-01", "app-02"];
let jobs = [];
for n in names { jobs.push(failover(n, #{ kind: "planned" })); }
wait_all(jobs);
let commits = [];
for n in names {
    verify(n, #{ active_location: "recovery", healthy: true });
    commits.push(commit(n));
}
wait_all(commits);
let protect = [];
for n in names { protect.push(reverse_replicate(n)); }
wait_all(protect);
"#;

fn inventory() -> Inventory {
    let mut text = String::from("start = \"2026-11-26T00:00:00Z\"\n");
    for vm in VMS {
        text.push_str(&format!("\n[[items]]\nname = \"{vm}\"\n"));
    }
    Inventory::parse(&text, "durable inventory").unwrap()
}

/// A simulator server on loopback, on its own runtime thread: it outlives the runners.
pub(crate) fn start_server() -> (SocketAddr, Arc<Server>, Arc<Simulator>) {
    start_server_at(20_000.0)
}

/// [`start_server`] with the simulation `speed` times faster than real time.
pub(crate) fn start_server_at(speed: f64) -> (SocketAddr, Arc<Server>, Arc<Simulator>) {
    let clock: Arc<dyn Clock> = Arc::new(RealClock::new(speed));
    let sim = Arc::new(Simulator::new(&inventory(), clock, false));
    let options = ServerOptions {
        token: TOKEN.into(),
        speed,
        ..ServerOptions::default()
    };
    let (addr, server) = crate::common::serve(sim.clone(), options);
    (addr, server, sim)
}

/// A project with target `sim` at `addr` and the plan. Requests time out after 4 s: a
/// resume looks that long (and `listing_delay` more) for the job of a request that may
/// have left before the crash.
pub(crate) fn project(addr: SocketAddr) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        format!("[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://{addr}\"\npoll_min = \"10ms\"\nlisting_delay = \"1s\"\ntimeout = \"4s\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
    dir
}

pub(crate) fn runbook(dir: &Path, args: &[&str], crash: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(args)
        .current_dir(dir)
        .env("AZURE_ACCESS_TOKEN", TOKEN)
        .env_remove("RUNBOOK_CRASH_AT")
        .stdin(Stdio::null());
    if let Some(point) = crash {
        cmd.env("RUNBOOK_CRASH_AT", point);
    }
    cmd.output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(9)
}

pub(crate) fn run_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join(".runbook/runs"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Starts the binary in `dir` with `args`, its output captured.
pub(crate) fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("AZURE_ACCESS_TOKEN", TOKEN)
        .env_remove("RUNBOOK_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until process `pid` says it waits at manual step `step` of a run in `dir`;
/// returns the run's id.
pub(crate) fn waiting_at(dir: &Path, step: u32, pid: u32) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for id in run_ids(dir) {
            let path = dir.join(".runbook/runs").join(&id).join("waiting.json");
            let waiting: Option<serde_json::Value> = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if waiting.is_some_and(|w| w["step"] == step && w["pid"] == pid) {
                return id;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never waited at step {step}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn journal_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(".runbook/runs").join(id).join("journal.jsonl")
}

/// Every operation reached each item exactly once, and each item ended protected on the
/// recovery site.
pub(crate) fn assert_once_and_protected(server: &Server, sim: &Simulator, context: &str) {
    let stats = server.stats();
    for vm in VMS {
        for op in OPERATIONS {
            let n = stats
                .get(&format!("issued {vm} {op}"))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                n, 1,
                "{context}: {op} of {vm} reached the service {n} times: {stats:?}"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let item = rt.block_on(sim.item(vm)).unwrap();
        assert_eq!(
            item.protection_state, "Protected",
            "{context}: {vm}: {item:?}"
        );
        assert_eq!(item.active_location.as_str(), "recovery", "{context}: {vm}");
        assert!(item.replicating, "{context}: {vm}");
    }
}

/// How many records a whole run writes.
fn records_of_a_clean_run() -> usize {
    let (addr, server, sim) = start_server();
    let dir = project(addr);
    let out = runbook(dir.path(), &RUN_PLAN, None);
    assert!(out.status.success(), "{}", text(&out));
    assert_once_and_protected(&server, &sim, "clean run");
    let ids = run_ids(dir.path());
    assert_eq!(ids.len(), 1);
    std::fs::read_to_string(journal_of(dir.path(), &ids[0]))
        .unwrap()
        .lines()
        .count()
}

/// One crash scenario: run with a crash point, then resume until done.
fn crash_then_resume(point: &str) -> Result<(), String> {
    let (addr, server, sim) = start_server();
    let dir = project(addr);
    let out = runbook(dir.path(), &RUN_PLAN, Some(point));
    if !killed(&out) {
        return Err(format!(
            "{point}: the runner was not killed: {}",
            text(&out)
        ));
    }
    let ids = run_ids(dir.path());
    let id = ids.first().ok_or(format!("{point}: no run folder"))?;
    let resumed = runbook(dir.path(), &["resume", id, "--no-progress"], None);
    if !resumed.status.success() {
        return Err(format!("{point}: resume failed: {}", text(&resumed)));
    }
    let journal = std::fs::read_to_string(journal_of(dir.path(), id)).unwrap();
    if !journal
        .lines()
        .last()
        .unwrap_or("")
        .contains("\"succeeded\"")
    {
        return Err(format!("{point}: the journal does not end in success"));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_once_and_protected(&server, &sim, point)
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| format!("{point}: failed"))
    })
}

#[test]
fn a_runner_killed_anywhere_and_resumed_issues_every_operation_exactly_once() {
    let records = records_of_a_clean_run();
    assert!(records > 20, "a clean run wrote {records} records");
    // Every record from the first read on; before it, after it, and torn while written.
    let points: Vec<String> = (2..=records)
        .flat_map(|seq| ["before", "torn", "after"].map(|p| format!("{seq}:{p}")))
        .collect();
    let failures = crate::common::in_parallel(&points, 2, |point| {
        // The last record (the run's end) is past every operation: the crash after it
        // leaves nothing to resume.
        if point == &format!("{records}:after") {
            return Ok(());
        }
        crash_then_resume(point)
    });
    assert!(
        failures.is_empty(),
        "{} of {} crash points failed:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
}

#[test]
fn two_crashes_in_a_row_still_issue_everything_once() {
    let (addr, server, sim) = start_server();
    let dir = project(addr);
    let args = [
        "run",
        "plan.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
    ];
    assert!(killed(&runbook(dir.path(), &args, Some("6:torn"))));
    let id = run_ids(dir.path()).remove(0);
    let again = runbook(
        dir.path(),
        &["resume", &id, "--no-progress"],
        Some("14:after"),
    );
    assert!(killed(&again), "{}", text(&again));
    let done = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(done.status.success(), "{}", text(&done));
    assert_once_and_protected(&server, &sim, "two crashes");
    let shown = runbook(dir.path(), &["show", &id], None);
    let shown = text(&shown);
    assert_eq!(shown.matches("resumed by").count(), 2, "{shown}");
}

#[test]
fn a_crash_before_the_header_leaves_nothing_to_resume_and_nothing_issued() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    let out = runbook(
        dir.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        Some("1:torn"),
    );
    assert!(killed(&out));
    let id = run_ids(dir.path()).remove(0);
    let resumed = runbook(dir.path(), &["resume", &id], None);
    assert_eq!(resumed.status.code(), Some(2), "{}", text(&resumed));
    assert!(
        text(&resumed).contains("no header record"),
        "{}",
        text(&resumed)
    );
    assert!(!server.stats().keys().any(|k| k.starts_with("issued")));
}

#[test]
fn two_copies_of_a_project_on_one_machine_do_not_both_run_against_one_vault() {
    let (addr, server, _) = start_server();
    let (a, b) = (project(addr), project(addr));
    std::fs::write(
        a.path().join("wait.rhai"),
        "manual_step(\"Call the application owner\", #{ timeout: \"10m\" });\nlet j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\n",
    )
    .unwrap();
    let mut first = spawn(
        a.path(),
        &[
            "run",
            "wait.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    let id = waiting_at(a.path(), 1, first.id());
    let second = runbook(
        b.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
        None,
    );
    let message = text(&second);
    assert_eq!(second.status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!(
            "locked on this machine by run {id} of another copy of the project"
        )),
        "{message}"
    );
    assert!(
        run_ids(b.path()).is_empty(),
        "a refused run leaves no run folder"
    );
    assert!(!server.stats().keys().any(|k| k.starts_with("issued")));
    // Gone however it ended, the first run holds nothing: the second copy runs.
    first.kill().unwrap();
    first.wait().unwrap();
    let again = runbook(
        b.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
        None,
    );
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn a_second_run_on_the_same_target_is_refused_and_a_stale_lock_is_detected() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    std::fs::write(
        dir.path().join("wait.rhai"),
        "manual_step(\"Call the application owner\", #{ timeout: \"10m\" });\nlet j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\n",
    )
    .unwrap();
    let mut first = spawn(
        dir.path(),
        &[
            "run",
            "wait.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    // Wait until the first run holds the lock and waits at its manual step.
    let id = waiting_at(dir.path(), 1, first.id());
    let second = runbook(
        dir.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        None,
    );
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    let message = text(&second);
    assert!(
        message.contains(&format!("locked by run {id}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("process {}", first.id())),
        "{message}"
    );
    assert_eq!(
        run_ids(dir.path()),
        std::slice::from_ref(&id),
        "a run refused by the lock leaves no run folder"
    );
    // The same vault through `localhost` and in other letter cases is the same lock.
    let toml = std::fs::read_to_string(dir.path().join("runbook.toml")).unwrap();
    let same = format!(
        "\n[targets.same]\nsubscription = \"S\"\nresource_group = \"G\"\nvault = \"V\"\nendpoint = \"http://localhost:{}/\"\n",
        addr.port()
    );
    std::fs::write(dir.path().join("runbook.toml"), format!("{toml}{same}")).unwrap();
    // Refused (exit code 2) with `why`.
    let refused = |target: &str, why: &str| {
        let out = runbook(
            dir.path(),
            &["run", "plan.rhai", "--target", target, "--yes"],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(why), "{}", text(&out));
    };
    refused("same", &format!("locked by run {id}"));
    first.kill().unwrap();
    first.wait().unwrap();
    refused("sim", &format!("stale lock: run {id}"));
    // It recorded its start: it can be resumed, and the refusal says how.
    refused("sim", &format!("Resume it with `runbook resume {id}`"));
    assert_eq!(run_ids(dir.path()), std::slice::from_ref(&id));
    assert!(!server.stats().keys().any(|k| k.starts_with("issued")));
    let taken = runbook(dir.path(), &TAKE_OVER, None);
    assert!(taken.status.success(), "{}", text(&taken));
}

#[test]
fn approval_from_another_terminal_is_recorded_and_not_asked_again_on_resume() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    std::fs::write(
        dir.path().join("step.rhai"),
        "manual_step(\"Stop the batch jobs\", #{ timeout: \"10m\" });\nlet j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\nmanual_step(\"Check the application\", #{ timeout: \"10m\" });\n",
    )
    .unwrap();
    let mut first = spawn(
        dir.path(),
        &[
            "run",
            "step.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    let id = waiting_at(dir.path(), 1, first.id());
    let wrong = runbook(dir.path(), &["approve", &id, "2"], None);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong).contains("waits at step 1 (`Stop the batch jobs`)"),
        "{}",
        text(&wrong)
    );
    let ok = runbook(dir.path(), &["approve", &id, "stop the batch jobs"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    // Killed while it waits at the second step.
    waiting_at(dir.path(), 2, first.id());
    first.kill().unwrap();
    first.wait().unwrap();
    let resumed = spawn(dir.path(), &["resume", &id, "--no-progress"]);
    waiting_at(dir.path(), 2, resumed.id());
    assert!(runbook(dir.path(), &["approve", &id, "2"], None)
        .status
        .success());
    let out = resumed.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert_eq!(journal.matches("\"type\":\"step\"").count(), 2, "{journal}");
    assert_eq!(
        server.stats().get("issued app-01 planned_failover"),
        Some(&1)
    );
    let report = text(&runbook(
        dir.path(),
        &["report", &id, "--format", "json"],
        None,
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["approvals"].as_array().unwrap().len(), 2, "{report}");
}

#[test]
fn a_changed_runbook_refuses_to_resume_unless_told() {
    let (addr, server, sim) = start_server();
    let dir = project(addr);
    assert!(killed(&runbook(
        dir.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        Some("12:after")
    )));
    let id = run_ids(dir.path()).remove(0);
    std::fs::write(
        dir.path().join("plan.rhai"),
        format!("{PLAN}// reviewed after the outage\n"),
    )
    .unwrap();
    let refused = runbook(dir.path(), &["resume", &id], None);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("changed since it started: plan.rhai"),
        "{}",
        text(&refused)
    );
    let allowed = runbook(
        dir.path(),
        &["resume", &id, "--allow-changed", "--no-progress"],
        None,
    );
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert_once_and_protected(&server, &sim, "changed runbook");
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_run_before_any_further_operation() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    // Writing record 2 (the first read) fails as on a full disk.
    let out = runbook(
        dir.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        Some("2:full"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot be written"), "{}", text(&out));
    assert!(
        !server.stats().keys().any(|k| k.starts_with("issued")),
        "{:?}",
        server.stats()
    );
    // A run folder that cannot be made: nothing runs at all.
    let blocked = project(addr);
    std::fs::write(blocked.path().join(".runbook"), "not a folder").unwrap();
    let out = runbook(
        blocked.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot create the run folder"),
        "{}",
        text(&out)
    );
    assert!(!server.stats().keys().any(|k| k.starts_with("issued")));
}

#[test]
fn a_simulated_run_cannot_be_resumed_but_its_journal_can_be_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), PLAN.replace("app-0", "web-0")).unwrap();
    let out = runbook(
        dir.path(),
        &["run", "plan.rhai", "--speed", "1000000", "--no-progress"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = run_ids(dir.path()).remove(0);
    let resumed = runbook(dir.path(), &["resume", &id], None);
    assert_eq!(resumed.status.code(), Some(2));
    assert!(
        text(&resumed).contains("succeeded; there is nothing to resume"),
        "{}",
        text(&resumed)
    );
    let listed = text(&runbook(dir.path(), &["runs"], None));
    assert!(
        listed.contains(&id) && listed.contains("succeeded"),
        "{listed}"
    );
    let html = text(&runbook(
        dir.path(),
        &["report", &id, "--format", "html"],
        None,
    ));
    assert!(
        html.starts_with("<!doctype html>") && html.contains("web-01"),
        "{html}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(journal_of(dir.path(), &id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the journal is readable only by its owner: {mode:o}"
        );
    }
}

#[test]
fn sigterm_stops_new_operations_and_prints_the_resume_command() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    std::fs::write(
        dir.path().join("step.rhai"),
        "let j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j);\nmanual_step(\"Check the application\", #{ timeout: \"10m\" });\nwait_job(commit(\"app-01\"));\n",
    )
    .unwrap();
    let child = spawn(
        dir.path(),
        &[
            "run",
            "step.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    let id = waiting_at(dir.path(), 1, child.id());
    // SAFETY: kill(2) on the child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let message = text(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert!(
        message.contains("interrupted: no new operation will be issued"),
        "{message}"
    );
    assert!(
        message.contains(&format!("resume with: runbook resume {id}")),
        "{message}"
    );
    assert_eq!(
        server.stats().get("issued app-01 commit"),
        None,
        "nothing issued after the interrupt"
    );
    let listed = text(&runbook(dir.path(), &["runs"], None));
    assert!(listed.contains("interrupted (resumable)"), "{listed}");
}

#[test]
fn a_resume_refuses_another_vault_and_other_parameters() {
    let (addr, server, _) = start_server();
    let dir = project(addr);
    // Killed right after the first failover's answer was recorded.
    assert!(killed(&runbook(
        dir.path(),
        &["run", "plan.rhai", "--target", "sim", "--yes"],
        Some("4:after")
    )));
    let id = run_ids(dir.path()).remove(0);
    let toml = std::fs::read_to_string(dir.path().join("runbook.toml")).unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        toml.replace("vault = \"v\"", "vault = \"other\""),
    )
    .unwrap();
    let refused = runbook(dir.path(), &["resume", &id], None);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("now names another vault"),
        "{}",
        text(&refused)
    );
    std::fs::write(dir.path().join("runbook.toml"), toml).unwrap();
    // Another operation where the journal has the failover: its answers do not apply.
    std::fs::write(
        dir.path().join("plan.rhai"),
        PLAN.replace("\"planned\"", "\"unplanned\""),
    )
    .unwrap();
    let diverged = runbook(dir.path(), &["resume", &id, "--allow-changed"], None);
    assert_eq!(diverged.status.code(), Some(1), "{}", text(&diverged));
    assert!(
        text(&diverged).contains("does not follow its journal"),
        "{}",
        text(&diverged)
    );
    let issued: u64 = server
        .stats()
        .iter()
        .filter(|(k, _)| k.starts_with("issued"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        issued,
        1,
        "only the first failover, before the crash: {:?}",
        server.stats()
    );
}
