//! The table a run ends with: each VM's final state, each job's duration.

use super::Outcome;
use crate::clock::human;
use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};

/// An empty table in the project's style, with `header`.
pub fn plain_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

pub fn table(outcome: &Outcome) -> String {
    let mut vms = plain_table(vec![
        "VM",
        "state",
        "active on",
        "health",
        "replicating",
        "service state",
    ]);
    for item in &outcome.items {
        vms.add_row(vec![
            item.name.clone(),
            item.steady_state().to_string(),
            item.active_location.as_str().to_string(),
            item.health.clone(),
            if item.replicating { "yes" } else { "NO" }.to_string(),
            item.protection_state.clone(),
        ]);
    }
    let mut jobs = plain_table(vec![
        "#",
        "operation",
        "VM",
        "state",
        "duration",
        "runbook line",
    ]);
    for (i, rec) in outcome.jobs.iter().enumerate() {
        // A recovery plan's job: how many of its VMs' tasks are done, and the others.
        let target = if rec.info.plan {
            let tasks = &rec.info.tasks;
            let done = tasks
                .iter()
                .filter(|t| t.state == crate::backend::JobState::Succeeded)
                .count();
            let not_done: Vec<String> = tasks
                .iter()
                .filter(|t| t.state != crate::backend::JobState::Succeeded)
                .map(|t| format!("{} {}", t.vm, t.state))
                .collect();
            let rest = if not_done.is_empty() {
                String::new()
            } else {
                format!("; {}", not_done.join(", "))
            };
            format!(
                "plan {} ({done}/{} VMs done{rest})",
                rec.info.vm,
                tasks.len()
            )
        } else {
            rec.info.vm.clone()
        };
        jobs.add_row(vec![
            (i + 1).to_string(),
            rec.info.operation.to_string(),
            target,
            if rec.info.skipped.is_some() {
                "skipped".to_string()
            } else {
                rec.info.state.to_string()
            },
            match (&rec.info.skipped, rec.info.duration()) {
                (Some(_), _) => "-".to_string(),
                (None, Some(d)) => human(d),
                (None, None) => "running".into(),
            },
            rec.site.runbook_location().to_string(),
        ]);
    }
    let mut out = String::new();
    if !outcome.items.is_empty() {
        out.push_str(&format!("{vms}\n"));
    }
    if !outcome.jobs.is_empty() {
        out.push_str(&format!("{jobs}\n"));
    }
    for a in &outcome.approvals {
        out.push_str(&approval_line(a, outcome.simulated_run));
    }
    out
}

/// A confirmed manual step, with both clocks named: the run's (simulated on the simulator)
/// and the wall clock, and how long the operator took in real time.
fn approval_line(a: &crate::script::host::Approval, simulated: bool) -> String {
    let mut line = format!(
        "manual step `{}` confirmed by {} at {}",
        a.title,
        a.by,
        a.at.rfc3339()
    );
    if simulated {
        line.push_str(" (simulated clock)");
        if let Some(wall) = &a.wall {
            line.push_str(&format!(", {wall} (wall clock)"));
        }
    }
    if let Some(waited) = a.waited {
        line.push_str(&format!(", after {} of real time", human(waited)));
    }
    line.push('\n');
    line
}
