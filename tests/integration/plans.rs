//! Recovery plans as one job, over real HTTP against the simulator server: a plan's
//! failover, commit and reverse replication by `runbook run --target`, its manual action
//! shown as a manual step and approved from another process (`runbook approve`), then the
//! job resumed through `replicationJobs/{job}/resume`; and a run killed at each record of
//! the plan's journey, resumed, sends the plan's failover, the resume and the commit once.

use crate::live::{command, issued, project, run_approving, server_of, states, text};
use runbook::backend::inventory::Inventory;
use std::collections::BTreeMap;
use std::path::Path;

const ESTATE: &str = r#"
[durations]
planned_failover = "8m"
commit = "1m"
reverse_replicate = "20m"
[plans.tiers]
groups = [["db"], ["app-1", "app-2"], ["web-1"]]
actions = [{ name = "check the database", before_group = 2, instructions = "Open the order page." }]
[[items]]
name = "db"
[[items]]
name = "app-1"
[[items]]
name = "app-2"
[[items]]
name = "web-1"
"#;

const RUNBOOK: &str = r#"let job = failover_plan("tiers", #{ kind: "planned" });
wait_job(job, #{ timeout: "4h" });
for name in ["db", "app-1", "app-2", "web-1"] {
    verify(name, #{ active_location: "recovery", healthy: true });
}
wait_job(commit_plan("tiers"), #{ timeout: "1h" });
wait_job(reverse_replicate_plan("tiers"), #{ timeout: "4h" });
"#;

const RUN: &[&str] = &[
    "run",
    "plans.rhai",
    "--target",
    "sim",
    "--yes",
    "--no-progress",
];

/// A project on the server at `addr` whose requests time out after 2s: a resume settling
/// a plan's intent whose answer was lost waits that long (and the listing delay) for the
/// job before it may send the request.
fn quick_project(addr: std::net::SocketAddr) -> tempfile::TempDir {
    let dir = project(addr, Some(ESTATE));
    let config = dir.path().join("runbook.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}timeout = \"2s\"\n")).unwrap();
    std::fs::write(dir.path().join("plans.rhai"), RUNBOOK).unwrap();
    dir
}

fn inventory() -> Inventory {
    Inventory::parse(ESTATE, "the plan estate").unwrap()
}

/// The journal of the only run in `dir`, and its id.
fn journal(dir: &Path) -> (String, Vec<serde_json::Value>) {
    let run = std::fs::read_dir(dir.join(".runbook/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap();
    let records = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (run.file_name().to_string_lossy().into_owned(), records)
}

/// The plan's requests that reached the service, and the resumes.
fn sent(server: &runbook::simulator::Server) -> BTreeMap<String, u64> {
    let mut out = issued(server);
    let resumes = server
        .stats()
        .into_iter()
        .find(|(k, _)| k == "POST resume")
        .map_or(0, |(_, n)| n);
    out.insert("resume".into(), resumes);
    out
}

fn expected_sent() -> BTreeMap<String, u64> {
    [
        ("issued plan tiers failoverCommit", 1),
        ("issued plan tiers plannedFailover", 1),
        ("issued plan tiers reProtect", 1),
        ("resume", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// Every VM of the plan on the recovery site, replicating back.
fn all_back_in_protection(sim: &runbook::backend::sim::Simulator) {
    for (vm, state) in states(sim) {
        assert!(
            state.contains("on recovery (replicating: true)"),
            "{vm}: {state}"
        );
    }
}

#[test]
fn a_plan_fails_over_commits_and_reprotects_as_one_job_its_manual_action_approved_elsewhere() {
    let (addr, server, sim) = server_of(&inventory());
    let dir = project(addr, Some(ESTATE));
    std::fs::write(dir.path().join("plans.rhai"), RUNBOOK).unwrap();
    let out = run_approving(dir.path(), RUN);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("check the database"), "{shown}");
    assert_eq!(sent(&server), expected_sent(), "{shown}");
    all_back_in_protection(&sim);
    let (_, records) = journal(dir.path());
    let step = records
        .iter()
        .find(|r| r["type"] == "step")
        .expect("the manual action is a manual step of the run");
    assert_eq!(step["number"], 1);
    assert!(step["title"]
        .as_str()
        .unwrap()
        .contains("check the database"));
    assert!(records
        .iter()
        .any(|r| r["type"] == "intent" && r["operation"] == "resume"));
    // The wait saw the plan's job suspended, then followed it to its end with its tasks.
    let waits: Vec<&serde_json::Value> = records.iter().filter(|r| r["type"] == "waited").collect();
    assert!(
        waits[0]["outcome"].get("suspended").is_some(),
        "{:?}",
        waits[0]
    );
    let done = &waits[1]["outcome"]["done"][0];
    assert_eq!(done["state"], "Succeeded");
    let tasks: Vec<&str> = done["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["vm"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["db", "app-1", "app-2", "web-1"]);
    // The per-VM tasks in the progress, the summary and the report.
    assert!(
        shown.contains("tiers group 2: planned_failover of app-2 Succeeded"),
        "{shown}"
    );
    assert!(shown.contains("plan tiers (4/4 VMs done)"), "{shown}");
    // The plan before the run names the plan and counts its members.
    assert!(
        shown.contains("  plan tiers (4 VMs)  planned_failover, commit, reverse_replicate"),
        "{shown}"
    );
    assert!(
        shown.contains("operation(s) to issue on 4 VM(s)"),
        "{shown}"
    );
    let (id, _) = journal(dir.path());
    let report = crate::live::runbook(dir.path(), &["report", &id]);
    let report = text(&report);
    let section = report
        .split("## Recovery plans' tasks")
        .nth(1)
        .unwrap_or_else(|| panic!("no tasks in the report: {report}"));
    assert!(
        section.contains("| 1 | tiers | 3 | web-1 | Succeeded |"),
        "{section}"
    );
}

#[test]
fn a_run_killed_anywhere_in_a_plans_job_resumes_and_sends_each_request_once() {
    // The records of a clean run: each is a crash point.
    let points: Vec<(u64, String)> = {
        let (addr, _server, _) = server_of(&inventory());
        let dir = project(addr, Some(ESTATE));
        std::fs::write(dir.path().join("plans.rhai"), RUNBOOK).unwrap();
        let out = run_approving(dir.path(), RUN);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let (_, records) = journal(dir.path());
        records
            .iter()
            .filter(|r| {
                matches!(
                    r["type"].as_str(),
                    Some("intent" | "issued" | "waited" | "step")
                )
            })
            .map(|r| {
                (
                    r["seq"].as_u64().unwrap(),
                    r["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(points.len() >= 10, "{points:?}");
    let mut phases: Vec<String> = Vec::new();
    for (seq, kind) in &points {
        phases.push(format!("{seq}:after"));
        if kind == "intent" {
            phases.push(format!("{seq}:before"));
        }
    }
    for at in phases {
        let (addr, server, sim) = server_of(&inventory());
        let dir = quick_project(addr);
        let mut cmd = command(dir.path(), RUN);
        cmd.env("RUNBOOK_CRASH_AT", &at);
        let crashed = crate::live::spawn_approving(cmd);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.status.signal(), Some(9), "{at}: {}", text(&crashed));
        let (id, _) = journal(dir.path());
        let resumed = run_approving(dir.path(), &["resume", &id, "--no-progress"]);
        let shown = text(&resumed);
        assert_eq!(resumed.status.code(), Some(0), "{at}: {shown}");
        assert_eq!(sent(&server), expected_sent(), "{at}: {shown}");
        all_back_in_protection(&sim);
    }
}

#[test]
fn status_lists_the_plans_and_an_export_keeps_their_groups() {
    let (addr, _server, _sim) = server_of(&inventory());
    let dir = quick_project(addr);
    let out = crate::live::runbook(dir.path(), &["status", "--target", "sim"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.contains("tiers"))
        .unwrap_or_else(|| panic!("no row for the plan: {shown}"));
    assert!(row.contains("1: db | 2: app-1, app-2 | 3: web-1"), "{row}");
    assert!(row.contains("planned_failover"), "{row}");
    let out = crate::live::runbook(
        dir.path(),
        &[
            "inventory",
            "export",
            "--target",
            "sim",
            "--output",
            "live.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let exported = Inventory::load(&dir.path().join("live.toml")).unwrap();
    assert_eq!(
        exported.plans["tiers"].groups,
        vec![vec!["db"], vec!["app-1", "app-2"], vec!["web-1"]]
    );
    // A check of the runbook against the exported estate knows the plan.
    let out = crate::live::runbook(
        dir.path(),
        &["check", "plans.rhai", "--inventory", "live.toml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Killed while waiting at the plan's manual action, and the job resumed elsewhere (the
/// portal) meanwhile: the resume neither asks again nor resumes the job a second time.
#[test]
fn a_manual_action_resumed_elsewhere_after_a_crash_is_not_asked_or_resumed_again() {
    use runbook::backend::Backend;
    let (addr, server, sim) = server_of(&inventory());
    let dir = quick_project(addr);
    let mut child = command(dir.path(), RUN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let waiting = loop {
        assert!(std::time::Instant::now() < deadline, "the run never waited");
        let found = std::fs::read_dir(dir.path().join(".runbook/runs"))
            .ok()
            .and_then(|mut rd| rd.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("waiting.json"))
            .filter(|p| p.exists());
        if let Some(path) = found {
            break path;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(waiting.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let (id, records) = journal(dir.path());
    let job = records
        .iter()
        .find(|r| r["type"] == "issued")
        .and_then(|r| r["answer"]["ok"]["id"].as_str())
        .expect("the plan's job")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(sim.resume_job(&job, "resumed in the portal"))
        .unwrap();
    let resumed = run_approving(dir.path(), &["resume", &id, "--no-progress"]);
    let shown = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("went on past `check the database`"),
        "{shown}"
    );
    assert_eq!(sent(&server).get("resume"), Some(&0), "{shown}");
    all_back_in_protection(&sim);
}

/// Killed right after a plan commit's intent, before its request left, with a member no
/// longer healthy meanwhile: the resume reads the members again and sends no commit.
#[test]
fn a_resumed_plan_commit_reads_its_members_again_and_refuses_when_one_changed() {
    let clean = {
        let (addr, _server, _sim) = server_of(&inventory());
        let dir = quick_project(addr);
        let out = run_approving(dir.path(), RUN);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let (_, records) = journal(dir.path());
        records
            .iter()
            .find(|r| r["type"] == "intent" && r["operation"] == "commit")
            .and_then(|r| r["seq"].as_u64())
            .expect("the commit's intent")
    };
    let (addr, server, sim) = server_of(&inventory());
    let dir = quick_project(addr);
    let mut cmd = command(dir.path(), RUN);
    cmd.env("RUNBOOK_CRASH_AT", format!("{clean}:after"));
    let crashed = crate::live::spawn_approving(cmd);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(crashed.status.signal(), Some(9), "{}", text(&crashed));
    sim.set_health("app-2", runbook::backend::inventory::Health::Critical)
        .unwrap();
    let (id, _) = journal(dir.path());
    let resumed = run_approving(dir.path(), &["resume", &id, "--no-progress"]);
    let shown = text(&resumed);
    assert_eq!(resumed.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("[RB112]") && shown.contains("app-2"),
        "{shown}"
    );
    assert_eq!(
        sent(&server).get("issued plan tiers failoverCommit"),
        None,
        "a commit went out to a plan whose member changed: {shown}"
    );
}
