//! Starting operations without ever repeating a POST blindly: a POST whose answer was lost
//! (or a resumed run's) is matched to the job it created by its client request id and
//! adopted; and the job a POST's answer names.

use super::requests::{arm_error, request_id, retry_after, Failure};
use super::{convert, Azure};
use crate::backend::{BackendError, JobInfo, JobState, OperationRequest};
use crate::clock::Timestamp;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// How often a POST refused with 429 is tried again.
const POST_ATTEMPTS: u32 = 5;
/// How much earlier than the client's clock the service's may be.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

impl Azure {
    /// POSTs an operation on `vm` and returns its job; a POST whose answer was lost is never
    /// sent again: its job is adopted, or the error says the operation may have been issued.
    pub(crate) async fn issue(
        &self,
        vm: &str,
        request: &OperationRequest,
    ) -> Result<JobInfo, BackendError> {
        let id = self.id_of(vm).await?;
        let (action, body) = convert::action_of(request);
        let url = self.url(&format!("{id}/{action}"));
        // Jobs this POST may create start after this (with room for clock skew).
        let since = Timestamp::from_system(std::time::SystemTime::now() - Duration::from_secs(300));
        // One client request id for every attempt: the service echoes it in the job it
        // creates, so a job whose POST answer was lost is recognised.
        let client_request_id = request.key.clone().unwrap_or_else(|| self.request_id());
        let lost = |e: BackendError| {
            BackendError::Transport(format!(
                "the {} of `{vm}` may have been issued: its answer was lost ({e}) and its job was not found; check the vault's job list before issuing it again",
                request.operation
            ))
        };
        let mut attempt = 0;
        let (status, headers, text) = loop {
            attempt += 1;
            match self
                .send_as(Method::POST, &url, body.as_ref(), &client_request_id)
                .await
            {
                Ok((StatusCode::TOO_MANY_REQUESTS, headers, _)) if attempt < POST_ATTEMPTS => {
                    // Refused, not accepted: sending it again is safe.
                    tokio::time::sleep(retry_after(&headers).unwrap_or(Duration::from_secs(1)))
                        .await;
                }
                Ok((status, headers, text)) if status.is_server_error() => {
                    // A gateway error says nothing of whether the service took the request.
                    if let Some(job) = self.adopt(&client_request_id, since).await {
                        self.remember(&job).await;
                        return Ok(job);
                    }
                    return Err(lost(arm_error(status, &headers, &text)));
                }
                Ok(answer) => break answer,
                Err(Failure::Other(e)) => return Err(e),
                Err(Failure::Ambiguous(e)) => {
                    // The service may have created the job: adopt it; never send it again.
                    tracing::debug!(vm, operation = %request.operation, "POST answer lost; looking for its job");
                    if let Some(job) = self.adopt(&client_request_id, since).await {
                        self.remember(&job).await;
                        return Ok(job);
                    }
                    return Err(lost(e));
                }
            }
        };
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            let named = if status == StatusCode::ACCEPTED
                || headers.contains_key(LOCATION)
                || headers.contains_key("azure-asyncoperation")
            {
                job_name(&headers)
            } else {
                None
            };
            let job = match named {
                // Right after the 202 a job has not started: no need to ask.
                Some(job) => JobInfo {
                    id: job,
                    operation: request.operation,
                    vm: vm.to_string(),
                    state: JobState::NotStarted,
                    errors: Vec::new(),
                    warnings: Vec::new(),
                    started: Timestamp::from_system(std::time::SystemTime::now()),
                    ended: None,
                    retry_after: Some(
                        retry_after(&headers)
                            .unwrap_or(self.poll_min)
                            .max(self.poll_min),
                    ),
                    expected_end: None,
                    skipped: None,
                },
                None if status == StatusCode::OK => {
                    // Completed at once: there is no job to follow.
                    let now = Timestamp::from_system(std::time::SystemTime::now());
                    JobInfo {
                        id: format!("completed-{}", self.next_request()),
                        operation: request.operation,
                        vm: vm.to_string(),
                        state: JobState::Succeeded,
                        errors: Vec::new(),
                        warnings: Vec::new(),
                        started: now,
                        ended: Some(now),
                        retry_after: None,
                        expected_end: None,
                        skipped: None,
                    }
                }
                None => {
                    return Err(BackendError::Transport(format!(
                        "the service accepted {} of `{vm}` but named no job{}",
                        request.operation,
                        request_id(&headers)
                    )))
                }
            };
            self.remember(&job).await;
            return Ok(job);
        }
        match arm_error(status, &headers, &text) {
            BackendError::Service(e)
                if status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT =>
            {
                Err(BackendError::NotAllowed {
                    item: vm.to_string(),
                    operation: request.operation,
                    state: e.code.clone(),
                    allowed: Vec::new(),
                    reason: e.message,
                })
            }
            other => Err(other),
        }
    }

    /// The job a start of `request` (recognised by its `key`) created, looked for until
    /// `listing_delay` after `issued_at`.
    pub(crate) async fn find_issued(
        &self,
        vm: &str,
        request: &OperationRequest,
        issued_at: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError> {
        let Some(key) = &request.key else {
            return Ok(None);
        };
        // A job can take a moment to be listed: until `listing_delay` after the request,
        // not finding it proves nothing.
        let deadline = issued_at.plus(self.listing_delay);
        let since = Timestamp(issued_at.0.saturating_sub(CLOCK_SKEW.as_millis() as u64));
        let job = loop {
            let jobs = self.list_jobs(since).await?;
            if let Some(job) = jobs
                .into_iter()
                .find(|j| j.properties.activity_id.contains(key.as_str()))
            {
                break job;
            }
            let now = Timestamp::from_system(std::time::SystemTime::now());
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(
                deadline
                    .since(now)
                    .min(self.poll_min.max(Duration::from_millis(200))),
            )
            .await;
        };
        let job = &job;
        let known = JobInfo {
            id: job.name.clone(),
            operation: request.operation,
            vm: vm.to_string(),
            state: JobState::NotStarted,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: issued_at,
            ended: None,
            retry_after: None,
            expected_end: None,
            skipped: None,
        };
        let mut info = convert::job_from_wire(job, Some(&known)).ok_or_else(|| {
            BackendError::Transport(format!("the service's job for `{vm}` is unreadable"))
        })?;
        info.retry_after = Some(self.poll_min);
        self.remember(&info).await;
        Ok(Some(info))
    }

    /// After a POST whose answer was lost: the job that POST created, recognised by the
    /// client request id the service echoes in the job's `activityId`. Looks a few times, as
    /// a new job can take a moment to be listed.
    async fn adopt(&self, client_request_id: &str, since: Timestamp) -> Option<JobInfo> {
        let mut pause = Duration::from_millis(250);
        for _ in 0..5 {
            if let Ok(jobs) = self.list_jobs(since).await {
                if let Some(job) = jobs
                    .iter()
                    .find(|j| j.properties.activity_id.contains(client_request_id))
                {
                    let mut info = convert::job_from_wire(job, None)?;
                    info.retry_after = Some(self.poll_min);
                    return Some(info);
                }
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        None
    }
}

/// The job name in a 202's `Location` (`.../operationresults/{job}?...`), else in
/// `Azure-AsyncOperation`, else `x-ms-request-id` (the last segment of each). Only for a
/// 202: every ARM answer carries an `x-ms-request-id`.
pub fn job_name(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(loc) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        if let Some((_, rest)) = loc.split_once("operationresults/") {
            return Some(rest.split(['?', '/']).next().unwrap_or(rest).to_string());
        }
    }
    let last = |value: &str| {
        let path = value.split('?').next().unwrap_or(value);
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(op) = header("azure-asyncoperation") {
        if let Some(name) = last(&op) {
            return Some(name);
        }
    }
    header("x-ms-request-id").and_then(|v| last(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_job_is_found_in_location_then_async_operation_then_request_id() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(job_name(&h).as_deref(), Some("req-1"));
        h.insert(
            "azure-asyncoperation",
            HeaderValue::from_static(
                "https://x/vaults/v/replicationOperationStatus/job-2?api-version=2024-04-01",
            ),
        );
        assert_eq!(job_name(&h).as_deref(), Some("job-2"));
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://x/replicationProtectedItems/i/plannedFailover/operationresults/job-3?api-version=2024-04-01"),
        );
        assert_eq!(job_name(&h).as_deref(), Some("job-3"));
    }
}
