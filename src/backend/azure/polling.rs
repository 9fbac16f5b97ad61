//! Following jobs: direct reads, the job-list sweep that answers for every outstanding job
//! at most once per poll interval, what the poller remembers of each job, and cancelling.

use super::requests::{arm_error, retry_after, Failure, Pages};
use super::{convert, wire, Azure};
use crate::backend::{BackendError, JobInfo};
use crate::clock::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::collections::HashMap;
use std::time::Duration;

/// What the poller knows of the jobs this run started.
#[derive(Default)]
pub(crate) struct Polls {
    /// Jobs not seen ended, with their start.
    outstanding: HashMap<String, Timestamp>,
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
                for mut job in jobs {
                    // The next sweep is due one poll interval from now.
                    job.retry_after = Some(self.poll_min);
                    self.remember(&job).await;
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
        self.remember(&info).await;
        Ok(info)
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
            return Err(arm_error(status, &headers, &text));
        }
        let info = self.job_once(id).await?;
        self.remember(&info).await;
        Ok(info)
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
        let after = retry_after(headers).unwrap_or(Duration::from_secs(30));
        info.retry_after = Some(after.max(self.poll_min));
        Ok(info)
    }

    /// Reads one job directly.
    async fn job_once(&self, id: &str) -> Result<JobInfo, BackendError> {
        let (job, headers) = self
            .get::<wire::Job>(&format!("replicationJobs/{id}"))
            .await?;
        let known = self.polls.lock().await.seen.get(id).map(|(j, _)| j.clone());
        self.job_info(&job, &headers, known.as_ref())
    }

    /// Records a job's latest state for the poller.
    pub(crate) async fn remember(&self, info: &JobInfo) {
        let mut polls = self.polls.lock().await;
        let before = polls.seen.get(&info.id).map(|(j, _)| j.state.clone());
        if before.as_ref() != Some(&info.state) {
            // The item's state changes with its job's: read it again when asked.
            self.items.lock().await.remove(&info.vm);
        }
        if info.state.is_terminal() {
            polls.outstanding.remove(&info.id);
        } else {
            polls.outstanding.insert(info.id.clone(), info.started);
        }
        polls
            .seen
            .insert(info.id.clone(), (info.clone(), std::time::Instant::now()));
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
