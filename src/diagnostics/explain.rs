//! The long explanation of every diagnostic code, for `runbook explain` and the rules of the
//! SARIF output: what the check looks at, and an example runbook with its fix. The one-line
//! summary and why it matters in a recovery live with the code in `codes.rs`. The match in
//! [`explanation`] is exhaustive: a new code does not compile without its text.
//!
//! The examples are checked by the test suite: each example produces its code, and its fix
//! produces neither that code nor any finding the example did not have.

use super::Code;

/// The estate a snippet is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estate {
    /// The demo estate: `sql-01`, `app-01`, `app-02`, `web-01` to `web-03`, plan `web-tier`.
    Demo,
    /// No inventory: VM names cannot be checked.
    Unknown,
    /// The inventory in this TOML text.
    Inventory(&'static str),
    /// Only a real run (`runbook run`) produces the code: the snippet is not a runbook to
    /// check but what to do.
    Run,
}

/// A runbook (or, for codes only a run produces, a command) and the estate it runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snippet {
    pub text: &'static str,
    pub estate: Estate,
}

/// What `runbook explain CODE` says beyond the code's summary and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// What the check looks at, in a few sentences.
    pub detects: &'static str,
    /// A runbook that has the problem.
    pub example: Snippet,
    /// The same runbook, fixed.
    pub fix: Snippet,
}

const fn demo(text: &'static str) -> Snippet {
    Snippet {
        text,
        estate: Estate::Demo,
    }
}

const fn run(text: &'static str) -> Snippet {
    Snippet {
        text,
        estate: Estate::Run,
    }
}

const fn with(estate: Estate, text: &'static str) -> Snippet {
    Snippet { text, estate }
}

/// An estate whose primary site has lost its connection to Site Recovery.
const OUTAGE: Estate = Estate::Inventory(
    r#"[sites.primary]
name = "vmm-hq"
connected = false

[[items]]
name = "app-01"
"#,
);

/// An estate in which app-01's planned failover fails.
const BIG_PLAN: Estate = Estate::Inventory(
    r#"[plans.everything]
groups = [["db"], ["app-1"], ["app-2"], ["app-3"], ["web-1"], ["web-2"], ["web-3"], ["edge"]]
[plans.back]
groups = [["db"], ["app-1", "app-2", "app-3"]]
[plans.front]
groups = [["web-1", "web-2", "web-3"], ["edge"]]
[[items]]
name = "db"
[[items]]
name = "app-1"
[[items]]
name = "app-2"
[[items]]
name = "app-3"
[[items]]
name = "web-1"
[[items]]
name = "web-2"
[[items]]
name = "web-3"
[[items]]
name = "edge"
"#,
);

const FAULTY: Estate = Estate::Inventory(
    r#"[[items]]
name = "app-01"
fail = ["planned_failover"]
fail_message = "The VM could not be started on the recovery host: not enough memory."
"#,
);

/// A full planned failover of web-01 that leaves it protected: the fix of many examples.
const PLANNED_FAILOVER: &str = r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#;

