//! `runbook plan`: the dry run of `check` shown as a plan a reviewer can read: every
//! operation in order with its simulated start and end, its parallel lane, the state of its
//! VM before and after, the manual steps and notes where they fall in time, and the
//! estimated recovery time. The same engine, simulator and virtual clock as `check`, so the
//! plan is exactly what `check` validated.
//!
//! **Estimated recovery time.** A VM is *recovered* at the first successful `verify` of it
//! while it is active on the site it ends the runbook on, and not before its last failover
//! ended. The estimate runs from the start of the first operation until the last VM the
//! runbook fails over is recovered (when it fails none over, as in a drill or a reverse
//! replication, the last VM it operates on). When one of these VMs is never verified so, the
//! estimate runs until the last job ends instead, and says so (see [`Basis`]).

pub mod compare;
pub mod record;
pub mod render;
pub mod revision;

use crate::backend::inventory::Inventory;
use crate::backend::sim::Simulator;
use crate::backend::{Operation, Site};
use crate::check::{check_with, Report, Session, Watch};
use crate::clock::{Timestamp, VirtualClock};
use crate::diagnostics::{Finding, Location, Severity, Sources};
use crate::error::Error;
use crate::script::observer::Observer;
use record::{Log, Recorder, VmState};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One operation of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its place in the order the runbook issues operations, from 1 (the number
    /// `check --what-if` uses for the scenario in which it fails).
    pub number: usize,
    pub operation: Operation,
    pub vm: String,
    /// The parallel lane it runs in, from 1: operations that overlap in time are in
    /// different lanes; a VM keeps its lane while that lane is free.
    pub lane: usize,
    /// Offsets from T+0.
    pub start: Duration,
    pub end: Duration,
    /// The job's final state (`Succeeded` in a plan of a clean runbook), or `Skipped` when
    /// the VM was already where the call would take it and nothing is issued.
    pub result: String,
    /// The VM's state when the operation started and when it ended.
    pub before: Option<VmState>,
    pub after: Option<VmState>,
    /// The runbook's line that led to the operation (the outermost call).
    pub location: Location,
    /// Where the primitive was called, when that is elsewhere (inside a function or module).
    pub called_at: Option<Location>,
}

impl Step {
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// A manual step or a note at its moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub at: Duration,
    pub text: String,
    /// A manual step's instructions and how long it waits for the operator.
    pub detail: Option<String>,
}

/// A VM the plan operates on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPlan {
    pub name: String,
    pub before: Option<VmState>,
    pub after: Option<VmState>,
    pub operations: usize,
    /// Whether a failover of it succeeded in the plan.
    pub failed_over: bool,
    /// When it counts as recovered (offset from T+0); `None` if never verified so.
    pub recovered: Option<Duration>,
}

/// What the estimated recovery time is measured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Until the last VM is verified on the site it ends on.
    Verified,
    /// Some VM is never verified on the site it ends on: until the last job ends.
    LastJobEnd,
    /// The runbook starts no operation.
    NoOperations,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Verified => "verified",
            Basis::LastJobEnd => "last_job_end",
            Basis::NoOperations => "no_operations",
        }
    }
}

/// The estimated recovery time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub basis: Basis,
    /// Offsets from T+0: the first operation's start and the moment the estimate ends.
    pub from: Duration,
    pub until: Duration,
    /// The VM recovered last (basis `Verified`).
    pub last_vm: Option<String>,
    /// The site the last VM was verified on (basis `Verified`).
    pub site: Option<Site>,
    /// VMs never verified on the site they end on (basis `LastJobEnd`).
    pub unverified: Vec<String>,
}

impl Recovery {
    pub fn time(&self) -> Duration {
        self.until.saturating_sub(self.from)
    }
}

/// A runbook's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub runbook: String,
    /// The inventory's origin (its file), `None` when no inventory is known.
    pub inventory: Option<String>,
    /// T+0: when the dry run starts (the inventory's `start`).
    pub start: Timestamp,
    pub recovery: Recovery,
    /// How many lanes the operations need: the most operations running at once.
    pub lanes: usize,
    pub operations: Vec<Step>,
    pub manual_steps: Vec<Moment>,
    pub notes: Vec<Moment>,
    pub vms: Vec<VmPlan>,
    /// Findings of the check that are not errors (warnings and notes), and the sources
    /// they point into.
    pub findings: Vec<Finding>,
    pub sources: Sources,
    /// The parameters the runbook declared, each with the value the plan used.
    pub params: Vec<(crate::script::params::Declared, String)>,
}

