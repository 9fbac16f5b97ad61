//! The replication service as the script sees it: one async trait, [`Backend`], with the
//! in-process simulator ([`sim`]) behind it today and the ASR REST client next to it later.
//! Names and states follow the ASR REST API (see the project's API notes).

pub mod azure;
pub mod inventory;
pub mod sim;

use crate::clock::Timestamp;
use std::fmt;
use std::time::Duration;

/// Which site a VM runs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    Primary,
    Recovery,
}

impl Site {
    pub fn other(self) -> Site {
        match self {
            Site::Primary => Site::Recovery,
            Site::Recovery => Site::Primary,
        }
    }

    /// The script's spelling: `primary` or `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Site::Primary => "primary",
            Site::Recovery => "recovery",
        }
    }

    /// ASR's spelling of `activeLocation`.
    pub fn asr(self) -> &'static str {
        match self {
            Site::Primary => "Primary",
            Site::Recovery => "Recovery",
        }
    }
}

/// ASR's `failoverDirection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    PrimaryToRecovery,
    RecoveryToPrimary,
}

impl Direction {
    /// The direction that leaves `site`.
    pub fn away_from(site: Site) -> Direction {
        match site {
            Site::Primary => Direction::PrimaryToRecovery,
            Site::Recovery => Direction::RecoveryToPrimary,
        }
    }

    pub fn source(self) -> Site {
        match self {
            Direction::PrimaryToRecovery => Site::Primary,
            Direction::RecoveryToPrimary => Site::Recovery,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::PrimaryToRecovery => "primary_to_recovery",
            Direction::RecoveryToPrimary => "recovery_to_primary",
        }
    }

    pub fn asr(self) -> &'static str {
        match self {
            Direction::PrimaryToRecovery => "PrimaryToRecovery",
            Direction::RecoveryToPrimary => "RecoveryToPrimary",
        }
    }
}

/// The operations a runbook can start on an item.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    PlannedFailover,
    UnplannedFailover,
    Commit,
    ReverseReplicate,
    TestFailover,
    TestFailoverCleanup,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::PlannedFailover,
        Operation::UnplannedFailover,
        Operation::Commit,
        Operation::ReverseReplicate,
        Operation::TestFailover,
        Operation::TestFailoverCleanup,
    ];

    /// The script's and the inventory's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::PlannedFailover => "planned_failover",
            Operation::UnplannedFailover => "unplanned_failover",
            Operation::Commit => "commit",
            Operation::ReverseReplicate => "reverse_replicate",
            Operation::TestFailover => "test_failover",
            Operation::TestFailoverCleanup => "test_failover_cleanup",
        }
    }

    pub fn parse(text: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// The job's `scenarioName` in ASR.
    pub fn scenario(self) -> &'static str {
        match self {
            Operation::PlannedFailover => "PlannedFailover",
            Operation::UnplannedFailover => "UnplannedFailover",
            Operation::Commit => "CommitFailover",
            Operation::ReverseReplicate => "ReverseReplication",
            Operation::TestFailover => "TestFailover",
            Operation::TestFailoverCleanup => "TestFailoverCleanup",
        }
    }

    /// The name in the item's `allowedOperations`.
    pub fn allowed_name(self) -> &'static str {
        match self {
            Operation::PlannedFailover => "PlannedFailover",
            Operation::UnplannedFailover => "UnplannedFailover",
            Operation::Commit => "Commit",
            Operation::ReverseReplicate => "ReverseReplicate",
            Operation::TestFailover => "TestFailover",
            Operation::TestFailoverCleanup => "TestFailoverCleanup",
        }
    }

    pub fn from_allowed_name(text: &str) -> Option<Operation> {
        Operation::ALL
            .into_iter()
            .find(|o| o.allowed_name() == text)
    }

    pub fn is_failover(self) -> bool {
        matches!(
            self,
            Operation::PlannedFailover | Operation::UnplannedFailover
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to start, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperationRequest {
    pub operation: Operation,
    /// Failover, test failover and reverse replication direction; `None` for commit and cleanup.
    pub direction: Option<Direction>,
    /// Unplanned failover only: try to shut the source down and sync first (`sourceSiteOperations: Required`).
    pub shutdown_source: bool,
    /// Test failover: the isolated network.
    pub network: Option<String>,
    /// Test failover cleanup: the operator's notes.
    pub comments: Option<String>,
    /// The request's own id, which the service echoes in the job it creates
    /// (`x-ms-client-request-id`): how a job whose answer was lost is found again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The target is a server-side recovery plan (named where a VM is), all its members as
    /// one job whose groups run in their boot order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
}

impl OperationRequest {
    pub fn new(operation: Operation) -> Self {
        OperationRequest {
            operation,
            direction: None,
            shutdown_source: false,
            network: None,
            comments: None,
            key: None,
            plan: false,
        }
    }

    /// What a target is called in messages: `` `web-01` `` or `` recovery plan `tiers` ``.
    pub fn target(&self, name: &str) -> String {
        if self.plan {
            format!("recovery plan `{name}`")
        } else {
            format!("`{name}`")
        }
    }
}

/// One member's task in a recovery plan's job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskInfo {
    /// The plan's group the member is in, from 1 (its place in the boot order).
    pub group: usize,
    pub vm: String,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ServiceError>,
}

/// A recovery plan as the service shows it now: what it allows, and its running job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanState {
    pub name: String,
    /// The plan's `allowedOperations` (`PlannedFailover`, `Commit`...).
    pub allowed_operations: Vec<String>,
    /// The plan's job that has not ended, if one runs.
    pub current_job: Option<String>,
}