/// The explanation of `code`.
pub fn explanation(code: Code) -> Explanation {
    match code {
        Code::Syntax => Explanation {
            detects: "The runbook is parsed before anything else. A missing bracket, quote or \
                semicolon, or a misspelt keyword, stops the parse; the finding points at the \
                first place the parser could not make sense of.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" };   // the call's `)` is missing
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::UnknownFunction => Explanation {
            detects: "Every call is looked up among the script API, Rhai's standard functions, \
                the runbook's own functions and those of the modules it imports. A call of \
                anything else is reported with the closest known name.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failvoer(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::WrongArgCount => Explanation {
            detects: "Calls of the script API's functions are counted against the parameters \
                each accepts (`runbook api` lists them); optional parameters may be left out.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web), #{ timeout: "1h" });   // which kind of failover?
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::UnknownOption => Explanation {
            detects: "Option maps written in the call (`#{ kind: \"planned\" }`) are checked \
                key by key against the options the function takes; a key it does not know is \
                reported with the closest one.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", helthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::InvalidOption => Explanation {
            detects: "Each option's value is checked against its type: one of a fixed set of \
                words, true or false, a duration such as \"30m\", a string or a list of VMs. \
                Options that only apply with another one (`shutdown_source` with \
                `kind: \"unplanned\"`) are reported when used without it; required options \
                are reported when missing.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planed" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: 600 });   // a number, not a duration
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::UnknownVm => Explanation {
            detects: "Names given to `vm(...)` and the script API's functions, and recovery \
                plans named in `vms(#{ plan: ... })`, are looked up in the inventory \
                (`runbook.toml` names it, `--inventory` overrides it).",
            example: demo(
                r#"let web = vm("web-1");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::BadImport => Explanation {
            detects: "Imports are resolved before the runbook runs. A runbook may import the \
                embedded stdlib (`runbook/failover`, `runbook/failback`, `runbook/drill`) and \
                `.rhai` modules in its own folder or below it; absolute paths, paths leaving \
                the folder, unknown modules and import cycles are reported.",
            example: demo(
                r#"import "runbook/failovers" as failover;

failover::group([vm("web-01")], #{ kind: "planned" }, "1h");
failover::protect([vm("web-01")], "1h");
"#,
            ),
            fix: demo(
                r#"import "runbook/failover" as failover;

failover::group([vm("web-01")], #{ kind: "planned" }, "1h");
failover::protect([vm("web-01")], "1h");
"#,
            ),
        },
        Code::Forbidden => Explanation {
            detects: "`eval`, `Fn` with a computed name, `sleep` and `exit` are not available \
                to runbooks and are reported wherever they appear.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
sleep(600);   // ten minutes should do
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::EmptyRunbook => Explanation {
            detects: "A runbook that is empty, or holds only comments, is reported (as a \
                warning) so a placeholder does not pass review as a plan.",
            example: demo("// TODO: the failover of the web tier\n"),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::NamesNotChecked => Explanation {
            detects: "When no inventory is known (no `runbook.toml` naming one, no \
                `--inventory`), the dry run accepts every name as a healthy protected VM. This \
                note says so, since a misspelt name would go unnoticed. The fix is not in the \
                runbook: name the inventory in `runbook.toml` (`inventory = \
                \"inventory.toml\"`) or pass `--inventory FILE`; `runbook inventory export` \
                writes one from a target.",
            example: with(Estate::Unknown, PLANNED_FAILOVER),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::InvalidArgument => Explanation {
            detects: "Arguments of the script API's functions are checked for their type \
                when the call runs in the dry run: a VM (a `Vm` or a name), a job, a list of \
                jobs, a string, or an option map.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
wait_all(job, #{ timeout: "1h" });
"#,
            ),
            fix: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
wait_all([job], #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
        },
        Code::NotAllowed => Explanation {
            detects: "The dry run keeps each VM's replication state as Site Recovery does and \
                checks every operation against the operations that state allows: no commit \
                before a failover succeeded, no reverse replication before the commit, no \
                failover in a direction the VM is not replicating.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(commit(web), #{ timeout: "10m" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::ItemBusy => Explanation {
            detects: "Operations return their job at once. The dry run reports an operation \
                started on a VM while an earlier job on the same VM is still running.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
let drill = test_failover(web, #{ network: "drill-net" });
"#,
            ),
            fix: demo(
                r#"let web = vm("web-01");
wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
wait_job(cleanup_test_failover(web), #{ timeout: "1h" });
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
        },
        Code::CancelFailover => Explanation {
            detects: "A `cancel` of a failover job (planned or unplanned). Waiting for the job \
                and handling its failure is the way to react to a failover that goes wrong.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
if status(web).health != "Normal" {
    cancel(job);
}
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::WaitTooShort => Explanation {
            detects: "The dry run knows how long each job takes (the inventory's durations) \
                and reports a `wait_job` or `wait_all` whose timeout ends before the job does \
                (an error), or that leaves less than half the job's expected duration to \
                spare (a warning: the durations are estimates).",
            example: demo(
                r#"let sql = vm("sql-01");
wait_job(failover(sql, #{ kind: "planned" }), #{ timeout: "5m" });
verify(sql, #{ active_location: "recovery", healthy: true });
wait_job(commit(sql), #{ timeout: "10m" });
wait_job(reverse_replicate(sql), #{ timeout: "1h" });
"#,
            ),
            fix: demo(
                r#"let sql = vm("sql-01");
wait_job(failover(sql, #{ kind: "planned" }), #{ timeout: "1h" });
verify(sql, #{ active_location: "recovery", healthy: true });
wait_job(commit(sql), #{ timeout: "10m" });
wait_job(reverse_replicate(sql), #{ timeout: "1h" });
"#,
            ),
        },
        Code::JobNotWaited => Explanation {
            detects: "At the end of the dry run, every job the runbook started and never \
                passed to `wait_job` or `wait_all` is reported where it was started.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
cleanup_test_failover(web);
"#,
            ),
            fix: demo(
                r#"let web = vm("web-01");
wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
wait_job(cleanup_test_failover(web), #{ timeout: "1h" });
"#,
            ),
        },
        Code::LeftUnprotected => Explanation {
            detects: "At the end of the dry run, every VM the runbook touched should replicate \
                again. A failover or failback committed without the reverse replication that \
                follows it, or a failover never committed (its VM runs on the other site \
                without replication, and its recovery points are kept until a commit), is \
                reported at the VM's last operation. It is a warning: during an outage the \
                other site can be away for days, and re-replicating waits for it.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::DrillNotCleanedUp => Explanation {
            detects: "At the end of the dry run, every test failover must have been cleaned \
                up. The stdlib's `runbook/drill` cleans up whatever happens.",
            example: demo(
                r#"let web = vm("web-02");
wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
verify(web, #{ replicating: true });
"#,
            ),
            fix: demo(
                r#"import "runbook/drill" as drill;

drill::run(["web-02"], "drill-net", "1h");
"#,
            ),
        },
        Code::CommitWithoutVerify => Explanation {
            detects: "A commit of a VM is expected to follow a `verify` of that VM's \
                `active_location` on the site it failed over to, after the failover ended; a \
                verify of its health alone does not count.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::OperationLimit => Explanation {
            detects: "The runbook runs with a fixed budget of operations; a loop that never \
                ends exhausts it and is reported where it was running. A job's handle \
                changes only when the job is waited on, so a loop that polls it never ends.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
while job.state != "Succeeded" { }
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::UnknownProperty => Explanation {
            detects: "A property read on the map `status(vm)` returns, or on a `Job` or a \
                `Vm`, that it does not have: statically where the value comes straight from \
                the primitive (`status(v).stat`, or a variable only ever bound to one), and \
                at run time for a job. A missing key of a map reads as `()` in Rhai, so a \
                typo would quietly compare unequal.",
            example: demo(
                r#"let s = status(vm("web-01"));
if s.stat != "protected" {
    throw `web-01 is ${s.stat}: repair its replication first`;
}
"#,
            ),
            fix: demo(
                r#"let s = status(vm("web-01"));
if s.state != "protected" {
    throw `web-01 is ${s.state}: repair its replication first`;
}
"#,
            ),
        },
        Code::TimeLimit => Explanation {
            detects: "`runbook check` gives each file a wall-clock budget, its dry run and its \
                what-if scenarios together: 10 s, or `--time-limit`, or `[check] time_limit` \
                in runbook.toml. A dry run still going when it runs out stops where it was \
                running; what-if scenarios not yet run are counted as not run. A loop that \
                makes each step slower (a string or list that keeps growing) is the usual \
                cause: it may never reach the operation limit (RB109). A runbook so large \
                that Rhai cannot parse it in time (its parser slows with the square of the \
                variables declared) is reported at its first line, a module so large at its \
                import (RB007).",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });
let polls = "";
while job.state != "Succeeded" {
    polls += 1; // one more mark per poll: each step copies all the marks before it
}
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::ResourceLimit => Explanation {
            detects: "Call depth, expression depth, string, array and map sizes and the number \
                of modules are limited. Recursion without an end is the usual cause.",
            example: demo(
                r#"fn fail_over(vms) {
    fail_over(vms)
}
fail_over([vm("web-01")]);
"#,
            ),
            fix: demo(
                r#"fn fail_over(vms) {
    for web in vms {
        wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
        verify(web, #{ active_location: "recovery", healthy: true });
        wait_job(commit(web), #{ timeout: "10m" });
        wait_job(reverse_replicate(web), #{ timeout: "1h" });
    }
}
fail_over([vm("web-01")]);
"#,
            ),
        },
        Code::JobFailed => Explanation {
            detects: "A wait on a job that failed, was cancelled or timed out throws. When \
                nothing catches it, the dry run (or the run) stops there with the service's \
                error, its possible causes and the recommended action. The inventory can \
                inject failures (`fail = [\"planned_failover\"]`) to rehearse them.",
            example: with(
                FAULTY,
                r#"let app = vm("app-01");
wait_job(failover(app, #{ kind: "planned" }), #{ timeout: "1h" });
verify(app, #{ active_location: "recovery", healthy: true });
wait_job(commit(app), #{ timeout: "10m" });
wait_job(reverse_replicate(app), #{ timeout: "1h" });
"#,
            ),
            fix: with(
                FAULTY,
                r#"let app = vm("app-01");
try {
    wait_job(failover(app, #{ kind: "planned" }), #{ timeout: "1h" });
} catch (err) {
    note(`planned failover of app-01 failed, failing over unplanned: ${err}`);
    wait_job(failover(app, #{ kind: "unplanned", shutdown_source: true }), #{ timeout: "1h" });
}
verify(app, #{ active_location: "recovery", healthy: true });
wait_job(commit(app), #{ timeout: "10m" });
wait_job(reverse_replicate(app), #{ timeout: "1h" });
"#,
            ),
        },
        Code::VerifyFailed => Explanation {
            detects: "`verify` compares a VM's state (active site, health, replication) with \
                what the runbook expects and throws when they differ, with both values.",
            example: demo(
                r#"let web = vm("web-01");
let job = failover(web, #{ kind: "planned" });   // started, not finished
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(PLANNED_FAILOVER),
        },
        Code::ScriptError => Explanation {
            detects: "Any other error the runbook raises while it runs and nothing catches: \
                a `throw` of its own, an index out of range, a manual step nobody confirmed \
                in time.",
            example: demo(
                r#"let tier = vms(#{ plan: "web-tier" });
let last = tier[3];
note(`drill ${last}`);
"#,
            ),
            fix: demo(
                r#"let tier = vms(#{ plan: "web-tier" });
let last = tier[tier.len() - 1];
note(`drill ${last}`);
"#,
            ),
        },
        Code::Interrupted => Explanation {
            detects: "The operator pressed Ctrl-C, or answered `abort` at a manual step, \
                during `runbook run`. The run stops issuing operations; jobs in flight, a \
                failover above all, are never cancelled.",
            example: run(
                "runbook run runbooks/site-failover.rhai --target prod\n\
                 # Ctrl-C while the web tier fails over\n",
            ),
            fix: run(
                "runbook status --target prod\n\
                 # see which VMs failed over and which jobs still run, then carry on from there\n",
            ),
        },
        Code::Refused => Explanation {
            detects: "An operation the run will not do, whatever the runbook says: a manual \
                step with no operator to confirm it (standard input is not a terminal and \
                --auto-approve was not given).",
            example: run("runbook run runbooks/planned-failover.rhai < /dev/null\n"),
            fix: run(
                "runbook run runbooks/planned-failover.rhai                  # in a terminal, with an operator\n\
                 runbook run runbooks/planned-failover.rhai --auto-approve   # a rehearsal on the simulator\n",
            ),
        },
        Code::NoAnswer => Explanation {
            detects: "During `runbook run` against a target: the service could not be reached, \
                its answer was lost (a timeout, a dropped connection, 5xx answers that did not \
                stop), or the answer was one the client does not follow or believe: a \
                redirect (never followed, as it would carry the token or the request \
                elsewhere), a link to another host, a success that names no job. Reads are \
                retried first, and a wait keeps asking within its timeout. An operation \
                whose answer was lost is looked for by its request id, never sent again; the \
                message says whether it may have been issued.",
            example: run(
                "runbook run runbooks/site-failover.rhai --target prod\n\
                 # the endpoint answers 307 to another host, or stops answering\n",
            ),
            fix: run(
                "runbook status --target prod          # does the target answer now?\n\
                 runbook resume RUN                    # asks the service what became of each request\n",
            ),
        },
        Code::ServiceRefused => Explanation {
            detects: "During `runbook run` against a target: the service refused a request \
                with an ARM error (400, 403, 404, 409...). The finding shows the error's code \
                (e.g. `OperationNotAllowed`, `AuthorizationFailed`), its message and the \
                service's request id. Nothing was done for that call.",
            example: run(
                "runbook run runbooks/planned-failover.rhai --target prod\n\
                 # error[RB122]: the service refused the request with AuthorizationFailed: ...\n",
            ),
            fix: run(
                "runbook status --target prod\n\
                 # see the item's state and allowed operations; fix what the code names, then resume\n",
            ),
        },
        Code::CredentialsRejected => Explanation {
            detects: "During `runbook run` (or `status`) against a target: the token endpoint \
                refused the client credentials (e.g. `invalid_client` for a wrong \
                AZURE_CLIENT_SECRET), the managed identity or the Azure CLI gave no token, or \
                the service answered 401 to the token. The run stops (exit code 2, like \
                missing credentials): nothing can be read or issued without a token. \
                Neither the secret nor any token is ever shown.",
            example: run(
                "AZURE_CLIENT_SECRET=expired-secret runbook run runbooks/planned-failover.rhai --target prod\n",
            ),
            fix: run(
                "export AZURE_CLIENT_SECRET=...        # a valid secret for AZURE_CLIENT_ID\n\
                 runbook status --target prod          # the credentials work\n\
                 runbook resume RUN\n",
            ),
        },
        Code::JobWarning => Explanation {
            detects: "A job that succeeded with warnings. The usual one: an unplanned failover \
                asked to shut the source VM down first (`shutdown_source: true`) could not \
                reach it, and failed over to the latest recovery point without the last \
                changes. In an outage the reverse replication has to wait for the primary \
                site, so both examples also leave the VM unprotected.",
            example: with(
                OUTAGE,
                r#"let app = vm("app-01");
wait_job(failover(app, #{ kind: "unplanned", shutdown_source: true }), #{ timeout: "1h" });
verify(app, #{ active_location: "recovery", healthy: true });
wait_job(commit(app), #{ timeout: "10m" });
"#,
            ),
            fix: with(
                OUTAGE,
                r#"let app = vm("app-01");
manual_step("Accept the data loss", #{
    instructions: "The primary site is down: changes not yet replicated from app-01 are lost."
});
wait_job(failover(app, #{ kind: "unplanned" }), #{ timeout: "1h" });
verify(app, #{ active_location: "recovery", healthy: true });
wait_job(commit(app), #{ timeout: "10m" });
"#,
            ),
        },
        Code::UnhandledFailure => Explanation {
            detects: "Reported by `runbook check --what-if` only. After the check, the dry run \
                is repeated once for each operation the runbook starts, with that operation's \
                job failing, and once with the primary site unreachable. A scenario is not \
                handled when an error a primitive raised (the failed wait, a refused \
                operation, a failed verification) reaches the top of the runbook uncaught. \
                A runbook's own `throw` counts as handled, also when it rethrows a caught \
                error after leaving its VMs safe, as the stdlib's functions do (so no finding \
                points inside the stdlib). The finding points at the operation that failed; \
                scenarios that fail the same way at the same line make one finding.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
verify(web, #{ replicating: true, healthy: true });
wait_job(cleanup_test_failover(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(
                r#"import "runbook/drill" as drill;

// Cleans up whatever failed (a failed cleanup is tried once more), then reports the failure.
drill::run(["web-01"], "drill-net", "1h");
"#,
            ),
        },
        Code::AvoidableDataLoss => Explanation {
            detects: "An unplanned failover without `shutdown_source: true`, while the dry \
                run's source site is connected. An unplanned failover is for an outage: it may \
                lose the changes not yet replicated. While the source answers, a planned \
                failover shuts it down and loses nothing.",
            example: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "unplanned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
            fix: demo(
                r#"let web = vm("web-01");
wait_job(failover(web, #{ kind: "unplanned", shutdown_source: true }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "10m" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
"#,
            ),
        },
        Code::PlanTooLarge => Explanation {
            detects: "An operation on a server-side recovery plan (`failover_plan`, \
                `commit_plan`, `reverse_replicate_plan`, `test_failover_plan`, \
                `cleanup_test_failover_plan`) whose plan, as the inventory or the service \
                shows it, has more than 100 protected items or more than 7 groups. The \
                operation is refused before anything is sent.",
            example: with(
                BIG_PLAN,
                r#"wait_job(test_failover_plan("everything", #{ network: "drill-net" }), #{ timeout: "4h" });
wait_job(cleanup_test_failover_plan("everything"), #{ timeout: "4h" });
"#,
            ),
            fix: with(
                BIG_PLAN,
                r#"// Two plans within ASR's limits, one after the other (the front end after its back end).
for plan in ["back", "front"] {
    wait_job(test_failover_plan(plan, #{ network: "drill-net" }), #{ timeout: "4h" });
    wait_job(cleanup_test_failover_plan(plan), #{ timeout: "4h" });
}
"#,
            ),
        },
        Code::PlanMemberTwice => Explanation {
            detects: "A `failover` of a VM while the runbook's failover of a recovery plan \
                that holds it has not been seen to end, or a `failover_plan` while a failover \
                of one of its members has not. The second failover is refused before it is sent.",
            example: demo(
                r#"let plan = failover_plan("web-tier", #{ kind: "planned" });
let web = failover(vm("web-01"), #{ kind: "planned" });
wait_all([plan, web], #{ timeout: "4h" });
"#,
            ),
            fix: demo(
                r#"// The plan fails web-01 over with the other VMs of the web tier.
wait_job(failover_plan("web-tier", #{ kind: "planned" }), #{ timeout: "4h" });
for name in ["web-01", "web-02", "web-03"] {
    verify(name, #{ active_location: "recovery", healthy: true });
}
wait_job(commit_plan("web-tier"), #{ timeout: "1h" });
wait_job(reverse_replicate_plan("web-tier"), #{ timeout: "4h" });
"#,
            ),
        },
        Code::PlanCommitEarly => Explanation {
            detects: "A `commit_plan` while the runbook's failover of that plan has not been \
                seen to end: its job was never waited for, or is still running. The commit \
                is refused before it is sent.",
            example: demo(
                r#"let job = failover_plan("web-tier", #{ kind: "planned" });
wait_job(commit_plan("web-tier"), #{ timeout: "1h" });
wait_job(job, #{ timeout: "4h" });
"#,
            ),
            fix: demo(
                r#"wait_job(failover_plan("web-tier", #{ kind: "planned" }), #{ timeout: "4h" });
for name in ["web-01", "web-02", "web-03"] {
    verify(name, #{ active_location: "recovery", healthy: true });
}
wait_job(commit_plan("web-tier"), #{ timeout: "1h" });
wait_job(reverse_replicate_plan("web-tier"), #{ timeout: "4h" });
"#,
            ),
        },
        Code::BadParam => Explanation {
            detects: "`param(name, #{ ... })` calls are read from the runbook without running \
                it, so `runbook params` lists them and `--set` is checked before anything runs. \
                The name and the option map must be literals; `type` one of string, int, bool, \
                duration, vms; the default and the choices of that type, the default one of \
                the choices. A parameter with no value when the run reaches it is reported too.",
            example: demo(
                r#"let site = param("down_site", #{ choices: ["primary", "recovery"], "default": "secondary" });
note(`recovering ${site}`);
"#,
            ),
            fix: demo(
                r#"let site = param("down_site", #{ choices: ["primary", "recovery"], "default": "primary" });
note(`recovering ${site}`);
"#,
            ),
        },
        Code::ParamStandIn => Explanation {
            detects: "A parameter without a default, whose value `check` was not given with \
                `--set`: the dry run went on with a stand-in value (its first choice, `<name>` \
                for a string, 0, false, 1m, or no VMs).",
            example: demo(
                r#"let ticket = param("ticket", #{ help: "the change ticket" });
note(`change ${ticket}`);
"#,
            ),
            fix: demo(
                r#"let ticket = param("ticket", #{ help: "the change ticket", "default": "none" });
note(`change ${ticket}`);
"#,
            ),
        },
        Code::UnknownAction => Explanation {
            detects: "Every `action(name, ...)` the dry run reaches is looked up among the \
                `[actions.NAME]` of the runbook.toml found from the runbook's folder up; an \
                unknown name is reported with the closest declared one. `check` never runs an \
                action.",
            example: with(
                Estate::Unknown,
                r#"action("switch-dns", #{ to: "recovery" });
"#,
            ),
            fix: with(
                Estate::Unknown,
                r#"note("declare [actions.switch-dns] in runbook.toml, then call action(\"switch-dns\", #{ to: \"recovery\" })");
"#,
            ),
        },
        Code::ActionFailed => Explanation {
            detects: "During `runbook run`: an action's command exited with a non-zero code, \
                was killed at its timeout or could not start, or its webhook answered an \
                error, a redirect (never followed) or nothing. The error is catchable at the \
                runbook line; its message holds the end of the action's output.",
            example: run(
                "runbook run runbooks/site-failover.rhai --target prod\n\
                 # [actions.switch-dns] command exits 1\n",
            ),
            fix: run(
                "try { action(\"switch-dns\", #{ to: \"recovery\" }); } catch (e) { manual_step(\"switch DNS by hand\"); }\n",
            ),
        },
        Code::UnknownChannel => Explanation {
            detects: "Every `notify(channel, text)` the dry run reaches is looked up among the \
                `[notify.NAME]` channels of the runbook.toml found from the runbook's folder \
                up; an unknown name is reported with the closest declared one. `check` sends \
                nothing.",
            example: with(
                Estate::Unknown,
                r#"notify("ops", "failing over the web tier");
"#,
            ),
            fix: with(
                Estate::Unknown,
                r#"note("failing over the web tier (declare [notify.ops] in runbook.toml to tell the ops channel)");
"#,
            ),
        },
        Code::FailureLeavesUnsafe => Explanation {
            detects: "Reported by `runbook check --what-if` only (see RB117 for the \
                scenarios). The runbook handles the failure, by completing or by throwing an \
                error of its own, but once every job has ended a VM is left failed over and \
                never committed, without replication, or with a drill never cleaned up. \
                Catching a failure and only noting it is the usual cause.",
            example: demo(
                r#"let web = vm("web-01");
try {
    wait_job(test_failover(web, #{ network: "drill-net" }), #{ timeout: "1h" });
    verify(web, #{ replicating: true, healthy: true });
    wait_job(cleanup_test_failover(web), #{ timeout: "1h" });
} catch (err) {
    note(`the drill failed: ${err.message}`);
}
"#,
            ),
            fix: demo(
                r#"import "runbook/drill" as drill;

// Cleans up whatever failed (a failed cleanup is tried once more), then reports the failure.
drill::run(["web-01"], "drill-net", "1h");
"#,
            ),
        },
    }
}

/// A severity as the explanation prints it.
fn severity(code: Code) -> String {
    code.severity().to_string()
}

/// The heading of a snippet: its title and, unless it is the demo estate both snippets
/// share, what it is checked against.
fn heading(title: &str, snippet: Snippet, other: Snippet) -> String {
    match snippet.estate {
        Estate::Demo if other.estate == Estate::Demo => title.to_string(),
        Estate::Demo => format!("{title} (checked against the demo estate)"),
        Estate::Unknown => format!("{title} (checked without an inventory)"),
        Estate::Inventory(_) => format!("{title} (checked against the inventory above)"),
        Estate::Run => format!("{title} (in a run)"),
    }
}

/// The inventory the explanation's snippets are checked against, if not the demo estate.
fn inventory(e: &Explanation) -> Option<&'static str> {
    [e.example.estate, e.fix.estate]
        .into_iter()
        .find_map(|estate| match estate {
            Estate::Inventory(toml) => Some(toml),
            _ => None,
        })
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `runbook explain CODE`: the code, what it detects, why it matters, an example and its fix.
pub fn text(code: Code) -> String {
    let e = explanation(code);
    let mut out = format!(
        "{} {} ({}): {}\n\n",
        code.as_str(),
        code.slug(),
        severity(code),
        code.summary()
    );
    out.push_str(&format!(
        "What it detects\n\n{}\n\n",
        indent(&wrap(e.detects))
    ));
    out.push_str(&format!(
        "Why it matters in a recovery\n\n{}\n\n",
        indent(&wrap(code.why()))
    ));
    if let Some(toml) = inventory(&e) {
        out.push_str(&format!("Inventory\n\n{}\n\n", indent(toml)));
    }
    for (title, snippet, other) in [("Example", e.example, e.fix), ("Fix", e.fix, e.example)] {
        out.push_str(&format!(
            "{}\n\n{}\n\n",
            heading(title, snippet, other),
            indent(snippet.text)
        ));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The explanation in markdown, for the rules of the SARIF output (code scanning shows it).
pub fn markdown(code: Code) -> String {
    let e = explanation(code);
    let fence = |s: Snippet| {
        let lang = if s.estate == Estate::Run {
            "sh"
        } else {
            "rhai"
        };
        format!("```{lang}\n{}```", s.text)
    };
    format!(
        "**{}** ({}): {}\n\n{}\n\n**Why it matters in a recovery.** {}\n\n**Example**\n\n{}\n\n**Fix**\n\n{}\n",
        code.as_str(),
        code.slug(),
        code.summary(),
        e.detects,
        code.why(),
        fence(e.example),
        fence(e.fix)
    )
}

/// `runbook explain` alone: every code with its slug, severity and summary.
pub fn list() -> String {
    let width = Code::ALL.iter().map(|c| c.slug().len()).max().unwrap_or(0);
    let mut codes = Code::ALL.to_vec();
    codes.sort_by_key(|c| c.as_str());
    let mut out = String::new();
    for code in &codes {
        out.push_str(&format!(
            "{}  {:width$}  {:7}  {}\n",
            code.as_str(),
            code.slug(),
            severity(*code),
            code.summary()
        ));
    }
    out.push_str("\n`runbook explain CODE` (e.g. RB101 or not-allowed) explains one.\n");
    out
}

/// Wraps prose at 92 columns (it is indented by four).
fn wrap(text: &str) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 92 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_text_with_an_example_and_a_fix() {
        for code in Code::ALL {
            let e = explanation(*code);
            assert!(
                e.detects.len() > 40,
                "{}: say what it detects",
                code.as_str()
            );
            assert_ne!(
                e.example,
                e.fix,
                "{}: the fix changes something",
                code.as_str()
            );
            if let (Estate::Inventory(a), Estate::Inventory(b)) = (e.example.estate, e.fix.estate) {
                assert_eq!(
                    a,
                    b,
                    "{}: one inventory for the example and its fix",
                    code.as_str()
                );
            }
            assert_eq!(
                e.example.estate == Estate::Run,
                e.fix.estate == Estate::Run,
                "{}: a run-only example has a run-only fix",
                code.as_str()
            );
            let text = text(*code);
            assert!(text.starts_with(&format!("{} {}", code.as_str(), code.slug())));
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                words(&text).contains(&words(code.why())),
                "{}",
                code.as_str()
            );
            assert!(
                words(&text).contains(&words(e.detects)),
                "{}",
                code.as_str()
            );
            assert!(markdown(*code).contains("```"));
        }
    }

    #[test]
    fn the_list_names_every_code_once() {
        let list = list();
        for code in Code::ALL {
            let lines = list.lines().filter(|l| l.starts_with(code.as_str()));
            assert_eq!(lines.count(), 1, "{}", code.as_str());
        }
    }

    #[test]
    fn prose_wraps_between_words() {
        let long = "word ".repeat(40);
        let wrapped = wrap(&long);
        assert!(wrapped.lines().count() > 1);
        assert!(wrapped.lines().all(|l| l.len() <= 92));
        assert_eq!(wrapped.split_whitespace().count(), 40);
    }
}
