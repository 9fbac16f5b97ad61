//! The audit record as one self-contained HTML page: the summary, a chart of the
//! operations' lanes drawn with plain CSS, and the tables of the markdown form.

use super::{clock, span, Audit};
use crate::clock::human;
use std::fmt::Write as _;
use std::time::Duration;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(a: &Audit) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Run {run}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}\n.lane{{position:relative;height:1.6em;border-bottom:1px solid #eee}}.bar{{position:absolute;top:.2em;height:1.2em;border-radius:3px;font-size:.75em;overflow:hidden;white-space:nowrap;color:#fff;padding:0 .3em}}\n.Succeeded{{background:#2e7d32}}.Failed,.Cancelled,.refused{{background:#c62828}}.other{{background:#1565c0}}\n</style></head><body>\n<h1>Run {run}: {runbook}</h1>\n",
        run = esc(&a.run),
        runbook = esc(&a.runbook)
    );
    out.push_str("<table>\n");
    let rows = [
        ("state", a.state.clone()),
        (
            "target",
            format!(
                "{}{}",
                a.target,
                if a.simulated {
                    " (simulated times)"
                } else {
                    ""
                }
            ),
        ),
        ("operator", a.operator.clone()),
        ("started", a.started.clone()),
        ("operations", a.operations.len().to_string()),
        (
            "recovery time",
            a.recovery_time_seconds.map_or_else(
                || "not measured: no VM was verified after an operation".into(),
                |s| {
                    format!(
                        "{} (first operation to last VM verified)",
                        human(Duration::from_secs(s))
                    )
                },
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</table>\n");
    if !a.operations.is_empty() {
        let total = a
            .operations
            .iter()
            .map(|o| o.end.unwrap_or(o.start).max(o.start + 1))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        out.push_str("<h2>Timeline</h2>\n<div class=\"chart\">\n");
        let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
        for lane in 1..=lanes {
            out.push_str("<div class=\"lane\">");
            for o in a.operations.iter().filter(|o| o.lane == lane) {
                let end = o.end.unwrap_or(o.start).max(o.start + 1);
                let class = match o.state.as_str() {
                    "Succeeded" | "Failed" | "Cancelled" | "refused" => o.state.as_str(),
                    _ => "other",
                };
                let _ = write!(
                    out,
                    "<div class=\"bar {class}\" style=\"left:{:.2}%;width:{:.2}%\" title=\"{} of {}: {} to {} ({})\">{} {}</div>",
                    o.start as f64 / total * 100.0,
                    (end - o.start) as f64 / total * 100.0,
                    esc(&o.operation),
                    esc(&o.vm),
                    clock(o.start),
                    clock(end),
                    esc(&o.state),
                    esc(&o.operation),
                    esc(&o.vm)
                );
            }
            out.push_str("</div>\n");
        }
        out.push_str("</div>\n<table><tr><th>#</th><th>start</th><th>end</th><th>duration</th><th>lane</th><th>VM</th><th>operation</th><th>state</th><th>job</th><th>runbook line</th></tr>\n");
        for (i, o) in a.operations.iter().enumerate() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                clock(o.start),
                o.end.map_or_else(|| "-".into(), clock),
                span(o.duration()),
                o.lane,
                esc(&o.vm),
                esc(&o.operation),
                esc(&o.state),
                esc(o.job.as_deref().unwrap_or("-")),
                esc(o.line.as_deref().unwrap_or("-"))
            );
        }
        out.push_str("</table>\n");
    }
    if !a.vms.is_empty() {
        out.push_str("<h2>VM states</h2>\n<table><tr><th>VM</th><th>path</th></tr>\n");
        for vm in &a.vms {
            let path: Vec<String> = vm
                .states
                .iter()
                .map(|(at, s)| format!("{} at {}", esc(s), clock(*at)))
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&vm.vm),
                path.join(" → ")
            );
        }
        out.push_str("</table>\n");
    }
    if !a.approvals.is_empty() {
        out.push_str("<h2>Manual steps</h2>\n<table><tr><th>step</th><th>title</th><th>outcome</th><th>by</th><th>at</th></tr>\n");
        for s in &a.approvals {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.step,
                esc(&s.title),
                esc(&s.outcome),
                esc(s.by.as_deref().unwrap_or("-")),
                clock(s.at)
            );
        }
        out.push_str("</table>\n");
    }
    let failed: Vec<_> = a
        .operations
        .iter()
        .filter(|o| !o.errors.is_empty() || !o.warnings.is_empty())
        .collect();
    if a.failure.is_some() || !failed.is_empty() {
        out.push_str("<h2>Failures and warnings</h2>\n<ul>\n");
        if let Some(f) = &a.failure {
            let _ = writeln!(out, "<li>the run stopped: {}</li>", esc(f));
        }
        for o in failed {
            let _ = write!(
                out,
                "<li>{} of {} ({})<ul>",
                esc(&o.operation),
                esc(&o.vm),
                esc(&o.state)
            );
            for e in o.errors.iter().chain(&o.warnings) {
                let _ = write!(out, "<li>{}</li>", esc(e));
            }
            out.push_str("</ul></li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}