impl PlanState {
    pub fn allows(&self, op: Operation) -> bool {
        self.allowed_operations
            .iter()
            .any(|a| a == op.allowed_name())
    }
}

/// A protected item (a replicated VM) as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    pub name: String,
    pub id: String,
    /// ASR's `protectionState`, e.g. `Protected`, `PlannedFailoverCommitRequired`.
    pub protection_state: String,
    pub active_location: Site,
    /// `Normal`, `Warning` or `Critical`.
    pub health: String,
    pub health_errors: Vec<String>,
    pub allowed_operations: Vec<String>,
    /// `None` when no drill is in progress, else e.g. `WaitingForCompletion`.
    pub test_failover_state: Option<String>,
    pub last_test_failover: Option<Timestamp>,
    /// The job running on the item, if any.
    pub current_job: Option<String>,
    /// True when the item replicates (protected, no failover pending or committed).
    pub replicating: bool,
}

impl Item {
    pub fn allows(&self, op: Operation) -> bool {
        self.allowed_operations
            .iter()
            .any(|a| a == op.allowed_name())
    }

    pub fn is_healthy(&self) -> bool {
        self.health == "Normal"
    }

    /// The item's state in the script's and the inventory's words, a running job aside:
    /// `protected`, `drill_in_progress`, `failover_commit_pending`, `failover_committed` or
    /// `unprotected`.
    pub fn steady_state(&self) -> &'static str {
        if self.test_failover_state.is_some() {
            "drill_in_progress"
        } else if self.replicating {
            "protected"
        } else if self.protection_state.contains("Committed") {
            "failover_committed"
        } else if self.allows(Operation::Commit) || self.protection_state.contains("Commit") {
            "failover_commit_pending"
        } else {
            "unprotected"
        }
    }
}

/// A job's state; strings the service may add later land in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    NotStarted,
    InProgress,
    Succeeded,
    Failed,
    Cancelled,
    Other(String),
}

impl JobState {
    pub fn parse(text: &str) -> JobState {
        match text {
            "NotStarted" => JobState::NotStarted,
            "InProgress" => JobState::InProgress,
            "Succeeded" => JobState::Succeeded,
            "Failed" => JobState::Failed,
            "Cancelled" => JobState::Cancelled,
            other => JobState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobState::NotStarted => "NotStarted",
            JobState::InProgress => "InProgress",
            JobState::Succeeded => "Succeeded",
            JobState::Failed => "Failed",
            JobState::Cancelled => "Cancelled",
            JobState::Other(s) => s,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `serviceErrorDetails` of a failed job or a refused request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceError {
    pub code: String,
    pub message: String,
    pub possible_causes: String,
    pub recommended_action: String,
}

impl ServiceError {
    /// The lines an operator needs: code and message, causes, action.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("service error {}: {}", self.code, self.message)];
        if !self.possible_causes.is_empty() {
            out.push(format!("possible causes: {}", self.possible_causes));
        }
        if !self.recommended_action.is_empty() {
            out.push(format!("recommended action: {}", self.recommended_action));
        }
        out
    }
}

/// A job as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobInfo {
    /// The job name (a GUID in ASR).
    pub id: String,
    pub operation: Operation,
    pub vm: String,
    pub state: JobState,
    pub errors: Vec<ServiceError>,
    /// Things that went wrong without failing the job (e.g. a source shutdown that failed).
    pub warnings: Vec<String>,
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
    /// How long to wait before asking again (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// When the simulator will end the job; real services do not say.
    pub expected_end: Option<Timestamp>,
    /// Why no operation was issued: the VM was already where the call would take it (a
    /// re-run converges), so the call returned this job, succeeded at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// A recovery plan's job (`vm` is the plan's name): one task per member.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    /// A plan's job suspended at a manual action: the action's name. The job goes on once
    /// resumed (`replicationJobs/{job}/resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl JobInfo {
    pub fn duration(&self) -> Option<Duration> {
        self.ended.map(|e| e.since(self.started))
    }
}

/// A recovery services provider: a site's VMM server and its connection to Site Recovery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provider {
    pub name: String,
    pub site: Site,
    pub connected: bool,
}

