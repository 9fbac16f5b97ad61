//! The audit record of a run, built from its journal: every operation on a timeline with
//! its lane, each VM's path through its states, job durations, approvals, the achieved
//! recovery time and failures with the service's errors. Rendered as markdown (with a
//! Mermaid Gantt chart), JSON or a self-contained HTML page; `show` prints the journal.

mod html;

pub use html::html;

use crate::backend::{Item, JobInfo, Site};
use crate::clock::{human, Timestamp};
use crate::error::Error;
use crate::journal::{Answer, Entry, Loaded, Record, RunState, StepOutcome, Waited};
use crate::plan::render::{md_table, mermaid_text, offset};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A run's audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub run: String,
    pub runbook: String,
    /// The target, or `embedded simulator`.
    pub target: String,
    pub simulated: bool,
    pub operator: String,
    pub started: String,
    pub state: String,
    /// When the run began, on the run's clock; every offset counts from here.
    #[serde(skip)]
    pub origin: Timestamp,
    pub operations: Vec<Operation>,
    pub vms: Vec<VmPath>,
    pub approvals: Vec<StepRecord>,
    pub verifications: Vec<Verification>,
    pub notes: Vec<Note>,
    pub resumes: Vec<ResumeRecord>,
    /// From the first operation until every failed-over VM was verified, in seconds.
    pub recovery_time_seconds: Option<u64>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub vm: String,
    pub operation: String,
    pub line: Option<String>,
    pub job: Option<String>,
    /// Seconds from the run's start.
    pub start: u64,
    /// When the run saw the job end, in seconds from the run's start.
    pub end: Option<u64>,
    /// How long the job took by the service's own timestamps, in seconds.
    pub job_seconds: Option<u64>,
    pub state: String,
    /// 1-based: operations in the same lane ran one after the other.
    pub lane: usize,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Found with the service after a crash rather than from its answer.
    pub settled: bool,
    /// Why nothing was issued: the VM was already where the call would take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Operation {
    /// The job's duration by the service, else as the run saw it.
    pub fn duration(&self) -> Option<u64> {
        self.job_seconds
            .or_else(|| self.end.map(|e| e.saturating_sub(self.start)))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VmPath {
    pub vm: String,
    /// `(seconds from start, state)`, consecutive repeats dropped.
    pub states: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: u32,
    pub title: String,
    pub by: Option<String>,
    pub at: u64,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub vm: String,
    pub site: Site,
    pub what: String,
    pub at: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub at: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResumeRecord {
    pub at: u64,
    pub operator: String,
    pub changed: Vec<String>,
}

fn state_of(item: &Item) -> String {
    format!(
        "{} ({})",
        item.protection_state,
        item.active_location.as_str()
    )
}

impl Audit {
    /// Builds the audit record of run `id` from its journal.
    pub fn of(id: &str, loaded: &Loaded) -> Result<Audit, Error> {
        let header = loaded
            .header()
            .ok_or_else(|| Error::Usage(format!("run {id} has no header record")))?;
        let origin = loaded.records.first().map_or(Timestamp(0), |r| r.at);
        let offset = |t: Timestamp| t.since(origin).as_secs();
        let mut audit = Audit {
            run: id.to_string(),
            runbook: crate::paths::display(&header.runbook),
            target: header
                .target
                .clone()
                .unwrap_or_else(|| "embedded simulator".into()),
            simulated: header.target.is_none(),
            operator: header.operator.clone(),
            started: header.started_wall.clone(),
            state: crate::journal::runs::state_of(loaded),
            origin,
            operations: Vec::new(),
            vms: Vec::new(),
            approvals: Vec::new(),
            verifications: Vec::new(),
            notes: Vec::new(),
            resumes: Vec::new(),
            recovery_time_seconds: None,
            failure: None,
        };
        let mut by_intent: BTreeMap<u64, usize> = BTreeMap::new();
        let mut by_job: BTreeMap<String, usize> = BTreeMap::new();
        let mut paths: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        let mut path = |vm: &str, at: u64, state: String| {
            let states = paths.entry(vm.to_string()).or_default();
            if states.last().map(|(_, s)| s) != Some(&state) {
                states.push((at, state));
            }
        };
        for Record { seq, at, entry } in &loaded.records {
            let at = *at;
            match entry {
                Entry::Intent {
                    vm,
                    operation,
                    line,
                    job,
                    ..
                } => {
                    by_intent.insert(*seq, audit.operations.len());
                    audit.operations.push(Operation {
                        vm: vm.clone(),
                        operation: match job {
                            Some(j) => format!("cancel of job {j}"),
                            None => operation.replace('_', " "),
                        },
                        line: line.clone(),
                        job: None,
                        start: offset(at),
                        end: None,
                        job_seconds: None,
                        state: "no answer recorded".into(),
                        lane: 0,
                        errors: Vec::new(),
                        warnings: Vec::new(),
                        settled: false,
                        skipped: None,
                    });
                }
                Entry::Skipped {
                    vm,
                    operation,
                    job,
                    reason,
                    line,
                } => audit.operations.push(Operation {
                    vm: vm.clone(),
                    operation: operation.as_str().replace('_', " "),
                    line: line.clone(),
                    job: Some(job.clone()),
                    start: offset(at),
                    end: Some(offset(at)),
                    job_seconds: Some(0),
                    state: "skipped".into(),
                    lane: 0,
                    errors: Vec::new(),
                    warnings: Vec::new(),
                    settled: false,
                    skipped: Some(reason.clone()),
                }),
                Entry::Issued {
                    intent,
                    answer,
                    settled,
                } => {
                    let Some(&i) = by_intent.get(intent) else {
                        continue;
                    };
                    let op = &mut audit.operations[i];
                    op.settled = *settled;
                    match answer {
                        Answer::Ok(job) => {
                            // A cancel answers with the job it cancelled: that job's row
                            // stays the operation's own.
                            if !op.operation.starts_with("cancel") {
                                by_job.insert(job.id.clone(), i);
                            }
                            apply(op, job, offset(at));
                        }
                        Answer::Err(e) => {
                            op.state = "refused".into();
                            op.end = Some(op.start);
                            op.errors.push(e.to_string());
                        }
                    }
                }
                Entry::Waited { outcome, seen, .. } => {
                    let jobs: &[JobInfo] = match outcome {
                        Waited::Done(jobs) | Waited::TimedOut(jobs) => jobs,
                        Waited::Failed(_) => &[],
                    };
                    for (k, job) in jobs.iter().enumerate() {
                        // When the run saw this job end, else when the wait returned.
                        let when = seen.get(k).map_or(at, |t| *t);
                        if let Some(&i) = by_job.get(&job.id) {
                            apply(&mut audit.operations[i], job, offset(when));
                        }
                    }
                }
                Entry::Read { call, answer, .. } if call == "item" => {
                    if let Answer::Ok(value) = answer {
                        if let Ok(item) = serde_json::from_value::<Item>(value.clone()) {
                            path(&item.name, offset(at), state_of(&item));
                        }
                    }
                }
                Entry::Step {
                    number,
                    title,
                    outcome,
                } => audit.approvals.push(StepRecord {
                    step: *number,
                    title: title.clone(),
                    by: match outcome {
                        StepOutcome::Approved { by } => Some(by.clone()),
                        StepOutcome::TimedOut => None,
                    },
                    at: offset(at),
                    outcome: match outcome {
                        StepOutcome::Approved { .. } => "approved".into(),
                        StepOutcome::TimedOut => "timed out".into(),
                    },
                }),
                Entry::Verified { vm, site, what } => audit.verifications.push(Verification {
                    vm: vm.clone(),
                    site: *site,
                    what: what.clone(),
                    at: offset(at),
                }),
                Entry::Note { text } => audit.notes.push(Note {
                    at: offset(at),
                    text: text.clone(),
                }),
                Entry::Resumed {
                    operator, changed, ..
                } => audit.resumes.push(ResumeRecord {
                    at: offset(at),
                    operator: operator.clone(),
                    changed: changed.clone(),
                }),
                Entry::End {
                    state,
                    failure,
                    items,
                } => {
                    audit.failure = match state {
                        RunState::Succeeded => None,
                        _ => failure.clone(),
                    };
                    for item in items {
                        path(&item.name, offset(at), state_of(item));
                    }
                }
                Entry::Start(_) | Entry::Read { .. } => {}
            }
        }
        audit.vms = paths
            .into_iter()
            .map(|(vm, states)| VmPath { vm, states })
            .collect();
        assign_lanes(&mut audit.operations);
        audit.recovery_time_seconds = recovery_time(&audit);
        Ok(audit)
    }
}

/// The achieved recovery time: from the first operation until every VM that was failed
/// over (or drilled) had been verified after its failover; none if one never was.
fn recovery_time(audit: &Audit) -> Option<u64> {
    let first = audit.operations.iter().map(|o| o.start).min()?;
    let mut recovered: Option<u64> = None;
    let mut failed_over: BTreeMap<&str, u64> = BTreeMap::new();
    for o in audit
        .operations
        .iter()
        .filter(|o| o.operation.ends_with("failover") && o.state == "Succeeded")
    {
        failed_over.insert(&o.vm, o.start);
    }
    for (vm, since) in failed_over {
        let verified = audit
            .verifications
            .iter()
            .filter(|v| v.vm == vm && v.at >= since)
            .map(|v| v.at)
            .min()?;
        recovered = Some(recovered.map_or(verified, |r| r.max(verified)));
    }
    recovered.map(|r| r.saturating_sub(first))
}

/// Takes what the service said of a job, seen at `seen` seconds, into its operation.
/// Times come from the run's own clock (the service's may differ); the duration from the
/// service.
fn apply(op: &mut Operation, job: &JobInfo, seen: u64) {
    op.job = Some(job.id.clone());
    op.state = job.state.as_str().to_string();
    if job.state.is_terminal() && op.end.is_none() {
        op.end = Some(seen.max(op.start));
    }
    op.job_seconds = job.duration().map(|d| d.as_secs());
    op.errors = job.errors.iter().flat_map(|e| e.lines()).collect();
    op.warnings = job.warnings.clone();
}

/// Puts each operation in a lane: operations that overlap in time are in different lanes,
/// the same rule as the plan's.
fn assign_lanes(ops: &mut [Operation]) {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].start, i));
    let spans = order.iter().map(|&i| {
        let o = &ops[i];
        let (start, end) = (o.start, o.end.unwrap_or(o.start));
        (
            o.vm.as_str(),
            Duration::from_secs(start),
            Duration::from_secs(end),
        )
    });
    let (lanes, _) = crate::plan::lanes(spans);
    for (i, lane) in order.into_iter().zip(lanes) {
        ops[i].lane = lane;
    }
}

