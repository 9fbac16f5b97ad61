//! A plan as text for a terminal, as markdown for a pull-request comment (with a Mermaid
//! Gantt chart of the lanes), and as JSON (the structure is documented in docs/plan.md).

use super::record::VmState;
use super::{Basis, Moment, Plan, Step, VmPlan};
use crate::check::Report;
use crate::diagnostics::json::JsonFinding;
use crate::diagnostics::{render_all, summary_line, Location, RenderOptions};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// The most operations the Mermaid chart draws; larger plans get the tables only.
pub const CHART_LIMIT: usize = 200;

/// The version of the JSON structure; it changes only when a field changes meaning or goes.
pub const JSON_FORMAT: &str = "runbook-plan/1";

/// `T+h:mm:ss`, an offset from T+0.
pub fn offset(d: Duration) -> String {
    let s = d.as_secs();
    format!("T+{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// A duration for people, exact to the second (`1h 2m 5s`, `46s`).
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

/// The runbook line of a step: `23` in the runbook itself, else `file:line`.
fn line_of(plan: &Plan, location: &Location) -> String {
    if *location.source == *plan.runbook {
        location.line.to_string()
    } else {
        format!("{}:{}", location.source, location.line)
    }
}

fn state(s: Option<VmState>) -> String {
    s.map_or_else(|| "-".to_string(), |s| s.to_string())
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// One sentence: the estimate and what it is measured to.
pub fn recovery_sentence(plan: &Plan) -> String {
    let r = &plan.recovery;
    match r.basis {
        Basis::Verified => format!(
            "{}, from the first operation ({}) until {} is verified on the {} site ({})",
            span(r.time()),
            offset(r.from),
            r.last_vm.as_deref().unwrap_or("the last VM"),
            r.site.map_or("target", |s| s.as_str()),
            offset(r.until)
        ),
        Basis::LastJobEnd => format!(
            "{} until the last job ends ({} to {}): the runbook never verifies {} on the site it ends on, so this is not the time until the VMs are known to run",
            span(r.time()),
            offset(r.from),
            offset(r.until),
            r.unverified.join(", ")
        ),
        Basis::NoOperations => "none: the runbook starts no operation".to_string(),
    }
}

fn summary_sentence(plan: &Plan) -> String {
    if plan.operations.is_empty() {
        return format!(
            "No operation; {}",
            plural(plan.manual_steps.len(), "manual step")
        );
    }
    format!(
        "{} on {}, at most {} at once; {}",
        plural(plan.operations.len(), "operation"),
        plural(plan.vms.len(), "VM"),
        plan.lanes,
        plural(plan.manual_steps.len(), "manual step")
    )
}

fn basis_sentence(plan: &Plan) -> String {
    let durations = match &plan.inventory {
        Some(origin) => format!("the durations of {origin}"),
        None => "the simulator's default durations (no inventory is known)".to_string(),
    };
    format!(
        "Simulated on a virtual clock with {durations}; T+0 is {}.",
        plan.start.rfc3339()
    )
}

// ---- text ----------------------------------------------------------------------------

/// Rows as left-aligned columns two spaces apart, under a header and a rule. A plan can have
/// thousands of rows: this stays linear and cheap.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        let end = out.trim_end().len().max(start);
        out.truncate(end);
        out.push('\n');
    };
    line(&mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rule.iter().map(String::as_str));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

const OPERATION_HEADER: [&str; 10] = [
    "#",
    "start",
    "end",
    "duration",
    "lane",
    "operation",
    "VM",
    "before",
    "after",
    "line",
];

const VM_HEADER: [&str; 5] = ["VM", "before", "after", "operations", "recovered"];

/// The plan for a terminal.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan of {}", plan.runbook);
    let _ = writeln!(out, "{}", basis_sentence(plan));
    if !plan.params.is_empty() {
        let shown: Vec<String> = plan
            .params
            .iter()
            .map(|(d, v)| format!("{}={v}", d.name))
            .collect();
        let _ = writeln!(out, "Parameters: {}.", shown.join(", "));
    }
    let _ = writeln!(
        out,
        "\nEstimated recovery time: {}.",
        recovery_sentence(plan)
    );
    let _ = writeln!(out, "{}.", summary_sentence(plan));
    if !plan.operations.is_empty() {
        let rows: Vec<Vec<String>> = plan
            .operations
            .iter()
            .map(|s| operation_row(plan, s))
            .collect();
        let _ = write!(out, "\nOperations\n{}", columns(&OPERATION_HEADER, &rows));
    }
    if !plan.manual_steps.is_empty() {
        let _ = writeln!(out, "\nManual steps");
        for m in &plan.manual_steps {
            let _ = writeln!(out, "  {}  {}", offset(m.at), moment_text(m));
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "\nNotes");
        for m in &plan.notes {
            let _ = writeln!(out, "  {}  {}", offset(m.at), m.text);
        }
    }
    if !plan.vms.is_empty() {
        let rows: Vec<Vec<String>> = plan.vms.iter().map(vm_row).collect();
        let _ = write!(out, "\nVMs\n{}", columns(&VM_HEADER, &rows));
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "\nFindings of the check");
        for f in &plan.findings {
            let _ = writeln!(out, "  {}", summary_line(f));
        }
    }
    out
}

