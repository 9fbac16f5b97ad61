//! `runbook check --what-if`: after the check, the dry run is repeated once for each
//! operation the runbook starts, with that operation's job failing (the n-th operation in
//! the order of the clean dry run), and once with the primary site unreachable (planned
//! failovers and source shutdowns fail, so does reverse replication). Each scenario says
//! whether the runbook handles the failure and in which state it leaves the VMs.
//!
//! A scenario is **handled** when the runbook completes, or stops with an error it raised
//! itself (`throw`, including rethrowing a failure it caught after cleaning up). It is not
//! handled when an error raised by a primitive (a failed wait, a refused operation, a failed
//! verification) reaches the top of the runbook uncaught, or the run is stopped by a limit.
//! A VM is left **unsafe** when, after every job has ended, it is failed over but not
//! committed, does not replicate (committed without reverse replication, or unprotected), or
//! has a drill waiting for cleanup. A scenario that is not handled is reported as RB117 at
//! the operation that failed; a handled one that leaves a VM unsafe as RB118.

use super::{check_with, Report, Session, Setup, Variant, Watch, TIME_LIMIT};
use crate::backend::inventory::Inventory;
use crate::backend::{JobState, Operation};
use crate::diagnostics::{sort_and_dedup, Code, Finding, Location, Severity};
use crate::error::Error;
use crate::script::host::CallSite;
use crate::script::limits::TimeLimit;
use rhai::EvalAltResult;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// The codes only `check --what-if` reports.
pub const CODES: [Code; 2] = [Code::UnhandledFailure, Code::FailureLeavesUnsafe];

/// The stack of the threads that run scenarios: as deep as the main thread's.
const STACK: usize = 8 << 20;

/// What makes a scenario differ from the clean dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The job of the `number`-th operation fails.
    Operation {
        number: usize,
        operation: Operation,
        vm: String,
        site: CallSite,
    },
    /// The primary site's server is not connected.
    PrimaryUnreachable,
}

/// How a scenario's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// The runbook threw an error of its own (or rethrew one it had caught).
    StoppedByRunbook(Finding),
    /// An error a primitive raised reached the top uncaught, or a limit stopped the run.
    Unhandled(Finding),
}

/// Why a VM is left unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NotCommitted,
    NotReplicating,
    DrillNotCleanedUp,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::NotCommitted => "failed over but never committed",
            Problem::NotReplicating => "without replication",
            Problem::DrillNotCleanedUp => "drill never cleaned up",
        }
    }
}

/// A VM left unsafe at the end of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    pub vm: String,
    /// The VM's state in the script's words (`status(vm).state`).
    pub state: &'static str,
    pub problem: Problem,
}

/// The first operation that failed in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub number: usize,
    pub operation: Operation,
    pub vm: String,
    pub site: CallSite,
}

/// One what-if scenario and what happened in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub trigger: Trigger,
    pub ending: Ending,
    pub unsafe_vms: Vec<Unsafe>,
    /// The first job that failed in the scenario, if any.
    pub failed: Option<Failed>,
}

impl Scenario {
    /// Whether the check's time limit stopped the scenario before it ended.
    fn out_of_time(&self) -> bool {
        matches!(&self.ending, Ending::Unhandled(f) if f.code == Code::TimeLimit)
    }

    pub fn handled(&self) -> bool {
        !matches!(self.ending, Ending::Unhandled(_))
    }

    /// Handled, and every VM safe.
    pub fn passes(&self) -> bool {
        self.handled() && self.unsafe_vms.is_empty()
    }

    /// Where the scenario's finding points: the failing operation, else the first operation
    /// that failed, else where the run stopped.
    fn site(&self) -> Option<CallSite> {
        match (&self.trigger, &self.failed, &self.ending) {
            (Trigger::Operation { site, .. }, _, _) => Some(site.clone()),
            (_, Some(f), _) => Some(f.site.clone()),
            (_, None, Ending::Unhandled(f) | Ending::StoppedByRunbook(f)) => {
                f.location.clone().map(|location| CallSite {
                    location,
                    chain: f.chain.clone(),
                })
            }
            _ => None,
        }
    }

    /// The runbook line the scenario is about, for the one-line summary.
    fn line(&self) -> Option<usize> {
        self.site().map(|s| s.runbook_location().line)
    }
}

