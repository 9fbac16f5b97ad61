//! Recovery plans in the simulator: a plan's groups (its boot order), the operations its
//! members' states allow, and a plan action as ONE job whose steps run in order, each step
//! the per-VM tasks of one group run together; a member whose task fails fails the plan's
//! job with the member's error, and the steps after it are skipped.
//!
//! A plan job is a sequence of [`Step`]s so that other kinds of step (a manual action that
//! suspends the job until `resume`) can join the groups without changing how jobs advance.

use super::{Run, SimItem, Simulator, State, POLL};
use crate::backend::{BackendError, Direction, JobState, Operation, OperationRequest, ServiceError};
use crate::clock::Timestamp;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// How long cancelling a failover takes on one VM.
const CANCEL_FAILOVER: Duration = Duration::from_secs(120);

/// What a plan action asks of the plan's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanAction {
    PlannedFailover,
    UnplannedFailover,
    Commit,
    ReverseReplicate,
    TestFailover,
    TestFailoverCleanup,
    /// Undoes a failover that waits for commit: the VMs go back to their source site.
    CancelFailover,
}

impl PlanAction {
    pub const ALL: [PlanAction; 7] = [
        PlanAction::PlannedFailover,
        PlanAction::UnplannedFailover,
        PlanAction::TestFailover,
        PlanAction::TestFailoverCleanup,
        PlanAction::Commit,
        PlanAction::ReverseReplicate,
        PlanAction::CancelFailover,
    ];

    /// The action's name in the REST path (`plannedFailover`, `reProtect`...).
    pub fn rest(self) -> &'static str {
        match self {
            PlanAction::PlannedFailover => "plannedFailover",
            PlanAction::UnplannedFailover => "unplannedFailover",
            PlanAction::Commit => "failoverCommit",
            PlanAction::ReverseReplicate => "reProtect",
            PlanAction::TestFailover => "testFailover",
            PlanAction::TestFailoverCleanup => "testFailoverCleanup",
            PlanAction::CancelFailover => "failoverCancel",
        }
    }

    /// The action named in a REST path (case-insensitive, as ARM paths are).
    pub fn parse_rest(text: &str) -> Option<PlanAction> {
        PlanAction::ALL
            .into_iter()
            .find(|a| a.rest().eq_ignore_ascii_case(text))
    }

    /// The operation each member's task performs (none for a failover cancel).
    pub fn operation(self) -> Option<Operation> {
        match self {
            PlanAction::PlannedFailover => Some(Operation::PlannedFailover),
            PlanAction::UnplannedFailover => Some(Operation::UnplannedFailover),
            PlanAction::Commit => Some(Operation::Commit),
            PlanAction::ReverseReplicate => Some(Operation::ReverseReplicate),
            PlanAction::TestFailover => Some(Operation::TestFailover),
            PlanAction::TestFailoverCleanup => Some(Operation::TestFailoverCleanup),
            PlanAction::CancelFailover => None,
        }
    }

    /// The job's `scenarioName`.
    pub fn scenario(self) -> &'static str {
        self.operation().map_or("CancelFailover", Operation::scenario)
    }

    /// The name in the plan's `allowedOperations`.
    pub fn allowed_name(self) -> &'static str {
        self.operation()
            .map_or("CancelFailover", Operation::allowed_name)
    }

    /// Whether the request must say `failoverDirection` (failovers and test failovers).
    pub fn directional(self) -> bool {
        matches!(
            self,
            PlanAction::PlannedFailover | PlanAction::UnplannedFailover | PlanAction::TestFailover
        )
    }
}

/// A plan action with its parameters, as the POST's body gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    pub action: PlanAction,
    pub direction: Option<Direction>,
    /// Unplanned failover: shut the source VMs down first (`sourceSiteOperations: Required`).
    pub shutdown_source: bool,
    /// Test failover: the isolated network.
    pub network: Option<String>,
    /// Test failover cleanup: the operator's notes.
    pub comments: Option<String>,
}

