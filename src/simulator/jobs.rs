//! Jobs: one job (a protected item's or a recovery plan's), the list filtered by start
//! time, the actions on a job (cancel, restart, resume; each an operation with an id of its
//! own), and the `activityId` that echoes the request that created a job.

use super::items::item_id_of;
use super::paging::{page, query_param};
use super::plans::plan_job_wire;
use super::responses::{accepted, backend_error, insert, json};
use super::routing::Caller;
use super::{lock, Server};
use crate::backend::azure::{convert, wire};
use crate::backend::sim::PlanJobView;
use crate::backend::{Backend, BackendError, JobInfo};
use axum::http::Uri;
use axum::response::Response;

impl Server {
    /// A job's `activityId`: the creating request's client id, as the service shows it.
    pub(crate) fn activity(&self, job: &str) -> Option<String> {
        lock(&self.activities)
            .get(job)
            .map(|id| format!("{id}-P ActivityId: {job}"))
    }

    /// Remembers the client request id of the request that created `job`: the service
    /// echoes it in the job's activityId.
    pub(crate) fn created(&self, job: &str, caller: &Caller) {
        if let Some(id) = &caller.client_request_id {
            lock(&self.activities).insert(job.to_string(), id.clone());
        }
    }
}

/// `startTime eq '2026-11-26T02:00:00Z'` in a job list's `$filter`: jobs from that time on.
pub(crate) fn filter_start(filter: &str) -> Option<crate::clock::Timestamp> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find("starttime")?;
    let rest = &filter[at..];
    let open = rest.find('\'')?;
    let close = rest[open + 1..].find('\'')?;
    crate::backend::azure::parse_time(&rest[open + 1..open + 1 + close])
}

/// A job of either kind.
enum AnyJob {
    Item(JobInfo),
    Plan(PlanJobView),
}

impl AnyJob {
    fn started(&self) -> (crate::clock::Timestamp, &str) {
        match self {
            AnyJob::Item(j) => (j.started, &j.id),
            AnyJob::Plan(j) => (j.started, &j.id),
        }
    }

    fn running(&self) -> bool {
        !match self {
            AnyJob::Item(j) => j.state.is_terminal(),
            AnyJob::Plan(j) => j.state.is_terminal(),
        }
    }

    async fn wire(&self, server: &Server, vault: &str) -> wire::Job {
        match self {
            AnyJob::Item(job) => {
                let item_id = item_id_of(server, vault, &job.vm).await;
                convert::job_to_wire(job, vault, &item_id, server.activity(&job.id).as_deref())
            }
            AnyJob::Plan(job) => plan_job_wire(job, vault, server.activity(&job.id).as_deref()),
        }
    }
}

async fn any_job(server: &Server, id: &str) -> Result<AnyJob, BackendError> {
    // A plan's job first: the simulator's `job` answers for both kinds.
    if let Some(job) = server.sim.plan_job(id) {
        return Ok(AnyJob::Plan(job));
    }
    server.sim.job(id).await.map(AnyJob::Item)
}

/// One job as the service shows it.
pub(crate) async fn job_wire(
    server: &Server,
    vault: &str,
    id: &str,
) -> Result<wire::Job, BackendError> {
    Ok(any_job(server, id).await?.wire(server, vault).await)
}

pub(crate) async fn list_jobs(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let since = query_param(uri, "$filter")
        .as_deref()
        .and_then(filter_start)
        .unwrap_or_default();
    let items = match server.sim.jobs_since(since).await {
        Ok(jobs) => jobs,
        Err(e) => return backend_error(e),
    };
    let mut jobs: Vec<AnyJob> = items.into_iter().map(AnyJob::Item).collect();
    jobs.extend(
        server
            .sim
            .plan_jobs_since(since)
            .into_iter()
            .map(AnyJob::Plan),
    );
    jobs.sort_by(|a, b| a.started().cmp(&b.started()));
    let (jobs, next_link) = page(&jobs, server.page_size, uri, origin);
    let mut value = Vec::new();
    for job in jobs {
        value.push(job.wire(server, vault).await);
    }
    json(&wire::Page { value, next_link })
}

/// One job, with `Retry-After` while it runs.
pub(crate) async fn get(server: &Server, vault: &str, id: &str) -> Response {
    match any_job(server, id).await {
        Ok(job) => {
            let mut r = json(&job.wire(server, vault).await);
            if job.running() {
                insert(r.headers_mut(), "retry-after", &server.retry_after());
            }
            r
        }
        Err(e) => backend_error(e),
    }
}

/// An action on a job (`cancel`, `restart`, `resume`): 202 with the headers of an operation
/// of its own. A cancel and a resume are done when accepted; a restart's operation follows
/// the new job.
pub(crate) async fn action(
    server: &Server,
    caller: &Caller,
    vault: &str,
    path: &str,
    id: &str,
    action: &str,
) -> Response {
    let follows = match action {
        "cancel" => match server.sim.cancel_plan_job(id) {
            Some(cancelled) => cancelled.map(|_| None),
            None => server.sim.cancel_job(id).await.map(|_| None),
        },
        "restart" => server.sim.restart_job(id).await.map(|job| {
            server.created(&job, caller);
            Some(job)
        }),
        _ => server.sim.resume_suspended(id).map(|()| None),
    };
    match follows {
        Ok(follows) => {
            let op = server.job_operation(follows);
            accepted(server, caller, vault, path, &op)
        }
        Err(e) => backend_error(e),
    }
}
