//! The audit record as markdown: the summary, a Mermaid Gantt chart of the operations'
//! lanes (in the plan's chart format), the tables and the lists.

use super::{lists, summary, tables, Audit};
use crate::plan::render::{chart_time, md_table, md_text, mermaid_text};
use std::fmt::Write as _;
use std::time::Duration;

/// A Mermaid Gantt chart of the operations, a section per lane, and the manual steps as
/// milestones. Times are offsets from the run's start in the plan's chart format (T+0 is
/// midnight of 2000-01-01), so the axis reads hours and minutes since the start, as the
/// tables do.
pub(crate) fn gantt(a: &Audit) -> String {
    let mut out = String::from("gantt\n    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat %H:%M\n");
    let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
    let at = |s: u64| chart_time(Duration::from_secs(s));
    for lane in 1..=lanes {
        let _ = writeln!(out, "    section lane {lane}");
        for (i, o) in a
            .operations
            .iter()
            .enumerate()
            .filter(|(_, o)| o.lane == lane)
        {
            let tag = match o.state.as_str() {
                "Succeeded" | "skipped" => "done, ",
                "Failed" | "Cancelled" | "refused" => "crit, ",
                _ => "active, ",
            };
            let end = o.end.unwrap_or(o.start).max(o.start + 1);
            let _ = writeln!(
                out,
                "    {} {} :{tag}op{}, {}, {}",
                mermaid_text(&o.operation),
                mermaid_text(&o.vm),
                i + 1,
                at(o.start),
                at(end)
            );
        }
    }
    if !a.approvals.is_empty() {
        out.push_str("    section manual steps\n");
        for s in &a.approvals {
            let _ = writeln!(
                out,
                "    {} :milestone, m{}, {}, {}",
                mermaid_text(&s.title),
                s.step,
                at(s.at),
                at(s.at)
            );
        }
    }
    out
}

pub fn markdown(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {}\n", a.run, md_text(&a.runbook));
    md_table(
        &mut out,
        &["", ""],
        summary(a).into_iter().map(|(k, v)| vec![k.to_string(), v]),
    );
    if !a.operations.is_empty() {
        let _ = write!(out, "\n## Timeline\n\n```mermaid\n{}```\n", gantt(a));
    }
    for t in tables(a) {
        let _ = writeln!(out, "\n## {}\n", t.title);
        if let Some(intro) = t.intro {
            let _ = writeln!(out, "{intro}\n");
        }
        md_table(&mut out, t.header, t.rows);
    }
    for (title, items) in lists(a) {
        let _ = writeln!(out, "\n## {title}\n");
        for (item, subs) in items {
            let _ = writeln!(out, "- {}", md_text(&item));
            for s in subs {
                let _ = writeln!(out, "  - {}", md_text(&s));
            }
        }
    }
    out
}
