//! Every example runbook checks clean and runs to success on the simulator, leaving its VMs
//! in the states the recovery procedure promises.

use crate::common::{cli_in, examples, root, run_example, text};
use runbook::backend::Site;
use runbook::check::{check_file, inventory_for};
use runbook::run::{simulate, RunOptions};
use std::path::{Path, PathBuf};

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

fn options(path: &Path) -> RunOptions {
    RunOptions {
        speed: Some(1_000_000.0),
        ..RunOptions::unattended(path)
    }
}

#[test]
fn every_runbook_checks_clean() {
    let all = runbooks();
    assert!(all.len() >= 6, "{all:?}");
    for path in all {
        let inv = inventory_for(&path, None).unwrap();
        assert!(inv.is_some(), "runbooks/runbook.toml names the inventory");
        let report = check_file(&path, inv.as_ref()).unwrap();
        let lines: Vec<String> = report
            .findings
            .iter()
            .map(runbook::diagnostics::summary_line)
            .collect();
        assert!(lines.is_empty(), "{}: {lines:#?}", path.display());
        let dry = report.dry_run.expect("a dry run");
        assert!(dry.completed && dry.jobs > 0, "{}: {dry:?}", path.display());
    }
}

/// The VMs each runbook moves, and the site each must end on (replicating in every case).
fn expected(name: &str) -> Vec<(&'static str, Site)> {
    let tiers = ["sql-01", "app-01", "app-02", "web-01", "web-02", "web-03"];
    match name {
        "site-failover.rhai" | "outage-unplanned-failover.rhai" => {
            tiers.iter().map(|n| (*n, Site::Recovery)).collect()
        }
        "planned-failover.rhai" => vec![("app-01", Site::Recovery)],
        "reverse-replication.rhai" => vec![("fs-01", Site::Recovery)],
        "failback.rhai" => vec![("crm-01", Site::Primary)],
        "dr-drill.rhai" => vec![
            ("web-01", Site::Primary),
            ("web-02", Site::Primary),
            ("web-03", Site::Primary),
        ],
        other => panic!("no expectation for runbooks/{other}: add one"),
    }
}

#[test]
fn every_runbook_runs_to_success_and_leaves_vms_protected() {
    for path in runbooks() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (outcome, _) = simulate(&options(&path), false).unwrap();
        assert!(outcome.failure.is_none(), "{name}: {:?}", outcome.failure);
        assert!(
            outcome.warnings.is_empty(),
            "{name}: {:?}",
            outcome.warnings
        );
        assert!(
            outcome
                .jobs
                .iter()
                .all(|j| j.info.state.as_str() == "Succeeded"),
            "{name}"
        );
        let want = expected(&name);
        let mut got: Vec<&str> = outcome.items.iter().map(|i| i.name.as_str()).collect();
        got.sort_unstable();
        let mut names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        assert_eq!(got, names, "{name}: the VMs it operated on");
        for (vm, site) in want {
            let item = outcome.items.iter().find(|i| i.name == vm).unwrap();
            assert_eq!(item.active_location, site, "{name}: {vm} active location");
            assert!(
                item.replicating,
                "{name}: {vm} replicates ({})",
                item.protection_state
            );
            assert!(
                item.test_failover_state.is_none(),
                "{name}: {vm} has no drill left"
            );
        }
    }
}

#[test]
fn failback_ends_on_the_primary_site_replicating_toward_the_recovery_site() {
    let (outcome, _) = simulate(&options(Path::new("runbooks/failback.rhai")), false).unwrap();
    let ops: Vec<String> = outcome
        .jobs
        .iter()
        .map(|j| j.info.operation.to_string())
        .collect();
    assert_eq!(ops, ["planned_failover", "commit", "reverse_replicate"]);
    let failover = &outcome.jobs[0].info;
    assert_eq!(failover.vm, "crm-01");
    let crm = &outcome.items[0];
    assert_eq!(
        (crm.active_location, crm.replicating),
        (Site::Primary, true)
    );
}

#[test]
fn an_injected_failover_fault_fails_the_run_at_the_waiting_line() {
    let examples = examples();
    let faults = root().join("tests/fixtures/faults.toml");
    let out = cli_in(
        examples.path(),
        &[
            "run",
            "runbooks/planned-failover.rhai",
            "--inventory",
            faults.to_str().unwrap(),
            "--speed",
            "1000000",
            "--auto-approve",
            "--no-progress",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let source = std::fs::read_to_string(root().join("runbooks/planned-failover.rhai")).unwrap();
    let (line, column) = source
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("wait_job(job").map(|c| (i + 1, c + 1)))
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "runbooks/planned-failover.rhai:{line}:{column}: error[RB111]"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("not enough memory"),
        "the service's error text: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("simulation FAILED"), "{stdout}");
}

#[test]
fn the_readme_main_command_runs_the_site_failover() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo run --release -- run runbooks/site-failover.rhai --auto-approve"),
        "the README's main command changed: update this test with it"
    );
    let examples = examples();
    let out = run_example(examples.path(), "site-failover.rhai");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("simulation SUCCEEDED"), "{stdout}");
    assert!(
        text(&out.stderr).starts_with("SIMULATION:"),
        "the run says it is a simulation"
    );
}