fn operation_row(plan: &Plan, s: &Step) -> Vec<String> {
    vec![
        s.number.to_string(),
        offset(s.start),
        offset(s.end),
        span(s.duration()),
        s.lane.to_string(),
        s.operation.to_string(),
        s.vm.clone(),
        state(s.before),
        state(s.after),
        line_of(plan, &s.location),
    ]
}

fn vm_row(v: &VmPlan) -> Vec<String> {
    vec![
        v.name.clone(),
        state(v.before),
        state(v.after),
        v.operations.to_string(),
        v.recovered.map_or_else(|| "never verified".into(), offset),
    ]
}

fn moment_text(m: &Moment) -> String {
    match &m.detail {
        Some(d) => format!("{}: {d}", m.text),
        None => m.text.clone(),
    }
}

// ---- markdown ------------------------------------------------------------------------

/// Escapes text for a markdown table cell.
fn cell(text: &str) -> String {
    md_text(text).replace('|', "\\|").replace('\n', " ")
}

/// Text a runbook wrote (a note, a step's title), shown as text in markdown: no HTML of
/// its own reaches the page.
pub(crate) fn md_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn md_table(
    out: &mut String,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// The plan as a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Recovery plan: `{}`\n", plan.runbook);
    let _ = writeln!(
        out,
        "**Estimated recovery time: {}**\n",
        cell(&recovery_sentence(plan))
    );
    let _ = writeln!(
        out,
        "{}. {}\n",
        summary_sentence(plan),
        basis_sentence(plan)
    );
    if !plan.operations.is_empty() {
        if plan.operations.len() <= CHART_LIMIT {
            let _ = writeln!(out, "```mermaid\n{}```\n", gantt(plan));
        } else {
            let _ = writeln!(
                out,
                "_The chart is left out: {} operations are more than {CHART_LIMIT}._\n",
                plan.operations.len()
            );
        }
        let _ = writeln!(
            out,
            "<details><summary>{}</summary>\n",
            plural(plan.operations.len(), "operation")
        );
        md_table(
            &mut out,
            &OPERATION_HEADER,
            plan.operations.iter().map(|s| operation_row(plan, s)),
        );
        let _ = writeln!(out, "\n</details>\n");
    }
    if !plan.manual_steps.is_empty() {
        let _ = writeln!(out, "**Manual steps**\n");
        md_table(
            &mut out,
            &["at", "step", "instructions"],
            plan.manual_steps.iter().map(|m| {
                vec![
                    offset(m.at),
                    m.text.clone(),
                    m.detail.clone().unwrap_or_default(),
                ]
            }),
        );
        out.push('\n');
    }
    if !plan.vms.is_empty() {
        let _ = writeln!(out, "**VMs**\n");
        md_table(&mut out, &VM_HEADER, plan.vms.iter().map(vm_row));
        out.push('\n');
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{}</summary>\n",
            plural(plan.notes.len(), "note")
        );
        md_table(
            &mut out,
            &["at", "note"],
            plan.notes
                .iter()
                .map(|m| vec![offset(m.at), m.text.clone()]),
        );
        let _ = writeln!(out, "\n</details>\n");
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "**Findings of the check**\n");
        for f in &plan.findings {
            let _ = writeln!(out, "- `{}`", summary_line(f).replace('`', "'"));
        }
        out.push('\n');
    }
    out
}