/// Every scenario of one runbook.
#[derive(Debug, Clone, Default)]
pub struct WhatIf {
    pub scenarios: Vec<Scenario>,
    /// Scenarios that did not run (or did not end) because the check's time limit passed.
    pub not_run: usize,
}

/// Checks a runbook file and runs its what-if scenarios (none when the check has errors).
pub fn check_file(
    path: &Path,
    inventory: Option<&Inventory>,
) -> Result<(Report, Option<WhatIf>), Error> {
    check_file_within(path, inventory, TimeLimit::from_now(TIME_LIMIT))
}

/// [`check_file`] within `limit`, for the check and its scenarios together.
pub fn check_file_within(
    path: &Path,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
) -> Result<(Report, Option<WhatIf>), Error> {
    let (name, text, root) = super::read_runbook(path)?;
    Ok(check_text_within(
        &name,
        &text,
        Some(&root),
        inventory,
        limit,
    ))
}

/// Checks runbook `text` and runs its what-if scenarios; their findings join the report's.
pub fn check_text(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
) -> (Report, Option<WhatIf>) {
    check_text_within(name, text, root, inventory, TimeLimit::from_now(TIME_LIMIT))
}

/// [`check_text`] within `limit`: once it passes, the scenarios not yet run are counted in
/// [`WhatIf::not_run`] and the check reports RB119.
pub fn check_text_within(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
) -> (Report, Option<WhatIf>) {
    check_text_params(name, text, root, inventory, limit, &[])
}

/// [`check_file_within`] with the parameters' values `sets` gives (`--set`).
pub fn check_file_params(
    path: &Path,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
    sets: &[(String, String)],
) -> Result<(Report, Option<WhatIf>), Error> {
    let (name, text, root) = super::read_runbook(path)?;
    Ok(check_text_params(
        &name,
        &text,
        Some(&root),
        inventory,
        limit,
        sets,
    ))
}

/// [`check_text_within`] with the parameters' values `sets` gives: the check dry-runs the
/// combinations of the others' choices, the scenarios run with the defaults and `sets`.
pub fn check_text_params(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
    sets: &[(String, String)],
) -> (Report, Option<WhatIf>) {
    let watch = Watch {
        traced: true,
        observer: None,
        limit: Some(limit),
        sets,
        combinations: true,
    };
    let (mut report, session) = check_with(name, text, root, inventory, &watch);
    let Some(session) = session.filter(|_| report.count(Severity::Error) == 0) else {
        return (report, None);
    };
    let values = session.host.params();
    let actions = crate::actions::Actions::of_folder(root);
    let baseline: Vec<Trigger> = session
        .host
        .jobs()
        .into_iter()
        .enumerate()
        .map(|(i, r)| Trigger::Operation {
            number: i + 1,
            operation: r.info.operation,
            vm: r.info.vm,
            site: r.site,
        })
        .chain([Trigger::PrimaryUnreachable])
        .collect();
    drop(session);
    let setup = Setup {
        name,
        root,
        inventory,
        call_stack: false,
        limit,
        params: &values,
        actions: &actions,
    };
    let total = baseline.len();
    let first_site = baseline.iter().find_map(|t| match t {
        Trigger::Operation { site, .. } => Some(site.clone()),
        Trigger::PrimaryUnreachable => None,
    });
    let (scenarios, stopped): (Vec<Scenario>, Vec<Scenario>) = run_all(&setup, text, baseline)
        .into_iter()
        .partition(|s| !s.out_of_time());
    let whatif = WhatIf {
        not_run: total - scenarios.len(),
        scenarios,
    };
    report.findings.extend(findings(&whatif));
    if whatif.not_run > 0 {
        report
            .findings
            .push(out_of_time(name, &whatif, &stopped, first_site, limit));
    }
    sort_and_dedup(&mut report.findings);
    (report, Some(whatif))
}

