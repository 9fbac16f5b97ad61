//! Runs on the embedded simulator as a newcomer meets them: the simulated timeline at any
//! speed, run ids from the wall clock, where runs are kept, and no folder for a run that
//! never started.

use crate::common::{cli_in, examples, run_example, text};
use runbook::clock::Timestamp;
use runbook::journal;
use runbook::report::Audit;
use runbook::run::{simulate, RunOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What a run's simulated timeline is: how long it took, each job's duration, and each
/// operation's start and end in the report.
type Timeline = (
    Duration,
    Vec<(String, Option<Duration>)>,
    Vec<(u64, Option<u64>)>,
);

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
        .map(|j| {
            (
                format!("{} {}", j.info.operation, j.info.vm),
                j.info.duration(),
            )
        })
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
    let planned: Vec<Option<Duration>> =
        plan.operations.iter().map(|s| Some(s.duration())).collect();
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
    assert!(
        stderr.contains("no runs in . (looked in .runbook/runs)"),
        "{stderr}"
    );
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
            std::fs::read_dir(project.join(".runbook/runs")).map(|d| d
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
        );
    }
}

/// The closing summary speaks the script's words (the service's state beside them), names
/// the column of runbook lines for what it is, and a manual step's two clocks; the journal
/// keeps both too.
#[test]
fn the_summary_and_the_journal_name_both_clocks_of_a_manual_step() {
    let examples = examples();
    let out = run_example(examples.path(), "site-failover.rhai");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("runbook line") && !stdout.contains("started at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("service state") && stdout.contains(" protected "),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("manual step `Announce the failover`"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("at 2026-11-26T02:00:00Z (simulated clock), ")
            && line.contains(" (wall clock), after ")
            && line.ends_with(" of real time"),
        "{line}"
    );
    let project = examples.path().join("runbooks");
    let id = journal::runs::ids(&project).remove(0);
    let loaded = journal::load(
        &journal::runs::runs_dir(&project)
            .join(&id)
            .join(journal::FILE),
    )
    .unwrap();
    let step = loaded
        .records
        .iter()
        .find(|r| matches!(r.entry, journal::Entry::Step { .. }))
        .unwrap();
    assert_eq!(step.at.rfc3339(), "2026-11-26T02:00:00Z", "the run's clock");
    let journal::Entry::Step {
        answered_wall,
        waited_real_seconds,
        timeout_real_seconds,
        ..
    } = &step.entry
    else {
        unreachable!()
    };
    let wall = Timestamp::parse_rfc3339(answered_wall.as_deref().unwrap()).unwrap();
    assert!(wall.since(Timestamp::from_system(SystemTime::now())) < Duration::from_secs(5));
    assert!(Timestamp::from_system(SystemTime::now()).since(wall) < Duration::from_secs(600));
    assert_eq!(*waited_real_seconds, Some(0));
    assert_eq!(*timeout_real_seconds, Some(1800));
}

/// A journal written before steps recorded their wall clock still reads, and reports.
#[test]
fn a_step_record_without_the_wall_clock_still_reads() {
    let line = r#"{"seq":3,"at":1795658400000,"type":"step","number":1,"title":"Go","outcome":{"approved":{"by":"alice"}}}"#;
    let record: journal::Record = serde_json::from_str(line).unwrap();
    assert!(matches!(
        record.entry,
        journal::Entry::Step {
            answered_wall: None,
            waited_real_seconds: None,
            ..
        }
    ));
}
