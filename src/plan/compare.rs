//! `runbook plan --compare OLD NEW`: what a change to a runbook does to its plan. Operations
//! are matched by VM, kind and occurrence (the second commit of `web-01` in OLD is the second
//! commit of `web-01` in NEW). Unmatched ones were added or removed. Matched ones are
//! *reordered* when their order relative to the others changed: as many as possible are kept
//! in order, an operation that starts at the same time in both plans counting double, so
//! that what moved is what is called reordered (operations that start together count as
//! unordered). The others *moved in time* when their start or duration changed.

use super::record::VmState;
use super::render::{offset, recovery_sentence, span};
use super::{Plan, Step};
use crate::backend::Operation;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

/// The version of the JSON structure.
pub const JSON_FORMAT: &str = "runbook-plan-compare/1";

/// An operation's identity across two plans.
type Key = (String, Operation, usize);

/// A matched operation in both plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub old: Step,
    pub new: Step,
}

/// A VM whose state at the end of the plan changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmChange {
    pub name: String,
    pub old: Option<VmState>,
    pub new: Option<VmState>,
}

/// The difference between two plans.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub old: Plan,
    pub new: Plan,
    pub added: Vec<Step>,
    pub removed: Vec<Step>,
    pub reordered: Vec<Pair>,
    pub moved: Vec<Pair>,
    pub vms: Vec<VmChange>,
}

impl Comparison {
    /// NEW's estimated recovery time minus OLD's, in seconds.
    pub fn delta(&self) -> i64 {
        self.new.recovery.time().as_secs() as i64 - self.old.recovery.time().as_secs() as i64
    }

    /// Whether the operations are the same, in the same order, at the same times.
    pub fn same_operations(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.reordered.is_empty()
            && self.moved.is_empty()
    }
}

/// Each step with its key: VM, operation and how many of the same came before.
fn keyed(plan: &Plan) -> Vec<(Key, &Step)> {
    let mut seen: HashMap<(&str, Operation), usize> = HashMap::new();
    plan.operations
        .iter()
        .map(|s| {
            let n = seen.entry((&s.vm, s.operation)).or_default();
            *n += 1;
            ((s.vm.clone(), s.operation, *n), s)
        })
        .collect()
}

/// Compares two plans.
pub fn compare(old: Plan, new: Plan) -> Comparison {
    let old_keyed = keyed(&old);
    let new_keyed = keyed(&new);
    let new_by_key: HashMap<&Key, &Step> = new_keyed.iter().map(|(k, s)| (k, *s)).collect();
    let old_keys: HashSet<&Key> = old_keyed.iter().map(|(k, _)| k).collect();
    let removed: Vec<Step> = old_keyed
        .iter()
        .filter(|(k, _)| !new_by_key.contains_key(k))
        .map(|(_, s)| (*s).clone())
        .collect();
    let added: Vec<Step> = new_keyed
        .iter()
        .filter(|(k, _)| !old_keys.contains(k))
        .map(|(_, s)| (*s).clone())
        .collect();
    let pairs: Vec<(Key, Pair)> = old_keyed
        .iter()
        .filter_map(|(k, s)| {
            new_by_key.get(k).map(|n| {
                (
                    k.clone(),
                    Pair {
                        old: (*s).clone(),
                        new: (*n).clone(),
                    },
                )
            })
        })
        .collect();
    let kept = in_order(&pairs);
    let mut reordered = Vec::new();
    let mut moved = Vec::new();
    for (k, pair) in pairs {
        if !kept.contains(&k) {
            reordered.push(pair);
        } else if pair.old.start != pair.new.start || pair.old.duration() != pair.new.duration() {
            moved.push(pair);
        }
    }
    reordered.sort_by_key(|p| p.new.number);
    let vms = vm_changes(&old, &new);
    Comparison {
        old,
        new,
        added,
        removed,
        reordered,
        moved,
        vms,
    }
}

