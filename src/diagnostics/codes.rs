//! The stable diagnostic codes, with their default severity and the text that explains them.
//! Codes never change meaning once released; new problems get new codes.

use super::Severity;

macro_rules! codes {
    ($( $variant:ident = $code:literal, $slug:literal, $sev:ident, $summary:literal, $why:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        impl serde::Serialize for Code {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as printed: `RB101`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// A short kebab-case name: `not-allowed`.
            pub fn slug(self) -> &'static str {
                match self { $( Code::$variant => $slug, )* }
            }

            /// The severity findings of this code have unless the finding says otherwise.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// What the code detects, in one line.
            pub fn summary(self) -> &'static str {
                match self { $( Code::$variant => $summary, )* }
            }

            /// Why it matters during a recovery.
            pub fn why(self) -> &'static str {
                match self { $( Code::$variant => $why, )* }
            }

            /// Looks a code up by its printed form or its slug, in any case.
            pub fn parse(text: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(text) || c.slug().eq_ignore_ascii_case(text))
            }
        }
    };
}

codes! {
    Syntax = "RB001", "syntax", Error,
        "the runbook does not parse",
        "A runbook that does not parse cannot run at all; find out in review, not during the outage.";
    UnknownFunction = "RB002", "unknown-function", Error,
        "a call to a function that does not exist",
        "Rhai only notices unknown functions when the call runs, which may be hours into a recovery.";
    WrongArgCount = "RB003", "wrong-argument-count", Error,
        "a call with the wrong number of arguments",
        "The call would fail when it is reached, leaving the plan half done.";
    UnknownOption = "RB004", "unknown-option", Error,
        "an option key the function does not know",
        "A misspelt option is not ignored: it would stop the run at that call.";
    InvalidOption = "RB005", "invalid-option", Error,
        "an option with a wrong type or value",
        "The call would be refused when reached; options decide what the service does (e.g. planned or unplanned).";
    UnknownVm = "RB006", "unknown-vm", Error,
        "a VM name that is not in the inventory",
        "A wrong name fails the run at that call; the VMs before it are already failed over.";
    BadImport = "RB007", "bad-import", Error,
        "an import that cannot be resolved or escapes the runbook's folder",
        "Runbooks may only import the embedded stdlib and modules beside them, so a review sees all the code that runs.";
    Forbidden = "RB008", "forbidden", Error,
        "a construct runbooks may not use (eval, Fn by name, sleep, exit)",
        "Dynamic calls hide what a runbook does from the checks; sleep and exit bypass the run's control of time and outcome.";
    EmptyRunbook = "RB009", "empty-runbook", Warning,
        "the runbook contains no statements",
        "An empty plan does nothing during an outage.";
    NamesNotChecked = "RB010", "names-not-checked", Note,
        "no inventory is known, so VM names were not checked",
        "Without an inventory every name is accepted; name an inventory in runbook.toml to catch typos.";
    InvalidArgument = "RB011", "invalid-argument", Error,
        "an argument of the wrong type (e.g. a number where a VM is expected)",
        "The call would fail when it is reached.";
    NotAllowed = "RB101", "not-allowed", Error,
        "an operation that is not allowed in the item's state at that point",
        "The service refuses it: e.g. commit before the failover succeeded, or reverse replication before commit.";
    ItemBusy = "RB102", "item-busy", Error,
        "an operation on an item while another operation on it is still running (ASR error 532)",
        "Site Recovery runs one operation per item at a time; wait for the job first.";
    CancelFailover = "RB103", "cancel-failover", Error,
        "cancelling a failover job",
        "Replication is stopped before a failover starts; a cancelled failover leaves the VM without replication.";
    WaitTooShort = "RB104", "wait-too-short", Error,
        "a wait whose timeout is shorter than the job takes (an error), or shorter than 1.5 times its expected duration (a warning)",
        "The wait throws while the job goes on, and the plan continues or stops on a wrong premise; expected durations are estimates, so a wait needs a margin.";
    JobNotWaited = "RB105", "job-not-waited", Warning,
        "a job that is never waited for",
        "Its failure would go unnoticed, and the next operation on the item would find it busy.";
    LeftUnprotected = "RB106", "left-unprotected", Warning,
        "an item left without replication at the end of the runbook, or failed over and never committed",
        "A VM that does not replicate has no disaster recovery: the next outage loses it. Re-replicating is optional in an outage (the other site may be away for days), so this is a warning; --deny-warnings makes it fail CI.";
    DrillNotCleanedUp = "RB107", "drill-not-cleaned-up", Error,
        "a test failover (drill) without its cleanup",
        "Until cleanup the item allows no other operation, including a real failover.";
    CommitWithoutVerify = "RB108", "commit-without-verify", Warning,
        "a commit not preceded by a verify of the VM on the target site",
        "Commit deletes every other recovery point: once committed there is no going back to an earlier one.";
    OperationLimit = "RB109", "operation-limit", Error,
        "the runbook exceeded the operation limit (a runaway loop)",
        "A loop that never ends holds the recovery hostage.";
    ResourceLimit = "RB110", "resource-limit", Error,
        "the runbook exceeded a size or depth limit (recursion, huge string, array or map)",
        "Unbounded recursion or data exhausts the runner in the middle of a recovery.";
    JobFailed = "RB111", "job-failed", Error,
        "a job failed, was cancelled or timed out",
        "The service could not do the operation; its error says why and what to do.";
    VerifyFailed = "RB112", "verify-failed", Error,
        "a verification found the VM in another state than expected",
        "Going on after a failed verification commits or reverses on a wrong premise.";
    ScriptError = "RB113", "script-error", Error,
        "the runbook raised an error while running",
        "An error nobody catches stops the plan at that line.";
    Interrupted = "RB114", "interrupted", Error,
        "the run was interrupted by the operator",
        "No new operation was issued after the interrupt; jobs in flight go on in the service.";
    JobWarning = "RB116", "job-warning", Warning,
        "a job that succeeded with warnings (e.g. the source VM could not be shut down first)",
        "An unplanned failover whose source shutdown failed went ahead without the changes not yet replicated: data may be lost.";
    Refused = "RB115", "refused", Error,
        "an operation refused for safety",
        "Some operations are never safe in a recovery (for example cancelling a failover).";
    UnhandledFailure = "RB117", "unhandled-failure", Warning,
        "what-if: when this operation fails (or the primary site is unreachable), the runbook stops on the error without handling it",
        "Operations fail during real outages; a runbook that stops on the first failure leaves the operator to improvise, often with VMs half failed over.";
    FailureLeavesUnsafe = "RB118", "failure-leaves-unsafe", Warning,
        "what-if: when this operation fails, the runbook ends but leaves a VM failed over and not committed, without replication, or in an uncleaned drill",
        "The run looks finished while a VM has no disaster recovery or blocks the next failover.";
    TimeLimit = "RB119", "time-limit", Error,
        "checking the runbook took longer than its time limit (10 s unless configured)",
        "A runbook that computes that long before its operations stalls the recovery too; and a check that never ends blocks every pull request.";
    UnknownProperty = "RB120", "unknown-property", Error,
        "a property a `status()` map, a `Job` or a `Vm` does not have (a typo such as `s.stat`)",
        "A misspelt key of a status map reads as nothing, so the runbook decides on a wrong premise; a misspelt property of a job stops the run at that line.";
    NoAnswer = "RB121", "no-answer", Error,
        "no usable answer from the service: it could not be reached, its answer was lost, or the answer was not followed or believed (a redirect, an undocumented answer)",
        "Nothing is known of what the service did with the request: the run does not guess, and a resume asks the service again.";
    ServiceRefused = "RB122", "service-refused", Error,
        "the service refused a request with an error (its ARM error code, message and request id)",
        "The service did not do what the runbook asked; its error code says why, and the request id is what Azure support asks for.";
    CredentialsRejected = "RB123", "credentials-rejected", Error,
        "the credentials were rejected, or no token could be had for them",
        "Without a valid token nothing can be read or issued: the run stops until the credentials are fixed.";
    AvoidableDataLoss = "RB124", "avoidable-data-loss", Warning,
        "an unplanned failover without `shutdown_source` while the source site is connected",
        "An unplanned failover may lose the changes not replicated yet; while the source site answers, a planned failover (or shutting the source down first) loses nothing.";
    PlanTooLarge = "RB125", "plan-too-large", Error,
        "a recovery plan with more than 100 items or more than 7 groups",
        "ASR holds at most 100 protected items and 7 groups in a recovery plan: the service refuses such a plan, so the runbook cannot rely on it.";
    PlanMemberTwice = "RB126", "plan-member-twice", Error,
        "a VM failed over on its own while a failover of its recovery plan runs (or the plan while the VM's own failover runs)",
        "A VM runs one operation at a time: the second failover is refused or fails its member, and the plan's boot order no longer holds.";
    PlanCommitEarly = "RB127", "plan-commit-early", Error,
        "a commit of a recovery plan before its failover job ended",
        "A commit deletes every other recovery point of the plan's VMs: before the failover job ended, its VMs are neither failed over nor verified, and the service refuses the commit.";
    BadParam = "RB130", "bad-param", Error,
        "a parameter declaration that cannot be read before the run, or a parameter without a value",
        "Parameters are checked and set before anything runs: one whose name or options are not literals, whose type is unknown or whose default is not one of its choices cannot be listed, validated or recorded.";
    ParamStandIn = "RB131", "param-stand-in", Note,
        "a required parameter that `check` dry-ran with a stand-in value",
        "A parameter without a default needs `--set` at run time; the dry run used a stand-in, so what depends on its value was checked with that one only.";
    UnknownAction = "RB132", "unknown-action", Error,
        "a call of an action that runbook.toml does not declare",
        "Actions (switching DNS, a load balancer) are declared in runbook.toml, never written in the script: a name it does not declare would stop the recovery at that step.";
    ActionFailed = "RB133", "action-failed", Error,
        "an action failed: its command exited non-zero or timed out, or its webhook answered an error",
        "The step around the VMs did not happen (DNS still points at the site that is down); the runbook can catch the error and fall back, or the run stops there with the action's output.";
    UnknownChannel = "RB134", "unknown-channel", Error,
        "a notification to a channel that runbook.toml does not declare",
        "Stakeholders would not hear what the runbook meant to tell them, and the run would stop at that line.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            assert_eq!(Code::parse(code.slug()), Some(*code));
            assert_eq!(Code::parse(&code.as_str().to_lowercase()), Some(*code));
            assert_eq!(Code::parse(&code.slug().to_uppercase()), Some(*code));
            assert!(!code.summary().is_empty() && !code.why().is_empty());
        }
    }
}