/// Runs the scenarios of `triggers`, on two threads when there are enough of them to pay
/// for a second engine. Results keep the order of `triggers`.
fn run_all(setup: &Setup, text: &str, triggers: Vec<Trigger>) -> Vec<Scenario> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    if threads < 2 || triggers.len() < 8 {
        return run_some(setup, text, triggers);
    }
    // Interleaved, so both threads get early (long) and late (short) scenarios.
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    for (i, t) in triggers.into_iter().enumerate() {
        if i % 2 == 0 { &mut even } else { &mut odd }.push(t);
    }
    let (a, b) = std::thread::scope(|scope| {
        let theirs = odd.clone();
        let other = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(scope, || run_some(setup, text, theirs));
        let mine = run_some(setup, text, even);
        let theirs = match other {
            // A panic there is a bug: it goes on here, as it would have on one thread.
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            // No second thread to be had: this one does the rest.
            Err(_) => run_some(setup, text, odd),
        };
        (mine, theirs)
    });
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Runs scenarios one after the other on this thread, compiling the runbook once, until
/// the check's time limit passes.
fn run_some(setup: &Setup, text: &str, triggers: Vec<Trigger>) -> Vec<Scenario> {
    let compiler = Session::new(setup, &Variant::default(), None);
    let Ok(mut ast) = compiler.engine.compile(text) else {
        return Vec::new();
    };
    ast.set_source(setup.name);
    triggers
        .into_iter()
        .take_while(|_| !setup.limit.passed())
        .map(|trigger| run_one(setup, &ast, trigger))
        .collect()
}

/// Runs one scenario to its end and looks at what it left behind.
fn run_one(setup: &Setup, ast: &rhai::AST, trigger: Trigger) -> Scenario {
    let (variant, setup) = match &trigger {
        Trigger::Operation { number, .. } => (
            Variant {
                failing_job: Some(*number as u64),
                ..Variant::default()
            },
            *setup,
        ),
        // Traced: the finding points at the operation that fails, which no clean run names.
        Trigger::PrimaryUnreachable => (
            Variant {
                primary_unreachable: true,
                ..Variant::default()
            },
            Setup {
                call_stack: true,
                ..*setup
            },
        ),
    };
    let session = Session::new(&setup, &variant, None);
    let ending = match session.engine.run_ast(ast) {
        Ok(()) => Ending::Completed,
        Err(e) => ending(&e, &session),
    };
    // Let every job the service still runs end, as the real one would.
    session.host.finish();
    let failed = session
        .host
        .jobs()
        .into_iter()
        .enumerate()
        .find(|(_, r)| r.info.state == JobState::Failed)
        .map(|(i, r)| Failed {
            number: i + 1,
            operation: r.info.operation,
            vm: r.info.vm,
            site: r.site,
        });
    Scenario {
        trigger,
        ending,
        unsafe_vms: unsafe_vms(&session),
        failed,
    }
}

/// Whether the error that ended a run is the runbook's own or one it did not handle.
fn ending(err: &EvalAltResult, session: &Session) -> Ending {
    let finding = session.host.runtime_finding(err, &session.resolver);
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
    }
    let EvalAltResult::ErrorRuntime(value, pos) = inner else {
        return Ending::Unhandled(finding);
    };
    match session.host.raised_finding(value) {
        // Raised by a primitive at this very call, and never caught on its way up.
        Some(raised)
            if raised.location.as_ref().is_some_and(|l| {
                Some(l.line) == pos.line() && Some(l.column) == pos.position()
            }) =>
        {
            Ending::Unhandled(finding)
        }
        _ => Ending::StoppedByRunbook(finding),
    }
}

/// The VMs the run operated on that it leaves unsafe, in name order.
fn unsafe_vms(session: &Session) -> Vec<Unsafe> {
    session
        .host
        .touched()
        .into_iter()
        .filter_map(|vm| {
            let item = session.host.item(&vm)?;
            let state = item.steady_state();
            let problem = match state {
                "failover_commit_pending" => Problem::NotCommitted,
                "failover_committed" | "unprotected" => Problem::NotReplicating,
                "drill_in_progress" => Problem::DrillNotCleanedUp,
                _ => return None,
            };
            Some(Unsafe { vm, state, problem })
        })
        .collect()
}

// ---- findings ------------------------------------------------------------------------

/// What to do about a failure of `op`.
fn help(op: Operation) -> &'static str {
    match op {
        Operation::PlannedFailover | Operation::UnplannedFailover => {
            "catch the failure (try/catch around the wait) and decide what happens next: a VM whose failover failed stays where it was and still replicates, while VMs that did fail over still need verification and commit"
        }
        Operation::Commit => {
            "catch the failure and commit again: until a commit succeeds the VM runs on the target site without replication"
        }
        Operation::ReverseReplicate => {
            "catch the failure and start reverse replication again (or hand over with a manual step): until it succeeds the VM has no disaster recovery"
        }
        Operation::TestFailover => {
            "clean up every drill that started, whatever fails (the stdlib's runbook/drill does)"
        }
        Operation::TestFailoverCleanup => {
            "catch the failure and run the cleanup again: until it succeeds the VM allows no other operation, not even a failover"
        }
    }
}

