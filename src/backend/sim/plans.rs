//! Recovery plans in the simulator: a plan's groups (its boot order), the operations its
//! members' states allow, the plan actions and how the service shows plans and their jobs.
//! How a plan's job runs, step by step, is in [`super::plan_jobs`].

use super::plan_jobs::PlanJob;
use super::{SimItem, Simulator, State};
use crate::backend::{
    BackendError, Direction, JobInfo, JobState, Operation, OperationRequest, PlanState,
    ServiceError, TaskInfo,
};
use crate::clock::Timestamp;
use std::time::Duration;

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
        self.operation()
            .map_or("CancelFailover", Operation::scenario)
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
    /// The request's own id (`x-ms-client-request-id`), echoed by the job it creates.
    pub key: Option<String>,
}

impl PlanRequest {
    pub fn new(action: PlanAction) -> PlanRequest {
        PlanRequest {
            action,
            direction: None,
            shutdown_source: false,
            network: None,
            comments: None,
            key: None,
        }
    }

    /// The runbook's operation this plan action is (`plan: true`), if it is one.
    pub fn operation_request(&self) -> Option<OperationRequest> {
        Some(OperationRequest {
            direction: self.direction,
            shutdown_source: self.shutdown_source,
            network: self.network.clone(),
            comments: self.comments.clone(),
            key: self.key.clone(),
            plan: true,
            ..OperationRequest::new(self.action.operation()?)
        })
    }

    /// The plan action a runbook's plan operation asks for.
    pub fn of(request: &OperationRequest) -> PlanRequest {
        let action = match request.operation {
            Operation::PlannedFailover => PlanAction::PlannedFailover,
            Operation::UnplannedFailover => PlanAction::UnplannedFailover,
            Operation::Commit => PlanAction::Commit,
            Operation::ReverseReplicate => PlanAction::ReverseReplicate,
            Operation::TestFailover => PlanAction::TestFailover,
            Operation::TestFailoverCleanup => PlanAction::TestFailoverCleanup,
        };
        PlanRequest {
            action,
            direction: request.direction,
            shutdown_source: request.shutdown_source,
            network: request.network.clone(),
            comments: request.comments.clone(),
            key: request.key.clone(),
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
    /// The manual action the job is suspended at, if it is.
    pub waiting: Option<ManualView>,
}

/// A plan's manual action the job waits at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualView {
    pub name: String,
    pub instructions: String,
    /// The group it runs before, from 1.
    pub group: usize,
    pub since: Timestamp,
}

impl PlanJobView {
    /// The job as the backend's callers see it: the plan's name in place of a VM's, a task
    /// per member. A failover cancel is no runbook operation: `None`.
    pub fn info(&self) -> Option<JobInfo> {
        Some(JobInfo {
            id: self.id.clone(),
            operation: self.action.operation()?,
            vm: self.plan.clone(),
            state: self.state.clone(),
            errors: self.errors.clone(),
            warnings: self.tasks.iter().flat_map(|t| t.warnings.clone()).collect(),
            started: self.started,
            ended: self.ended,
            retry_after: self.retry_after,
            expected_end: None,
            skipped: None,
            plan: true,
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskInfo {
                    group: t.group,
                    vm: t.vm.clone(),
                    state: t.state.clone(),
                    started: t.started,
                    ended: t.ended,
                    errors: t.errors.clone(),
                })
                .collect(),
            waiting: self.waiting.as_ref().map(|w| w.name.clone()),
        })
    }
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

/// The operation a member's task performs for `request`; `None` for a failover cancel.
pub(super) fn member_request(request: &PlanRequest, item: &SimItem) -> Option<OperationRequest> {
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
    pub(super) fn failover_cancelled(&mut self) {
        if let super::Protection::CommitPending { .. } = self.protection {
            self.protection = super::Protection::Protected;
            self.active = self.active.other();
        }
    }
}

pub(super) fn plan_error(code: &str, message: String) -> BackendError {
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
    pub(super) fn plan_refusal(
        &self,
        groups: &[Vec<String>],
        request: &PlanRequest,
    ) -> Option<String> {
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

    pub(super) fn start_plan(
        &mut self,
        plan: &str,
        request: &PlanRequest,
        now: Timestamp,
    ) -> Result<PlanJobView, BackendError> {
        let groups = self.plan_groups(plan)?;
        // Manual actions run on the way to a site: failovers and drills.
        let actions = match request.action.directional() {
            true => self.plans.get(plan).map(|p| p.actions.clone()),
            false => None,
        };
        self.start_groups(plan, groups, &actions.unwrap_or_default(), request, now)
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
        if let Some(op) = request.operation_request() {
            st.receive(plan, op);
        }
        st.start_plan(plan, request, now)
    }

    /// A plan's allowed operations and running job.
    pub fn plan_state(&self, name: &str) -> Result<PlanState, BackendError> {
        let view = self.plan(name)?;
        Ok(PlanState {
            name: view.name,
            allowed_operations: view.allowed_operations,
            current_job: view
                .current
                .filter(|j| !j.state.is_terminal())
                .map(|j| j.id),
        })
    }

    /// The plan job a start with `key` created, if any.
    pub fn plan_job_by_key(&self, plan: &str, key: &str) -> Option<PlanJobView> {
        let (st, now) = self.settled();
        let job = st
            .plan_jobs
            .jobs
            .values()
            .find(|j| j.plan == plan && j.request.key.as_deref() == Some(key))?;
        st.plan_job_view(&job.id, now)
    }

    /// Resumes plan job `id`, suspended at a manual action.
    pub fn resume_plan_job(&self, id: &str) -> Result<(), BackendError> {
        let (mut st, now) = self.settled();
        st.resume_plan(id, now)
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