#[test]
fn the_stdlib_drill_cleans_up_even_when_a_later_vm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        "[[items]]\nname = \"ok-01\"\n[[items]]\nname = \"sick-01\"\nhealth = \"critical\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("drill.rhai"), "import \"runbook/drill\" as drill;\ndrill::run([\"ok-01\", \"sick-01\"], \"iso\", \"1h\");\n").unwrap();
    let opts = RunOptions {
        inventory: Some(dir.path().join("inventory.toml")),
        ..options(&dir.path().join("drill.rhai"))
    };
    let (outcome, _) = simulate(&opts, false).unwrap();
    let failure = outcome
        .failure
        .expect("the drill fails: sick-01 cannot be drilled");
    assert!(failure.message.contains("sick-01"), "{}", failure.message);
    let ops: Vec<String> = outcome
        .jobs
        .iter()
        .map(|j| format!("{} {}", j.info.operation, j.info.vm))
        .collect();
    assert_eq!(ops, ["test_failover ok-01", "test_failover_cleanup ok-01"]);
    let ok = outcome.items.iter().find(|i| i.name == "ok-01").unwrap();
    assert!(ok.test_failover_state.is_none() && ok.replicating);
}

#[test]
fn the_stdlib_drill_cleans_up_after_its_wait_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        "[[items]]\nname = \"ok-01\"\n",
    )
    .unwrap();
    // A 1-minute wait for a 7-minute test failover times out; the cleanup must still run.
    std::fs::write(
        dir.path().join("drill.rhai"),
        "import \"runbook/drill\" as drill;\ndrill::run([\"ok-01\"], \"iso\", \"1m\");\n",
    )
    .unwrap();
    let opts = RunOptions {
        inventory: Some(dir.path().join("inventory.toml")),
        ..options(&dir.path().join("drill.rhai"))
    };
    let (outcome, _) = simulate(&opts, false).unwrap();
    let failure = outcome
        .failure
        .expect("the drill reports its timed-out wait");
    assert_eq!(
        failure.code,
        runbook::diagnostics::Code::JobFailed,
        "{}",
        failure.message
    );
    let ops: Vec<String> = outcome
        .jobs
        .iter()
        .map(|j| format!("{} {}", j.info.operation, j.info.state))
        .collect();
    assert_eq!(
        ops,
        ["test_failover Succeeded", "test_failover_cleanup Succeeded"]
    );
    assert!(outcome.items[0].test_failover_state.is_none());
}

/// The example estate with the planned failover of `vm` failing.
fn estate_where_failing(dir: &Path, vm: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("runbooks/inventory.toml")).unwrap();
    let marked = format!("name = \"{vm}\"\n");
    assert!(text.contains(&marked), "{vm} in the example estate");
    let faulty = text.replacen(
        &marked,
        &format!("{marked}fail = [\"planned_failover\"]\n"),
        1,
    );
    let path = dir.join("faulty.toml");
    std::fs::write(&path, faulty).unwrap();
    path
}

/// A failover that fails in a tier is not hidden: the tier's other VMs are verified and
/// committed, everything that moved is replicated back, and the run fails with an error
/// that names the VM left on the primary site (which still replicates).
#[test]
fn a_failed_failover_in_the_site_failover_is_reported_and_the_rest_left_safe() {
    let examples = examples();
    let path = examples.path().join("runbooks/site-failover.rhai");
    let opts = RunOptions {
        inventory: Some(estate_where_failing(examples.path(), "app-01")),
        journal: true,
        ..options(&path)
    };
    let (outcome, _) = simulate(&opts, false).unwrap();
    let failure = outcome.failure.clone().expect("the run fails");
    assert_eq!(failure.code, runbook::diagnostics::Code::JobFailed);
    assert!(
        failure
            .message
            .contains("planned_failover of `app-01` failed"),
        "{}",
        failure.message
    );
    let run = outcome.run.clone().expect("a journal");
    let loaded = runbook::journal::load(&run.dir.join(runbook::journal::FILE)).unwrap();
    let notes: Vec<&str> = loaded
        .records
        .iter()
        .filter_map(|r| match &r.entry {
            runbook::journal::Entry::Note { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("not failed over: app-01")
            && n.contains("verified and committed: app-02")),
        "{notes:#?}"
    );
    let ops: Vec<String> = outcome
        .jobs
        .iter()
        .filter(|j| j.info.skipped.is_none())
        .map(|j| format!("{} {} {}", j.info.operation, j.info.vm, j.info.state))
        .collect();
    assert!(
        ops.contains(&"commit app-02 Succeeded".to_string()),
        "{ops:?}"
    );
    assert!(
        !ops.iter().any(|o| o.contains("web-0")),
        "the web tier never starts: {ops:?}"
    );
    let state = |name: &str| {
        let i = outcome.items.iter().find(|i| i.name == name).unwrap();
        (i.active_location, i.replicating)
    };
    assert_eq!(state("sql-01"), (Site::Recovery, true));
    assert_eq!(state("app-02"), (Site::Recovery, true));
    assert_eq!(
        state("app-01"),
        (Site::Primary, true),
        "app-01 stays and replicates"
    );
}
