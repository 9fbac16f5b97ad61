//! The primitives that change an item: failover, drills and their cleanup, commit, reverse
//! replication and cancel. Each builds its request, issues it through the journal and keeps
//! the job with the place it was started from.
//!
//! A runbook describes where VMs must end up, so running it again converges: a failover of
//! a VM already active on the site it asks for, a commit of a failover already committed
//! and a reverse replication of a VM already replicating from its active site issue
//! nothing. The call returns a job that succeeded at once, marked skipped, and says why.

use super::{Call, Host, JobRecord, Raise};
use crate::backend::{Direction, Item, JobInfo, JobState, Operation, OperationRequest, Site};
use crate::diagnostics::{Code, Finding};
use crate::journal::Entry;
use rhai::{Dynamic, NativeCallContext};

/// `failover(vm, opts)`.
pub(in crate::script) fn failover(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let opts = h.opts(call)?;
    let item = h.lookup(call.ctx, &name)?;
    let planned = opts.text("kind").as_deref() == Some("planned");
    let direction = match opts.text("direction").as_deref() {
        Some("recovery_to_primary") => Direction::RecoveryToPrimary,
        _ => Direction::PrimaryToRecovery,
    };
    let operation = if planned {
        Operation::PlannedFailover
    } else {
        Operation::UnplannedFailover
    };
    let target = direction.source().other();
    if item.active_location == target {
        h.state.borrow_mut().failover_skipped.insert(name.clone());
        let reason = format!("`{name}` is already active on the {} site", target.as_str());
        return Ok(h.skip(call.ctx, &name, operation, reason));
    }
    h.plan_failing_over(call.ctx, &name)?;
    let shutdown_source = opts.flag("shutdown_source").unwrap_or(false);
    if !planned && !shutdown_source {
        h.warn_avoidable_loss(call.ctx, &name, direction.source());
    }
    let request = OperationRequest {
        direction: Some(direction),
        shutdown_source,
        ..OperationRequest::new(operation)
    };
    let job = h.start(call.ctx, &name, request)?;
    let now = h.clock.now();
    let mut st = h.state.borrow_mut();
    st.failover_skipped.remove(&name);
    st.failover_started.insert(name, now);
    Ok(job)
}

/// `test_failover(vm, [opts])`.
pub(in crate::script) fn test_failover(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let opts = h.opts(call)?;
    let item = h.lookup(call.ctx, &name)?;
    let request = OperationRequest {
        direction: Some(Direction::away_from(item.active_location)),
        network: opts.text("network"),
        ..OperationRequest::new(Operation::TestFailover)
    };
    h.start(call.ctx, &name, request)
}

/// `cleanup_test_failover(vm, [opts])`.
pub(in crate::script) fn cleanup_test_failover(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let opts = h.opts(call)?;
    let request = OperationRequest {
        comments: opts.text("notes"),
        ..OperationRequest::new(Operation::TestFailoverCleanup)
    };
    h.start(call.ctx, &name, request)
}

/// `commit(vm)`.
pub(in crate::script) fn commit(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let item = h.lookup(call.ctx, &name)?;
    if item.allows(Operation::Commit) {
        // Only a commit the service would accept; a refused one is its own finding.
        h.check_verified(call.ctx, &name, &item);
        h.reverify(call.ctx, &name, Operation::Commit)?;
    } else if let Some(reason) = h.committed_already(&name, &item) {
        return Ok(h.skip(call.ctx, &name, Operation::Commit, reason));
    }
    h.start(call.ctx, &name, OperationRequest::new(Operation::Commit))
}

/// `reverse_replicate(vm)`.
pub(in crate::script) fn reverse_replicate(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let item = h.lookup(call.ctx, &name)?;
    if item.replicating && !item.allows(Operation::ReverseReplicate) {
        let reason = format!(
            "`{name}` already replicates from the {} site to the {} site",
            item.active_location.as_str(),
            item.active_location.other().as_str()
        );
        return Ok(h.skip(call.ctx, &name, Operation::ReverseReplicate, reason));
    }
    let request = OperationRequest {
        direction: Some(Direction::away_from(item.active_location)),
        ..OperationRequest::new(Operation::ReverseReplicate)
    };
    h.start(call.ctx, &name, request)
}

