//! The primitives that act on a server-side recovery plan as one job: its failover, commit,
//! reverse replication, drill and drill cleanup. The plan's groups run in their boot order
//! on the service's side; the call returns the plan's job, issued through the journal like
//! a VM's operation. The plan rules are here too: ASR's limits on a plan, a member failed
//! over on its own while its plan's failover runs (or the other way round), and a commit
//! before the plan's failover job ended.

use super::{Call, Host, Raise};
use crate::backend::{BackendError, Direction, JobInfo, Operation, OperationRequest};
use crate::diagnostics::{Code, Finding};
use rhai::{Dynamic, NativeCallContext};

/// ASR's limits on a recovery plan.
const PLAN_ITEMS: usize = 100;
const PLAN_GROUPS: usize = 7;

/// `failover_plan(plan, opts)`.
pub(in crate::script) fn failover_plan(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    let opts = h.opts(call)?;
    let members = h.plan_members_of(ctx, &name)?;
    let planned = opts.text("kind").as_deref() == Some("planned");
    let direction = direction(opts.text("direction").as_deref());
    let operation = if planned {
        Operation::PlannedFailover
    } else {
        Operation::UnplannedFailover
    };
    h.member_failing_over(ctx, &name, &members)?;
    let shutdown_source = opts.flag("shutdown_source").unwrap_or(false);
    if !planned && !shutdown_source {
        h.warn_avoidable_loss(ctx, &format!("recovery plan {name}"), direction.source());
    }
    let request = OperationRequest {
        direction: Some(direction),
        shutdown_source,
        plan: true,
        ..OperationRequest::new(operation)
    };
    let job = h.start(ctx, &name, request)?;
    let now = h.clock.now();
    let mut st = h.state.borrow_mut();
    for vm in &members {
        st.failover_skipped.remove(vm);
        st.failover_started.insert(vm.clone(), now);
    }
    Ok(job)
}

/// `commit_plan(plan)`.
pub(in crate::script) fn commit_plan(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    let members = h.plan_members_of(ctx, &name)?;
    let running = {
        let st = h.state.borrow();
        st.jobs
            .iter()
            .rev()
            .find(|r| {
                r.info.plan
                    && r.info.vm == name
                    && r.info.operation.is_failover()
                    && !r.info.state.is_terminal()
            })
            .map(|r| (r.info.id.clone(), r.info.operation, r.site.location.clone()))
    };
    if let Some((job, op, at)) = running {
        return Err(h.refuse(
            ctx,
            Finding::new(
                Code::PlanCommitEarly,
                format!("commit of recovery plan `{name}` before its {op} job {job} ended"),
            )
            .label("the plan's failover may still be running")
            .note(format!("the failover was started at {at}"))
            .help("wait for the failover with wait_job(job), verify the plan's VMs on the recovery site, then commit"),
        ));
    }
    h.check_members_verified(ctx, &name, &members);
    h.start(ctx, &name, plan_request(Operation::Commit, None))
}

/// `reverse_replicate_plan(plan)`.
pub(in crate::script) fn reverse_replicate_plan(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    h.plan_members_of(ctx, &name)?;
    h.start(ctx, &name, plan_request(Operation::ReverseReplicate, None))
}

/// `test_failover_plan(plan, [opts])`.
pub(in crate::script) fn test_failover_plan(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    let opts = h.opts(call)?;
    let members = h.plan_members_of(ctx, &name)?;
    let request = OperationRequest {
        network: opts.text("network"),
        ..plan_request(
            Operation::TestFailover,
            Some(direction(opts.text("direction").as_deref())),
        )
    };
    let job = h.start(ctx, &name, request)?;
    let site = h.site(ctx);
    let mut st = h.state.borrow_mut();
    for vm in members {
        st.drills.insert(vm, site.clone());
    }
    Ok(job)
}