/// A plan, or the check's report when the runbook has errors and there is no plan to show.
#[derive(Debug)]
pub enum Outcome {
    Planned(Box<Plan>),
    Rejected(Report),
}

/// Plans a runbook file with `inventory`. I/O problems are errors; problems in the runbook
/// make the outcome `Rejected`.
pub fn plan_file(path: &Path, inventory: Option<&Inventory>) -> Result<Outcome, Error> {
    let text = crate::config::read_text(path)?;
    let name = crate::paths::display(path);
    let root = crate::paths::folder_of(path);
    Ok(plan_text(&name, &text, Some(&root), inventory))
}

/// [`plan_file`] with the parameters' values `sets` gives (`--set`).
pub fn plan_file_params(
    path: &Path,
    inventory: Option<&Inventory>,
    sets: &[(String, String)],
) -> Result<Outcome, Error> {
    let text = crate::config::read_text(path)?;
    let name = crate::paths::display(path);
    let root = crate::paths::folder_of(path);
    Ok(plan_text_params(&name, &text, Some(&root), inventory, sets))
}

/// Plans runbook `text` named `name`, with imports resolved in `root`.
pub fn plan_text(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
) -> Outcome {
    plan_text_params(name, text, root, inventory, &[])
}

/// [`plan_text`] with the parameters' values `sets` gives (the others' defaults, or for a
/// required one a stand-in, RB131).
pub fn plan_text_params(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    sets: &[(String, String)],
) -> Outcome {
    let recorder: RefCell<Option<Rc<Recorder>>> = RefCell::new(None);
    let observe = |sim: &Arc<Simulator>, clock: &Arc<VirtualClock>| -> Rc<dyn Observer> {
        let r = Rc::new(Recorder::new(sim, clock));
        *recorder.borrow_mut() = Some(r.clone());
        r
    };
    let watch = Watch {
        traced: true,
        observer: Some(&observe),
        sets,
        ..Watch::default()
    };
    let (report, session) = check_with(name, text, root, inventory, &watch);
    if report.count(Severity::Error) > 0 {
        return Outcome::Rejected(report);
    }
    let origin = inventory.map(|i| i.origin.clone());
    let plan = match (session, recorder.take()) {
        (Some(session), Some(recorder)) => build(name, origin, &session, &recorder, report),
        // An empty runbook: nothing ran.
        _ => Plan {
            runbook: name.to_string(),
            inventory: origin,
            start: inventory.map_or_else(|| Inventory::empty().start, |i| i.start),
            recovery: recovery(&[], &[]),
            lanes: 0,
            operations: Vec::new(),
            manual_steps: Vec::new(),
            notes: Vec::new(),
            vms: Vec::new(),
            params: Vec::new(),
            findings: report.findings,
            sources: report.sources,
        },
    };
    Outcome::Planned(Box::new(plan))
}

/// The plan of a completed dry run.
fn build(
    name: &str,
    inventory: Option<String>,
    session: &Session,
    recorder: &Recorder,
    report: Report,
) -> Plan {
    let t0 = recorder.start();
    let log = recorder.take();
    let finals: BTreeMap<String, VmState> = session
        .host
        .touched()
        .into_iter()
        .filter_map(|vm| session.host.item(&vm).map(|i| (vm, VmState::of(&i))))
        .collect();
    let mut operations = steps(session, &log, t0, &finals);
    let lanes = assign_lanes(&mut operations);
    let vms = vm_plans(&operations, &log, t0, &finals);
    let recovery = recovery(&operations, &vms);
    let offset = |at: Timestamp| at.since(t0);
    Plan {
        params: session.host.params_used(),
        runbook: name.to_string(),
        inventory,
        start: t0,
        recovery,
        lanes,
        operations,
        manual_steps: log
            .manual_steps
            .iter()
            .map(|e| Moment {
                at: offset(e.at),
                text: e.what.title.clone(),
                detail: Some(match &e.what.instructions {
                    Some(i) => format!("{i} (waits up to {})", crate::clock::human(e.what.timeout)),
                    None => format!("waits up to {}", crate::clock::human(e.what.timeout)),
                }),
            })
            .collect(),
        notes: log
            .notes
            .iter()
            .map(|e| Moment {
                at: offset(e.at),
                text: e.what.clone(),
                detail: None,
            })
            .collect(),
        vms,
        findings: report.findings,
        sources: report.sources,
    }
}

