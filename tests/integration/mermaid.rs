//! The plan's and the report's Gantt charts as Mermaid itself reads them: parsed by
//! Mermaid's own parser under node (tests/mermaid/gantt.mjs, set up with Mermaid by
//! `.ci/deps mermaid`), every bar starts and ends where the tables say.

use crate::common::{cli, text};
use runbook::clock::Timestamp;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// The parsing script, set up by `.ci/deps mermaid`.
fn script() -> String {
    crate::common::deps("mermaid")
}

/// The tasks Mermaid reads in `chart`: `(name, section, start, end, milestone)`.
fn tasks(chart: &str) -> Vec<(String, String, String, String, bool)> {
    let mut child = Command::new("node")
        .arg(script())
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(chart.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Mermaid rejects the chart: {}\n{chart}",
        text(&out.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().replace(".000Z", "Z");
            (
                s("task"),
                s("section"),
                s("start"),
                s("end"),
                t["milestone"] == true,
            )
        })
        .collect()
}

/// Where Mermaid puts an offset of `seconds` from T+0 (midnight of 2000-01-01).
fn at(seconds: u64) -> String {
    Timestamp(946_684_800_000 + seconds * 1000).rfc3339()
}

/// The chart inside a markdown document's mermaid block.
fn chart_in(markdown: &str) -> String {
    markdown
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block")
        .to_string()
}

#[test]
fn mermaid_reads_the_plans_chart_with_every_bar_where_the_plan_puts_it() {
    let path = "runbooks/site-failover.rhai";
    let plan: Value =
        serde_json::from_str(&text(&cli(&["plan", "--format", "json", path]).stdout)).unwrap();
    let read = tasks(&chart_in(&text(
        &cli(&["plan", "--format", "markdown", path]).stdout,
    )));
    let ops = plan["operations"].as_array().unwrap();
    for op in ops {
        let name = format!(
            "{} {}",
            op["operation"].as_str().unwrap(),
            op["vm"].as_str().unwrap()
        );
        let task = read
            .iter()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("{name} in {read:?}"));
        assert_eq!(task.1, format!("lane {}", op["lane"]), "{name}");
        assert_eq!(task.2, at(op["start_seconds"].as_u64().unwrap()), "{name}");
        assert_eq!(task.3, at(op["end_seconds"].as_u64().unwrap()), "{name}");
    }
    let milestones: Vec<_> = read.iter().filter(|t| t.4).collect();
    assert_eq!(
        milestones.len(),
        2,
        "the manual step and the recovery: {read:?}"
    );
    assert_eq!(read.len(), ops.len() + 2);
}

#[test]
fn mermaid_reads_the_reports_chart_with_every_bar_where_the_report_puts_it() {
    let audit = crate::reports::audit_of_the_site_failover();
    let read = tasks(&chart_in(&runbook::report::markdown(&audit)));
    for o in &audit.operations {
        let name = format!("{} {}", o.operation, o.vm);
        let task = read
            .iter()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("{name} in {read:?}"));
        assert_eq!(task.1, format!("lane {}", o.lane), "{name}");
        assert_eq!(task.2, at(o.start), "{name}");
        assert_eq!(task.3, at(o.end.unwrap().max(o.start + 1)), "{name}");
    }
    // Bars differ: the chart is not one bar spanning everything.
    let first = read
        .iter()
        .find(|t| t.0 == "planned_failover sql-01")
        .unwrap();
    let last = read
        .iter()
        .find(|t| t.0 == "reverse_replicate web-03")
        .unwrap();
    assert!(first.3 <= last.2, "{first:?} ends before {last:?} starts");
    let step = read
        .iter()
        .find(|t| t.4)
        .expect("the manual step's milestone");
    assert_eq!(step.0, "Announce the failover");
}
