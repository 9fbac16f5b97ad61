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
        "protection state",
        "active on",
        "health",
        "replicating",
    ]);
    for item in &outcome.items {
        vms.add_row(vec![
            item.name.clone(),
            item.protection_state.clone(),
            item.active_location.as_str().to_string(),
            item.health.clone(),
            if item.replicating { "yes" } else { "NO" }.to_string(),
        ]);
    }
    let mut jobs = plain_table(vec![
        "#",
        "operation",
        "VM",
        "state",
        "duration",
        "started at",
    ]);
    for (i, rec) in outcome.jobs.iter().enumerate() {
        jobs.add_row(vec![
            (i + 1).to_string(),
            rec.info.operation.to_string(),
            rec.info.vm.clone(),
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
        out.push_str(&format!(
            "manual step `{}` confirmed by {} at {}\n",
            a.title,
            a.by,
            a.at.rfc3339()
        ));
    }
    out
}