/// The matched operations whose relative order is kept: the heaviest common subsequence of
/// the two orders, where an operation that starts at the same time in both plans weighs
/// more, so that what moved is what is called reordered. Each order is by start time,
/// operations that start together sorted by key, so issuing a parallel batch in another
/// order is no reordering.
fn in_order(pairs: &[(Key, Pair)]) -> HashSet<Key> {
    let weight: HashMap<&Key, u32> = pairs
        .iter()
        .map(|(k, p)| (k, if p.old.start == p.new.start { 2 } else { 1 }))
        .collect();
    let order = |start: fn(&Pair) -> Duration| {
        let mut keys: Vec<(Duration, &Key)> = pairs.iter().map(|(k, p)| (start(p), k)).collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect::<Vec<&Key>>()
    };
    let (a, b) = (order(|p| p.old.start), order(|p| p.new.start));
    // What the two orders share at their start and end is kept as it is; the table below
    // covers only the part in between.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut kept: HashSet<Key> = a[..head]
        .iter()
        .chain(&a[a.len() - tail..])
        .map(|k| (*k).clone())
        .collect();
    let (a, b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let (n, m) = (a.len(), b.len());
    // best[i][j]: the weight of the heaviest common subsequence of a[i..] and b[j..].
    let mut best = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            best[i][j] = if a[i] == b[j] {
                best[i + 1][j + 1] + weight[a[i]]
            } else {
                best[i + 1][j].max(best[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            kept.insert(a[i].clone());
            i += 1;
            j += 1;
        } else if best[i + 1][j] >= best[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    kept
}

/// VMs whose final state differs between the plans (including VMs only one of them touches).
fn vm_changes(old: &Plan, new: &Plan) -> Vec<VmChange> {
    let mut all: BTreeMap<&str, (Option<VmState>, Option<VmState>)> = BTreeMap::new();
    for v in &old.vms {
        all.entry(&v.name).or_default().0 = v.after;
    }
    for v in &new.vms {
        all.entry(&v.name).or_default().1 = v.after;
    }
    all.into_iter()
        .filter(|(_, (o, n))| o != n)
        .map(|(name, (old, new))| VmChange {
            name: name.to_string(),
            old,
            new,
        })
        .collect()
}

// ---- rendering -----------------------------------------------------------------------

/// `+7m 40s`, `-12s`, `±0s`.
pub fn signed(seconds: i64) -> String {
    let d = span(Duration::from_secs(seconds.unsigned_abs()));
    match seconds.signum() {
        1 => format!("+{d}"),
        -1 => format!("-{d}"),
        _ => "±0s".to_string(),
    }
}

fn state(s: Option<VmState>) -> String {
    s.map_or_else(|| "not touched".to_string(), |s| s.to_string())
}

fn step_line(s: &Step) -> String {
    format!(
        "#{} {} {} at {} for {} (line {})",
        s.number,
        s.operation,
        s.vm,
        offset(s.start),
        span(s.duration()),
        s.location.line
    )
}

fn pair_line(p: &Pair) -> String {
    let shift = p.new.start.as_secs() as i64 - p.old.start.as_secs() as i64;
    let took = if p.old.duration() != p.new.duration() {
        format!(
            ", takes {} instead of {}",
            span(p.new.duration()),
            span(p.old.duration())
        )
    } else {
        String::new()
    };
    format!(
        "{} {}: #{} at {} -> #{} at {} ({}{took})",
        p.new.operation,
        p.new.vm,
        p.old.number,
        offset(p.old.start),
        p.new.number,
        offset(p.new.start),
        signed(shift)
    )
}

fn headline(c: &Comparison) -> String {
    format!(
        "Estimated recovery time: {} -> {} ({})",
        span(c.old.recovery.time()),
        span(c.new.recovery.time()),
        signed(c.delta())
    )
}

fn counts(c: &Comparison) -> String {
    format!(
        "Operations: {} -> {}: {} added, {} removed, {} reordered, {} moved in time",
        c.old.operations.len(),
        c.new.operations.len(),
        c.added.len(),
        c.removed.len(),
        c.reordered.len(),
        c.moved.len()
    )
}

/// Sections of lines: title, then one line per change.
fn sections(c: &Comparison) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("Added", c.added.iter().map(step_line).collect()),
        ("Removed", c.removed.iter().map(step_line).collect()),
        (
            "Reordered (the order relative to the other operations changed)",
            c.reordered.iter().map(pair_line).collect(),
        ),
        ("Moved in time", c.moved.iter().map(pair_line).collect()),
        (
            "VMs that end in another state",
            c.vms
                .iter()
                .map(|v| format!("{}: {} -> {}", v.name, state(v.old), state(v.new)))
                .collect(),
        ),
    ]
}

/// The comparison for a terminal.
pub fn text(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Compare {} -> {}", c.old.runbook, c.new.runbook);
    let _ = writeln!(out, "\n{}", headline(c));
    let _ = writeln!(out, "  old: {}", recovery_sentence(&c.old));
    let _ = writeln!(out, "  new: {}", recovery_sentence(&c.new));
    let _ = writeln!(out, "{}", counts(c));
    if c.same_operations() {
        let _ = writeln!(
            out,
            "The operations are the same, in the same order, at the same times."
        );
    }
    for (title, lines) in sections(c) {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for l in lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}

/// The comparison as a pull-request comment.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Recovery plan change: `{}` -> `{}`\n",
        c.old.runbook, c.new.runbook
    );
    let _ = writeln!(out, "**{}**\n", headline(c));
    let _ = writeln!(out, "- old: {}", recovery_sentence(&c.old));
    let _ = writeln!(out, "- new: {}\n", recovery_sentence(&c.new));
    let _ = writeln!(out, "{}.\n", counts(c));
    if c.same_operations() {
        let _ = writeln!(
            out,
            "The operations are the same, in the same order, at the same times.\n"
        );
    }
    for (title, lines) in sections(c) {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "**{title}**\n");
        for l in lines {
            let _ = writeln!(out, "- {}", l.replace('|', "\\|"));
        }
        out.push('\n');
    }
    out
}

