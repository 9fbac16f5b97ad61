//! The audit record as one self-contained HTML page: the summary, a chart of the
//! operations' lanes drawn with plain CSS, and the same tables and lists as the markdown
//! form.

use super::{clock, lists, summary, tables, Audit};
use std::fmt::Write as _;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}\n.lane{position:relative;height:1.6em;border-bottom:1px solid #eee}.bar{position:absolute;top:.2em;height:1.2em;border-radius:3px;font-size:.75em;overflow:hidden;white-space:nowrap;color:#fff;padding:0 .3em}\n.Succeeded{background:#2e7d32}.Failed,.Cancelled,.refused{background:#c62828}.other{background:#1565c0}";

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

/// The lanes as rows of bars, positioned in percent of the run's length.
fn chart(out: &mut String, a: &Audit) {
    let total = a
        .operations
        .iter()
        .map(|o| o.end.unwrap_or(o.start).max(o.start + 1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
    out.push_str("<div class=\"chart\">\n");
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
    out.push_str("</div>\n");
}
