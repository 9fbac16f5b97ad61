//! The `azure` backend: Azure Site Recovery's REST API over reqwest, for a target named in
//! `runbook.toml`.
//!
//! - Long-running operations: a POST's job is named by `Location` (`operationresults/{job}`),
//!   else `Azure-AsyncOperation`, else `x-ms-request-id`; a 200 with the protected item means
//!   it completed at once. Any other answer (a 200 that names no job, HTML) is not believed.
//! - Polling: while several jobs are outstanding, one job-list sweep (filtered by start time,
//!   paged) answers for all of them, at most once per poll interval. `Retry-After` is
//!   honoured (at most five minutes); without it a job is read again after `poll_min`,
//!   half as long again after each unchanged answer, up to 30 s.
//! - Limits: client-side token buckets keep reads and writes under ARM's limits; a 429 waits
//!   for `Retry-After` (a POST at most a minute), and a long wait is told to the run's
//!   progress line ([`super::Notices`]).
//! - Retries: GETs on 5xx, 429, connection errors and unreadable answers, with exponential
//!   backoff and jitter. A POST is never blindly repeated: after a timeout, a dropped
//!   connection or an answer that does not say what became of it, the backend looks for the
//!   job that POST created for the item and adopts it.
//! - Redirects are never followed (they would carry the token, or a POST, elsewhere): a 3xx
//!   is an error that names its status and where it pointed.
//! - Tokens come from [`auth`]; they never appear in logs or errors.
//!
//! The client is split by concern: `target` (the `[targets.NAME]` table), `requests`
//! (URLs, sending, retries, ARM's errors, paging), `names` (items by name, plans,
//! providers), `polling` (job reads and sweeps) and `adopt` (starting operations, and
//! adopting the job of a POST whose answer was lost).

pub mod auth;
pub mod bucket;
pub mod convert;
pub mod wire;

mod adopt;
mod names;
mod polling;
mod requests;
mod target;

pub use adopt::job_name;
pub use target::{TargetConfig, DEFAULT_API_VERSION};

use super::{Backend, BackendError, Item, JobInfo, Notices, OperationRequest, PlanState, Provider};
use crate::clock::{parse_duration, Timestamp};
use polling::Polls;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;

/// Waits the backend makes on its own that are at least this long are told to the run.
const NOTICE_AFTER: Duration = Duration::from_secs(3);

/// The service, as a [`Backend`].
pub struct Azure {
    http: reqwest::Client,
    base: String,
    api_version: String,
    tokens: auth::Tokens,
    poll_min: Duration,
    listing_delay: Duration,
    /// How long one request may take.
    timeout: Duration,
    reads: bucket::Bucket,
    writes: bucket::Bucket,
    names: Mutex<Option<HashMap<String, String>>>,
    /// Items as last listed, until a job on them starts or ends or a poll interval passes.
    items: Mutex<HashMap<String, (Item, std::time::Instant)>>,
    polls: Mutex<Polls>,
    requests: AtomicU64,
    /// Where long waits are told (the run's progress line).
    notices: RwLock<Option<Arc<dyn Notices>>>,
}

impl Azure {
    /// A client for `target` with tokens from `credential` (never logged or shown).
    pub fn new(target: &TargetConfig, credential: auth::Credential) -> Result<Azure, String> {
        target.check()?;
        let timeout = parse_duration(&target.timeout).unwrap_or(Duration::from_secs(60));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would carry the token, the client secret or a POST to wherever it
            // points: never followed (see `requests::redirected`).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Azure {
            tokens: auth::Tokens::new(credential, http.clone()),
            http,
            base: format!(
                "{}{}",
                target.endpoint.trim_end_matches('/'),
                target.vault_path()
            ),
            api_version: target.api_version.clone(),
            poll_min: parse_duration(&target.poll_min).unwrap_or(Duration::from_secs(5)),
            listing_delay: parse_duration(&target.listing_delay).unwrap_or(Duration::from_secs(30)),
            timeout,
            reads: bucket::Bucket::new(target.reads_per_second, 250.0),
            writes: bucket::Bucket::new(target.writes_per_second, 200.0),
            names: Mutex::new(None),
            items: Mutex::new(HashMap::new()),
            polls: Mutex::new(Polls::default()),
            requests: AtomicU64::new(0),
            notices: RwLock::new(None),
        })
    }

    /// Tells the run that the backend waits `wait` on its own, if that is long enough for an
    /// operator to wonder: `{what}: retrying in 58s`.
    pub(crate) fn notice(&self, what: &str, wait: Duration) {
        if wait < NOTICE_AFTER {
            return;
        }
        tracing::info!(?wait, "{what}");
        let to = self
            .notices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(to) = to {
            to.notice(&format!(
                "{what}: retrying in {}",
                crate::clock::human(Duration::from_secs(wait.as_secs_f64().round() as u64))
            ));
        }
    }

    /// The credential the environment offers (see [`auth::Credential::from_env`]).
    pub fn credential_from_env(target: &TargetConfig) -> Result<auth::Credential, String> {
        auth::Credential::from_env(&target.authority)
    }
}

#[async_trait::async_trait]
impl Backend for Azure {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn knows_names(&self) -> bool {
        true
    }

    async fn list_items(&self) -> Result<Vec<Item>, BackendError> {
        self.read_items().await
    }

    async fn item(&self, name: &str) -> Result<Item, BackendError> {
        self.read_item(name).await
    }

    async fn plan_members(&self, plan: &str) -> Result<Vec<String>, BackendError> {
        self.members_of(plan).await
    }

    async fn plans(&self) -> Result<Vec<(String, Vec<Vec<String>>)>, BackendError> {
        self.read_plans().await
    }

    async fn find_started(
        &self,
        vm: &str,
        request: &OperationRequest,
        issued_at: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError> {
        self.find_issued(vm, request, issued_at).await
    }

    async fn start(&self, vm: &str, request: &OperationRequest) -> Result<JobInfo, BackendError> {
        self.issue(vm, request).await
    }

    async fn job(&self, id: &str) -> Result<JobInfo, BackendError> {
        self.poll(id).await
    }

    async fn jobs_since(&self, since: Timestamp) -> Result<Vec<JobInfo>, BackendError> {
        self.jobs_listed_since(since).await
    }

    async fn cancel_job(&self, id: &str) -> Result<JobInfo, BackendError> {
        self.cancel(id).await
    }

    async fn providers(&self) -> Result<Vec<Provider>, BackendError> {
        self.read_providers().await
    }

    async fn plan_state(&self, plan: &str) -> Result<PlanState, BackendError> {
        self.read_plan_state(plan).await
    }

    async fn resume_job(&self, id: &str, comments: &str) -> Result<JobInfo, BackendError> {
        self.resume(id, comments).await
    }

    fn notify(&self, to: Arc<dyn Notices>) {
        *self.notices.write().unwrap_or_else(|e| e.into_inner()) = Some(to);
    }
}

/// When a timestamp from the service cannot be read.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339_weak(text))
        .ok()
        .map(Timestamp::from_system)
}
