//! The audit record as one self-contained HTML page: the summary, a Gantt chart of the
//! operations' lanes drawn with plain CSS (a time axis, every label in full), and the same
//! tables and lists as the markdown form.

use super::{clock, lists, summary, tables, Audit};
use std::fmt::Write as _;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}\n.chart{margin:1em 0;font-size:.85em}.row{display:flex;align-items:center;height:1.5em}.label{flex:none;white-space:nowrap;padding-right:1ch}.track{position:relative;flex:1;height:100%;border-left:1px solid #999;background:repeating-linear-gradient(90deg,transparent,transparent calc(var(--tick) - 1px),#eee calc(var(--tick) - 1px),#eee var(--tick))}.axis .track{border-left:none;background:none}.lane{font-weight:bold;margin-top:.4em}\n.bar{position:absolute;top:.2em;height:1.1em;min-width:2px;border-radius:3px}.tick{position:absolute;top:.1em;transform:translateX(-50%);white-space:nowrap;color:#555}.tick:first-child{transform:none}\n.Succeeded,.skipped{background:#2e7d32}.Failed,.Cancelled,.refused{background:#c62828}.other{background:#1565c0}";

pub fn html(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Run {run}</title>\n<style>\n{STYLE}\n</style></head><body>\n<h1>Run {run}: {runbook}</h1>",
        run = esc(&a.run),
        runbook = esc(&a.runbook)
    );
    out.push_str("<table>\n");
    for (k, v) in summary(a) {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</table>\n");
    if !a.operations.is_empty() {
        out.push_str("<h2>Timeline</h2>\n");
        chart(&mut out, a);
    }
    for t in tables(a) {
        let _ = writeln!(out, "<h2>{}</h2>", t.title);
        if let Some(intro) = t.intro {
            let _ = writeln!(out, "<p>{}</p>", esc(intro));
        }
        out.push_str("<table><tr>");
        for h in t.header {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>\n");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    for (title, items) in lists(a) {
        let _ = writeln!(out, "<h2>{title}</h2>\n<ul>");
        for (item, subs) in items {
            let _ = write!(out, "<li>{}", esc(&item));
            if !subs.is_empty() {
                out.push_str("<ul>");
                for s in subs {
                    let _ = write!(out, "<li>{}</li>", esc(&s));
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The steps between the time axis's ticks, in seconds: the first that makes at most ten.
const TICKS: [u64; 12] = [
    60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400,
];

/// The time axis's step for a run of `total` seconds.
fn tick_step(total: u64) -> u64 {
    TICKS
        .iter()
        .copied()
        .find(|step| total / step <= 10)
        .unwrap_or_else(|| total.div_ceil(10).max(1))
}

/// A Gantt chart: a time axis (offsets from the run's start), then for each lane a row
/// per operation, its label in full beside its bar (a bar of a short job is too narrow to
/// hold a label), positioned in percent of the run's length.
fn chart(out: &mut String, a: &Audit) {
    let total = a
        .operations
        .iter()
        .map(|o| o.end.unwrap_or(o.start).max(o.start + 1))
        .max()
        .unwrap_or(1)
        .max(1);
    let pct = |s: u64| s as f64 / total as f64 * 100.0;
    let label = |o: &super::Operation| format!("{} {}", o.operation, o.vm);
    let width = a
        .operations
        .iter()
        .map(|o| label(o).chars().count())
        .chain(["lane 99".len()])
        .max()
        .unwrap_or(0)
        + 1;
    let step = tick_step(total);
    let _ = writeln!(
        out,
        "<div class=\"chart\" style=\"--tick:{:.4}%\">",
        pct(step)
    );
    let _ = write!(
        out,
        "<div class=\"row axis\"><span class=\"label\" style=\"width:{width}ch\">time since start</span><div class=\"track\">"
    );
    for t in (0..=total).step_by(step as usize) {
        let _ = write!(
            out,
            "<span class=\"tick\" style=\"left:{:.2}%\">{}</span>",
            pct(t),
            clock(t)
        );
    }
    out.push_str("</div></div>\n");
    let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
    for lane in 1..=lanes {
        let _ = writeln!(out, "<div class=\"lane\">lane {lane}</div>");
        for o in a.operations.iter().filter(|o| o.lane == lane) {
            let end = o.end.unwrap_or(o.start).max(o.start + 1);
            let class = match o.state.as_str() {
                "Succeeded" | "Failed" | "Cancelled" | "refused" | "skipped" => o.state.as_str(),
                _ => "other",
            };
            let _ = writeln!(
                out,
                "<div class=\"row\"><span class=\"label\" style=\"width:{width}ch\">{}</span><div class=\"track\"><div class=\"bar {class}\" style=\"left:{:.2}%;width:{:.2}%\" title=\"{} of {}: {} to {} ({})\"></div></div></div>",
                esc(&label(o)),
                pct(o.start),
                pct(end - o.start),
                esc(&o.operation),
                esc(&o.vm),
                clock(o.start),
                clock(end),
                esc(&o.state),
            );
        }
    }
    out.push_str("</div>\n");
}
