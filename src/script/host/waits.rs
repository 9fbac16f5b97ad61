//! Waiting for jobs: `wait_job` and `wait_all`, answered from the journal on resume or by
//! polling the service on the run's clock; what ended jobs mean for the script (warnings,
//! failures), and timeouts, which in a dry run can show a wait shorter than the job.
//!
//! A read that fails for a while (the service does not answer, a new job is not readable
//! yet) is not an answer: it is asked again within the wait's timeout. Only the service's
//! own terminal states are a final record: a resume follows again any wait whose record is
//! not (a timeout, a failure) and that the run stopped on.

use super::{Call, Host, Mode, Raise};
use crate::backend::{BackendError, JobInfo, JobState};
use crate::clock::{human, Timestamp};
use crate::diagnostics::{Code, Finding, Severity};
use crate::journal::{Entry, Record, Waited};
use rhai::{Dynamic, NativeCallContext};
use std::time::Duration;

/// How long `wait_job` and `wait_all` wait without a timeout option.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(4 * 3600);
/// Polling interval when the backend gives no Retry-After.
const POLL: Duration = Duration::from_secs(30);
/// The first pause after a read that failed for a while; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Pauses at least this long are shown on the progress line.
const NOTICE_AFTER: Duration = Duration::from_secs(3);
/// How many times a job's expected duration a dry run's wait should allow.
const MARGIN: f64 = 1.5;

/// `wait_job(job, [opts])`.
pub(in crate::script) fn wait_job(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let job = h.job_arg(call)?;
    let opts = h.opts(call)?;
    let mut done = h.wait(
        call.ctx,
        std::slice::from_ref(&job.id()),
        opts.duration("timeout"),
    )?;
    Ok(Dynamic::from(h.handle(done.remove(0))))
}

/// `wait_all(jobs, [opts])`.
pub(in crate::script) fn wait_all(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let jobs = h.jobs_arg(call)?;
    let opts = h.opts(call)?;
    let ids: Vec<String> = jobs.iter().map(|j| j.id()).collect();
    let done = h.wait(call.ctx, &ids, opts.duration("timeout"))?;
    Ok(Dynamic::from_array(
        done.into_iter()
            .map(|info| Dynamic::from(h.handle(info)))
            .collect(),
    ))
}

impl Host {
    /// Sleeps on the run's clock; false if the run was interrupted.
    pub(super) fn sleep(&self, d: Duration) -> bool {
        match &self.interrupt {
            Some(token) => {
                if token.is_cancelled() {
                    return false;
                }
                self.exec.block_on(async {
                    tokio::select! {
                        _ = self.clock.sleep(d) => true,
                        _ = token.cancelled() => false,
                    }
                })
            }
            None => {
                self.exec.block_on(self.clock.sleep(d));
                true
            }
        }
    }

    fn wait(
        &self,
        ctx: &NativeCallContext,
        ids: &[String],
        timeout: Option<Duration>,
    ) -> Result<Vec<JobInfo>, Raise> {
        let explicit = timeout.is_some();
        let timeout = timeout.unwrap_or(DEFAULT_WAIT);
        {
            let mut st = self.state.borrow_mut();
            for id in ids {
                if let Some(&i) = st.by_id.get(id) {
                    st.jobs[i].waited = true;
                }
            }
        }
        let done = loop {
            let recorded = loop {
                let Some(j) = self.journal.as_ref() else {
                    break None;
                };
                break match j.next_answer() {
                    Some(Record {
                        entry: Entry::Waited { jobs, outcome, .. },
                        seq,
                        ..
                    }) if jobs == ids => match outcome {
                        // Not the jobs' end, and the attempt stopped on it: the next attempt
                        // followed them again (its wait follows), or they are followed now.
                        Waited::Failed(_) | Waited::TimedOut(_) if j.stopped_on(seq) => {
                            if j.replaying() {
                                continue;
                            }
                            None
                        }
                        Waited::Done(done) if done.len() != ids.len() => {
                            return Err(self.diverged_at(
                                ctx,
                                "a wait",
                                seq,
                                "a wait with another outcome",
                            ))
                        }
                        Waited::TimedOut(open) if open.is_empty() => {
                            return Err(self.diverged_at(
                                ctx,
                                "a wait",
                                seq,
                                "a wait with another outcome",
                            ))
                        }
                        outcome => Some(outcome),
                    },
                    Some(other) => {
                        return Err(self.diverged(
                            ctx,
                            &format!("a wait for {} job(s)", ids.len()),
                            other,
                        ))
                    }
                    None => None,
                };
            };
            let outcome = match recorded {
                Some(outcome) => outcome,
                None => {
                    let (outcome, seen) = self.poll(ctx, ids, timeout)?;
                    if let Some(j) = &self.journal {
                        let entry = Entry::Waited {
                            jobs: ids.to_vec(),
                            outcome: outcome.clone(),
                            seen,
                        };
                        if let Err(e) = j.append(self.clock.now(), entry) {
                            tracing::warn!("{e}");
                        }
                    }
                    outcome
                }
            };
            match outcome {
                Waited::Done(done) => break done,
                Waited::TimedOut(latest) => {
                    return Err(self.timed_out(ctx, &latest, timeout, explicit))
                }
                Waited::Failed(e) => return Err(self.backend_error(ctx, e)),
                // A plan's job waits at a manual action: the operator's approval resumes it,
                // then the wait goes on.
                Waited::Suspended(jobs) => self.manual_action(ctx, &jobs)?,
            }
        };
        for info in &done {
            self.update(info);
            self.observer.job_updated(info);
        }
        if self.mode == Mode::Check && explicit {
            self.warn_tight(ctx, &done, timeout);
        }
        self.conclude(ctx, done)
    }