/// Every job of the dry run as a step, in the order the runbook issued them; the state after
/// an operation is the state before the VM's next one, or its final state.
fn steps(
    session: &Session,
    log: &Log,
    t0: Timestamp,
    finals: &BTreeMap<String, VmState>,
) -> Vec<Step> {
    // The run finished: every job ended, and the host's records say when.
    let jobs = session.host.jobs();
    let mut steps: Vec<Step> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, rec)| {
            let info = rec.info;
            let end = info.ended.or(info.expected_end).unwrap_or(info.started);
            let location = rec.site.runbook_location().clone();
            let called_at = (rec.site.location != location).then(|| rec.site.location.clone());
            Step {
                number: i + 1,
                operation: info.operation,
                vm: info.vm,
                lane: 0,
                start: info.started.since(t0),
                end: end.since(t0),
                result: if info.skipped.is_some() {
                    "Skipped".to_string()
                } else {
                    info.state.to_string()
                },
                before: log.before.get(&info.id).copied(),
                after: None,
                location,
                called_at,
            }
        })
        .collect();
    let mut next_of: HashMap<&str, usize> = HashMap::new();
    let mut after = vec![None; steps.len()];
    for (i, step) in steps.iter().enumerate().rev() {
        after[i] = match next_of.get(step.vm.as_str()) {
            Some(&next) => steps[next].before,
            None => finals.get(&step.vm).copied(),
        };
        next_of.insert(&step.vm, i);
    }
    for (step, after) in steps.iter_mut().zip(after) {
        step.after = after;
    }
    steps
}

/// Gives each step a lane (see [`lanes`]). Returns the number of lanes.
fn assign_lanes(steps: &mut [Step]) -> usize {
    let (assigned, count) = lanes(steps.iter().map(|s| (s.vm.as_str(), s.start, s.end)));
    for (step, lane) in steps.iter_mut().zip(assigned) {
        step.lane = lane;
    }
    count
}

/// Lanes for spans `(vm, start, end)` given in start order: the lane the VM used last if it
/// is free at the span's start, else the first free lane, else a new one. Returns each
/// span's lane (from 1) and the number of lanes. The plan and the run report share it.
pub(crate) fn lanes<'a>(
    spans: impl IntoIterator<Item = (&'a str, Duration, Duration)>,
) -> (Vec<usize>, usize) {
    let mut free_at: Vec<Duration> = Vec::new();
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut assigned = Vec::new();
    for (vm, start, end) in spans {
        let sticky = last.get(vm).copied().filter(|&l| free_at[l] <= start);
        let lane = sticky
            .or_else(|| free_at.iter().position(|&f| f <= start))
            .unwrap_or_else(|| {
                free_at.push(Duration::ZERO);
                free_at.len() - 1
            });
        free_at[lane] = end.max(start);
        last.insert(vm, lane);
        assigned.push(lane + 1);
    }
    (assigned, free_at.len())
}

/// Each VM the plan operates on, in name order, with when it counts as recovered.
fn vm_plans(
    steps: &[Step],
    log: &Log,
    t0: Timestamp,
    finals: &BTreeMap<String, VmState>,
) -> Vec<VmPlan> {
    let mut by_vm: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for step in steps {
        by_vm.entry(&step.vm).or_default().push(step);
    }
    let mut verified: HashMap<&str, Vec<(Duration, Site)>> = HashMap::new();
    for e in &log.verifications {
        verified
            .entry(&e.what.vm)
            .or_default()
            .push((e.at.since(t0), e.what.site));
    }
    by_vm
        .into_iter()
        .map(|(vm, own)| {
            let after = finals.get(vm).copied();
            let last_failover = own
                .iter()
                .filter(|s| s.operation.is_failover() && s.result == "Succeeded")
                .map(|s| s.end)
                .max();
            let since = last_failover.unwrap_or(Duration::ZERO);
            let recovered = after.and_then(|target| {
                verified
                    .get(vm)?
                    .iter()
                    .find(|(at, site)| *site == target.active_location && *at >= since)
                    .map(|(at, _)| *at)
            });
            VmPlan {
                name: vm.to_string(),
                before: own.first().and_then(|s| s.before),
                after,
                operations: own.len(),
                failed_over: last_failover.is_some(),
                recovered,
            }
        })
        .collect()
}