/// What can go wrong talking to the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum BackendError {
    #[error("no protected item is named `{name}`")]
    UnknownItem {
        name: String,
        candidates: Vec<String>,
    },
    #[error("no recovery plan is named `{name}`")]
    UnknownPlan {
        name: String,
        candidates: Vec<String>,
    },
    #[error("no job is named `{0}`")]
    UnknownJob(String),
    #[error("{operation} is not allowed on `{item}` in state {state}")]
    NotAllowed {
        item: String,
        operation: Operation,
        state: String,
        allowed: Vec<String>,
        reason: String,
    },
    #[error("the service refused the request: {}", .0.message)]
    Service(ServiceError),
    /// The service could not be reached, or its answer was lost or unreadable: asking again
    /// may succeed.
    #[error("{0}")]
    Transport(String),
    /// The credentials were rejected, or no token could be had for them.
    #[error("the credentials were rejected: {0}")]
    Credentials(String),
    /// An answer the client does not follow or believe: a redirect, a link to another host,
    /// a success that is not the documented answer.
    #[error("{0}")]
    Untrusted(String),
}

impl BackendError {
    /// Whether the service itself gave this answer (a refusal, an unknown name), rather
    /// than the client failing to reach it, to authenticate or to trust what came back.
    /// Only the service's own answers are final: a resume asks again about the others.
    pub fn is_answer(&self) -> bool {
        !matches!(
            self,
            BackendError::Transport(_) | BackendError::Credentials(_) | BackendError::Untrusted(_)
        )
    }

    /// Whether asking again later may succeed: the service did not answer, or its answer
    /// was lost.
    pub fn is_transient(&self) -> bool {
        matches!(self, BackendError::Transport(_))
    }
}

/// Tells whoever watches a run about the waits a backend makes on its own (a throttled
/// request, a retry after the service did not answer): `runbook run` shows them on its
/// progress line. Backends call it only for waits long enough for an operator to wonder.
pub trait Notices: Send + Sync {
    /// One line, e.g. "throttled by the service: retrying in 58s".
    fn notice(&self, text: &str);
}

/// The replication service.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// One line for people: what this backend talks to.
    fn describe(&self) -> String;
    /// Whether item names are known (false for an open-world simulator without inventory).
    fn knows_names(&self) -> bool;
    async fn list_items(&self) -> Result<Vec<Item>, BackendError>;
    async fn item(&self, name: &str) -> Result<Item, BackendError>;
    /// Members of a server-side recovery plan.
    async fn plan_members(&self, plan: &str) -> Result<Vec<String>, BackendError>;
    /// Every server-side recovery plan: its name and its groups' members, in boot order.
    async fn plans(&self) -> Result<Vec<(String, Vec<Vec<String>>)>, BackendError>;
    async fn start(&self, vm: &str, request: &OperationRequest) -> Result<JobInfo, BackendError>;
    async fn job(&self, id: &str) -> Result<JobInfo, BackendError>;
    /// The job that a start of `request` (recognised by its `key`) created, if the service
    /// has one: how an operation whose answer was lost in a crash is settled. `issued_at`
    /// is when the request may have left.
    async fn find_started(
        &self,
        vm: &str,
        request: &OperationRequest,
        issued_at: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError>;
    /// Every runbook-operation job that started at or after `since`, oldest first.
    async fn jobs_since(&self, since: Timestamp) -> Result<Vec<JobInfo>, BackendError>;
    async fn cancel_job(&self, id: &str) -> Result<JobInfo, BackendError>;
    async fn providers(&self) -> Result<Vec<Provider>, BackendError>;
    /// Where to tell of the waits the backend makes on its own (see [`Notices`]); a backend
    /// that never waits on its own ignores it.
    fn notify(&self, _to: std::sync::Arc<dyn Notices>) {}
    /// A recovery plan's state now: its allowed operations and running job.
    async fn plan_state(&self, plan: &str) -> Result<PlanState, BackendError>;
    /// Resumes job `id`, suspended at a manual action of its recovery plan.
    async fn resume_job(&self, id: &str, comments: &str) -> Result<JobInfo, BackendError>;
    /// The operator confirmed the manual step titled `step`. A simulator brings back the
    /// sites that reconnect at that step; a service knows nothing of manual steps.
    fn operator_confirmed(&self, step: &str) {
        let _ = step;
    }
}