/// `T+h:mm:ss` of an offset in seconds.
pub fn clock(seconds: u64) -> String {
    offset(Duration::from_secs(seconds))
}

fn span(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| human(Duration::from_secs(s)))
}

/// The facts at the head of every form: `(name, value)`.
fn summary(a: &Audit) -> Vec<(&'static str, String)> {
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
    vec![
        ("state", a.state.clone()),
        ("target", format!("{}{simulated}", a.target)),
        ("operator", a.operator.clone()),
        ("started", a.started.clone()),
        ("operations", a.operations.len().to_string()),
        ("recovery time", recovery),
    ]
}

/// A table of the report, in every form alike.
struct Table {
    title: &'static str,
    intro: Option<&'static str>,
    header: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

/// The report's tables that have rows: operations, VM states, verifications, manual steps.
fn tables(a: &Audit) -> Vec<Table> {
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
                o.line.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let vms = a
        .vms
        .iter()
        .map(|vm| {
            let path: Vec<String> = vm
                .states
                .iter()
                .map(|(at, s)| format!("{s} at {}", clock(*at)))
                .collect();
            vec![vm.vm.clone(), path.join(" → ")]
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
            title: "VM states",
            intro: Some("Each VM's state as the run read it, and when."),
            header: &["VM", "observed states"],
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
            intro: None,
            header: &["step", "title", "outcome", "by", "at"],
            rows: steps,
        },
    ];
    all.into_iter().filter(|t| !t.rows.is_empty()).collect()
}

/// A list item of the report, with its sub-items.
type ListItem = (String, Vec<String>);

/// The report's lists that have items: resumes, failures and warnings, notes.
fn lists(a: &Audit) -> Vec<(&'static str, Vec<ListItem>)> {
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

pub fn json(audit: &Audit) -> String {
    serde_json::to_string_pretty(audit).unwrap_or_default() + "\n"
}

/// A Mermaid Gantt chart of the operations, a section per lane.
fn gantt(a: &Audit) -> String {
    let mut out = String::from("```mermaid\ngantt\n    dateFormat X\n    axisFormat %H:%M\n");
    let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
    let origin = a.origin.0 / 1000;
    for lane in 1..=lanes {
        let _ = writeln!(out, "    section lane {lane}");
        for (i, o) in a
            .operations
            .iter()
            .enumerate()
            .filter(|(_, o)| o.lane == lane)
        {
            let tag = match o.state.as_str() {
                "Succeeded" => "done, ",
                "Failed" | "Cancelled" | "refused" => "crit, ",
                _ => "active, ",
            };
            let end = o.end.unwrap_or(o.start).max(o.start + 1);
            let _ = writeln!(
                out,
                "    {} {} :{tag}op{}, {}, {}",
                o.operation,
                mermaid_text(&o.vm),
                i + 1,
                origin + o.start,
                origin + end
            );
        }
    }
    out.push_str("```\n");
    out
}

pub fn markdown(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {}\n", a.run, a.runbook);
    md_table(
        &mut out,
        &["", ""],
        summary(a).into_iter().map(|(k, v)| vec![k.to_string(), v]),
    );
    if !a.operations.is_empty() {
        let _ = write!(out, "\n## Timeline\n\n{}", gantt(a));
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
            let _ = writeln!(out, "- {item}");
            for s in subs {
                let _ = writeln!(out, "  - {s}");
            }
        }
    }
    out
}

/// The journal, one line per record, for `runbook show`.
pub fn show(id: &str, loaded: &Loaded) -> String {
    let mut out = String::new();
    let origin = loaded.records.first().map_or(Timestamp(0), |r| r.at);
    let _ = writeln!(out, "run {id}: {}", crate::journal::runs::state_of(loaded));
    for r in &loaded.records {
        let at = clock(r.at.since(origin).as_secs());
        let what = match &r.entry {
            Entry::Start(h) => format!(
                "start {} on {} by {} (pid {} on {}), sha256 {}",
                crate::paths::display(&h.runbook),
                h.target.as_deref().unwrap_or("the embedded simulator"),
                h.operator,
                h.pid,
                h.host,
                h.sha256.chars().take(12).collect::<String>()
            ),
            Entry::Resumed {
                operator,
                pid,
                changed,
                dropped_bytes,
                ..
            } => format!(
                "resumed by {operator} (pid {pid}){}{}",
                if changed.is_empty() {
                    String::new()
                } else {
                    format!(", changed: {}", changed.join(", "))
                },
                if *dropped_bytes > 0 {
                    format!(", dropped a torn record of {dropped_bytes} bytes")
                } else {
                    String::new()
                }
            ),
            Entry::Read { call, key, answer } => format!(
                "read {call} {key}: {}",
                match answer {
                    Answer::Ok(_) => "ok".to_string(),
                    Answer::Err(e) => e.to_string(),
                }
            ),
            Entry::Intent {
                vm,
                operation,
                job,
                line,
                ..
            } => format!(
                "INTENT {} of {vm}{}",
                job.as_ref()
                    .map_or_else(|| operation.clone(), |j| format!("cancel of job {j}")),
                line.as_ref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            ),
            Entry::Issued {
                intent,
                answer,
                settled,
            } => format!(
                "issued (record {intent}){}: {}",
                if *settled {
                    ", settled after a crash"
                } else {
                    ""
                },
                match answer {
                    Answer::Ok(j) => format!("job {} {}", j.id, j.state),
                    Answer::Err(e) => e.to_string(),
                }
            ),
            Entry::Waited { jobs, outcome, .. } => format!(
                "waited for {} job(s): {}",
                jobs.len(),
                match outcome {
                    Waited::Done(done) => done
                        .iter()
                        .map(|j| format!("{} {} {}", j.operation, j.vm, j.state))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Waited::TimedOut(_) => "timed out".into(),
                    Waited::Failed(e) => e.to_string(),
                }
            ),
            Entry::Step {
                number,
                title,
                outcome,
            } => format!(
                "manual step {number} `{title}`: {}",
                match outcome {
                    StepOutcome::Approved { by } => format!("approved by {by}"),
                    StepOutcome::TimedOut => "timed out".into(),
                }
            ),
            Entry::Verified { vm, site, what } => {
                format!("verified {vm} on the {} site: {what}", site.as_str())
            }
            Entry::Note { text } => format!("note: {text}"),
            Entry::Skipped {
                vm,
                operation,
                reason,
                ..
            } => format!("SKIPPED {operation} of {vm}: {reason}; nothing was issued"),
            Entry::End { state, failure, .. } => format!(
                "end: {}{}",
                state.as_str(),
                failure
                    .as_ref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(out, "{:>5} {at} {what}", r.seq);
    }
    if loaded.torn > 0 {
        let _ = writeln!(
            out,
            "      (a torn last record of {} bytes follows; a resume drops it)",
            loaded.torn
        );
    }
    out
}