    /// A dry run's wait that was long enough, but by less than half the longest job's
    /// expected duration: the durations are estimates, so a slower job would time out.
    fn warn_tight(&self, ctx: &NativeCallContext, done: &[JobInfo], timeout: Duration) {
        let Some((job, takes)) = done
            .iter()
            .filter(|j| j.skipped.is_none())
            .filter_map(|j| j.duration().map(|d| (j, d)))
            .max_by_key(|(_, d)| *d)
        else {
            return;
        };
        if timeout.as_secs_f64() >= takes.as_secs_f64() * MARGIN {
            return;
        }
        let site = self.site(ctx);
        let enough = Duration::from_secs((takes.as_secs_f64() * 2.0).ceil() as u64);
        self.warn(
            self.at(
                Finding::new(
                    Code::WaitTooShort,
                    format!(
                        "the wait allows {} for the {} of `{}`, which takes {} in the simulation: less than {MARGIN} times, so a slower job would time out",
                        human(timeout),
                        job.operation,
                        job.vm,
                        human(takes)
                    ),
                )
                .label(format!("only {} of margin", human(timeout.saturating_sub(takes))))
                .help(format!(
                    "expected durations are estimates: allow at least {MARGIN} times the job's {}, e.g. #{{ timeout: \"{}\" }}",
                    human(takes),
                    human(enough).replace(' ', "")
                )),
                &site,
            )
            .severity(Severity::Warning),
        );
    }

