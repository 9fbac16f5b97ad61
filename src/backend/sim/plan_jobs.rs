//! A recovery plan's job: ONE job for the whole plan, a sequence of steps run in order;
//! each step is the per-VM tasks of one group, run together, and ends when its last task
//! does. A member whose task fails fails the job with the member's error, and the steps
//! after it are skipped. Jobs advance lazily, like the items' (events in time order, settled
//! when the simulator is next asked).
//!
//! A plan's manual action is a step of its own before a group: the job is `Suspended`
//! there (as ASR's is) until it is resumed (`replicationJobs/{job}/resume`), then goes on.

use super::plans::{member_request, plan_error, ManualView, PlanJobView, PlanRequest, TaskView};
use super::{Run, State, POLL};
use crate::backend::inventory::ManualSeed;
use crate::backend::{BackendError, JobState, OperationRequest, ServiceError};
use crate::clock::Timestamp;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// How long cancelling a failover takes on one VM.
const CANCEL_FAILOVER: Duration = Duration::from_secs(120);

/// The plan jobs and the times they next need to advance.
#[derive(Debug, Default)]
pub(super) struct PlanJobs {
    pub(super) jobs: HashMap<String, PlanJob>,
    events: BinaryHeap<Reverse<(u64, u64, String)>>,
    order: u64,
}

#[derive(Debug)]
pub(super) struct PlanJob {
    pub(super) id: String,
    /// The job's place among all jobs (what-if ordinals, listing order).
    pub(super) ordinal: u64,
    pub(super) plan: String,
    pub(super) request: PlanRequest,
    pub(super) started: Timestamp,
    pub(super) ended: Option<Timestamp>,
    pub(super) state: JobState,
    steps: Vec<Step>,
    /// The step running now (or the last one, once the job ended).
    pub(super) current: usize,
    /// What-if: the first task of this job fails.
    pub(super) what_if: bool,
}

/// One step of a plan job.
#[derive(Debug)]
enum Step {
    /// A group's members, their tasks run together; the step ends when the last one does.
    Group { number: usize, tasks: Vec<Task> },
    /// A manual action: the job is suspended here until resumed.
    Manual(Manual),
}

#[derive(Debug)]
struct Manual {
    name: String,
    instructions: String,
    /// The group it runs before, from 1.
    group: usize,
    state: JobState,
    started: Option<Timestamp>,
}

/// The job's state while it waits at a manual action.
fn suspended() -> JobState {
    JobState::Other("Suspended".into())
}

impl Step {
    fn tasks(&self) -> &[Task] {
        match self {
            Step::Group { tasks, .. } => tasks,
            Step::Manual(_) => &[],
        }
    }
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
        self.events
            .push(Reverse((at.0, self.order, id.to_string())));
    }
}