impl PlanRequest {
    pub fn new(action: PlanAction) -> PlanRequest {
        PlanRequest {
            action,
            direction: None,
            shutdown_source: false,
            network: None,
            comments: None,
        }
    }
}

/// A recovery plan as the service shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanView {
    pub name: String,
    /// The members of each group, in boot order.
    pub groups: Vec<Vec<String>>,
    pub allowed_operations: Vec<String>,
    /// The plan's latest job.
    pub current: Option<PlanJobView>,
    pub last_planned_failover: Option<Timestamp>,
    pub last_unplanned_failover: Option<Timestamp>,
    pub last_test_failover: Option<Timestamp>,
}

/// A plan's job as the service shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanJobView {
    pub id: String,
    pub plan: String,
    pub action: PlanAction,
    pub state: JobState,
    /// The errors of the members that failed.
    pub errors: Vec<ServiceError>,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
    /// One task per member, step by step.
    pub tasks: Vec<TaskView>,
    pub retry_after: Option<Duration>,
}

/// One member's task in a plan job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The group, from 1.
    pub group: usize,
    pub vm: String,
    /// `NotStarted`, `InProgress`, `Succeeded`, `Failed`, `Cancelled`, or `Other("Skipped")`
    /// for a task that never ran because the job ended first.
    pub state: JobState,
    pub started: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    pub errors: Vec<ServiceError>,
    pub warnings: Vec<String>,
}

/// The plan jobs and the times they next need to advance.
#[derive(Debug, Default)]
pub(super) struct PlanJobs {
    jobs: HashMap<String, PlanJob>,
    events: BinaryHeap<Reverse<(u64, u64, String)>>,
    order: u64,
}

#[derive(Debug)]
struct PlanJob {
    id: String,
    /// The job's place among all jobs (what-if ordinals, listing order).
    ordinal: u64,
    plan: String,
    request: PlanRequest,
    started: Timestamp,
    ended: Option<Timestamp>,
    state: JobState,
    steps: Vec<Step>,
    /// The step running now (or the last one, once the job ended).
    current: usize,
    /// What-if: the first task of this job fails.
    what_if: bool,
}

/// One step of a plan job.
#[derive(Debug)]
enum Step {
    /// A group's members, their tasks run together; the step ends when the last one does.
    Group { number: usize, tasks: Vec<Task> },
}

#[derive(Debug)]
struct Task {
    vm: String,
    state: JobState,
    /// What the task does to its VM, decided when its step begins.
    work: Option<Work>,
    started: Option<Timestamp>,
    ends: Option<Timestamp>,
    ended: Option<Timestamp>,
    outcome: Option<ServiceError>,
    errors: Vec<ServiceError>,
    warnings: Vec<String>,
}

#[derive(Debug, Clone)]
enum Work {
    Operation(OperationRequest),
    CancelFailover,
}