/// The estimated recovery time of `steps` (see the module's documentation).
fn recovery(steps: &[Step], vms: &[VmPlan]) -> Recovery {
    let Some(from) = steps.iter().map(|s| s.start).min() else {
        return Recovery {
            basis: Basis::NoOperations,
            from: Duration::ZERO,
            until: Duration::ZERO,
            last_vm: None,
            site: None,
            unverified: Vec::new(),
        };
    };
    // The VMs the runbook fails over, or every VM when it fails none over.
    let counted: Vec<&VmPlan> = if vms.iter().any(|v| v.failed_over) {
        vms.iter().filter(|v| v.failed_over).collect()
    } else {
        vms.iter().collect()
    };
    let unverified: Vec<String> = counted
        .iter()
        .filter(|v| v.recovered.is_none())
        .map(|v| v.name.clone())
        .collect();
    if !unverified.is_empty() {
        return Recovery {
            basis: Basis::LastJobEnd,
            from,
            until: steps.iter().map(|s| s.end).max().unwrap_or(from),
            last_vm: None,
            site: None,
            unverified,
        };
    }
    // The last VM recovered; of several at the same moment, the last by name.
    let last = counted
        .into_iter()
        .filter_map(|v| v.recovered.map(|at| (at, v)))
        .fold(None::<(Duration, &VmPlan)>, |best, (at, v)| match best {
            Some((b, _)) if b > at => best,
            _ => Some((at, v)),
        });
    Recovery {
        basis: Basis::Verified,
        from,
        until: last.map_or(from, |(at, _)| at.max(from)),
        last_vm: last.map(|(_, v)| v.name.clone()),
        site: last.and_then(|(_, v)| v.after.map(|a| a.active_location)),
        unverified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(vm: &str, start: u64, end: u64) -> Step {
        Step {
            number: 0,
            operation: Operation::PlannedFailover,
            vm: vm.into(),
            lane: 0,
            start: Duration::from_secs(start),
            end: Duration::from_secs(end),
            result: "Succeeded".into(),
            before: None,
            after: None,
            location: Location::new("x.rhai", 1, 1, 1),
            called_at: None,
        }
    }

    #[test]
    fn lanes_hold_overlapping_steps_apart_and_keep_a_vm_in_its_lane() {
        let mut steps = vec![
            step("a", 0, 10),
            step("b", 0, 5),
            step("c", 5, 8),
            step("b", 10, 12),
            step("a", 10, 20),
        ];
        assert_eq!(assign_lanes(&mut steps), 2);
        let lanes: Vec<usize> = steps.iter().map(|s| s.lane).collect();
        // c takes b's free lane; at 10 a's lane is free again and a keeps it, b takes the other.
        assert_eq!(lanes, [1, 2, 2, 2, 1]);
    }

    #[test]
    fn recovery_runs_to_the_last_verification_or_falls_back_to_the_last_job() {
        let steps = vec![step("a", 0, 600), step("b", 0, 480), step("a", 600, 646)];
        let vm = |name: &str, failed_over: bool, recovered: Option<u64>| VmPlan {
            name: name.into(),
            before: None,
            after: None,
            operations: 1,
            failed_over,
            recovered: recovered.map(Duration::from_secs),
        };
        let verified = recovery(
            &steps,
            &[vm("a", true, Some(600)), vm("b", true, Some(480))],
        );
        assert_eq!(verified.basis, Basis::Verified);
        assert_eq!(verified.time(), Duration::from_secs(600));
        assert_eq!(verified.last_vm.as_deref(), Some("a"));
        let partly = recovery(&steps, &[vm("a", true, Some(600)), vm("b", true, None)]);
        assert_eq!(partly.basis, Basis::LastJobEnd);
        assert_eq!(partly.time(), Duration::from_secs(646));
        assert_eq!(partly.unverified, ["b"]);
        // A VM that is only reprotected does not count when others fail over.
        let reprotected = recovery(
            &steps,
            &[vm("a", true, Some(600)), vm("c", false, Some(900))],
        );
        assert_eq!(reprotected.time(), Duration::from_secs(600));
        // Without failovers every VM counts.
        let drill = recovery(
            &steps,
            &[vm("a", false, Some(420)), vm("c", false, Some(900))],
        );
        assert_eq!(drill.time(), Duration::from_secs(900));
        assert_eq!(recovery(&[], &[]).basis, Basis::NoOperations);
    }
}
