//! Following jobs: direct reads, the job-list sweep that answers for every outstanding job
//! at most once per poll interval, what the poller remembers of each job (and when to read
//! it next), and cancelling.

use super::requests::{arm_error_at, retry_after, Failure, Pages, READ_WAIT_CAP};
use super::{convert, wire, Azure};
use crate::backend::{BackendError, JobInfo};
use crate::clock::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::collections::HashMap;
use std::time::Duration;

/// The longest interval between two reads of a job the service gives no `Retry-After` for.
const POLL_MAX: Duration = Duration::from_secs(30);

/// The interval before the next read of a job the service gives no `Retry-After` for:
/// `poll_min` for a new job or one that changed state, else half as long again as the last
/// interval, up to [`POLL_MAX`].
pub(crate) fn backoff(poll_min: Duration, last: Option<Duration>, changed: bool) -> Duration {
    match last {
        Some(last) if !changed => last.mul_f64(1.5).clamp(poll_min, POLL_MAX.max(poll_min)),
        _ => poll_min,
    }
}

/// What the poller knows of the jobs this run started.
#[derive(Default)]
pub(crate) struct Polls {
    /// Jobs not seen ended, with their start.
    outstanding: HashMap<String, Timestamp>,
    /// Each job's interval between reads when the service says nothing (see [`backoff`]).
    backoff: HashMap<String, Duration>,
    /// When this client first heard of each job (its 202, a sweep), on its own clock.
    first_heard: HashMap<String, std::time::Instant>,
    /// The latest answer for each job and when it came.
    seen: HashMap<String, (JobInfo, std::time::Instant)>,
    last_sweep: Option<std::time::Instant>,
}

impl Azure {
    /// A job's state: as seen in this poll interval, else from a sweep, else read directly.
    pub(crate) async fn poll(&self, id: &str) -> Result<JobInfo, BackendError> {
        // A recent enough answer (from a sweep or a direct read) serves every caller in this
        // poll interval.
        {
            let polls = self.polls.lock().await;
            if let Some((info, at)) = polls.seen.get(id) {
                if info.state.is_terminal() || at.elapsed() < self.poll_min {
                    return Ok(info.clone());
                }
            }
        }
        let (sweep, since) = {
            let polls = self.polls.lock().await;
            let due = polls
                .last_sweep
                .is_none_or(|t| t.elapsed() >= self.poll_min);
            (
                polls.outstanding.len() >= 2 && polls.outstanding.contains_key(id) && due,
                polls.outstanding.values().min().copied(),
            )
        };
        if let (true, Some(since)) = (sweep, since) {
            // One list for all outstanding jobs instead of one GET each.
            self.polls.lock().await.last_sweep = Some(std::time::Instant::now());
            // With room for the service's clock being behind the client's.
            let since = Timestamp(since.0.saturating_sub(300_000));
            if let Ok(jobs) = self.jobs_listed_since(since).await {
                let mut found = None;
                for job in jobs {
                    let job = self.remember(job).await;
                    if job.id == id {
                        found = Some(job);
                    }
                }
                // A job this sweep did not list is read directly below.
                if let Some(info) = found {
                    return Ok(info);
                }
            }
        }
        let info = self.job_once(id).await?;
        Ok(self.remember(info).await)
    }

    /// The runbook operations' jobs started since `since`.
    pub(crate) async fn jobs_listed_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<JobInfo>, BackendError> {
        let jobs = self.list_jobs(since).await?;
        let polls = self.polls.lock().await;
        Ok(jobs
            .iter()
            .filter_map(|j| {
                let known = polls.seen.get(&j.name).map(|(info, _)| info);
                convert::job_from_wire(j, known)
            })
            .collect())
    }

    /// Asks the service to cancel a job, then reads it.
    pub(crate) async fn cancel(&self, id: &str) -> Result<JobInfo, BackendError> {
        let url = self.url(&format!("replicationJobs/{id}/cancel"));
        let (status, headers, text) =
            self.send(Method::POST, &url, None)
                .await
                .map_err(|f| match f {
                    Failure::Ambiguous(e) | Failure::Other(e) => e,
                })?;
        if !status.is_success() {
            return Err(arm_error_at(&url, status, &headers, &text));
        }
        let info = self.job_once(id).await?;
        Ok(self.remember(info).await)
    }

    /// Asks the service to resume a job suspended at a manual action, then reads it.
    pub(crate) async fn resume(&self, id: &str, comments: &str) -> Result<JobInfo, BackendError> {
        let url = self.url(&format!("replicationJobs/{id}/resume"));
        let body = wire::ActionInput {
            properties: wire::ActionProperties {
                comments: Some(comments.to_string()),
                ..Default::default()
            },
        };
        let (status, headers, text) =
            self.send(Method::POST, &url, Some(&body))
                .await
                .map_err(|f| match f {
                    Failure::Ambiguous(e) | Failure::Other(e) => e,
                })?;
        if !status.is_success() {
            return Err(arm_error_at(&url, status, &headers, &text));
        }
        let info = self.job_once(id).await?;
        Ok(self.remember(info).await)
    }