/// Text safe inside a Mermaid task name (no `:`, `;` or `#`, which end or escape it, and no
/// HTML).
pub(crate) fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ':' | ';' | '#' | '\n' | '<' | '>' | '&' => ' ',
            c => c,
        })
        .collect()
}

/// A moment of the chart: T+0 is midnight of 2000-01-01, so the axis reads hours and
/// minutes since T+0.
pub(crate) fn chart_time(d: Duration) -> String {
    let s = d.as_secs();
    let (days, rest) = (s / 86400, s % 86400);
    format!(
        "2000-01-{:02} {:02}:{:02}:{:02}",
        1 + days,
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// A Mermaid Gantt chart with one section per lane, the manual steps and the moment the
/// recovery time ends as milestones.
pub fn gantt(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "gantt");
    let _ = writeln!(
        out,
        "    title {} (estimated recovery time {})",
        mermaid_text(&plan.runbook),
        span(plan.recovery.time())
    );
    out.push_str("    dateFormat YYYY-MM-DD HH:mm:ss\n    axisFormat %H:%M\n");
    for lane in 1..=plan.lanes {
        let _ = writeln!(out, "    section lane {lane}");
        for s in plan.operations.iter().filter(|s| s.lane == lane) {
            let _ = writeln!(
                out,
                "    {} {} :op{}, {}, {}",
                s.operation,
                mermaid_text(&s.vm),
                s.number,
                chart_time(s.start),
                chart_time(s.end.max(s.start + Duration::from_secs(1)))
            );
        }
    }
    let mut milestones: Vec<(String, Duration)> = plan
        .manual_steps
        .iter()
        .map(|m| (format!("manual step {}", mermaid_text(&m.text)), m.at))
        .collect();
    if plan.recovery.basis != Basis::NoOperations {
        let label = match plan.recovery.basis {
            Basis::Verified => "recovered (last VM verified)",
            _ => "last job ends (not verified)",
        };
        milestones.push((label.to_string(), plan.recovery.until));
    }
    if !milestones.is_empty() {
        out.push_str("    section milestones\n");
        for (i, (label, at)) in milestones.iter().enumerate() {
            let t = chart_time(*at);
            let _ = writeln!(out, "    {label} :milestone, m{}, {t}, {t}", i + 1);
        }
    }
    out
}

// ---- JSON ----------------------------------------------------------------------------

/// Seconds, rounded down (the simulation's times are whole seconds).
fn secs(d: Duration) -> u64 {
    d.as_secs()
}

#[derive(serde::Serialize)]
struct JsonPlan<'a> {
    format: &'static str,
    runbook: &'a str,
    inventory: Option<&'a str>,
    start: String,
    recovery_time: JsonRecovery<'a>,
    lanes: usize,
    operations: Vec<JsonStep<'a>>,
    manual_steps: Vec<JsonManualStep<'a>>,
    notes: Vec<JsonNote<'a>>,
    vms: Vec<JsonVm<'a>>,
    findings: Vec<JsonFinding<'a>>,
    /// The parameters and the values the plan used (absent when the runbook has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<JsonParam<'a>>,
}

#[derive(serde::Serialize)]
struct JsonParam<'a> {
    #[serde(flatten)]
    declared: &'a crate::script::params::Declared,
    value: &'a str,
}

#[derive(serde::Serialize)]
struct JsonRecovery<'a> {
    seconds: u64,
    basis: &'static str,
    from_seconds: u64,
    until_seconds: u64,
    last_vm: Option<&'a str>,
    site: Option<&'static str>,
    unverified: &'a [String],
}

