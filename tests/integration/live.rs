//! A live run is never less safe than the dry run: against the simulator server over HTTP,
//! a run plans against the vault's live state first and refuses what `check` refuses, asks
//! before its first operation, refuses `--auto-approve`, and a runbook run twice converges:
//! the second run issues no failover and leaves every VM where the first one did.

use crate::common::{root, serve};
use runbook::backend::inventory::{Health, Inventory};
use runbook::backend::sim::Simulator;
use runbook::backend::Backend;
use runbook::clock::{Clock, RealClock};
use runbook::simulator::{Server, ServerOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "live-test-token";
const SPEED: f64 = 20_000.0;

/// A simulator server of `inventory` on loopback, jobs `SPEED` times faster than real time.
pub(crate) fn server_of(inventory: &Inventory) -> (SocketAddr, Arc<Server>, Arc<Simulator>) {
    let clock: Arc<dyn Clock> = Arc::new(RealClock::new(SPEED));
    let sim = Arc::new(Simulator::new(inventory, clock, false));
    let options = ServerOptions {
        token: TOKEN.into(),
        speed: SPEED,
        ..ServerOptions::default()
    };
    let (addr, server) = serve(sim.clone(), options);
    (addr, server, sim)
}

/// The example estate, its drills made recent: the server's clock is the wall clock, and a
/// preflight wants a drill in the last 30 days.
fn examples_inventory() -> Inventory {
    recent_drills("runbooks/inventory.toml")
}

/// The inventory at `path` (from the repository's root), its drills made recent.
fn recent_drills(path: &str) -> Inventory {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let yesterday = runbook::clock::Timestamp::from_system(
        std::time::SystemTime::now() - Duration::from_secs(86_400),
    )
    .rfc3339();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("last_test_failover") {
                format!("last_test_failover = \"{yesterday}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    Inventory::parse(&text, path).expect("the example inventory")
}

/// The id of the one run in project `dir`.
fn only_run(dir: &Path) -> String {
    let runs: Vec<_> = std::fs::read_dir(dir.join(".runbook/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// A project whose target `sim` is the server at `addr`; with `inventory`, its
/// runbook.toml names that inventory file (copied in) for durations.
pub(crate) fn project(addr: SocketAddr, inventory: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    if let Some(text) = inventory {
        std::fs::write(dir.path().join("inventory.toml"), text).unwrap();
        config.push_str("inventory = \"inventory.toml\"\n");
    }
    config.push_str(&format!(
        "[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://{addr}\"\npoll_min = \"10ms\"\nlisting_delay = \"1s\"\n"
    ));
    std::fs::write(dir.path().join("runbook.toml"), config).unwrap();
    dir
}

pub(crate) fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(args)
        .current_dir(dir)
        .env("AZURE_ACCESS_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .env_remove("RUNBOOK_CRASH_AT")
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn runbook(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the binary with `args`, approving every manual step it waits at from another
/// process (`runbook approve RUN STEP`), as a second operator would.
pub(crate) fn run_approving(dir: &Path, args: &[&str]) -> Output {
    spawn_approving(command(dir, args))
}

/// Runs `cmd` (made by [`command`], in its project), approving every manual step it waits
/// at from another process.
pub(crate) fn spawn_approving(mut cmd: Command) -> Output {
    let dir = cmd
        .get_current_dir()
        .expect("a project folder")
        .to_path_buf();
    let dir = dir.as_path();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut approved: Vec<(String, u64)> = Vec::new();
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run never ended");
        let runs = std::fs::read_dir(dir.join(".runbook/runs"))
            .map(|rd| rd.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default();
        for run in runs {
            let id = run.file_name().to_string_lossy().into_owned();
            let waiting: Option<serde_json::Value> =
                std::fs::read_to_string(run.path().join("waiting.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            let Some(w) = waiting.filter(|w| w["pid"] == pid) else {
                continue;
            };
            let step = w["step"].as_u64().unwrap();
            if !approved.contains(&(id.clone(), step)) {
                let out = runbook(dir, &["approve", &id, &step.to_string()]);
                assert_eq!(out.status.code(), Some(0), "{}", text(&out));
                approved.push((id, step));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Each item's protection state, site and replication.
pub(crate) fn states(sim: &Simulator) -> BTreeMap<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(sim.list_items())
        .unwrap()
        .into_iter()
        .map(|i| {
            let state = format!(
                "{} on {} (replicating: {})",
                i.protection_state,
                i.active_location.as_str(),
                i.replicating
            );
            (i.name, state)
        })
        .collect()
}

/// How many mutating requests of each kind reached the service.
pub(crate) fn issued(server: &Server) -> BTreeMap<String, u64> {
    server
        .stats()
        .into_iter()
        .filter(|(k, _)| k.starts_with("issued "))
        .collect()
}

#[test]
fn a_live_run_refuses_what_check_refuses_before_issuing_anything() {
    // Each of these passes the static checks but fails the dry run: the live run must plan
    // against the vault and refuse it, as `check` would, before any operation.
    let cases = [
        (
            "RB104",
            "let j = failover(\"sql-01\", #{ kind: \"planned\" });\nwait_job(j, #{ timeout: \"1m\" });\n",
        ),
        (
            "RB103",
            "let j = failover(\"sql-01\", #{ kind: \"planned\" });\ncancel(j);\n",
        ),
        (
            "RB107",
            "wait_job(test_failover(\"web-01\", #{ network: \"drill\" }), #{ timeout: \"1h\" });\n",
        ),
        ("RB101", "wait_job(commit(\"app-01\"), #{ timeout: \"1h\" });\n"),
    ];
    for (code, runbook_text) in cases {
        let (addr, server, _) = server_of(&examples_inventory());
        let dir = project(addr, None);
        std::fs::write(dir.path().join("plan.rhai"), runbook_text).unwrap();
        let out = runbook(
            dir.path(),
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
        );
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{code}: {shown}");
        assert!(shown.contains(&format!("[{code}]")), "{code}: {shown}");
        assert!(shown.contains("nothing was issued"), "{code}: {shown}");
        let stats = server.stats();
        assert!(
            !stats
                .keys()
                .any(|k| k.starts_with("POST") || k.starts_with("issued")),
            "{code}: something was issued: {stats:?}"
        );
        assert!(
            stats.keys().any(|k| k.starts_with("GET")),
            "{code}: the live state was never read: {stats:?}"
        );
    }
}

#[test]
fn without_a_terminal_or_yes_and_with_auto_approve_nothing_is_read_or_issued() {
    let (addr, server, _) = server_of(&examples_inventory());
    let dir = project(addr, None);
    std::fs::copy(
        root().join("runbooks/planned-failover.rhai"),
        dir.path().join("plan.rhai"),
    )
    .unwrap();
    for (args, says) in [
        (
            vec!["run", "plan.rhai", "--target", "sim"],
            "pass --yes to run unattended",
        ),
        (
            vec![
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--auto-approve",
            ],
            "--auto-approve is for the embedded simulator only",
        ),
        // The embedded simulator's options are refused, not ignored.
        (
            vec![
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--speed",
                "100",
            ],
            "--inventory and --speed are for the embedded simulator",
        ),
        (
            vec![
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--inventory",
                "plan.rhai",
            ],
            "--inventory and --speed are for the embedded simulator",
        ),
        // A target that does not exist is said first, not the missing terminal.
        (
            vec!["run", "plan.rhai", "--target", "nope"],
            "no target `nope`",
        ),
    ] {
        let out = runbook(dir.path(), &args);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(shown.contains(says), "{args:?}: {shown}");
        assert!(
            shown.contains("Nothing was read or issued") || shown.contains("no target"),
            "{args:?}: {shown}"
        );
        assert_eq!(server.stats().values().sum::<u64>(), 0, "{args:?}");
    }
}

#[test]
fn the_plan_shows_each_vms_operations_the_recovery_time_and_where_durations_come_from() {
    let inventory_text = std::fs::read_to_string(root().join("runbooks/inventory.toml")).unwrap();
    for (inventory, durations) in [
        (
            Some(inventory_text.as_str()),
            "durations from inventory.toml",
        ),
        (None, "built-in default durations"),
    ] {
        let (addr, _server, _) = server_of(&examples_inventory());
        let dir = project(addr, inventory);
        std::fs::copy(
            root().join("runbooks/planned-failover.rhai"),
            dir.path().join("plan.rhai"),
        )
        .unwrap();
        let out = runbook(
            dir.path(),
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
        );
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(
            shown.contains(&format!(
                "PLAN against the live state of target `sim` ({durations}"
            )),
            "{shown}"
        );
        assert!(
            shown.contains("app-01  planned_failover, commit, reverse_replicate"),
            "{shown}"
        );
        assert!(
            shown.contains("3 operation(s) to issue on 1 VM(s)"),
            "{shown}"
        );
        assert!(shown.contains("estimated recovery time"), "{shown}");
        // The plan is shown before the run starts issuing.
        let plan_at = shown.find("PLAN against").unwrap();
        let live_at = shown.find("LIVE RUN").unwrap();
        assert!(plan_at < live_at, "{shown}");
    }
}

/// The example runbooks run twice against one vault: the second run issues no failover,
/// commit or reverse replication (drills are not failovers: a drill runs again), says
/// what it skipped, and every VM ends where the first run left it.
#[test]
fn every_example_run_twice_converges_and_the_second_run_issues_no_failover() {
    let inventory_text = std::fs::read_to_string(root().join("runbooks/inventory.toml")).unwrap();
    let mut examples: Vec<_> = std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 6);
    for example in examples {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        let (addr, server, sim) = server_of(&examples_inventory());
        let dir = project(addr, Some(&inventory_text));
        std::fs::copy(&example, dir.path().join(&name)).unwrap();
        let args = [
            "run",
            name.as_str(),
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ];
        let first = run_approving(dir.path(), &args);
        assert_eq!(
            first.status.code(),
            Some(0),
            "{name}, first run: {}",
            text(&first)
        );
        let after_one = states(&sim);
        let issued_once = issued(&server);
        assert!(
            !issued_once.is_empty(),
            "{name}: the first run issued nothing"
        );
        let second = run_approving(dir.path(), &args);
        let shown = text(&second);
        assert_eq!(second.status.code(), Some(0), "{name}, second run: {shown}");
        assert_eq!(states(&sim), after_one, "{name}: the second run moved a VM");
        for (key, count) in issued(&server) {
            let drill = key.ends_with(" test_failover") || key.ends_with(" test_failover_cleanup");
            if !drill {
                assert_eq!(
                    Some(&count),
                    issued_once.get(&key),
                    "{name}: the second run sent `{key}` again: {shown}"
                );
            }
        }
        if name != "dr-drill.rhai" {
            assert!(shown.contains("skipped"), "{name}: {shown}");
        }
    }
}

#[test]
fn the_journal_and_the_report_of_a_converged_run_show_what_was_skipped() {
    let (addr, _server, _) = server_of(&examples_inventory());
    let dir = project(addr, None);
    std::fs::copy(
        root().join("runbooks/planned-failover.rhai"),
        dir.path().join("plan.rhai"),
    )
    .unwrap();
    let args = [
        "run",
        "plan.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
    ];
    assert_eq!(runbook(dir.path(), &args).status.code(), Some(0));
    let second = runbook(dir.path(), &args);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let summary = text(&second);
    assert!(
        summary.contains(
            "planned_failover of `app-01` skipped: `app-01` is already active on the recovery site"
        ),
        "{summary}"
    );
    let mut ids: Vec<String> = std::fs::read_dir(dir.path().join(".runbook/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let last = ids.last().unwrap();
    let show = text(&runbook(dir.path(), &["show", last]));
    for op in ["planned_failover", "commit", "reverse_replicate"] {
        assert!(
            show.contains(&format!("SKIPPED {op} of app-01")),
            "{op}: {show}"
        );
    }
    assert!(
        !show.contains("INTENT"),
        "the second run issued something: {show}"
    );
    let report = text(&runbook(dir.path(), &["report", last, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let ops = v["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "{report}");
    assert!(
        ops.iter()
            .all(|o| o["state"] == "skipped" && o["skipped"].is_string()),
        "{report}"
    );
}

/// A crash after the verification and before the commit: the resume re-reads the VM and
/// commits only if it is still as it was verified.
#[test]
fn a_resumed_commit_reads_the_vm_again_and_refuses_when_it_changed() {
    const PLAN: &str = "let j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j, #{ timeout: \"1h\" });\nverify(\"app-01\", #{ active_location: \"recovery\", healthy: true });\nwait_job(commit(\"app-01\"), #{ timeout: \"1h\" });\n";
    // Where the verification and the commit's intent are in the journal of a clean run:
    // the crash points on either side of the commit's request.
    let points: Vec<u64> = {
        let (addr, _server, _) = server_of(&examples_inventory());
        let dir = project(addr, None);
        std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
        let args = [
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ];
        assert_eq!(runbook(dir.path(), &args).status.code(), Some(0));
        let run = std::fs::read_dir(dir.path().join(".runbook/runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
        let records: Vec<serde_json::Value> = journal
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seq_of = |what: &dyn Fn(&serde_json::Value) -> bool| {
            records.iter().find(|r| what(r)).unwrap()["seq"]
                .as_u64()
                .unwrap()
        };
        vec![
            seq_of(&|r| r["type"] == "verified"),
            seq_of(&|r| r["type"] == "intent" && r["operation"] == "commit"),
        ]
    };
    for (point, changed) in points.iter().flat_map(|p| [(*p, true), (*p, false)]) {
        let (addr, server, sim) = server_of(&examples_inventory());
        let dir = project(addr, None);
        std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
        let crashed = command(
            dir.path(),
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
        )
        .env("RUNBOOK_CRASH_AT", format!("{point}:after"))
        .output()
        .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.status.signal(), Some(9), "{}", text(&crashed));
        if changed {
            sim.set_health("app-01", Health::Critical).unwrap();
        }
        let id = only_run(dir.path());
        let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"]);
        let shown = text(&resumed);
        let commits = issued(&server)
            .get("issued app-01 commit")
            .copied()
            .unwrap_or(0);
        if changed {
            assert_eq!(resumed.status.code(), Some(1), "{shown}");
            assert!(shown.contains("[RB112]"), "{shown}");
            assert!(
                shown.contains("was verified before the run was interrupted"),
                "{shown}"
            );
            assert_eq!(
                commits, 0,
                "a commit was sent after the VM changed: {shown}"
            );
        } else {
            assert_eq!(resumed.status.code(), Some(0), "{shown}");
            assert_eq!(commits, 1, "{shown}");
        }
    }
}

#[test]
fn the_operator_recorded_is_the_os_account_not_the_environment() {
    let login = Command::new("id").arg("-un").output().unwrap();
    let login = String::from_utf8_lossy(&login.stdout).trim().to_string();
    let uid = Command::new("id").arg("-u").output().unwrap();
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("runbooks/planned-failover.rhai"),
        dir.path().join("plan.rhai"),
    )
    .unwrap();
    let out = command(
        dir.path(),
        &[
            "run",
            "plan.rhai",
            "--auto-approve",
            "--speed",
            "1000000",
            "--no-progress",
        ],
    )
    .env("USER", "mallory")
    .env("LOGNAME", "mallory")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = std::fs::read_dir(dir.path().join(".runbook/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    let operator = header["operator"].as_str().unwrap();
    assert!(
        operator.starts_with(&format!("{login}@")) && operator.ends_with(&format!("(uid {uid})")),
        "{operator}"
    );
    assert!(!operator.contains("mallory"), "{operator}");
}

/// A wait that timed out in two attempts in a row is not replayed as timed out forever: the
/// attempt after them follows the job again and, once the service finished it, goes on,
/// having issued the failover once.
#[test]
fn a_wait_that_timed_out_twice_is_followed_again_by_the_next_resume() {
    // A failover of 40 hours: 7.2 s at the server's speed; the runbook allows one second.
    let estate = "start = \"2026-11-26T02:00:00Z\"\n[sites.primary]\nname = \"vmm-hq\"\nconnected = true\n[sites.recovery]\nname = \"vmm-dr\"\nconnected = true\n[durations]\nplanned_failover = \"40h\"\n[[items]]\nname = \"app-01\"\n";
    let (addr, server, sim) = server_of(&Inventory::parse(estate, "the slow estate").unwrap());
    // The plan's estimate (this project's inventory) fits the wait, the service's job not.
    let dir = project(
        addr,
        Some(&estate.replace("planned_failover = \"40h\"", "planned_failover = \"200ms\"")),
    );
    std::fs::write(
        dir.path().join("plan.rhai"),
        "let j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j, #{ timeout: \"1s\" });\n",
    )
    .unwrap();
    let first = runbook(
        dir.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    let id = only_run(dir.path());
    let second = runbook(dir.path(), &["resume", &id, "--no-progress"]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    // The service finishes the job.
    let deadline = Instant::now() + Duration::from_secs(60);
    while states(&sim)["app-01"].contains("on primary") {
        assert!(Instant::now() < deadline, "the failover never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let third = runbook(dir.path(), &["resume", &id, "--no-progress"]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert_eq!(
        issued(&server)
            .get("issued app-01 planned_failover")
            .copied(),
        Some(1),
        "{:?}",
        issued(&server)
    );
}

/// A resume with changed text is planned against the live state first, as a new run is:
/// a change `check` would refuse is refused before anything more is sent.
#[test]
fn a_resume_with_changed_text_is_dry_run_against_the_live_state_first() {
    const PLAN: &str = "let j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j, #{ timeout: \"1h\" });\nverify(\"app-01\", #{ active_location: \"recovery\", healthy: true });\nwait_job(commit(\"app-01\"), #{ timeout: \"1h\" });\n";
    // Crashed after the verification, before the commit.
    let crash_at = {
        let (addr, _server, _) = server_of(&examples_inventory());
        let dir = project(addr, None);
        std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
        let clean = runbook(
            dir.path(),
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
        );
        assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
        let run = std::fs::read_dir(dir.path().join(".runbook/runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
        journal
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["type"] == "verified")
            .unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    // A commit of a VM that was never failed over: the dry run refuses it (RB101).
    let refused = format!("{PLAN}wait_job(commit(\"app-02\"), #{{ timeout: \"1h\" }});\n");
    let harmless = format!("{PLAN}note(\"done\");\n");
    for (changed, accepted) in [(refused, false), (harmless, true)] {
        let (addr, server, _sim) = server_of(&examples_inventory());
        let dir = project(addr, None);
        std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
        let crashed = command(
            dir.path(),
            &[
                "run",
                "plan.rhai",
                "--target",
                "sim",
                "--yes",
                "--no-progress",
            ],
        )
        .env("RUNBOOK_CRASH_AT", format!("{crash_at}:after"))
        .output()
        .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.status.signal(), Some(9), "{}", text(&crashed));
        std::fs::write(dir.path().join("plan.rhai"), &changed).unwrap();
        let id = only_run(dir.path());
        let resumed = runbook(
            dir.path(),
            &["resume", &id, "--allow-changed", "--no-progress"],
        );
        let shown = text(&resumed);
        let commits = issued(&server)
            .get("issued app-01 commit")
            .copied()
            .unwrap_or(0);
        if accepted {
            assert_eq!(resumed.status.code(), Some(0), "{shown}");
            assert!(shown.contains("PLAN against"), "{shown}");
            assert!(shown.contains("--allow-changed was given"), "{shown}");
            assert_eq!(commits, 1, "{shown}");
        } else {
            assert_eq!(resumed.status.code(), Some(1), "{shown}");
            assert!(shown.contains("[RB101]"), "{shown}");
            assert!(shown.contains("nothing was issued"), "{shown}");
            assert_eq!(commits, 0, "the changed text ran unchecked: {shown}");
        }
    }
}

/// During an outage the live state has a site disconnected: the plan assumes it comes back
/// (at the first manual step after a failover, or as the project's inventory says) instead
/// of refusing the outage runbook's reverse replication, and says so.
#[test]
fn the_outage_runbook_is_planned_against_a_disconnected_site_and_starts() {
    let (addr, server, _sim) = server_of(&recent_drills("runbooks/outage.toml"));
    let dir = project(addr, None);
    std::fs::copy(
        root().join("runbooks/outage-unplanned-failover.rhai"),
        dir.path().join("outage.rhai"),
    )
    .unwrap();
    // Killed at its first record after the start (the first step, approved): the plan
    // was accepted and the run started.
    let mut cmd = command(
        dir.path(),
        &[
            "run",
            "outage.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    cmd.env("RUNBOOK_CRASH_AT", "2:before");
    let out = spawn_approving(cmd);
    let shown = self::text(&out);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{shown}");
    assert!(shown.contains("PLAN against"), "{shown}");
    assert!(
        shown.contains("the primary site (vmm-hq) is disconnected now: the plan assumes it comes back at the first manual step confirmed after a failover"),
        "{shown}"
    );
    assert!(issued(&server).is_empty(), "{:?}", issued(&server));
}

/// A job running on the vault when the run starts is not in the plan's estate: the plan
/// names the VMs it runs on.
#[test]
fn the_plan_names_the_vms_with_a_job_in_progress() {
    let estate = "start = \"2026-11-26T02:00:00Z\"\n[sites.primary]\nname = \"vmm-hq\"\nconnected = true\n[sites.recovery]\nname = \"vmm-dr\"\nconnected = true\n[durations]\nplanned_failover = \"40h\"\n[[items]]\nname = \"app-01\"\n[[items]]\nname = \"web-01\"\n";
    let (addr, _server, sim) = server_of(&Inventory::parse(estate, "the estate").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut request =
        runbook::backend::OperationRequest::new(runbook::backend::Operation::PlannedFailover);
    request.direction = Some(runbook::backend::Direction::PrimaryToRecovery);
    let job = rt.block_on(sim.start("web-01", &request)).unwrap();
    let dir = project(addr, None);
    std::fs::write(
        dir.path().join("plan.rhai"),
        "let j = failover(\"app-01\", #{ kind: \"planned\" });\n",
    )
    .unwrap();
    let out = command(
        dir.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    )
    .env("RUNBOOK_CRASH_AT", "2:before")
    .output()
    .unwrap();
    let shown = text(&out);
    assert!(shown.contains("PLAN against"), "{shown}");
    assert!(
        shown.contains(&format!(
            "1 VM(s) have a job in progress now, which the plan does not show: web-01 (job {})",
            job.id
        )),
        "{shown}"
    );
}

/// What the actions and channels of runbook.toml need and this machine lacks is said in
/// the plan, before the first operation, not at the action in the middle of the recovery.
#[test]
fn the_plan_says_which_actions_and_channels_cannot_work_here() {
    let (addr, _server, _sim) = server_of(&examples_inventory());
    let dir = project(addr, None);
    let toml = std::fs::read_to_string(dir.path().join("runbook.toml")).unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        format!("{toml}\n[actions.dns]\ncommand = [\"no-such-program-for-the-test\"]\n\n[actions.lb]\nwebhook = \"http://127.0.0.1:9/lb\"\nsecret_headers = {{ Authorization = \"UNSET_LB_AUTH_FOR_THE_TEST\" }}\n\n[notify.ops]\nwebhook_env = \"UNSET_OPS_HOOK_FOR_THE_TEST\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("plan.rhai"), "note(\"nothing to do\");\n").unwrap();
    let out = runbook(
        dir.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
        ],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for says in [
        "action `dns`: the program `no-such-program-for-the-test` is not found",
        "action `lb` needs $UNSET_LB_AUTH_FOR_THE_TEST, which is not set",
        "channel `ops` needs $UNSET_OPS_HOOK_FOR_THE_TEST, which is not set",
    ] {
        assert!(shown.contains(says), "{says}: {shown}");
    }
}