/// `cancel(job)`: refuses failovers, which must never be cancelled.
pub(in crate::script) fn cancel(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let job = h.job_arg(call)?.info().clone();
    if job.skipped.is_some() {
        // Nothing was issued, so nothing runs to cancel.
        return Ok(Dynamic::from(h.handle(job)));
    }
    if job.operation.is_failover() {
        return Err(h.refuse(
            ctx,
            Finding::new(
                Code::CancelFailover,
                format!("refused to cancel the {} of `{}`", job.operation, job.vm),
            )
            .label("never cancel a failover")
            .note("replication was stopped before the failover began: a cancelled failover leaves the VM without replication")
            .help("let the failover finish; if it fails, fix the cause and fail over again"),
        ));
    }
    let info = h
        .issue_cancel(ctx, &job)?
        .map_err(|e| h.backend_error(ctx, e))?;
    h.update(&info);
    let index = h.state.borrow().by_id.get(&info.id).copied();
    if let Some(i) = index {
        // Cancelling is a decision about the job: it no longer needs a wait.
        h.state.borrow_mut().jobs[i].waited = true;
    }
    h.observer.job_updated(&info);
    Ok(Dynamic::from(h.handle(info)))
}

impl Host {
    /// Why a commit of `name` has nothing to do, if it has not: the failover it would
    /// commit was committed already (the item says so, or it replicates again from the
    /// recovery site, or this run's failover of it was skipped as already done).
    fn committed_already(&self, name: &str, item: &Item) -> Option<String> {
        let skipped = self.state.borrow().failover_skipped.contains(name);
        if item.protection_state.contains("Committed") {
            Some(format!(
                "the failover of `{name}` is committed already ({})",
                item.protection_state
            ))
        } else if skipped || (item.replicating && item.active_location == Site::Recovery) {
            Some(format!(
                "`{name}` is active on the {} site with no failover waiting for commit",
                item.active_location.as_str()
            ))
        } else {
            None
        }
    }

    /// A call that issues nothing, because `name` is already where it would take it: its
    /// job succeeded at once and says why.
    fn skip(&self, ctx: &NativeCallContext, name: &str, op: Operation, reason: String) -> Dynamic {
        let site = self.site(ctx);
        let now = self.clock.now();
        let mut st = self.state.borrow_mut();
        let job = JobInfo {
            id: format!("skipped-{}", st.jobs.len() + 1),
            operation: op,
            vm: name.to_string(),
            state: JobState::Succeeded,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: now,
            ended: Some(now),
            retry_after: None,
            expected_end: None,
            skipped: Some(reason.clone()),
            plan: false,
            tasks: Vec::new(),
            waiting: None,
        };
        st.last_op.insert(name.to_string(), site.clone());
        let index = st.jobs.len();
        st.by_id.insert(job.id.clone(), index);
        st.jobs.push(JobRecord {
            info: job.clone(),
            site: site.clone(),
            // Nothing runs: there is nothing to wait for.
            waited: true,
        });
        drop(st);
        tracing::debug!(vm = name, operation = %op, "skipped: {reason}");
        self.observer.note(&format!(
            "{op} of `{name}` skipped: {reason}; nothing was issued"
        ));
        self.describe(Entry::Skipped {
            vm: name.to_string(),
            operation: op,
            job: job.id.clone(),
            reason,
            line: Some(site.runbook_location().to_string()),
        });
        Dynamic::from(self.handle(job))
    }