/// `cleanup_test_failover_plan(plan, [opts])`.
pub(in crate::script) fn cleanup_test_failover_plan(
    h: &Host,
    call: &Call,
) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    let opts = h.opts(call)?;
    h.plan_members_of(ctx, &name)?;
    let request = OperationRequest {
        comments: opts.text("notes"),
        ..plan_request(Operation::TestFailoverCleanup, None)
    };
    h.start(ctx, &name, request)
}

fn direction(text: Option<&str>) -> Direction {
    match text {
        Some("recovery_to_primary") => Direction::RecoveryToPrimary,
        _ => Direction::PrimaryToRecovery,
    }
}

fn plan_request(operation: Operation, direction: Option<Direction>) -> OperationRequest {
    OperationRequest {
        direction,
        plan: true,
        ..OperationRequest::new(operation)
    }
}

impl Host {
    /// The plans' jobs among `jobs` that wait at a manual action: each is a manual step of
    /// the run (numbered like the script's own, approved here or by `runbook approve`),
    /// and once approved the job is resumed through the journal.
    pub(super) fn manual_action(
        &self,
        ctx: &NativeCallContext,
        jobs: &[JobInfo],
    ) -> Result<(), Raise> {
        for job in jobs {
            let Some(action) = job.waiting.clone() else {
                continue;
            };
            // Read again (through the journal): after a crash, the job may have been
            // resumed elsewhere (the portal, another operator) and gone on.
            let now = self.read_fresh(ctx, "job", &job.id, || {
                self.exec.block_on(self.backend.job(&job.id))
            })?;
            if let Ok(now) = &now {
                if now.waiting.as_deref() != Some(action.as_str()) || now.state.is_terminal() {
                    self.observer.note(&format!(
                        "job {} of recovery plan `{}` went on past `{action}` (resumed elsewhere); not asking",
                        now.id, now.vm
                    ));
                    self.update(now);
                    self.observer.job_updated(now);
                    continue;
                }
            }
            let title = format!("{action} (manual action of recovery plan `{}`)", job.vm);
            let instructions = format!(
                "the plan's job {} waits at this manual action; approving it resumes the job",
                job.id
            );
            self.confirm(ctx, &title, Some(&instructions), super::steps::DEFAULT_STEP)?;
            let info = self
                .issue_resume(ctx, job, &action)?
                .map_err(|e| self.backend_error(ctx, e))?;
            self.observer.note(&format!(
                "resumed job {} of recovery plan `{}` after `{action}`",
                info.id, info.vm
            ));
            self.update(&info);
            self.observer.job_updated(&info);
        }
        Ok(())
    }

    /// A plan's commit deletes every other recovery point of each member, as a VM's does:
    /// each member should have been verified on its site since the failover (RB108).
    fn check_members_verified(&self, ctx: &NativeCallContext, plan: &str, members: &[String]) {
        let unverified: Vec<&str> = {
            let st = self.state.borrow();
            members
                .iter()
                .filter(|vm| {
                    let since = st.failover_started.get(*vm).copied().unwrap_or_default();
                    !st.verified
                        .get(*vm)
                        .is_some_and(|v| v.of_site() && v.at >= since)
                })
                .map(String::as_str)
                .collect()
        };
        if unverified.is_empty() {
            return;
        }
        let site = self.site(ctx);
        self.warn(self.at(
            Finding::new(
                Code::CommitWithoutVerify,
                format!(
                    "commit of recovery plan `{plan}` is not preceded by a verify of {} of its VMs on their site: {}",
                    unverified.len(),
                    unverified.join(", ")
                ),
            )
            .label("commit deletes every other recovery point of the plan's VMs")
            .help(format!(
                "verify each first, e.g. verify({:?}, #{{ active_location: \"recovery\", healthy: true }})",
                unverified[0]
            )),
            &site,
        ));
    }

