//! Runs on the embedded simulator as a newcomer meets them: the simulated timeline at any
//! speed, run ids from the wall clock, where runs are kept, and no folder for a run that
//! never started.

use crate::common::{cli_in, examples, text};
use runbook::clock::Timestamp;
use runbook::journal;
use runbook::report::Audit;
use runbook::run::{simulate, RunOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What a run's simulated timeline is: how long it took, each job's duration, and each
/// operation's start and end in the report.
type Timeline = (Duration, Vec<(String, Option<Duration>)>, Vec<(u64, Option<u64>)>);

fn timeline(path: &Path, speed: f64) -> Timeline {
    let opts = RunOptions {
        speed: Some(speed),
        journal: true,
        ..RunOptions::unattended(path)
    };
    let (outcome, _) = simulate(&opts, false).unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let jobs = outcome
        .jobs
        .iter()
        .map(|j| (format!("{} {}", j.info.operation, j.info.vm), j.info.duration()))
        .collect();
    let run = outcome.run.expect("a journal");
    let loaded = journal::load(&run.dir.join(journal::FILE)).unwrap();
    let audit = Audit::of(&run.id, &loaded).unwrap();
    let ops = audit.operations.iter().map(|o| (o.start, o.end)).collect();
    (outcome.simulated, jobs, ops)
}

/// The journal's syncs and the script's own work take real time; sped up a millionfold, a
/// millisecond of it used to be 17 simulated minutes (a 20-minute plan reported 21h 51m).
#[test]
fn the_simulated_timeline_is_the_same_at_150x_and_a_million_x() {
    let examples = examples();
    let path = examples.path().join("runbooks/planned-failover.rhai");
    let slow = timeline(&path, 150.0);
    let fast = timeline(&path, 1_000_000.0);
    assert_eq!(slow, fast);
    // And it is the plan's: the same job durations, and a run as long as the plan's but
    // for the last poll.
    let plan = match runbook::plan::plan_text(
        "planned-failover.rhai",
        &std::fs::read_to_string(&path).unwrap(),
        Some(&examples.path().join("runbooks")),
        runbook::check::inventory_for(&path, None).unwrap().as_ref(),
    ) {
        runbook::plan::Outcome::Planned(plan) => plan,
        runbook::plan::Outcome::Rejected(r) => panic!("{:?}", r.findings),
    };
    let planned: Vec<Option<Duration>> = plan
        .operations
        .iter()
        .map(|s| Some(s.duration()))
        .collect();
    let ran: Vec<Option<Duration>> = slow.1.iter().map(|(_, d)| *d).collect();
    assert_eq!(ran, planned);
    let last_end = plan.operations.iter().map(|s| s.end).max().unwrap();
    assert!(
        slow.0 >= last_end && slow.0 <= last_end + Duration::from_secs(60),
        "{:?} simulated, the plan's last job ends at {last_end:?}",
        slow.0
    );
}

/// `YYYYMMDD` of a moment on the wall clock.
fn day(t: SystemTime) -> String {
    Timestamp::from_system(t)
        .rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect()
}

#[test]
fn a_simulated_runs_id_says_when_it_ran_not_its_simulated_start() {
    let examples = examples();
    let path = examples.path().join("runbooks/reverse-replication.rhai");
    let before = day(SystemTime::now());
    let opts = RunOptions {
        speed: Some(1_000_000.0),
        journal: true,
        ..RunOptions::unattended(&path)
    };
    let (outcome, _) = simulate(&opts, false).unwrap();
    let after = day(SystemTime::now());
    let run = outcome.run.expect("a journal");
    let id_day = &run.id[..8];
    assert!(
        id_day == before || id_day == after,
        "run {} made on {before}",
        run.id
    );
    assert_ne!(id_day, "20261126", "not the inventory's simulated start");
    // The simulated time stays inside the run: its records are on the simulated clock.
    let loaded = journal::load(&run.dir.join(journal::FILE)).unwrap();
    assert_eq!(
        loaded.records[0].at.rfc3339(),
        "2026-11-26T02:00:00Z",
        "the inventory's start"
    );
}

#[test]
fn runs_outside_a_project_say_where_runs_are_kept() {
    let examples = examples();
    let out = cli_in(examples.path(), &["runs"]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no runs in . (looked in .runbook/runs)"), "{stderr}");
    assert!(
        stderr.contains("the folder of the runbook.toml that applies to it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`runbook runs --project runbooks`"),
        "{stderr}"
    );
}

#[test]
fn a_run_that_never_starts_leaves_no_run_folder() {
    let examples = examples();
    let project = examples.path().join("runbooks");
    std::fs::write(project.join("broken.rhai"), "failover(\"app-01\");\n").unwrap();
    for (runbook, code) in [("broken.rhai", 1), ("missing.rhai", 2)] {
        let out = cli_in(&project, &["run", runbook, "--no-progress"]);
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert!(
            !project.join(".runbook").exists(),
            "{runbook}: {:?}",
            std::fs::read_dir(project.join(".runbook/runs"))
                .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect::<Vec<_>>())
        );
    }
}