    /// Follows jobs until they end or `timeout` passes; with when each was seen ending.
    /// A read that fails for a while is asked again (with a growing pause, shown on the
    /// progress line) until the timeout; one the service refused ends the wait. Errs only
    /// when the run is interrupted (then nothing is recorded, and a resume waits again).
    fn poll(
        &self,
        ctx: &NativeCallContext,
        ids: &[String],
        timeout: Duration,
    ) -> Result<(Waited, Vec<Timestamp>), Raise> {
        let deadline = self.clock.now().plus(timeout);
        let mut done: Vec<Option<JobInfo>> = vec![None; ids.len()];
        let mut seen = vec![Timestamp::default(); ids.len()];
        let mut retry = RETRY_FIRST;
        loop {
            let mut next = POLL;
            let mut soonest: Option<Timestamp> = None;
            let mut latest: Vec<JobInfo> = Vec::new();
            let mut unreadable: Option<BackendError> = None;
            for (i, id) in ids.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                // A skipped call's job is the run's own: it ended when it was made.
                if let Some(rec) = self.record_of(id).filter(|r| r.info.skipped.is_some()) {
                    seen[i] = self.clock.now();
                    done[i] = Some(rec.info);
                    continue;
                }
                let info = match self.exec.block_on(self.backend.job(id)) {
                    Ok(info) => info,
                    Err(e) if e.is_transient() => {
                        tracing::debug!(job = %id, "cannot read the job now: {e}");
                        if let Some(known) = self.record_of(id) {
                            latest.push(known.info);
                        }
                        unreadable = Some(e);
                        continue;
                    }
                    Err(e) => return Ok((Waited::Failed(e), Vec::new())),
                };
                tracing::trace!(job = %info.id, state = %info.state, "polled");
                self.update(&info);
                self.observer.job_updated(&info);
                if info.waiting.is_some() && !info.state.is_terminal() {
                    return Ok((Waited::Suspended(vec![info]), Vec::new()));
                }
                // Only the in-process simulator shares the run's clock (and says when a job
                // will end); a service's timestamps are on its own clock.
                if info.expected_end.is_some() && info.ended.is_some_and(|end| end > deadline) {
                    // It ended after the deadline (a sped-up clock can overshoot between
                    // polls): at the deadline it was still running, so the wait timed out.
                    let mut at_deadline = info;
                    at_deadline.state = JobState::InProgress;
                    at_deadline.ended = None;
                    return Ok((Waited::TimedOut(vec![at_deadline]), Vec::new()));
                }
                if info.state.is_terminal() {
                    seen[i] = self.clock.now();
                    done[i] = Some(info);
                } else {
                    next = next.min(info.retry_after.unwrap_or(POLL));
                    if let Some(end) = info.expected_end {
                        soonest = Some(soonest.map_or(end, |s| s.min(end)));
                    }
                    latest.push(info);
                }
            }
            if latest.is_empty() && unreadable.is_none() {
                break;
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok((
                    match unreadable {
                        // The jobs' state is not known: not a timeout of theirs.
                        Some(e) => Waited::Failed(e),
                        None => Waited::TimedOut(latest),
                    },
                    Vec::new(),
                ));
            }
            // On a virtual clock nothing happens between polls, so jump to the next job's
            // end instead of polling every Retry-After.
            let step = match (&unreadable, soonest) {
                (Some(e), _) => {
                    let pause = retry.min(deadline.since(now));
                    retry = (retry * 2).min(RETRY_MAX);
                    if pause >= NOTICE_AFTER {
                        self.observer.notice(&format!(
                            "cannot read the jobs now ({e}): retrying in {}",
                            human(pause)
                        ));
                    }
                    pause
                }
                (None, Some(end)) if self.clock.is_virtual() => end.since(now),
                (None, _) => next,
            };
            if unreadable.is_none() {
                retry = RETRY_FIRST;
            }
            let step = step.min(deadline.since(now)).max(Duration::from_millis(1));
            if !self.sleep(step) {
                let names: Vec<String> = latest
                    .iter()
                    .map(|j| format!("{} of {}", j.operation, j.vm))
                    .collect();
                return Err(self.refuse(
                    ctx,
                    Finding::new(Code::Interrupted, "the run was interrupted while waiting")
                        .note(format!(
                            "still in flight in the service (not cancelled): {}",
                            names.join(", ")
                        ))
                        .help("no new operation will be issued; follow the jobs in the service"),
                ));
            }
        }
        Ok((Waited::Done(done.into_iter().flatten().collect()), seen))
    }

    /// What ended jobs mean for the script: warnings, and an error if one did not succeed.
    fn conclude(&self, ctx: &NativeCallContext, done: Vec<JobInfo>) -> Result<Vec<JobInfo>, Raise> {
        for job in done
            .iter()
            .filter(|j| j.state == JobState::Succeeded && !j.warnings.is_empty())
        {
            if !self.state.borrow_mut().warned.insert(job.id.clone()) {
                continue;
            }
            if let Some(rec) = self.record_of(&job.id) {
                self.warn(self.at(
                    Finding::new(
                        Code::JobWarning,
                        format!("the {} of `{}` succeeded with warnings", job.operation, job.vm),
                    )
                    .label("started here")
                    .notes(job.warnings.iter().cloned())
                    .help("check what the warning means for the VM before going on (e.g. data not yet replicated is lost)"),
                    &rec.site,
                ));
            }
        }
        let failed: Vec<&JobInfo> = done
            .iter()
            .filter(|j| j.state != JobState::Succeeded)
            .collect();
        if failed.is_empty() {
            return Ok(done);
        }
        let message = if failed.len() == 1 {
            let j = failed[0];
            format!(
                "{} of `{}` {} (job {})",
                j.operation,
                j.vm,
                j.state.as_str().to_lowercase(),
                j.id
            )
        } else {
            format!("{} of {} jobs did not succeed", failed.len(), done.len())
        };
        let mut finding = Finding::new(Code::JobFailed, message)
            .label("the job failed here")
            .help("the VM stays as it was before the operation; fix the cause the service names, then run the operation again (or catch the error to handle it)");
        for j in &failed {
            if failed.len() > 1 {
                finding = finding.note(format!(
                    "{} of `{}`: {} (job {})",
                    j.operation, j.vm, j.state, j.id
                ));
            }
            if let Some(rec) = self.record_of(&j.id) {
                finding = finding.note(format!("started at {}", rec.site.location));
            }
            for e in &j.errors {
                finding = finding.notes(e.lines());
            }
            for w in &j.warnings {
                finding = finding.note(format!("warning: {w}"));
            }
        }
        Err(self.fail(ctx, finding))
    }

    fn timed_out(
        &self,
        ctx: &NativeCallContext,
        running: &[JobInfo],
        timeout: Duration,
        explicit: bool,
    ) -> Raise {
        let j = &running[0];
        let takes = j.expected_end.map(|e| e.since(j.started));
        let mut finding = match (self.mode, takes) {
            (Mode::Check, Some(takes)) if explicit => Finding::new(
                Code::WaitTooShort,
                format!(
                    "the wait times out after {} but the {} of `{}` takes {} in the simulation",
                    human(timeout),
                    j.operation,
                    j.vm,
                    human(takes)
                ),
            )
            .label(format!("times out after {}", human(timeout)))
            .help(format!(
                "allow more than the job's expected {}: e.g. #{{ timeout: \"{}\" }}",
                human(takes),
                human(takes * 2).replace(' ', "")
            )),
            _ => Finding::new(
                Code::JobFailed,
                format!("waited {} for the {} of `{}`; it is still {}", human(timeout), j.operation, j.vm, j.state),
            )
            .label("timed out here")
            .help("the job goes on in the service and was not cancelled; wait again or follow it in the service"),
        };
        if running.len() > 1 {
            finding = finding.note(format!("{} jobs were still running", running.len()));
        }
        if let Some(rec) = self.record_of(&j.id) {
            finding = finding.note(format!("the job was started at {}", rec.site.location));
        }
        self.fail(ctx, finding)
    }
}