impl Task {
    fn new(vm: &str) -> Task {
        Task {
            vm: vm.to_string(),
            state: JobState::NotStarted,
            work: None,
            started: None,
            ends: None,
            ended: None,
            outcome: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn running(&self) -> bool {
        self.state == JobState::InProgress
    }
}

impl PlanJobs {
    /// When the next plan job needs to advance, in ms.
    pub(super) fn next_at(&self) -> Option<u64> {
        self.events.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop(&mut self) -> Option<(u64, String)> {
        self.events.pop().map(|Reverse((at, _, id))| (at, id))
    }

    fn wake(&mut self, id: &str, at: Timestamp) {
        self.order += 1;
        self.events.push(Reverse((at.0, self.order, id.to_string())));
    }
}

/// The operation a member's task performs for `request`; `None` for a failover cancel.
fn member_request(request: &PlanRequest, item: &SimItem) -> Option<OperationRequest> {
    let operation = request.action.operation()?;
    let direction = match request.action {
        PlanAction::ReverseReplicate => Some(Direction::away_from(item.active)),
        a if a.directional() => Some(
            request
                .direction
                .unwrap_or(Direction::away_from(item.active)),
        ),
        _ => None,
    };
    Some(OperationRequest {
        direction,
        shutdown_source: request.shutdown_source,
        network: request.network.clone(),
        comments: request.comments.clone(),
        ..OperationRequest::new(operation)
    })
}

impl SimItem {
    /// Why the member cannot take its part in `request`, if it cannot.
    fn plan_refusal(&self, request: &PlanRequest) -> Option<String> {
        if let Some(job) = &self.busy {
            return Some(format!("an operation is in progress on it (job {job})"));
        }
        match member_request(request, self) {
            Some(op) => self.check(&op).err().map(|e| match e {
                BackendError::NotAllowed { reason, .. } => reason,
                other => other.to_string(),
            }),
            None => (!self.allowed().contains(&"Commit"))
                .then(|| "it has no failover waiting for commit to cancel".to_string()),
        }
    }

    /// A failover cancelled before commit: the VM is back on its source site, replicating.
    fn failover_cancelled(&mut self) {
        if let super::Protection::CommitPending { .. } = self.protection {
            self.protection = super::Protection::Protected;
            self.active = self.active.other();
        }
    }
}

fn plan_error(code: &str, message: String) -> BackendError {
    BackendError::Service(ServiceError {
        code: code.into(),
        message,
        possible_causes: String::new(),
        recommended_action: String::new(),
    })
}

impl State {
    fn unknown_plan(&self, plan: &str) -> BackendError {
        BackendError::UnknownPlan {
            name: plan.to_string(),
            candidates: self.plans.keys().cloned().collect(),
        }
    }

    /// The groups of `plan`, its members made ready.
    fn plan_groups(&mut self, plan: &str) -> Result<Vec<Vec<String>>, BackendError> {
        let groups = self
            .plans
            .get(plan)
            .map(|p| p.groups.clone())
            .ok_or_else(|| self.unknown_plan(plan))?;
        for member in groups.iter().flatten() {
            self.materialize(member);
        }
        Ok(groups)
    }

    /// Why `request` cannot start on the plan of `groups`: the first member that refuses.
    fn plan_refusal(&self, groups: &[Vec<String>], request: &PlanRequest) -> Option<String> {
        groups.iter().enumerate().find_map(|(i, group)| {
            group.iter().find_map(|vm| {
                let item = self.items.get(vm)?;
                let why = item.plan_refusal(request)?;
                Some(format!("`{vm}` (group {}): {why}", i + 1))
            })
        })
    }

    /// The plan's `allowedOperations`: the actions every member can take part in now.
    fn plan_allowed(&self, groups: &[Vec<String>]) -> Vec<String> {
        let direction = groups
            .iter()
            .flatten()
            .find_map(|vm| self.items.get(vm))
            .map(|item| Direction::away_from(item.active));
        PlanAction::ALL
            .into_iter()
            .filter(|action| {
                let request = PlanRequest {
                    direction,
                    ..PlanRequest::new(*action)
                };
                self.plan_refusal(groups, &request).is_none()
            })
            .map(|a| a.allowed_name().to_string())
            .collect()
    }

    fn start_plan(
        &mut self,
        plan: &str,
        request: &PlanRequest,
        now: Timestamp,
    ) -> Result<PlanJobView, BackendError> {
        let groups = self.plan_groups(plan)?;
        self.start_groups(plan, groups, request, now)
    }

    /// Restarts a failed plan job: a new job of the same action over the members whose
    /// tasks did not succeed, from the step that failed on.
    fn restart_plan(&mut self, id: &str, now: Timestamp) -> Result<PlanJobView, BackendError> {
        let job = self
            .plan_jobs
            .jobs
            .get(id)
            .ok_or_else(|| BackendError::UnknownJob(id.to_string()))?;
        if job.state != JobState::Failed {
            return Err(plan_error(
                "OperationNotAllowed",
                format!("Job {id} is {}: only a failed job can be restarted.", job.state),
            ));
        }
        let groups: Vec<Vec<String>> = job.steps[job.current..]
            .iter()
            .map(|Step::Group { tasks, .. }| {
                tasks
                    .iter()
                    .filter(|t| t.state != JobState::Succeeded)
                    .map(|t| t.vm.clone())
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        let (plan, request) = (job.plan.clone(), job.request.clone());
        self.start_groups(&plan, groups, &request, now)
    }

    /// Starts `request` on `groups` of `plan` as one job, or says why a member refuses.
    fn start_groups(
        &mut self,
        plan: &str,
        groups: Vec<Vec<String>>,
        request: &PlanRequest,
        now: Timestamp,
    ) -> Result<PlanJobView, BackendError> {
        if let Some(why) = self.plan_refusal(&groups, request) {
            return Err(plan_error(
                "OperationNotAllowed",
                format!(
                    "The {} of recovery plan '{plan}' is not allowed now: {why}.",
                    request.action.scenario()
                ),
            ));
        }
        self.seq += 1;
        let ordinal = self.seq;
        let id = super::job_id(ordinal);
        for vm in groups.iter().flatten() {
            if let Some(item) = self.items.get_mut(vm) {
                item.busy = Some(id.clone());
            }
        }
        let steps = groups
            .iter()
            .enumerate()
            .map(|(i, group)| Step::Group {
                number: i + 1,
                tasks: group.iter().map(|vm| Task::new(vm)).collect(),
            })
            .collect();
        self.plan_jobs.jobs.insert(
            id.clone(),
            PlanJob {
                id: id.clone(),
                ordinal,
                plan: plan.to_string(),
                request: request.clone(),
                started: now,
                ended: None,
                state: JobState::InProgress,
                steps,
                current: 0,
                what_if: self.failing_job == Some(ordinal),
            },
        );
        self.begin_step(&id, now);
        self.plan_job_view(&id, now)
            .ok_or(BackendError::UnknownJob(id))
    }

    /// Starts the current step of job `id` at `at`: each member's task, with how it will go.
    fn begin_step(&mut self, id: &str, at: Timestamp) {
        let Some(job) = self.plan_jobs.jobs.get(id) else {
            return;
        };
        let request = job.request.clone();
        let mut what_if = job.what_if.then_some(job.ordinal);
        let Step::Group { tasks, .. } = &job.steps[job.current];
        let mut planned = Vec::new();
        for task in tasks {
            let Some(item) = self.items.get(&task.vm) else {
                continue;
            };
            let (work, run) = match member_request(&request, item) {
                Some(op) => {
                    let run = self.run_of(&task.vm, &op, what_if.take());
                    (Work::Operation(op), run)
                }
                None => (
                    Work::CancelFailover,
                    Run {
                        length: CANCEL_FAILOVER,
                        outcome: None,
                        warnings: Vec::new(),
                    },
                ),
            };
            planned.push((work, run));
        }
        let Some(job) = self.plan_jobs.jobs.get_mut(id) else {
            return;
        };
        job.what_if = false;
        let Step::Group { tasks, .. } = &mut job.steps[job.current];
        let mut wakes = Vec::new();
        for (task, (work, run)) in tasks.iter_mut().zip(planned) {
            let ends = at.plus(run.length);
            task.state = JobState::InProgress;
            task.work = Some(work);
            task.started = Some(at);
            task.ends = Some(ends);
            task.outcome = run.outcome;
            task.warnings = run.warnings;
            wakes.push(ends);
        }
        if wakes.is_empty() {
            wakes.push(at);
        }
        for ends in wakes {
            self.plan_jobs.wake(id, ends);
        }
    }

    /// Ends the tasks of job `id` whose time came by `at`, applies what they did to their
    /// VMs, and moves the job on: the next step, or its end.
    fn advance_plan(&mut self, id: &str, at: Timestamp) {
        let Some(job) = self.plan_jobs.jobs.get_mut(id) else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        let Step::Group { tasks, .. } = &mut job.steps[job.current];
        let mut done = Vec::new();
        for task in tasks.iter_mut() {
            let Some(ends) = task.ends.filter(|e| task.running() && *e <= at) else {
                continue;
            };
            task.ended = Some(ends);
            match task.outcome.take() {
                Some(error) => {
                    task.state = JobState::Failed;
                    task.errors.push(error);
                }
                None => {
                    task.state = JobState::Succeeded;
                    done.push((task.vm.clone(), task.work.clone(), ends));
                }
            }
        }
        let settled = tasks.iter().all(|t| t.state.is_terminal());
        let failed = tasks.iter().any(|t| t.state == JobState::Failed);
        let last = job.current + 1 == job.steps.len();
        for (vm, work, ends) in done {
            let Some(item) = self.items.get_mut(&vm) else {
                continue;
            };
            match work {
                Some(Work::Operation(op)) => item.apply(&op, ends),
                Some(Work::CancelFailover) => item.failover_cancelled(),
                None => {}
            }
        }
        if !settled {
            return;
        }
        if failed {
            self.end_plan_job(id, JobState::Failed, at);
        } else if last {
            self.end_plan_job(id, JobState::Succeeded, at);
        } else {
            if let Some(job) = self.plan_jobs.jobs.get_mut(id) {
                job.current += 1;
            }
            self.begin_step(id, at);
        }
    }

    /// Ends job `id` in `state` at `at`: tasks that never ran are skipped, running ones
    /// cancelled (with what a cancel does to their VMs), and the members are free again.
    fn end_plan_job(&mut self, id: &str, state: JobState, at: Timestamp) {
        let Some(job) = self.plan_jobs.jobs.get_mut(id) else {
            return;
        };
        job.state = state;
        job.ended = Some(at);
        let mut cancelled = Vec::new();
        let mut members = Vec::new();
        for Step::Group { tasks, .. } in &mut job.steps {
            for task in tasks {
                members.push(task.vm.clone());
                if task.running() {
                    task.state = JobState::Cancelled;
                    task.ended = Some(at);
                    if let Some(Work::Operation(op)) = &task.work {
                        cancelled.push((task.vm.clone(), op.operation));
                    }
                } else if task.state == JobState::NotStarted {
                    task.state = JobState::Other("Skipped".into());
                }
            }
        }
        for (vm, op) in cancelled {
            if let Some(item) = self.items.get_mut(&vm) {
                item.cancelled(op);
            }
        }
        for vm in members {
            if let Some(item) = self.items.get_mut(&vm) {
                if item.busy.as_deref() == Some(id) {
                    item.busy = None;
                }
            }
        }
    }

    /// Advances the plan jobs whose time came by `until` (the earliest first); false when
    /// none was due.
    pub(super) fn advance_plans_once(&mut self, until: u64) -> bool {
        match self.plan_jobs.next_at() {
            Some(at) if at <= until => {
                if let Some((at, id)) = self.plan_jobs.pop() {
                    self.advance_plan(&id, Timestamp(at));
                }
                true
            }
            _ => false,
        }
    }

    fn plan_job_view(&self, id: &str, now: Timestamp) -> Option<PlanJobView> {
        let job = self.plan_jobs.jobs.get(id)?;
        let mut tasks = Vec::new();
        let mut errors = Vec::new();
        let mut next: Option<Timestamp> = None;
        for Step::Group { number, tasks: list } in &job.steps {
            for task in list {
                if let Some(ends) = task.ends.filter(|_| task.running()) {
                    next = Some(next.map_or(ends, |n| n.min(ends)));
                }
                errors.extend(task.errors.iter().cloned());
                tasks.push(TaskView {
                    group: *number,
                    vm: task.vm.clone(),
                    state: task.state.clone(),
                    started: task.started,
                    ended: task.ended,
                    errors: task.errors.clone(),
                    warnings: task.warnings.clone(),
                });
            }
        }
        let retry_after = (!job.state.is_terminal()).then(|| {
            next.map_or(POLL, |n| n.since(now))
                .clamp(Duration::from_secs(1), POLL)
        });
        Some(PlanJobView {
            id: job.id.clone(),
            plan: job.plan.clone(),
            action: job.request.action,
            state: job.state.clone(),
            errors,
            started: job.started,
            ended: job.ended,
            tasks,
            retry_after,
        })
    }

    fn plan_view(&mut self, plan: &str, now: Timestamp) -> Result<PlanView, BackendError> {
        let groups = self.plan_groups(plan)?;
        let mut jobs: Vec<&PlanJob> = self
            .plan_jobs
            .jobs
            .values()
            .filter(|j| j.plan == plan)
            .collect();
        jobs.sort_by_key(|j| j.ordinal);
        let last = |action: PlanAction| {
            jobs.iter()
                .filter(|j| j.request.action == action && j.state == JobState::Succeeded)
                .filter_map(|j| j.ended)
                .max()
        };
        Ok(PlanView {
            name: plan.to_string(),
            allowed_operations: self.plan_allowed(&groups),
            current: jobs.last().and_then(|j| self.plan_job_view(&j.id, now)),
            last_planned_failover: last(PlanAction::PlannedFailover),
            last_unplanned_failover: last(PlanAction::UnplannedFailover),
            last_test_failover: last(PlanAction::TestFailover),
            groups,
        })
    }
}

impl Simulator {
    /// Every recovery plan, by name.
    pub fn plans(&self) -> Vec<PlanView> {
        let (mut st, now) = self.settled();
        let names: Vec<String> = st.plans.keys().cloned().collect();
        names
            .iter()
            .filter_map(|name| st.plan_view(name, now).ok())
            .collect()
    }

    pub fn plan(&self, name: &str) -> Result<PlanView, BackendError> {
        let (mut st, now) = self.settled();
        st.plan_view(name, now)
    }

    /// Starts a plan action: one job for the whole plan, or why the plan refuses it.
    pub fn start_plan(
        &self,
        plan: &str,
        request: &PlanRequest,
    ) -> Result<PlanJobView, BackendError> {
        let (mut st, now) = self.settled();
        st.start_plan(plan, request, now)
    }

    /// A plan job, if `id` names one.
    pub fn plan_job(&self, id: &str) -> Option<PlanJobView> {
        let (st, now) = self.settled();
        st.plan_job_view(id, now)
    }

    /// The plan jobs started at or after `since`, oldest first.
    pub fn plan_jobs_since(&self, since: Timestamp) -> Vec<PlanJobView> {
        let (st, now) = self.settled();
        let mut jobs: Vec<&PlanJob> = st
            .plan_jobs
            .jobs
            .values()
            .filter(|j| j.started >= since)
            .collect();
        jobs.sort_by_key(|j| j.ordinal);
        jobs.iter()
            .filter_map(|j| st.plan_job_view(&j.id, now))
            .collect()
    }

    /// Restarts a failed plan job; `None` if `id` is not one.
    pub fn restart_plan_job(&self, id: &str) -> Option<Result<PlanJobView, BackendError>> {
        let (mut st, now) = self.settled();
        if !st.plan_jobs.jobs.contains_key(id) {
            return None;
        }
        Some(st.restart_plan(id, now))
    }

    /// Cancels a plan job; `None` if `id` is not one.
    pub fn cancel_plan_job(&self, id: &str) -> Option<Result<PlanJobView, BackendError>> {
        let (mut st, now) = self.settled();
        let job = st.plan_jobs.jobs.get(id)?;
        if job.state.is_terminal() {
            return Some(Err(plan_error(
                "JobAlreadyEnded",
                format!("Job {id} already ended ({}).", job.state),
            )));
        }
        st.end_plan_job(id, JobState::Cancelled, now);
        Some(
            st.plan_job_view(id, now)
                .ok_or_else(|| BackendError::UnknownJob(id.to_string())),
        )
    }
}