fn unsafe_list(vms: &[Unsafe]) -> String {
    let parts: Vec<String> = vms
        .iter()
        .map(|u| format!("`{}` {}", u.vm, u.problem.describe()))
        .collect();
    parts.join(", ")
}

/// The finding of a scenario that does not pass.
fn finding(s: &Scenario) -> Option<Finding> {
    if s.passes() {
        return None;
    }
    let code = if s.handled() {
        Code::FailureLeavesUnsafe
    } else {
        Code::UnhandledFailure
    };
    let (what, op, label) = match (&s.trigger, &s.failed) {
        (
            Trigger::Operation {
                number,
                operation,
                vm,
                ..
            },
            _,
        ) => (
            format!("if the {operation} of `{vm}` fails"),
            Some(*operation),
            format!("what-if: operation {number} fails here"),
        ),
        (Trigger::PrimaryUnreachable, Some(f)) => (
            format!(
                "with the primary site unreachable, the {} of `{}` fails",
                f.operation, f.vm
            ),
            Some(f.operation),
            "what-if: fails with the primary site unreachable".to_string(),
        ),
        (Trigger::PrimaryUnreachable, None) => (
            "with the primary site unreachable".to_string(),
            None,
            "what-if: stops here with the primary site unreachable".to_string(),
        ),
    };
    let message = if s.handled() {
        format!("{what}: the runbook leaves {}", unsafe_list(&s.unsafe_vms))
    } else {
        format!("{what}: the runbook does not handle it")
    };
    let mut f = Finding::new(code, message).label(label);
    if let Ending::Unhandled(stop) = &s.ending {
        let at = stop
            .location
            .as_ref()
            .map_or(String::new(), |l| format!(" at {l}"));
        f = f.note(format!("the run stops{at}: {}", stop.message));
    }
    if !s.handled() && !s.unsafe_vms.is_empty() {
        f = f.note(format!("it leaves {}", unsafe_list(&s.unsafe_vms)));
    }
    f = f.help(op.map_or(
        "check preflight(...) before the first operation and stop cleanly when a site is down",
        help,
    ));
    let site = s.site();
    Some(
        f.at(site.as_ref().map(|c| c.location.clone()))
            .chain(site.map(|c| c.chain).unwrap_or_default()),
    )
}

/// RB119 for scenarios the time limit left out: where the one it stopped was running, else
/// at the first operation (else the runbook's start).
fn out_of_time(
    name: &str,
    whatif: &WhatIf,
    stopped: &[Scenario],
    first_site: Option<CallSite>,
    limit: TimeLimit,
) -> Finding {
    let ran = whatif.scenarios.len();
    let total = ran + whatif.not_run;
    let message = format!(
        "the what-if scenarios took longer than the check's time limit of {}: {ran} of {total} ran",
        crate::clock::human(limit.allowed)
    );
    let (location, chain) = match stopped.first().and_then(|s| match &s.ending {
        Ending::Unhandled(f) => f.location.clone().map(|l| (l, f.chain.clone())),
        _ => None,
    }) {
        Some(place) => place,
        None => match first_site {
            Some(site) => (site.location, site.chain),
            None => (Location::new(name, 1, 1, 0), Vec::new()),
        },
    };
    Finding::new(Code::TimeLimit, message)
        .label("a scenario was still running here")
        .help("each scenario runs the runbook again: a loop that runs long when an operation fails is the usual cause; a large runbook can have more time with `check --time-limit 60s` or `[check] time_limit` in runbook.toml")
        .at(Some(location))
        .chain(chain)
}

