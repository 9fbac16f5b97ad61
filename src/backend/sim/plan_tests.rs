//! The simulator's recovery plans: boot order, allowed operations, one job per action, a
//! failing member, cancel, restart, failover cancel and manual actions.

use super::*;
use crate::clock::VirtualClock;
use crate::script::exec::block_on;

const ESTATE: &str = r#"
[durations]
planned_failover = "8m"
unplanned_failover = "6m"
commit = "1m"
[plans]
pair = ["a", "b"]
[plans.tiers]
groups = [["db"], ["app-1", "app-2"], ["web"]]
[plans.broken]
groups = [["db"], ["bad"], ["web"]]
[[items]]
name = "db"
durations = { planned_failover = "10m" }
[[items]]
name = "app-1"
[[items]]
name = "app-2"
durations = { planned_failover = "4m" }
[[items]]
name = "web"
[[items]]
name = "bad"
fail = ["planned_failover"]
[[items]]
name = "a"
[[items]]
name = "b"
"#;

fn sim() -> (Simulator, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new(Timestamp(0)));
    let inv = Inventory::parse(ESTATE, "test").unwrap();
    (Simulator::new(&inv, clock.clone(), false), clock)
}

fn failover(direction: Direction) -> PlanRequest {
    PlanRequest {
        direction: Some(direction),
        ..PlanRequest::new(PlanAction::PlannedFailover)
    }
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn states(job: &PlanJobView) -> Vec<(usize, &str, &str)> {
    job.tasks
        .iter()
        .map(|t| (t.group, t.vm.as_str(), t.state.as_str()))
        .collect()
}

fn item(s: &Simulator, name: &str) -> Item {
    block_on(s.item(name)).unwrap()
}

#[test]
fn a_plan_action_is_one_job_whose_groups_run_in_boot_order() {
    let (s, clock) = sim();
    let plan = s.plan("tiers").unwrap();
    assert_eq!(
        plan.groups,
        vec![vec!["db"], vec!["app-1", "app-2"], vec!["web"]]
    );
    assert_eq!(
        plan.allowed_operations,
        ["PlannedFailover", "UnplannedFailover", "TestFailover"]
    );
    let job = s
        .start_plan("tiers", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    assert_eq!(job.state, JobState::InProgress);
    assert_eq!(
        states(&job),
        [
            (1, "db", "InProgress"),
            (2, "app-1", "NotStarted"),
            (2, "app-2", "NotStarted"),
            (3, "web", "NotStarted")
        ]
    );
    // The members are held by the plan's job: an operation on one fails with 532.
    assert_eq!(
        item(&s, "web").current_job.as_deref(),
        Some(job.id.as_str())
    );
    let busy = block_on(s.start("web", &OperationRequest::new(Operation::Commit))).unwrap();
    assert_eq!(busy.errors[0].code, "532");
    assert!(s.plan("tiers").unwrap().allowed_operations.is_empty());

    // The database's 10 minutes, then the application's group together.
    clock.advance(minutes(10));
    let now = s.plan_job(&job.id).unwrap();
    assert_eq!(
        states(&now)[..3],
        [
            (1, "db", "Succeeded"),
            (2, "app-1", "InProgress"),
            (2, "app-2", "InProgress")
        ]
    );
    assert_eq!(now.tasks[1].started, now.tasks[0].ended);
    assert_eq!(item(&s, "db").active_location, Site::Recovery);
    assert_eq!(item(&s, "app-1").active_location, Site::Primary);
    // app-2 (4 minutes) is done before app-1 (8): the web group waits for both.
    clock.advance(minutes(5));
    let now = s.plan_job(&job.id).unwrap();
    assert_eq!(
        states(&now)[1..],
        [
            (2, "app-1", "InProgress"),
            (2, "app-2", "Succeeded"),
            (3, "web", "NotStarted")
        ]
    );
    assert_eq!(
        item(&s, "app-2").protection_state,
        "PlannedFailoverCommitRequired"
    );
    clock.advance(minutes(3 + 8));
    let done = s.plan_job(&job.id).unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.ended, Some(Timestamp(26 * 60 * 1000)));
    assert_eq!(done.tasks[3].started, Some(Timestamp(18 * 60 * 1000)));
    for vm in ["db", "app-1", "app-2", "web"] {
        let i = item(&s, vm);
        assert_eq!(
            (i.active_location, i.current_job),
            (Site::Recovery, None),
            "{vm}"
        );
    }
    let plan = s.plan("tiers").unwrap();
    assert_eq!(plan.allowed_operations, ["Commit", "CancelFailover"]);
    assert_eq!(plan.current.unwrap().id, job.id);
    assert_eq!(plan.last_planned_failover, done.ended);
    // Only the plan's job: its members' tasks are not jobs of their own.
    assert_eq!(
        block_on(s.jobs_since(Timestamp(0))).unwrap().len(),
        1,
        "the 532"
    );
    assert_eq!(s.plan_jobs_since(Timestamp(0)).len(), 1);
}

#[test]
fn a_failing_member_fails_the_plan_and_a_restart_goes_on_from_it() {
    let (s, clock) = sim();
    let job = s
        .start_plan("broken", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    clock.advance(minutes(60));
    let failed = s.plan_job(&job.id).unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        states(&failed),
        [
            (1, "db", "Succeeded"),
            (2, "bad", "Failed"),
            (3, "web", "Skipped")
        ]
    );
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].code, "SimulatedFault");
    assert_eq!(failed.errors, failed.tasks[1].errors, "the member's error");
    assert_eq!(item(&s, "db").active_location, Site::Recovery);
    for vm in ["bad", "web"] {
        let i = item(&s, vm);
        assert_eq!(
            (i.active_location, i.replicating, i.current_job),
            (Site::Primary, true, None)
        );
    }
    // A restart is a new job over the members that did not fail over.
    let again = s.restart_plan_job(&job.id).unwrap().unwrap();
    assert_ne!(again.id, job.id);
    assert_eq!(
        states(&again),
        [(1, "bad", "InProgress"), (2, "web", "NotStarted")]
    );
    let err = s.restart_plan_job(&again.id).unwrap().unwrap_err();
    assert!(format!("{err:?}").contains("only a failed job"), "{err:?}");
}

