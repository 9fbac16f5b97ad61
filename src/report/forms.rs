//! What every form of the audit record shows alike: the summary, the tables and the lists.

use super::{clock, Audit};
use crate::clock::human;
use std::time::Duration;

fn span(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| human(Duration::from_secs(s)))
}

/// The facts at the head of every form: `(name, value)`.
pub(super) fn summary(a: &Audit) -> Vec<(&'static str, String)> {
    let recovery = match a.recovery_time_seconds {
        Some(s) => format!(
            "{} (first operation until every failed-over VM was verified)",
            human(Duration::from_secs(s))
        ),
        None => "not measured: a VM that was failed over was never verified after it (or none was failed over)".into(),
    };
    let simulated = if a.simulated {
        " (simulated times)"
    } else {
        ""
    };
    let mut rows = vec![
        ("state", a.state.clone()),
        ("target", format!("{}{simulated}", a.target)),
        ("operator", a.operator.clone()),
        ("started", a.started.clone()),
    ];
    if !a.params.is_empty() {
        let shown: Vec<String> = a.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(("parameters", shown.join(", ")));
    }
    rows.push(("operations", a.operations.len().to_string()));
    rows.push(("recovery time", recovery));
    rows
}

/// A table of the report, in every form alike.
pub(super) struct Table {
    pub(super) title: &'static str,
    pub(super) intro: Option<&'static str>,
    pub(super) header: &'static [&'static str],
    pub(super) rows: Vec<Vec<String>>,
}

/// The report's tables that have rows: operations, recovery plans' tasks, VM states,
/// verifications, manual steps.
pub(super) fn tables(a: &Audit) -> Vec<Table> {
    let operations = a
        .operations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let settled = if o.settled {
                " (settled after a crash)"
            } else {
                ""
            };
            vec![
                (i + 1).to_string(),
                clock(o.start),
                o.end.map_or_else(|| "-".into(), clock),
                span(o.duration()),
                o.lane.to_string(),
                o.vm.clone(),
                format!("{}{settled}", o.operation),
                o.state.clone(),
                o.job.clone().unwrap_or_else(|| "-".into()),
                o.location
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
            ]
        })
        .collect();
    // A recovery plan's job: its per-VM tasks under the operation's number.
    let tasks = a
        .operations
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            o.tasks.iter().map(move |t| {
                vec![
                    (i + 1).to_string(),
                    o.vm.clone(),
                    t.group.to_string(),
                    t.vm.clone(),
                    t.state.to_string(),
                    t.started.map_or_else(|| "-".into(), |s| s.rfc3339()),
                    t.ended.map_or_else(|| "-".into(), |s| s.rfc3339()),
                ]
            })
        })
        .collect();
    let vms = a
        .vms
        .iter()
        .flat_map(|vm| {
            vm.states.iter().map(|o| {
                vec![
                    vm.vm.clone(),
                    clock(o.at),
                    o.state.to_string(),
                    o.active_location.as_str().to_string(),
                    o.service_state.clone(),
                ]
            })
        })
        .collect();
    let verifications = a
        .verifications
        .iter()
        .map(|v| {
            vec![
                clock(v.at),
                v.vm.clone(),
                v.site.as_str().to_string(),
                v.what.clone(),
            ]
        })
        .collect();
    let real = |s: Option<u64>| s.map_or_else(|| "-".into(), |s| human(Duration::from_secs(s)));
    let steps = a
        .approvals
        .iter()
        .map(|s| {
            vec![
                s.step.to_string(),
                s.title.clone(),
                s.outcome.clone(),
                s.by.clone().unwrap_or_else(|| "-".into()),
                clock(s.at),
                s.answered_wall.clone().unwrap_or_else(|| "-".into()),
                format!(
                    "{} of {}",
                    real(s.waited_real_seconds),
                    real(s.timeout_real_seconds)
                ),
            ]
        })
        .collect();
    let all = [
        Table {
            title: "Operations",
            intro: None,
            header: &[
                "#",
                "start",
                "end",
                "duration",
                "lane",
                "VM",
                "operation",
                "state",
                "job",
                "runbook line",
            ],
            rows: operations,
        },
        Table {
            title: "Recovery plans' tasks",
            intro: Some("Each VM's task in a recovery plan's job, by the plan's group (its boot order); times are the service's."),
            header: &["#", "plan", "group", "VM", "state", "started", "ended"],
            rows: tasks,
        },
        Table {
            title: "VM states",
            intro: Some("Each VM's state as the run read it, and when: in the script's words (`status(vm).state`), with the service's own state beside it."),
            header: &["VM", "at", "state", "active on", "service state"],
            rows: vms,
        },
        Table {
            title: "Verifications",
            intro: None,
            header: &["at", "VM", "site", "checked"],
            rows: verifications,
        },
        Table {
            title: "Manual steps",
            intro: Some("`at` is on the run's clock (simulated on the embedded simulator); the answer's wall-clock time and the wait are real time, which the step's timeout counts."),
            header: &["step", "title", "outcome", "by", "at", "answered (wall clock)", "waited (real time) of timeout"],
            rows: steps,
        },
    ];
    all.into_iter().filter(|t| !t.rows.is_empty()).collect()
}

/// A list item of the report, with its sub-items.
pub(super) type ListItem = (String, Vec<String>);

/// The report's lists that have items: resumes, failures and warnings, notes.
pub(super) fn lists(a: &Audit) -> Vec<(&'static str, Vec<ListItem>)> {
    let resumes = a
        .resumes
        .iter()
        .map(|r| {
            let changed = if r.changed.is_empty() {
                String::new()
            } else {
                format!(" (changed: {})", r.changed.join(", "))
            };
            (
                format!("{} by {}{changed}", clock(r.at), r.operator),
                Vec::new(),
            )
        })
        .collect();
    let mut failures: Vec<ListItem> = a
        .failure
        .iter()
        .map(|f| (format!("the run stopped: {f}"), Vec::new()))
        .collect();
    failures.extend(
        a.operations
            .iter()
            .filter(|o| !o.errors.is_empty() || !o.warnings.is_empty())
            .map(|o| {
                (
                    format!("{} of {} ({}):", o.operation, o.vm, o.state),
                    o.errors.iter().chain(&o.warnings).cloned().collect(),
                )
            }),
    );
    let notes = a
        .notes
        .iter()
        .map(|n| (format!("{} {}", clock(n.at), n.text), Vec::new()))
        .collect();
    [
        ("Resumes", resumes),
        ("Failures and warnings", failures),
        ("Notes", notes),
    ]
    .into_iter()
    .filter(|(_, items)| !items.is_empty())
    .collect()
}
