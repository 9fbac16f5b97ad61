//! Runs that stop while the service goes on, at the process level: a resume that finds the
//! job of a request the service took after the runner died, a take-over that adopts the
//! jobs a killed run left in flight. Each counts, on the simulator server, that no operation
//! reached an item twice.

use crate::durable::{
    assert_once_and_protected, journal_of, project, run_ids, runbook, spawn, start_server,
    start_server_at, text, RUN_PLAN, TAKE_OVER,
};
use runbook::simulator::faults::{Fault, FaultKind};
use runbook::simulator::Server;
use std::time::{Duration, Instant};

/// Waits until `done` says so, for at most 30 s.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(server: &Server, kind: &str) -> u64 {
    server.stats().get(kind).copied().unwrap_or(0)
}

#[test]
fn a_resume_finds_the_job_of_a_request_the_service_took_after_the_runner_died() {
    let (addr, server, sim) = start_server();
    // The first commit is held three seconds by the service, then done all the same: the
    // runner is killed while it waits, so its journal ends with the commit's intent.
    server.arm(Fault {
        delay_ms: Some(3000),
        ..Fault::new("POST failoverCommit", FaultKind::AcceptLate, 1)
    });
    let dir = project(addr);
    let mut first = spawn(dir.path(), &RUN_PLAN);
    until("the commit reached the service", || {
        count(&server, "fault accept-late") == 1
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let id = run_ids(dir.path()).remove(0);
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(
        journal
            .lines()
            .last()
            .unwrap()
            .contains("\"type\":\"intent\""),
        "the journal ends with the commit's intent: {journal}"
    );
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    until("the held commit was done", || {
        count(&server, "accept-late performed") == 1
    });
    assert!(
        text(&resumed).contains("started before the interruption"),
        "{}",
        text(&resumed)
    );
    assert_once_and_protected(&server, &sim, "a commit taken after the runner died");
}

#[test]
fn take_over_adopts_the_jobs_a_killed_run_left_in_flight_and_says_which() {
    // A failover takes seconds here: the runner is killed while both run.
    let (addr, server, sim) = start_server_at(200.0);
    let dir = project(addr);
    let mut first = spawn(dir.path(), &RUN_PLAN);
    until("both failovers were issued", || {
        run_ids(dir.path()).first().is_some_and(|id| {
            std::fs::read_to_string(journal_of(dir.path(), id))
                .unwrap_or_default()
                .matches("\"type\":\"issued\"")
                .count()
                == 2
        })
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let old = run_ids(dir.path()).remove(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let busy = rt.block_on(runbook::backend::Backend::item(&*sim, "app-01"));
    assert!(
        busy.unwrap().current_job.is_some(),
        "the failover still runs"
    );
    let taken = runbook(dir.path(), &TAKE_OVER, None);
    let shown = text(&taken);
    assert!(taken.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("took over the lock of run {old}"))
            && shown.contains("planned_failover of app-01 (job ")
            && shown.contains("planned_failover of app-02 (job "),
        "says what it adopts: {shown}"
    );
    assert_eq!(
        shown.matches("adopted job").count(),
        2,
        "one line per job: {shown}"
    );
    assert_once_and_protected(&server, &sim, "take-over");
}