#[test]
fn a_plan_refuses_what_one_of_its_members_cannot_do() {
    let (s, clock) = sim();
    let wrong = s
        .start_plan("pair", &failover(Direction::RecoveryToPrimary))
        .unwrap_err();
    assert!(format!("{wrong:?}").contains("`a` (group 1)"), "{wrong:?}");
    block_on(s.start(
        "b",
        &OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            ..OperationRequest::new(Operation::PlannedFailover)
        },
    ))
    .unwrap();
    clock.advance(minutes(10));
    // a is protected, b waits for commit: no action suits both.
    assert!(s.plan("pair").unwrap().allowed_operations.is_empty());
    let commit = PlanRequest::new(PlanAction::Commit);
    let err = s.start_plan("pair", &commit).unwrap_err();
    let BackendError::Service(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code, "OperationNotAllowed");
    assert!(
        e.message.contains("`a` (group 1)") && e.message.contains("commit"),
        "{}",
        e.message
    );
    assert!(matches!(
        s.plan("nope"),
        Err(BackendError::UnknownPlan { .. })
    ));
}

#[test]
fn cancelling_a_plan_job_stops_its_running_group_and_skips_the_rest() {
    let (s, clock) = sim();
    let job = s
        .start_plan("tiers", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    clock.advance(minutes(12));
    let cancelled = s.cancel_plan_job(&job.id).unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(
        states(&cancelled),
        [
            (1, "db", "Succeeded"),
            (2, "app-1", "Cancelled"),
            (2, "app-2", "Cancelled"),
            (3, "web", "Skipped")
        ]
    );
    // As for one item: a cancelled failover leaves its VM no longer replicating.
    let app = item(&s, "app-1");
    assert_eq!((app.replicating, app.health.as_str()), (false, "Critical"));
    let web = item(&s, "web");
    assert_eq!((web.replicating, web.current_job), (true, None));
    assert!(
        s.cancel_plan_job(&job.id).unwrap().is_err(),
        "already ended"
    );
    assert!(s.cancel_plan_job("not-a-plan-job").is_none());
}

#[test]
fn a_failover_cancel_takes_the_members_back_to_their_source() {
    let (s, clock) = sim();
    let unplanned = PlanRequest {
        direction: Some(Direction::PrimaryToRecovery),
        ..PlanRequest::new(PlanAction::UnplannedFailover)
    };
    s.start_plan("pair", &unplanned).unwrap();
    clock.advance(minutes(10));
    assert_eq!(
        item(&s, "a").protection_state,
        "UnplannedFailoverCommitPendingStatesBegin"
    );
    let cancel = s
        .start_plan("pair", &PlanRequest::new(PlanAction::CancelFailover))
        .unwrap();
    assert_eq!(cancel.action.scenario(), "CancelFailover");
    clock.advance(minutes(5));
    assert_eq!(s.plan_job(&cancel.id).unwrap().state, JobState::Succeeded);
    for vm in ["a", "b"] {
        let i = item(&s, vm);
        assert_eq!(
            (i.protection_state.as_str(), i.active_location),
            ("Protected", Site::Primary)
        );
    }
    assert_eq!(
        s.plan("pair").unwrap().last_unplanned_failover,
        Some(Timestamp(6 * 60 * 1000))
    );
}

#[test]
fn what_if_fails_the_first_task_of_the_chosen_plan_job() {
    let (s, clock) = sim();
    s.fail_job(1);
    let job = s
        .start_plan("pair", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    clock.advance(minutes(10));
    let job = s.plan_job(&job.id).unwrap();
    assert_eq!(job.errors[0].code, "WhatIfFault");
    assert_eq!(states(&job), [(1, "a", "Failed"), (1, "b", "Succeeded")]);
}

#[test]
fn only_a_suspended_job_resumes_and_only_a_failed_one_restarts() {
    let (s, _clock) = sim();
    let job = s
        .start_plan("pair", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    let err = s.resume_suspended(&job.id).unwrap_err();
    assert!(format!("{err:?}").contains("not Suspended"), "{err:?}");
    assert!(matches!(
        s.resume_suspended("nope"),
        Err(BackendError::UnknownJob(_))
    ));
    let err = block_on(s.restart_job(&job.id)).unwrap_err();
    assert!(format!("{err:?}").contains("only a failed job"), "{err:?}");
}

#[test]
fn a_restart_runs_a_failed_items_operation_again_as_a_new_job() {
    let (s, clock) = sim();
    let planned = OperationRequest {
        direction: Some(Direction::PrimaryToRecovery),
        ..OperationRequest::new(Operation::PlannedFailover)
    };
    block_on(s.start("a", &planned)).unwrap();
    let refused = block_on(s.start("a", &OperationRequest::new(Operation::Commit))).unwrap();
    assert_eq!(refused.errors[0].code, "532");
    clock.advance(minutes(10));
    let again = block_on(s.restart_job(&refused.id)).unwrap();
    assert_ne!(again, refused.id);
    clock.advance(minutes(2));
    let done = block_on(s.job(&again)).unwrap();
    assert_eq!(
        (done.operation, done.state),
        (Operation::Commit, JobState::Succeeded)
    );
    assert_eq!(item(&s, "a").protection_state, "PlannedFailoverCommitted");
}

#[test]
fn a_manual_action_suspends_the_job_before_its_group_until_resumed() {
    let text = "[plans.gated]\ngroups = [[\"a\"], [\"b\"]]\nactions = [{ name = \"look\", before_group = 2 }]\n[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n";
    let clock = Arc::new(VirtualClock::new(Timestamp(0)));
    let inv = Inventory::parse(text, "test").unwrap();
    let s = Simulator::new(&inv, clock.clone(), false);
    let job = s
        .start_plan("gated", &failover(Direction::PrimaryToRecovery))
        .unwrap();
    assert!(job.waiting.is_none());
    clock.advance(minutes(60));
    let job = s.plan_job(&job.id).unwrap();
    // Group 1 done; the job waits at the action however long it takes.
    assert_eq!(job.state.as_str(), "Suspended");
    assert_eq!(job.waiting.as_ref().map(|w| w.name.as_str()), Some("look"));
    assert_eq!(
        states(&job),
        [(1, "a", "Succeeded"), (2, "b", "NotStarted")]
    );
    let info = block_on(s.job(&job.id)).unwrap();
    assert_eq!((info.plan, info.waiting.as_deref()), (true, Some("look")));
    s.resume_suspended(&job.id).unwrap();
    // Resumed: the next group runs; a second resume is refused.
    assert!(s.resume_suspended(&job.id).is_err());
    clock.advance(minutes(60));
    let job = s.plan_job(&job.id).unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(states(&job), [(1, "a", "Succeeded"), (2, "b", "Succeeded")]);
    // A commit has no manual action: it never suspends.
    let commit = s
        .start_plan("gated", &PlanRequest::new(PlanAction::Commit))
        .unwrap();
    clock.advance(minutes(60));
    assert_eq!(s.plan_job(&commit.id).unwrap().state, JobState::Succeeded);
}
