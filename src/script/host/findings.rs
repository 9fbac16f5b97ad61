//! Where a call came from and how its problems reach the script: the call site with its chain
//! of calls, findings raised as catchable or fatal Rhai errors, warnings kept for the end,
//! and the findings for the backend's errors.

use super::{CallSite, Host, Raise};
use crate::backend::{BackendError, Operation};
use crate::diagnostics::{did_you_mean, Code, Finding, Frame, Location};
use crate::script::errors::{function_name, place, runtime_finding};
use crate::script::resolver::Resolver;
use rhai::{Dynamic, EvalAltResult, NativeCallContext};
use std::sync::Arc;

impl Host {
    pub(super) fn site(&self, ctx: &NativeCallContext) -> CallSite {
        let pos = ctx.call_position();
        let source: Arc<str> = ctx
            .call_source()
            .map_or_else(|| self.main_source.clone(), Arc::from);
        let len = ctx.fn_name().chars().count();
        let here = place(&source, pos, len).unwrap_or_else(|| Location::new(source, 0, 0, len));
        // The call stack ends with this native call. A frame's `source` is the caller's file
        // for plain calls and the callee's for module-qualified ones; either way it is the
        // file the next frame's call sits in, and the first frame's call sits in the runbook.
        if !self.call_stack.get() {
            return CallSite {
                location: here,
                chain: Vec::new(),
            };
        }
        let stack = ctx.global_runtime_state().debugger().call_stack();
        let scripted = stack.len().saturating_sub(1);
        let mut chain = Vec::with_capacity(scripted);
        for k in (0..scripted).rev() {
            let caller: Arc<str> = if k == 0 {
                self.main_source.clone()
            } else {
                stack[k - 1]
                    .source
                    .as_deref()
                    .map_or_else(|| self.main_source.clone(), Arc::from)
            };
            let f = &stack[k];
            chain.push(Frame {
                function: function_name(&f.fn_name),
                location: place(&caller, f.pos, 0)
                    .unwrap_or_else(|| Location::new(caller, 0, 0, 0)),
            });
        }
        CallSite {
            location: here,
            chain,
        }
    }

    pub(super) fn at(&self, finding: Finding, site: &CallSite) -> Finding {
        finding
            .at(Some(site.location.clone()))
            .chain(site.chain.clone())
    }

    /// Raises `finding` as a Rhai error: catchable or not.
    pub(super) fn raise(
        &self,
        ctx: &NativeCallContext,
        finding: Finding,
        catchable: bool,
    ) -> Raise {
        let value = self.state.borrow_mut().raised.keep(finding);
        if catchable {
            EvalAltResult::ErrorRuntime(value, ctx.call_position()).into()
        } else {
            EvalAltResult::ErrorTerminated(value, ctx.call_position()).into()
        }
    }

    pub(super) fn fail(&self, ctx: &NativeCallContext, finding: Finding) -> Raise {
        let site = self.site(ctx);
        let finding = self.at(finding, &site);
        // A failure replayed from an earlier attempt's journal was told then.
        if !self.replaying()
            && matches!(
                finding.code,
                Code::JobFailed | Code::ActionFailed | Code::ServiceRefused | Code::VerifyFailed
            )
        {
            self.notify_event(
                "operation_failed",
                &finding.message,
                serde_json::json!({
                    "code": finding.code.as_str(),
                    "at": finding.place(),
                }),
            );
        }
        self.raise(ctx, finding, true)
    }

    pub(super) fn refuse(&self, ctx: &NativeCallContext, finding: Finding) -> Raise {
        let site = self.site(ctx);
        let finding = self.at(finding, &site);
        self.raise(ctx, finding, false)
    }

    /// Refuses a call to a function runbooks may not use.
    pub fn forbidden(&self, ctx: &NativeCallContext) -> Raise {
        self.refuse(ctx, crate::script::errors::forbidden(ctx.fn_name()))
    }

    pub(super) fn warn(&self, finding: Finding) {
        self.observer.warning(&finding);
        self.state.borrow_mut().findings.push(finding);
    }

    /// The finding behind an error a primitive raised, if it was one of ours.
    pub fn raised_finding(&self, value: &Dynamic) -> Option<Finding> {
        self.state.borrow().raised.finding_of(value)
    }