impl State {
    /// Restarts a failed plan job: a new job of the same action over the members whose
    /// tasks did not succeed, from the step that failed on.
    pub(super) fn restart_plan(
        &mut self,
        id: &str,
        now: Timestamp,
    ) -> Result<PlanJobView, BackendError> {
        let job = self
            .plan_jobs
            .jobs
            .get(id)
            .ok_or_else(|| BackendError::UnknownJob(id.to_string()))?;
        if job.state != JobState::Failed {
            return Err(plan_error(
                "OperationNotAllowed",
                format!(
                    "Job {id} is {}: only a failed job can be restarted.",
                    job.state
                ),
            ));
        }
        let groups: Vec<Vec<String>> = job.steps[job.current..]
            .iter()
            .map(|step| {
                step.tasks()
                    .iter()
                    .filter(|t| t.state != JobState::Succeeded)
                    .map(|t| t.vm.clone())
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        let (plan, request) = (job.plan.clone(), job.request.clone());
        self.start_groups(&plan, groups, &[], &request, now)
    }

    /// Resumes job `id`, suspended at a manual action: the action is done, the job goes on.
    pub(super) fn resume_plan(&mut self, id: &str, now: Timestamp) -> Result<(), BackendError> {
        let job = self
            .plan_jobs
            .jobs
            .get_mut(id)
            .ok_or_else(|| BackendError::UnknownJob(id.to_string()))?;
        let Some(Step::Manual(manual)) = job.steps.get_mut(job.current) else {
            return Err(plan_error(
                "OperationNotAllowed",
                format!(
                    "Job {id} is {}, not Suspended: only a job waiting at a manual action can be resumed.",
                    job.state
                ),
            ));
        };
        if job.state != suspended() {
            return Err(plan_error(
                "OperationNotAllowed",
                format!(
                    "Job {id} is {}, not Suspended: only a job waiting at a manual action can be resumed.",
                    job.state
                ),
            ));
        }
        manual.state = JobState::Succeeded;
        job.state = JobState::InProgress;
        let last = job.current + 1 == job.steps.len();
        if !last {
            job.current += 1;
        }
        if last {
            self.end_plan_job(id, JobState::Succeeded, now);
        } else {
            self.begin_step(id, now);
        }
        Ok(())
    }

    /// Starts `request` on `groups` of `plan` as one job, with its manual `actions` (each
    /// before its group), or says why a member refuses.
    pub(super) fn start_groups(
        &mut self,
        plan: &str,
        groups: Vec<Vec<String>>,
        actions: &[ManualSeed],
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
        let mut steps = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            for action in actions.iter().filter(|a| a.before_group == i + 1) {
                steps.push(Step::Manual(Manual {
                    name: action.name.clone(),
                    instructions: action.instructions.clone(),
                    group: i + 1,
                    state: JobState::NotStarted,
                    started: None,
                }));
            }
            steps.push(Step::Group {
                number: i + 1,
                tasks: group.iter().map(|vm| Task::new(vm)).collect(),
            });
        }
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
        let tasks = match &job.steps[job.current] {
            Step::Group { tasks, .. } => tasks,
            Step::Manual(_) => {
                // The job waits for the operator: nothing advances until it is resumed.
                if let Some(job) = self.plan_jobs.jobs.get_mut(id) {
                    job.state = suspended();
                    if let Some(Step::Manual(m)) = job.steps.get_mut(job.current) {
                        m.state = suspended();
                        m.started = Some(at);
                    }
                }
                return;
            }
        };
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
        let Step::Group { tasks, .. } = &mut job.steps[job.current] else {
            return;
        };
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
        let Step::Group { tasks, .. } = &mut job.steps[job.current] else {
            return;
        };
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
    pub(super) fn end_plan_job(&mut self, id: &str, state: JobState, at: Timestamp) {
        let Some(job) = self.plan_jobs.jobs.get_mut(id) else {
            return;
        };
        job.state = state;
        job.ended = Some(at);
        let mut cancelled = Vec::new();
        let mut members = Vec::new();
        for step in &mut job.steps {
            let tasks = match step {
                Step::Group { tasks, .. } => tasks,
                Step::Manual(m) => {
                    m.state = match m.state {
                        JobState::NotStarted => JobState::Other("Skipped".into()),
                        JobState::Succeeded => JobState::Succeeded,
                        _ => JobState::Cancelled,
                    };
                    continue;
                }
            };
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

    pub(super) fn plan_job_view(&self, id: &str, now: Timestamp) -> Option<PlanJobView> {
        let job = self.plan_jobs.jobs.get(id)?;
        let mut tasks = Vec::new();
        let mut errors = Vec::new();
        let mut next: Option<Timestamp> = None;
        let mut waiting = None;
        for step in &job.steps {
            let (number, list) = match step {
                Step::Group { number, tasks } => (number, tasks),
                Step::Manual(m) => {
                    if m.state == suspended() {
                        waiting = Some(ManualView {
                            name: m.name.clone(),
                            instructions: m.instructions.clone(),
                            group: m.group,
                            since: m.started.unwrap_or(job.started),
                        });
                    }
                    continue;
                }
            };
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
            waiting,
        })
    }
}