/// The findings of every scenario that does not pass; scenarios that fail the same way at the
/// same place (a loop over VMs) make one finding that names the others.
fn findings(whatif: &WhatIf) -> Vec<Finding> {
    let mut out: Vec<(Finding, Vec<String>)> = Vec::new();
    for s in &whatif.scenarios {
        let Some(f) = finding(s) else {
            continue;
        };
        let subject = match &s.trigger {
            Trigger::Operation { operation, vm, .. } => format!("the {operation} of `{vm}`"),
            Trigger::PrimaryUnreachable => "the primary site unreachable".into(),
        };
        match out
            .iter_mut()
            .find(|(g, _)| g.code == f.code && g.location == f.location && g.chain == f.chain)
        {
            Some((_, others)) => others.push(subject),
            None => out.push((f, Vec::new())),
        }
    }
    out.into_iter()
        .map(|(f, others)| {
            if others.is_empty() {
                return f;
            }
            const SHOWN: usize = 5;
            let more = others.len().saturating_sub(SHOWN);
            let mut list = others
                .into_iter()
                .take(SHOWN)
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                let _ = write!(list, " and {more} more");
            }
            f.note(format!("the same happens here with {list}"))
        })
        .collect()
}

// ---- output --------------------------------------------------------------------------

fn label(s: &Scenario) -> String {
    match &s.trigger {
        Trigger::Operation {
            number,
            operation,
            vm,
            ..
        } => format!("#{number} {operation} {vm}"),
        Trigger::PrimaryUnreachable => "primary site unreachable".to_string(),
    }
}

/// One line per scenario: the operation, its runbook line, whether it is handled and the
/// VMs it leaves unsafe.
pub fn summary(whatif: &WhatIf) -> String {
    let passed = whatif.scenarios.iter().filter(|s| s.passes()).count();
    let count = whatif.scenarios.len();
    let mut out = format!(
        "what-if: {count} scenario{} ({} with one operation failing, 1 with the primary site unreachable), {passed} pass\n",
        if count == 1 { "" } else { "s" },
        count.saturating_sub(1)
    );
    if whatif.not_run > 0 {
        let _ = writeln!(
            out,
            "  {} not run: the check's time limit passed (RB119)",
            whatif.not_run
        );
    }
    let width = whatif
        .scenarios
        .iter()
        .map(|s| label(s).chars().count())
        .max()
        .unwrap_or(0);
    for s in &whatif.scenarios {
        let line = s.line().map_or("-".to_string(), |l| l.to_string());
        let left = if s.unsafe_vms.is_empty() {
            "none".to_string()
        } else {
            s.unsafe_vms
                .iter()
                .map(|u| format!("{} {}", u.vm, u.problem.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  {:<width$}  line {line:<4}  handled: {:<3}  unsafe: {left}",
            label(s),
            if s.handled() { "yes" } else { "no" },
        );
    }
    out
}

fn location_json(l: Option<&Location>) -> Value {
    l.map_or(Value::Null, |l| Value::String(l.to_string()))
}

/// The scenarios as JSON (see docs/plan.md).
pub fn json(whatif: &WhatIf) -> Value {
    let scenarios: Vec<Value> = whatif
        .scenarios
        .iter()
        .map(|s| {
            let (kind, number, operation, vm) = match &s.trigger {
                Trigger::Operation {
                    number,
                    operation,
                    vm,
                    ..
                } => (
                    "operation_fails",
                    Some(*number),
                    Some(operation.as_str()),
                    Some(vm.as_str()),
                ),
                Trigger::PrimaryUnreachable => ("primary_unreachable", None, None, None),
            };
            let (ending, stop) = match &s.ending {
                Ending::Completed => ("completed", None),
                Ending::StoppedByRunbook(f) => ("stopped_by_runbook", Some(f)),
                Ending::Unhandled(f) => ("unhandled_error", Some(f)),
            };
            let site = s.site();
            json!({
                "scenario": kind,
                "number": number,
                "operation": operation,
                "vm": vm,
                "location": location_json(site.as_ref().map(|c| &c.location)),
                "line": s.line(),
                "handled": s.handled(),
                "passes": s.passes(),
                "ending": ending,
                "error": stop.map(|f| json!({
                    "code": f.code,
                    "message": f.message,
                    "location": location_json(f.location.as_ref()),
                })),
                "first_failed": s.failed.as_ref().map(|f| json!({
                    "number": f.number,
                    "operation": f.operation.as_str(),
                    "vm": f.vm,
                })),
                "unsafe": s.unsafe_vms.iter().map(|u| json!({
                    "vm": u.vm,
                    "state": u.state,
                    "problem": u.problem.describe(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "scenarios": scenarios,
        "passed": whatif.scenarios.iter().filter(|s| s.passes()).count(),
        "failed": whatif.scenarios.iter().filter(|s| !s.passes()).count(),
        "not_run": whatif.not_run,
    })
}