    /// The finding for the error a run ended with, with its chain of calls.
    pub fn runtime_finding(&self, err: &EvalAltResult, resolver: &Resolver) -> Finding {
        runtime_finding(
            err,
            &self.main_source,
            &|v| self.raised_finding(v),
            resolver,
        )
    }

    pub(super) fn backend_error(&self, ctx: &NativeCallContext, err: BackendError) -> Raise {
        let finding = match err {
            BackendError::UnknownItem { name, candidates } => {
                unknown_name("VM", &name, &candidates)
            }
            BackendError::UnknownPlan { name, candidates } => {
                unknown_name("recovery plan", &name, &candidates)
            }
            BackendError::NotAllowed {
                item,
                operation,
                state,
                allowed,
                reason,
            } => Finding::new(
                Code::NotAllowed,
                format!("{operation} of `{item}` is not allowed now: {reason}"),
            )
            .label(format!("{operation} refused in state {state}"))
            .note(format!(
                "`{item}` is {state}; allowed now: {}",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ))
            .help(not_allowed_help(operation)),
            BackendError::Service(error) => {
                let mut f = Finding::new(
                    Code::ServiceRefused,
                    format!(
                        "the service refused the request with {}: {}",
                        error.code, error.message
                    ),
                )
                .label(format!("refused with {}", error.code));
                if !error.possible_causes.is_empty() {
                    f = f.note(format!("possible causes: {}", error.possible_causes));
                }
                if !error.recommended_action.is_empty() {
                    f = f.note(format!("recommended action: {}", error.recommended_action));
                }
                f.help("the service did not act on this request (a job it started earlier, one this wait follows too, goes on there); the error code says why (give the request id to Azure support); `runbook status --target NAME` shows the VMs' states and jobs")
            }
            BackendError::UnknownJob(id) => Finding::new(
                Code::ServiceRefused,
                format!("the service does not know job {id}"),
            )
            .label("unknown job"),
            BackendError::Transport(message) => Finding::new(
                Code::NoAnswer,
                format!("no answer from the service: {message}"),
            )
            .label("no answer here")
            .help("check the network and the target's endpoint; the message says whether the operation may have been issued. `runbook resume` asks the service again"),
            BackendError::Untrusted(message) => Finding::new(
                Code::NoAnswer,
                format!("an answer was not believed: {message}"),
            )
            .label("answer not believed here")
            .help("check the target's endpoint and what sits between this machine and it; nothing was followed. `runbook resume` asks the service again"),
            BackendError::Credentials(why) => {
                // Every later call would fail the same way: the run stops here.
                let f = Finding::new(
                    Code::CredentialsRejected,
                    format!("the credentials were rejected: {why}"),
                )
                    .label("no token for this call")
                    .help("fix the credentials (AZURE_ACCESS_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, a managed identity, or `az login`), then `runbook resume` the run");
                return self.refuse(ctx, f);
            }
        };
        self.fail(ctx, finding)
    }
}

fn unknown_name(what: &str, name: &str, candidates: &[String]) -> Finding {
    let mut f = Finding::new(Code::UnknownVm, format!("no {what} is named `{name}`"))
        .label(format!("unknown {what}"));
    if let Some(s) = did_you_mean(name, candidates.iter().map(String::as_str)) {
        f = f.help(format!("did you mean `{s}`?"));
    } else if !candidates.is_empty() {
        let shown: Vec<&str> = candidates.iter().take(12).map(String::as_str).collect();
        let more = if candidates.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        f = f.help(format!("known names: {}{more}", shown.join(", ")));
    }
    f
}

fn not_allowed_help(op: Operation) -> &'static str {
    match op {
        Operation::Commit => "commit only after the failover job succeeded: wait_job(failover job), verify the VM on the target site, then commit",
        Operation::ReverseReplicate => "reverse replication follows a committed failover: fail over, verify and commit first, waiting for each job",
        Operation::PlannedFailover | Operation::UnplannedFailover => {
            "check status(vm).allowed before failing over; a drill must be cleaned up and a pending failover committed first"
        }
        Operation::TestFailover => "drills need a healthy, replicating VM with no other drill in progress",
        Operation::TestFailoverCleanup => "cleanup only ends a drill that test_failover started",
    }
}
