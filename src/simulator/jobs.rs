//! Jobs: one job, its cancel, the list filtered by start time, and the `activityId` that
//! echoes the request that created a job.

use super::items::item_id_of;
use super::paging::{query_param, PAGE};
use super::responses::{accepted, backend_error, insert, json};
use super::{lock, Server};
use crate::backend::azure::{convert, wire};
use crate::backend::Backend;
use axum::http::Uri;
use axum::response::Response;

impl Server {
    /// A job's `activityId`: the creating request's client id, as the service shows it.
    pub(crate) fn activity(&self, job: &str) -> Option<String> {
        lock(&self.activities)
            .get(job)
            .map(|id| format!("{id}-P ActivityId: {job}"))
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

pub(crate) async fn list_jobs(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let since = query_param(uri, "$filter")
        .as_deref()
        .and_then(filter_start)
        .unwrap_or_default();
    let jobs = match server.sim.jobs_since(since).await {
        Ok(jobs) => jobs,
        Err(e) => return backend_error(e),
    };
    let skip: usize = query_param(uri, "$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut value = Vec::new();
    for job in jobs.iter().skip(skip).take(PAGE) {
        let item_id = item_id_of(server, vault, &job.vm).await;
        value.push(convert::job_to_wire(
            job,
            vault,
            &item_id,
            server.activity(&job.id).as_deref(),
        ));
    }
    let next_link = (skip + PAGE < jobs.len()).then(|| {
        let filter = query_param(uri, "$filter").unwrap_or_default();
        format!(
            "{origin}{vault}/replicationJobs?api-version={}&$filter={}&$skiptoken={}",
            crate::backend::azure::DEFAULT_API_VERSION,
            filter.replace(' ', "%20").replace('\'', "%27"),
            skip + PAGE
        )
    });
    json(&wire::Page { value, next_link })
}

/// One job, with `Retry-After` while it runs.
pub(crate) async fn get(server: &Server, vault: &str, id: &str) -> Response {
    match server.sim.job(id).await {
        Ok(job) => {
            let item_id = item_id_of(server, vault, &job.vm).await;
            let mut r = json(&convert::job_to_wire(
                &job,
                vault,
                &item_id,
                server.activity(&job.id).as_deref(),
            ));
            if !job.state.is_terminal() {
                insert(r.headers_mut(), "retry-after", &server.retry_after());
            }
            r
        }
        Err(e) => backend_error(e),
    }
}

/// Cancels a job: 202, as the action that started it was answered.
pub(crate) async fn cancel(
    server: &Server,
    origin: &str,
    vault: &str,
    path: &str,
    id: &str,
) -> Response {
    match server.sim.cancel_job(id).await {
        Ok(job) => accepted(server, origin, vault, path, &job.id),
        Err(e) => backend_error(e),
    }
}