    /// An unplanned failover without a source shutdown while the source site is connected
    /// may lose what was not replicated yet: a dry run says so.
    pub(super) fn warn_avoidable_loss(&self, ctx: &NativeCallContext, name: &str, source: Site) {
        if self.mode != super::Mode::Check {
            return;
        }
        let connected = self
            .exec
            .block_on(self.backend.providers())
            .is_ok_and(|ps| ps.iter().any(|p| p.site == source && p.connected));
        if !connected {
            return;
        }
        let site = self.site(ctx);
        self.warn(self.at(
            Finding::new(
                Code::AvoidableDataLoss,
                format!(
                    "the unplanned failover of `{name}` may lose changes not yet replicated, although the {} site is connected",
                    source.as_str()
                ),
            )
            .label("unplanned, without shutting the source down")
            .help(format!(
                "while the {} site answers, a planned failover loses nothing: use #{{ kind: \"planned\" }}, or add `shutdown_source: true` to shut the source down and sync first",
                source.as_str()
            )),
            &site,
        ));
    }

    fn check_verified(&self, ctx: &NativeCallContext, name: &str, item: &Item) {
        let st = self.state.borrow();
        let since = st.failover_started.get(name).copied().unwrap_or_default();
        let ok = st
            .verified
            .get(name)
            .is_some_and(|v| v.of_site() && v.site == item.active_location && v.at >= since);
        drop(st);
        if !ok {
            let site = self.site(ctx);
            self.warn(self.at(
                Finding::new(
                    Code::CommitWithoutVerify,
                    format!("commit of `{name}` is not preceded by a verify of the VM on the {} site", item.active_location.as_str()),
                )
                .label("commit deletes every other recovery point")
                .help(format!(
                    "verify first: verify({name:?}, #{{ active_location: \"{}\", healthy: true }})",
                    item.active_location.as_str()
                )),
                &site,
            ));
        }
    }

    /// Issues `request` on `name` and keeps its job; a job the service refused because the
    /// item is busy (532) is its own finding.
    pub(super) fn start(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        request: OperationRequest,
    ) -> Result<Dynamic, Raise> {
        let op = request.operation;
        let plan = request.plan;
        let target = request.target(name);
        tracing::debug!(vm = name, operation = %op, "issuing");
        let (answer, replayed) = self.issue(ctx, name, request)?;
        let job = answer.map_err(|e| self.backend_error(ctx, e))?;
        let site = self.site(ctx);
        if job.state == JobState::Failed && job.errors.first().is_some_and(|e| e.code == "532") {
            let st = self.state.borrow();
            let running = st
                .jobs
                .iter()
                .rev()
                .find(|r| r.info.vm == name && !r.info.state.is_terminal());
            let mut finding = Finding::new(
                Code::ItemBusy,
                format!("{op} of `{name}` was refused: another operation is in progress on it (error 532)"),
            )
            .label("the item is busy")
            .help("wait for the running job with wait_job(job) before starting another operation on this VM");
            if let Some(r) = running {
                finding = finding.note(format!(
                    "{} of `{name}` started at {} is still running",
                    r.info.operation, r.site.location
                ));
            }
            for e in &job.errors {
                finding = finding.notes(e.lines());
            }
            drop(st);
            return Err(self.raise(ctx, self.at(finding, &site), true));
        }
        tracing::debug!(vm = name, operation = %op, job = %job.id, state = %job.state, "issued");
        if replayed {
            self.observer.note(&format!(
                "{op} of {target}: job {} (from the journal; not sent again)",
                job.id
            ));
        } else {
            self.observer.job_started(&job);
        }
        let mut st = self.state.borrow_mut();
        // A plan's members were recorded by the plan's primitive.
        if op == Operation::TestFailover && !plan {
            st.drills.insert(name.to_string(), site.clone());
        }
        if !plan {
            st.last_op.insert(name.to_string(), site.clone());
        }
        let index = st.jobs.len();
        st.by_id.insert(job.id.clone(), index);
        st.jobs.push(JobRecord {
            info: job.clone(),
            site,
            waited: false,
        });
        drop(st);
        Ok(Dynamic::from(self.handle(job)))
    }
}