    fn job_info(
        &self,
        job: &wire::Job,
        headers: &HeaderMap,
        known: Option<&JobInfo>,
    ) -> Result<JobInfo, BackendError> {
        let mut info = convert::job_from_wire(job, known).ok_or_else(|| {
            BackendError::Transport(format!(
                "job {} is not a runbook operation ({})",
                job.name, job.properties.scenario_name
            ))
        })?;
        // The service's hint, if any: `remember` turns it into the next poll.
        info.retry_after = retry_after(headers, READ_WAIT_CAP);
        Ok(info)
    }

    /// Reads one job directly. A job this run started that the service does not know yet
    /// (a new job can take a moment to be readable) is "not readable yet", which a wait
    /// asks again about, until `listing_delay` after this client first heard of it.
    async fn job_once(&self, id: &str) -> Result<JobInfo, BackendError> {
        let found = self
            .get::<wire::Job>(&format!("replicationJobs/{id}"))
            .await;
        let known = self.polls.lock().await.seen.get(id).map(|(j, _)| j.clone());
        let (job, headers) = match found {
            Ok(found) => found,
            Err(BackendError::Service(e)) if e.code.contains("NotFound") || e.code == "404" => {
                let young = self
                    .polls
                    .lock()
                    .await
                    .first_heard
                    .get(id)
                    .is_some_and(|at| at.elapsed() < self.listing_delay);
                return Err(if young {
                    BackendError::Transport(format!(
                        "job {id} is not readable yet ({}: {})",
                        e.code, e.message
                    ))
                } else {
                    BackendError::UnknownJob(id.to_string())
                });
            }
            Err(e) => return Err(e),
        };
        self.job_info(&job, &headers, known.as_ref())
    }

    /// Records a job's latest state for the poller, with when to read it next:
    /// `info.retry_after` is the service's `Retry-After` if it gave one (never sooner than
    /// `poll_min`), else the job's [`backoff`].
    pub(crate) async fn remember(&self, mut info: JobInfo) -> JobInfo {
        let mut polls = self.polls.lock().await;
        let changed = polls.seen.get(&info.id).map(|(j, _)| &j.state) != Some(&info.state);
        if changed {
            // The item's state changes with its job's: read it again when asked.
            self.items.lock().await.remove(&info.vm);
        }
        let next = backoff(self.poll_min, polls.backoff.get(&info.id).copied(), changed);
        polls.backoff.insert(info.id.clone(), next);
        polls
            .first_heard
            .entry(info.id.clone())
            .or_insert_with(std::time::Instant::now);
        info.retry_after = Some(
            info.retry_after
                .map_or(next, |after| after.max(self.poll_min)),
        );
        if info.state.is_terminal() {
            polls.outstanding.remove(&info.id);
        } else {
            polls.outstanding.insert(info.id.clone(), info.started);
        }
        polls
            .seen
            .insert(info.id.clone(), (info.clone(), std::time::Instant::now()));
        info
    }

    /// The jobs started since `since`, as the service shows them (all pages).
    pub(crate) async fn list_jobs(&self, since: Timestamp) -> Result<Vec<wire::Job>, BackendError> {
        let filter = format!("replicationJobs?$filter=startTime eq '{}'", since.rfc3339());
        let mut out = Vec::new();
        let mut pages = Pages::new(&filter);
        while let Some(path) = pages.next()? {
            let (page, _) = self.get::<wire::Page<wire::Job>>(&path).await?;
            out.extend(page.value);
            pages.link(page.next_link);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_retry_after_polls_grow_by_half_from_poll_min_and_reset_on_a_change() {
        let min = Duration::from_secs(2);
        let mut interval = backoff(min, None, true);
        let mut seen = vec![interval];
        for _ in 0..10 {
            interval = backoff(min, Some(interval), false);
            seen.push(interval);
        }
        let secs: Vec<f64> = seen.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(&secs[..5], &[2.0, 3.0, 4.5, 6.75, 10.125]);
        assert_eq!(*seen.last().unwrap(), POLL_MAX, "capped at 30 s: {secs:?}");
        // A state change starts again from poll_min.
        assert_eq!(backoff(min, Some(POLL_MAX), true), min);
        // A poll_min above 30 s stays the floor.
        let slow = Duration::from_secs(45);
        assert_eq!(backoff(slow, Some(slow), false), slow);
    }
}
