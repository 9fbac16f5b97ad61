//! Starting operations without ever repeating a POST blindly: a POST whose answer was lost
//! (or a resumed run's) is matched to the job it created by its client request id and
//! adopted; and the job a POST's answer names.

use super::requests::{arm_error_at, request_id, retry_after, Failure, POST_WAIT_CAP};
use super::{convert, wire, Azure};
use crate::backend::{BackendError, JobInfo, JobState, OperationRequest, ServiceError};
use crate::clock::Timestamp;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// How often a POST refused with 429 is tried again.
const POST_ATTEMPTS: u32 = 5;
/// How often the job list is read for the job of a POST whose answer was lost.
const ADOPT_LOOKS: u32 = 6;
/// How much earlier than the client's clock the service's may be.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

impl Azure {
    /// POSTs an operation on `vm` and returns its job; a POST whose answer was lost (or did
    /// not say what became of it) is never sent again: its job is adopted, or the error says
    /// the operation may have been issued.
    pub(crate) async fn issue(
        &self,
        vm: &str,
        request: &OperationRequest,
    ) -> Result<JobInfo, BackendError> {
        let (id, (action, body)) = if request.plan {
            (
                format!("replicationRecoveryPlans/{vm}"),
                convert::plan_action_of(request),
            )
        } else {
            (self.id_of(vm).await?, convert::action_of(request))
        };
        let url = self.url(&format!("{id}/{action}"));
        // Jobs this POST may create start after this (with room for clock skew).
        let since = Timestamp::from_system(std::time::SystemTime::now() - CLOCK_SKEW);
        // One client request id for every attempt: the service echoes it in the job it
        // creates, so a job whose POST answer was lost is recognised.
        let client_request_id = request.key.clone().unwrap_or_else(|| self.request_id());
        let key = client_request_id.as_str();
        // An answer that does not say whether the service took the request: its job is
        // adopted if the service has one, else the operation may have been issued.
        let unsure = |e: BackendError| async move {
            tracing::debug!(vm, operation = %request.operation, "POST answer lost or not believed; looking for its job");
            if let Some(job) = self.adopt(key, since).await {
                return Ok(self.remember(job).await);
            }
            Err(BackendError::Transport(format!(
                "the {} of `{vm}` may have been issued: {e}, and its job was not found; check the vault's job list before issuing it again",
                request.operation
            )))
        };
        let mut attempt = 0;
        let (status, headers, text) = loop {
            attempt += 1;
            match self.send_as(Method::POST, &url, body.as_ref(), key).await {
                Ok((StatusCode::TOO_MANY_REQUESTS, headers, text)) => {
                    // Refused, not accepted: sending it again is safe.
                    if attempt >= POST_ATTEMPTS {
                        return Err(throttled(request, vm, attempt, &headers, &text));
                    }
                    let wait =
                        retry_after(&headers, POST_WAIT_CAP).unwrap_or(Duration::from_secs(1));
                    self.notice("throttled by the service", wait);
                    tokio::time::sleep(wait).await;
                }
                Ok((status, headers, text))
                    if status.is_server_error() || status.is_redirection() =>
                {
                    // A gateway error, or a redirect (never followed), says nothing of
                    // whether the service took the request.
                    return unsure(arm_error_at(&url, status, &headers, &text)).await;
                }
                Ok(answer) => break answer,
                Err(Failure::Other(e)) => return Err(e),
                Err(Failure::Ambiguous(e)) => {
                    // The service may have created the job: adopt it; never send it again.
                    return unsure(BackendError::Transport(format!(
                        "its answer was lost ({e})"
                    )))
                    .await;
                }
            }
        };
        if !status.is_success() {
            // The service refused it (400, 409...): ARM's code and message, as they are.
            return Err(arm_error_at(&url, status, &headers, &text));
        }
        let named = (status == StatusCode::ACCEPTED
            || headers.contains_key(LOCATION)
            || headers.contains_key("azure-asyncoperation"))
        .then(|| job_name(&headers))
        .flatten();
        let now = Timestamp::from_system(std::time::SystemTime::now());
        let job = match named {
            // Right after the 202 a job has not started: no need to ask.
            Some(job) => JobInfo {
                id: job,
                operation: request.operation,
                vm: vm.to_string(),
                state: JobState::NotStarted,
                errors: Vec::new(),
                warnings: Vec::new(),
                started: now,
                ended: None,
                // The 202's `Retry-After` is about its operation-results URL; the job is
                // read at its own pace (see `polling::backoff`), from `poll_min` on.
                retry_after: None,
                expected_end: None,
                skipped: None,
                plan: request.plan,
                tasks: Vec::new(),
                waiting: None,
            },
            None if status == StatusCode::OK && !request.plan && completed_at_once(&text, &id) => {
                // The documented 200: the protected item, the action done; no job to follow.
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
                    plan: request.plan,
                    tasks: Vec::new(),
                    waiting: None,
                }
            }
            None => {
                // Neither a job nor the item: not the service's documented answer (a proxy's
                // page, a forged success). Not believed; its job is looked for instead.
                let what = undocumented(status, &headers, &text);
                return unsure(BackendError::Untrusted(what)).await;
            }
        };
        Ok(self.remember(job).await)
    }

    /// The job a start of `request` (recognised by its `key`) created. A request that left
    /// at `issued_at` can reach the service until its timeout, and its job takes up to
    /// `listing_delay` more to be listed: until then, not finding it proves nothing, and a
    /// list that cannot be read is read again.
    pub(crate) async fn find_issued(
        &self,
        vm: &str,
        request: &OperationRequest,
        issued_at: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError> {
        let Some(key) = &request.key else {
            return Ok(None);
        };
        let deadline = issued_at.plus(self.timeout).plus(self.listing_delay);
        let since = Timestamp(issued_at.0.saturating_sub(CLOCK_SKEW.as_millis() as u64));
        let job = loop {
            let now = Timestamp::from_system(std::time::SystemTime::now());
            match self.list_jobs(since).await {
                Ok(jobs) => {
                    if let Some(job) = jobs
                        .into_iter()
                        .find(|j| j.properties.activity_id.contains(key.as_str()))
                    {
                        break job;
                    }
                    if now >= deadline {
                        return Ok(None);
                    }
                }
                Err(e) if e.is_transient() && now < deadline => {
                    tracing::debug!("the job list cannot be read yet: {e}");
                }
                Err(e) => return Err(e),
            }
            let pause = deadline
                .since(now)
                .min(self.poll_min.max(Duration::from_millis(200)));
            self.notice(
                &format!(
                    "looking for the job of the {} of `{vm}` (its answer was lost)",
                    request.operation
                ),
                pause,
            );
            tokio::time::sleep(pause).await;
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
            plan: request.plan,
            tasks: Vec::new(),
            waiting: None,
        };
        let info = convert::job_from_wire(job, Some(&known)).ok_or_else(|| {
            BackendError::Transport(format!("the service's job for `{vm}` is unreadable"))
        })?;
        Ok(Some(self.remember(info).await))
    }

    /// After a POST whose answer was lost: the job that POST created, recognised by the
    /// client request id the service echoes in the job's `activityId`. Looks a few times, as
    /// a new job can take a moment to be listed.
    async fn adopt(&self, client_request_id: &str, since: Timestamp) -> Option<JobInfo> {
        let mut pause = Duration::from_millis(250);
        for attempt in 1..=ADOPT_LOOKS {
            if let Ok(jobs) = self.list_jobs(since).await {
                if let Some(job) = jobs
                    .iter()
                    .find(|j| j.properties.activity_id.contains(client_request_id))
                {
                    return convert::job_from_wire(job, None);
                }
            }
            if attempt == ADOPT_LOOKS {
                break;
            }
            self.notice(
                "looking for the job of a request whose answer was lost",
                pause,
            );
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        None
    }
}

/// Whether a POST's 200 is the documented "completed at once": the protected item it was
/// sent to.
fn completed_at_once(text: &str, item_id: &str) -> bool {
    serde_json::from_str::<wire::ProtectedItem>(text)
        .is_ok_and(|item| item.id.eq_ignore_ascii_case(item_id.trim_end_matches('/')))
}

/// What an undocumented success looked like, for the error (never its body: it may quote
/// the request).
fn undocumented(status: StatusCode, headers: &HeaderMap, text: &str) -> String {
    let kind = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    let body = if text.trim().is_empty() {
        "an empty body".to_string()
    } else if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        format!("JSON that is not the protected item ({kind})")
    } else {
        format!("a body that is not JSON ({kind}, {} bytes)", text.len())
    };
    format!(
        "the service answered {status} with {body} and no job (no Location, Azure-AsyncOperation or job id){}; that is not its documented answer, so it was not believed",
        request_id(headers)
    )
}

/// A POST the service kept throttling: refused every time, so never issued.
fn throttled(
    request: &OperationRequest,
    vm: &str,
    attempts: u32,
    headers: &HeaderMap,
    text: &str,
) -> BackendError {
    let (code, message) = serde_json::from_str::<wire::ArmError>(text).map_or_else(
        |_| ("TooManyRequests".to_string(), "HTTP 429".to_string()),
        |b| (b.error.code, b.error.message),
    );
    BackendError::Service(ServiceError {
        code,
        message: format!(
            "{message}{} (the {} of `{vm}` was throttled {attempts} times and not issued; try again in a minute)",
            request_id(headers),
            request.operation
        ),
        possible_causes: String::new(),
        recommended_action: String::new(),
    })
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