#[derive(serde::Serialize)]
struct JsonStep<'a> {
    number: usize,
    operation: &'static str,
    vm: &'a str,
    lane: usize,
    start_seconds: u64,
    end_seconds: u64,
    duration_seconds: u64,
    result: &'a str,
    before: Option<VmState>,
    after: Option<VmState>,
    file: &'a str,
    line: usize,
    column: usize,
    called_at: Option<String>,
}

#[derive(serde::Serialize)]
struct JsonManualStep<'a> {
    at_seconds: u64,
    title: &'a str,
    detail: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct JsonNote<'a> {
    at_seconds: u64,
    text: &'a str,
}

#[derive(serde::Serialize)]
struct JsonVm<'a> {
    name: &'a str,
    before: Option<VmState>,
    after: Option<VmState>,
    operations: usize,
    failed_over: bool,
    recovered_seconds: Option<u64>,
}

/// The plan as pretty-printed JSON (see docs/plan.md for the structure).
pub fn json(plan: &Plan) -> String {
    let r = &plan.recovery;
    let doc = JsonPlan {
        format: JSON_FORMAT,
        runbook: &plan.runbook,
        inventory: plan.inventory.as_deref(),
        start: plan.start.rfc3339(),
        recovery_time: JsonRecovery {
            seconds: secs(r.time()),
            basis: r.basis.as_str(),
            from_seconds: secs(r.from),
            until_seconds: secs(r.until),
            last_vm: r.last_vm.as_deref(),
            site: r.site.map(|s| s.as_str()),
            unverified: &r.unverified,
        },
        lanes: plan.lanes,
        operations: plan
            .operations
            .iter()
            .map(|s| JsonStep {
                number: s.number,
                operation: s.operation.as_str(),
                vm: &s.vm,
                lane: s.lane,
                start_seconds: secs(s.start),
                end_seconds: secs(s.end),
                duration_seconds: secs(s.duration()),
                result: &s.result,
                before: s.before,
                after: s.after,
                file: &s.location.source,
                line: s.location.line,
                column: s.location.column,
                called_at: s.called_at.as_ref().map(ToString::to_string),
            })
            .collect(),
        manual_steps: plan
            .manual_steps
            .iter()
            .map(|m| JsonManualStep {
                at_seconds: secs(m.at),
                title: &m.text,
                detail: m.detail.as_deref(),
            })
            .collect(),
        notes: plan
            .notes
            .iter()
            .map(|m| JsonNote {
                at_seconds: secs(m.at),
                text: &m.text,
            })
            .collect(),
        vms: plan
            .vms
            .iter()
            .map(|v| JsonVm {
                name: &v.name,
                before: v.before,
                after: v.after,
                operations: v.operations,
                failed_over: v.failed_over,
                recovered_seconds: v.recovered.map(secs),
            })
            .collect(),
        findings: plan
            .findings
            .iter()
            .map(|f| JsonFinding::new(f, &plan.sources, &plan.runbook))
            .collect(),
        params: plan
            .params
            .iter()
            .map(|(declared, value)| JsonParam { declared, value })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

// ---- a runbook with errors -----------------------------------------------------------

/// The findings of a runbook that has errors, instead of its plan.
pub fn rejected_text(report: &Report, color: bool) -> String {
    let mut out = render_all(
        &report.findings,
        &report.sources,
        RenderOptions { color, width: 100 },
    );
    let _ = writeln!(
        out,
        "{}: no plan: the runbook has errors (fix them first)",
        report.name
    );
    out
}

/// The findings of a runbook that has errors, for a pull-request comment.
pub fn rejected_markdown(report: &Report) -> String {
    format!(
        "### Recovery plan: `{}`\n\n**No plan: the runbook has errors.**\n\n```text\n{}```\n",
        report.name,
        render_all(&report.findings, &report.sources, RenderOptions::default())
    )
}

/// The findings of a runbook that has errors, as JSON.
pub fn rejected_json(report: &Report) -> Value {
    json!({
        "format": JSON_FORMAT,
        "runbook": report.name,
        "error": "the runbook has errors",
        "findings": report
            .findings
            .iter()
            .map(|f| JsonFinding::new(f, &report.sources, &report.name))
            .collect::<Vec<_>>(),
    })
}
