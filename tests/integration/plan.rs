//! `runbook plan` and `runbook plan --compare`: snapshots of every output format on the
//! example runbooks, the estimated recovery time against a critical path computed here from
//! the inventory's durations, and the errors a reviewer may meet.

use crate::common::{cli, cli_in, root, text};
use runbook::backend::inventory::Inventory;
use runbook::plan::{plan_file, Basis, Outcome, Plan};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FORMATS: [&str; 3] = ["text", "markdown", "json"];
const INVENTORY: &str = "runbooks/inventory.toml";

fn runbooks() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .map(|p| p.strip_prefix(root()).unwrap().to_path_buf())
        .collect();
    files.sort();
    files
}

/// Runs `runbook ARGS`, expecting `code`; returns standard output.
fn run(args: &[&str], code: i32) -> String {
    let out = cli(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

fn planned(path: &str) -> Plan {
    let inv = Inventory::load(&root().join(INVENTORY)).unwrap();
    match plan_file(&root().join(path), Some(&inv)).unwrap() {
        Outcome::Planned(plan) => *plan,
        Outcome::Rejected(report) => panic!("{path} has errors: {:?}", report.findings),
    }
}

#[test]
fn every_example_runbook_plans_in_every_format_as_snapshotted() {
    let all = runbooks();
    assert!(all.len() >= 6, "{all:?}");
    for path in all {
        let path = path.to_string_lossy().into_owned();
        let stem = Path::new(&path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for format in FORMATS {
            let out = run(&["plan", "--format", format, &path], 0);
            if format == "json" {
                let v: Value = serde_json::from_str(&out).expect("the JSON parses");
                assert_eq!(v["format"], "runbook-plan/1");
                assert!(v["operations"].as_array().is_some_and(|o| !o.is_empty()));
            }
            insta::assert_snapshot!(format!("plan-{stem}-{format}"), out);
        }
    }
}

#[test]
fn the_markdown_plan_has_a_mermaid_gantt_chart_of_the_lanes() {
    let out = run(
        &[
            "plan",
            "--format",
            "markdown",
            "runbooks/site-failover.rhai",
        ],
        0,
    );
    let chart = out
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block");
    let lines: Vec<&str> = chart.lines().collect();
    assert_eq!(lines[0], "gantt");
    assert!(
        lines.contains(&"    dateFormat YYYY-MM-DD HH:mm:ss"),
        "{chart}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("    axisFormat ")),
        "{chart}"
    );
    let sections = lines
        .iter()
        .filter(|l| l.starts_with("    section lane "))
        .count();
    assert_eq!(sections, 6, "six VMs reverse-replicate at once: {chart}");
    let tasks = lines.iter().filter(|l| l.contains(" :op")).count();
    assert_eq!(tasks, 18, "one bar per operation: {chart}");
    assert!(
        chart.contains(":milestone, "),
        "manual step and recovery: {chart}"
    );
}

#[test]
fn the_json_plan_follows_each_vm_from_one_operation_to_the_next() {
    let out = run(
        &[
            "plan",
            "--format",
            "json",
            "runbooks/outage-unplanned-failover.rhai",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let ops = v["operations"].as_array().unwrap();
    let mut last_after: BTreeMap<String, Value> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["number"], i + 1);
        let (start, end) = (
            op["start_seconds"].as_u64().unwrap(),
            op["end_seconds"].as_u64().unwrap(),
        );
        assert!(start <= end && op["duration_seconds"].as_u64() == Some(end - start));
        let lane = op["lane"].as_u64().unwrap();
        assert!(lane >= 1 && lane <= v["lanes"].as_u64().unwrap());
        let vm = op["vm"].as_str().unwrap().to_string();
        if let Some(after) = last_after.get(&vm) {
            assert_eq!(&op["before"], after, "operation {} of {vm}", i + 1);
        }
        last_after.insert(vm, op["after"].clone());
    }
    let sql = ops.iter().find(|o| o["vm"] == "sql-01").unwrap();
    assert_eq!(sql["operation"], "unplanned_failover");
    assert_eq!(sql["before"]["state"], "protected");
    assert_eq!(sql["before"]["active_location"], "primary");
    assert_eq!(sql["after"]["state"], "failover_commit_pending");
    assert_eq!(sql["after"]["active_location"], "recovery");
    let steps = v["manual_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["title"], "Primary site back");
    // The second manual step comes after every commit and before reverse replication.
    let at = steps[1]["at_seconds"].as_u64().unwrap();
    for op in ops {
        let end = op["end_seconds"].as_u64().unwrap();
        match op["operation"].as_str().unwrap() {
            "reverse_replicate" => assert!(op["start_seconds"].as_u64().unwrap() >= at),
            _ => assert!(end <= at),
        }
    }
}

// ---- the estimated recovery time against the critical path -------------------------------

/// A job's duration from the inventory file, read here without the library: the item's own
/// `durations`, else the file's `[durations]`.
fn duration(inventory: &toml::Table, vm: &str, op: &str) -> Duration {
    let item = inventory["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"].as_str() == Some(vm))
        .unwrap_or_else(|| panic!("{vm} in the inventory"));
    let text = item
        .get("durations")
        .and_then(|d| d.get(op))
        .or_else(|| inventory["durations"].get(op))
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("a duration of {op} for {vm}"));
    humantime::parse_duration(text).unwrap()
}

/// The longest path through `tasks` (name, duration, the names it waits for) to any of
/// `goals`: when the last goal finishes.
fn critical_path(tasks: &[(String, Duration, Vec<String>)], goals: &[String]) -> Duration {
    let mut finish: BTreeMap<&str, Duration> = BTreeMap::new();
    for (name, length, after) in tasks {
        let start = after
            .iter()
            .map(|p| finish[p.as_str()])
            .max()
            .unwrap_or_default();
        finish.insert(name, start + *length);
    }
    goals.iter().map(|g| finish[g.as_str()]).max().unwrap()
}

fn inventory_table() -> toml::Table {
    std::fs::read_to_string(root().join(INVENTORY))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_site_failover_recovers_in_the_critical_path_of_its_tiers() {
    let inv = inventory_table();
    let tiers: [&[&str]; 3] = [
        &["sql-01"],
        &["app-01", "app-02"],
        &["web-01", "web-02", "web-03"],
    ];
    // Each tier fails over in parallel once the previous tier's commits ended; its commits
    // start once all of its failovers ended (they are verified first, which takes no time).
    let mut tasks = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    let mut goals = Vec::new();
    for tier in tiers {
        let failovers: Vec<String> = tier.iter().map(|vm| format!("failover {vm}")).collect();
        for vm in tier {
            tasks.push((
                format!("failover {vm}"),
                duration(&inv, vm, "planned_failover"),
                previous.clone(),
            ));
        }
        let commits: Vec<String> = tier.iter().map(|vm| format!("commit {vm}")).collect();
        for vm in tier {
            tasks.push((
                format!("commit {vm}"),
                duration(&inv, vm, "commit"),
                failovers.clone(),
            ));
        }
        goals = failovers;
        previous = commits;
    }
    let expected = critical_path(&tasks, &goals);
    let plan = planned("runbooks/site-failover.rhai");
    assert_eq!(plan.recovery.basis, Basis::Verified);
    assert_eq!(plan.recovery.time(), expected);
    assert_eq!(
        expected,
        Duration::from_secs(10 * 60 + 46 + 8 * 60 + 46 + 8 * 60)
    );
}

#[test]
fn parallel_failovers_recover_in_the_longest_chain_not_the_longest_job() {
    let inv = inventory_table();
    let d = |vm: &str| duration(&inv, vm, "planned_failover");
    // sql-01 and app-01 fail over at once; web-01 waits for app-01.
    let tasks = vec![
        ("sql".to_string(), d("sql-01"), vec![]),
        ("app".to_string(), d("app-01"), vec![]),
        ("web".to_string(), d("web-01"), vec!["app".to_string()]),
    ];
    let expected = critical_path(&tasks, &["sql".into(), "app".into(), "web".into()]);
    assert!(
        expected > d("sql-01"),
        "the chain is longer than the longest job"
    );
    let plan = planned("tests/fixtures/plan/parallel-tiers.rhai");
    assert_eq!(plan.recovery.basis, Basis::Verified);
    assert_eq!(plan.recovery.time(), expected);
    assert_eq!(plan.recovery.last_vm.as_deref(), Some("web-01"));
    assert_eq!(plan.lanes, 3);
}

#[test]
fn a_runbook_that_never_verifies_falls_back_to_the_last_job_and_says_so() {
    let plan = planned("tests/fixtures/plan/never-verifies.rhai");
    assert_eq!(plan.recovery.basis, Basis::LastJobEnd);
    assert_eq!(plan.recovery.unverified, ["app-01"]);
    let last_end = plan.operations.iter().map(|s| s.end).max().unwrap();
    assert_eq!(plan.recovery.until, last_end);
    let out = run(
        &[
            "plan",
            "--inventory",
            INVENTORY,
            "tests/fixtures/plan/never-verifies.rhai",
        ],
        0,
    );
    assert!(
        out.contains("until the last job ends") && out.contains("never verifies app-01"),
        "{out}"
    );
    // The commit without a verify is a warning of the check, shown with the plan.
    assert!(out.contains("warning[RB108]"), "{out}");
    let json: Value = serde_json::from_str(&run(
        &[
            "plan",
            "--format",
            "json",
            "--inventory",
            INVENTORY,
            "tests/fixtures/plan/never-verifies.rhai",
        ],
        0,
    ))
    .unwrap();
    assert_eq!(json["recovery_time"]["basis"], "last_job_end");
}

// ---- errors --------------------------------------------------------------------------

#[test]
fn a_runbook_with_errors_gets_its_findings_instead_of_a_plan() {
    for format in FORMATS {
        let out = run(
            &[
                "plan",
                "--format",
                format,
                "--inventory",
                "tests/fixtures/inventory.toml",
                "tests/fixtures/RB101-not-allowed.rhai",
            ],
            1,
        );
        assert!(out.contains("RB101"), "{format}: {out}");
        assert!(!out.contains("Estimated recovery time"), "{format}: {out}");
        if format == "json" {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["findings"][0]["code"], "RB101");
        }
    }
}

#[test]
fn plan_needs_a_runbook_or_two_to_compare_and_reads_them_carefully() {
    assert_eq!(cli(&["plan"]).status.code(), Some(2));
    let out = cli(&["plan", "no/such.rhai"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such file"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["plan", "--compare", "runbooks/failback.rhai"]);
    assert_eq!(out.status.code(), Some(2), "--compare takes two");
    let out = cli(&[
        "plan",
        "--compare",
        "no-such-revision-xyz:runbooks/failback.rhai",
        "runbooks/failback.rhai",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-revision-xyz") && stderr.contains("git"),
        "{stderr}"
    );
}

// ---- compare ---------------------------------------------------------------------------

#[test]
fn comparing_two_files_shows_the_operational_change_as_snapshotted() {
    let new = "tests/fixtures/plan/site-failover-two-steps.rhai";
    for format in FORMATS {
        let out = run(
            &[
                "plan",
                "--compare",
                "runbooks/site-failover.rhai",
                new,
                "--inventory",
                INVENTORY,
                "--format",
                format,
            ],
            0,
        );
        insta::assert_snapshot!(format!("compare-site-failover-{format}"), out);
    }
    let v: Value = serde_json::from_str(&run(
        &[
            "plan",
            "--compare",
            "runbooks/site-failover.rhai",
            new,
            "--inventory",
            INVENTORY,
            "--format",
            "json",
        ],
        0,
    ))
    .unwrap();
    let old_time = planned("runbooks/site-failover.rhai")
        .recovery
        .time()
        .as_secs() as i64;
    let new_time = planned(new).recovery.time().as_secs() as i64;
    assert!(new_time < old_time, "two steps are faster than three");
    assert_eq!(v["recovery_time_delta_seconds"], new_time - old_time);
    assert_eq!(v["added"].as_array().unwrap().len(), 1);
    assert_eq!(v["added"][0]["vm"], "fs-01");
    assert_eq!(v["added"][0]["operation"], "reverse_replicate");
    assert!(v["removed"].as_array().unwrap().is_empty());
    let reordered: Vec<&str> = v["reordered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vm"].as_str().unwrap())
        .collect();
    assert_eq!(
        reordered,
        ["web-01", "web-02", "web-03"],
        "the web tier moved up"
    );
    assert_eq!(v["vms"][0]["name"], "fs-01", "fs-01 ends replicating");
}

#[test]
fn a_runbook_compares_equal_to_itself_at_the_current_revision() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    std::fs::create_dir_all(dir.path().join("plans/lib")).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/inventory.toml"),
        dir.path().join("plans/inventory.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plans/runbook.toml"),
        "inventory = \"inventory.toml\"\n",
    )
    .unwrap();
    // The module is imported from the revision, not from the working tree.
    std::fs::write(
        dir.path().join("plans/lib/steps.rhai"),
        "fn move(name) {\n    let vm = vm(name);\n    wait_job(failover(vm, #{ kind: \"planned\" }), #{ timeout: \"1h\" });\n    verify(vm, #{ active_location: \"recovery\", healthy: true });\n    wait_job(commit(vm), #{ timeout: \"10m\" });\n    wait_job(reverse_replicate(vm), #{ timeout: \"1h\" });\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plans/move.rhai"),
        "import \"lib/steps\" as steps;\nsteps::move(\"web-01\");\n",
    )
    .unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "plan"]);
    std::fs::write(
        dir.path().join("plans/move.rhai"),
        "import \"lib/steps\" as steps;\nsteps::move(\"web-01\");\nsteps::move(\"web-02\");\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plans/lib/steps.rhai"),
        "fn move(name) { throw \"changed\"; }\n",
    )
    .unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "two"]);

    let out = cli_in(
        dir.path(),
        &[
            "plan",
            "--compare",
            "HEAD~1:plans/move.rhai",
            "HEAD:plans/move.rhai",
            "--format",
            "json",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "HEAD's module throws: {stdout}");
    let out = cli_in(
        dir.path(),
        &[
            "plan",
            "--compare",
            "HEAD~1:plans/move.rhai",
            "HEAD~1:./plans/move.rhai",
            "--format",
            "json",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["recovery_time_delta_seconds"], 0);
    assert_eq!(
        v["old"]["operations"], 3,
        "the revision's module ran: {stdout}"
    );
    for key in ["added", "removed", "reordered", "moved", "vms"] {
        assert!(v[key].as_array().unwrap().is_empty(), "{key}: {stdout}");
    }
}