    /// The groups of recovery plan `name` (read through the journal), checked against ASR's
    /// limits; its members, in boot order, are returned and remembered for the plan rules
    /// and for what the run leaves behind.
    fn plan_members_of(&self, ctx: &NativeCallContext, name: &str) -> Result<Vec<String>, Raise> {
        self.names_used.set(true);
        let groups: Vec<Vec<String>> = self
            .read(ctx, "plan_groups", name, || {
                let plans = self.exec.block_on(self.backend.plans())?;
                let candidates = plans.iter().map(|(n, _)| n.clone()).collect();
                plans
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, groups)| groups)
                    .ok_or(BackendError::UnknownPlan {
                        name: name.to_string(),
                        candidates,
                    })
            })?
            .map_err(|e| self.backend_error(ctx, e))?;
        let members: Vec<String> = groups.iter().flatten().cloned().collect();
        if groups.len() > PLAN_GROUPS || members.len() > PLAN_ITEMS {
            return Err(self.refuse(
                ctx,
                Finding::new(
                    Code::PlanTooLarge,
                    format!(
                        "recovery plan `{name}` has {} items in {} groups: ASR allows at most {PLAN_ITEMS} items and {PLAN_GROUPS} groups",
                        members.len(),
                        groups.len()
                    ),
                )
                .label("the service refuses a plan this large")
                .help("split the plan into smaller plans (each within the limits) and fail them over one after the other"),
            ));
        }
        let mut st = self.state.borrow_mut();
        let site = self.site(ctx);
        for vm in &members {
            st.last_op.insert(vm.clone(), site.clone());
        }
        st.plan_members.insert(name.to_string(), members.clone());
        Ok(members)
    }

    /// Refuses a plan's failover while one of its members' own failover runs.
    fn member_failing_over(
        &self,
        ctx: &NativeCallContext,
        plan: &str,
        members: &[String],
    ) -> Result<(), Raise> {
        let running = {
            let st = self.state.borrow();
            st.jobs
                .iter()
                .find(|r| {
                    !r.info.plan
                        && r.info.operation.is_failover()
                        && !r.info.state.is_terminal()
                        && members.contains(&r.info.vm)
                })
                .map(|r| (r.info.vm.clone(), r.site.location.clone()))
        };
        match running {
            None => Ok(()),
            Some((vm, at)) => Err(self.refuse(
                ctx,
                Finding::new(
                    Code::PlanMemberTwice,
                    format!("failover of recovery plan `{plan}` while its member `{vm}` is failed over on its own"),
                )
                .label("the plan fails over a VM whose own failover runs")
                .note(format!("the failover of `{vm}` was started at {at}"))
                .help(format!("fail `{vm}` over either with its plan or on its own: drop one of the two, or wait for the VM's failover before the plan's")),
            )),
        }
    }

    /// Refuses a VM's own failover while a failover of a plan it is in runs.
    pub(super) fn plan_failing_over(&self, ctx: &NativeCallContext, vm: &str) -> Result<(), Raise> {
        let running = {
            let st = self.state.borrow();
            st.jobs
                .iter()
                .find(|r| {
                    r.info.plan
                        && r.info.operation.is_failover()
                        && !r.info.state.is_terminal()
                        && st
                            .plan_members
                            .get(&r.info.vm)
                            .is_some_and(|m| m.iter().any(|v| v == vm))
                })
                .map(|r| (r.info.vm.clone(), r.site.location.clone()))
        };
        match running {
            None => Ok(()),
            Some((plan, at)) => Err(self.refuse(
                ctx,
                Finding::new(
                    Code::PlanMemberTwice,
                    format!("failover of `{vm}` while a failover of its recovery plan `{plan}` runs"),
                )
                .label("the VM is failed over by its plan already")
                .note(format!("the plan's failover was started at {at}"))
                .help(format!("the plan's failover takes `{vm}` with it: wait for the plan's job instead of failing the VM over on its own")),
            )),
        }
    }
}