fn step_json(s: &Step) -> Value {
    json!({
        "number": s.number,
        "operation": s.operation.as_str(),
        "vm": s.vm,
        "start_seconds": s.start.as_secs(),
        "duration_seconds": s.duration().as_secs(),
        "file": &*s.location.source,
        "line": s.location.line,
    })
}

fn pair_json(p: &Pair) -> Value {
    json!({
        "operation": p.new.operation.as_str(),
        "vm": p.new.vm,
        "old": step_json(&p.old),
        "new": step_json(&p.new),
    })
}

fn side_json(plan: &Plan) -> Value {
    let r = &plan.recovery;
    json!({
        "runbook": plan.runbook,
        "operations": plan.operations.len(),
        "recovery_time": {
            "seconds": r.time().as_secs(),
            "basis": r.basis.as_str(),
            "last_vm": r.last_vm,
            "unverified": r.unverified,
        },
    })
}

/// The comparison as JSON (see docs/plan.md).
pub fn json(c: &Comparison) -> Value {
    let vm_state = |s: Option<VmState>| {
        s.map_or(
            Value::Null,
            |s| json!({ "state": s.state, "active_location": s.active_location.as_str() }),
        )
    };
    json!({
        "format": JSON_FORMAT,
        "old": side_json(&c.old),
        "new": side_json(&c.new),
        "recovery_time_delta_seconds": c.delta(),
        "added": c.added.iter().map(step_json).collect::<Vec<_>>(),
        "removed": c.removed.iter().map(step_json).collect::<Vec<_>>(),
        "reordered": c.reordered.iter().map(pair_json).collect::<Vec<_>>(),
        "moved": c.moved.iter().map(pair_json).collect::<Vec<_>>(),
        "vms": c.vms.iter().map(|v| json!({
            "name": v.name,
            "old": vm_state(v.old),
            "new": vm_state(v.new),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Location;
    use crate::plan::{Basis, Recovery};

    fn step(number: usize, vm: &str, op: Operation, start: u64, end: u64) -> Step {
        Step {
            number,
            operation: op,
            vm: vm.into(),
            lane: 1,
            start: Duration::from_secs(start),
            end: Duration::from_secs(end),
            result: "Succeeded".into(),
            before: None,
            after: None,
            location: Location::new("x.rhai", number, 1, 1),
            called_at: None,
        }
    }

    fn plan(steps: Vec<Step>) -> Plan {
        let end = steps.iter().map(|s| s.end).max().unwrap_or_default();
        Plan {
            runbook: "x.rhai".into(),
            inventory: None,
            start: crate::clock::Timestamp(0),
            recovery: Recovery {
                basis: Basis::LastJobEnd,
                from: Duration::ZERO,
                until: end,
                last_vm: None,
                site: None,
                unverified: Vec::new(),
            },
            lanes: 1,
            operations: steps,
            manual_steps: Vec::new(),
            notes: Vec::new(),
            vms: Vec::new(),
            params: Vec::new(),
            findings: Vec::new(),
            sources: Default::default(),
        }
    }

    #[test]
    fn added_removed_reordered_and_moved_operations_are_told_apart() {
        use Operation::*;
        let old = plan(vec![
            step(1, "a", PlannedFailover, 0, 600),
            step(2, "b", PlannedFailover, 600, 1200),
            step(3, "a", Commit, 1200, 1246),
            step(4, "c", ReverseReplicate, 1246, 1300),
        ]);
        let new = plan(vec![
            step(1, "b", PlannedFailover, 0, 600),
            step(2, "a", PlannedFailover, 600, 1200),
            step(3, "a", Commit, 1200, 1246),
            step(4, "a", ReverseReplicate, 1246, 1900),
        ]);
        let c = compare(old, new);
        let names = |v: &[Step]| {
            v.iter()
                .map(|s| format!("{} {}", s.operation, s.vm))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&c.added), ["reverse_replicate a"]);
        assert_eq!(names(&c.removed), ["reverse_replicate c"]);
        // One of the two failovers changed places relative to the other; one is enough.
        assert_eq!(c.reordered.len(), 1);
        assert_eq!(c.reordered[0].new.vm, "a");
        // The other one keeps its place in the order but starts earlier.
        assert_eq!(c.moved.len(), 1);
        assert_eq!(
            pair_line(&c.moved[0]),
            "planned_failover b: #2 at T+0:10:00 -> #1 at T+0:00:00 (-10m)"
        );
        assert_eq!(c.delta(), 1900 - 1300);
        assert_eq!(signed(c.delta()), "+10m");
    }

    #[test]
    fn a_parallel_batch_issued_in_another_order_is_not_reordered() {
        use Operation::*;
        let old = plan(vec![
            step(1, "a", PlannedFailover, 0, 600),
            step(2, "b", PlannedFailover, 0, 600),
        ]);
        let new = plan(vec![
            step(1, "b", PlannedFailover, 0, 600),
            step(2, "a", PlannedFailover, 0, 600),
        ]);
        let c = compare(old, new);
        assert!(c.same_operations(), "{}", text(&c));
    }
}
