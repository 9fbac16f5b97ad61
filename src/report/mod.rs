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
                    });
                }
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
                            by_job.insert(job.id.clone(), i);
                            apply(op, job, offset(at));
                        }
                        Answer::Err(e) => {
                            op.state = "refused".into();
                            op.end = Some(op.start);
                            op.errors.push(e.to_string());
                        }
                    }
                }
                Entry::Waited { outcome, .. } => {
                    let jobs: &[JobInfo] = match outcome {
                        Waited::Done(jobs) | Waited::TimedOut(jobs) => jobs,
                        Waited::Failed(_) => &[],
                    };
                    for job in jobs {
                        if let Some(&i) = by_job.get(&job.id) {
                            apply(&mut audit.operations[i], job, offset(at));
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

/// Puts each operation in the first lane free at its start.
fn assign_lanes(ops: &mut [Operation]) {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].start, i));
    let mut lanes: Vec<u64> = Vec::new();
    for i in order {
        let start = ops[i].start;
        let end = ops[i].end.unwrap_or(start).max(start);
        let lane = match lanes.iter().position(|&busy_until| busy_until <= start) {
            Some(l) => l,
            None => {
                lanes.push(0);
                lanes.len() - 1
            }
        };
        lanes[lane] = end.max(start + 1);
        ops[i].lane = lane + 1;
    }
}

/// `T+hh:mm:ss`.
pub fn clock(seconds: u64) -> String {
    format!(
        "T+{:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds % 3600) / 60,
        seconds % 60
    )
}

fn span(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "-".into(), |s| human(Duration::from_secs(s)))
}

/// Table cells: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn json(audit: &Audit) -> String {
    serde_json::to_string_pretty(audit).unwrap_or_default() + "\n"
}

pub fn markdown(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {}\n", a.run, a.runbook);
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| state | {} |", a.state);
    let _ = writeln!(
        out,
        "| target | {}{} |",
        a.target,
        if a.simulated {
            " (simulated times)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "| operator | {} |", cell(&a.operator));
    let _ = writeln!(out, "| started | {} |", a.started);
    let _ = writeln!(out, "| operations | {} |", a.operations.len());
    let _ = writeln!(
        out,
        "| recovery time | {} |",
        match a.recovery_time_seconds {
            Some(s) => format!(
                "{} (first operation until every failed-over VM was verified)",
                human(Duration::from_secs(s))
            ),
            None => "not measured: a VM that was failed over was never verified after it (or none was failed over)".into(),
        }
    );
    if !a.operations.is_empty() {
        out.push_str(
            "\n## Timeline\n\n```mermaid\ngantt\n    dateFormat X\n    axisFormat %H:%M\n",
        );
        let lanes = a.operations.iter().map(|o| o.lane).max().unwrap_or(0);
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
                    o.vm,
                    i + 1,
                    a.origin.0 / 1000 + o.start,
                    a.origin.0 / 1000 + end
                );
            }
        }
        out.push_str("```\n\n");
        out.push_str("| # | start | end | duration | lane | VM | operation | state | job | runbook line |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for (i, o) in a.operations.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {}{} | {} | {} | {} |",
                i + 1,
                clock(o.start),
                o.end.map_or_else(|| "-".into(), clock),
                span(o.duration()),
                o.lane,
                o.vm,
                o.operation,
                if o.settled {
                    " (settled after a crash)"
                } else {
                    ""
                },
                o.state,
                o.job.as_deref().unwrap_or("-"),
                o.line.as_deref().unwrap_or("-")
            );
        }
    }
    if !a.vms.is_empty() {
        out.push_str("\n## VM states\n\n| VM | path |\n|---|---|\n");
        for vm in &a.vms {
            let path: Vec<String> = vm
                .states
                .iter()
                .map(|(at, s)| format!("{s} at {}", clock(*at)))
                .collect();
            let _ = writeln!(out, "| {} | {} |", vm.vm, path.join(" → "));
        }
    }
    if !a.verifications.is_empty() {
        out.push_str("\n## Verifications\n\n| at | VM | site | checked |\n|---|---|---|---|\n");
        for v in &a.verifications {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                clock(v.at),
                v.vm,
                v.site.as_str(),
                cell(&v.what)
            );
        }
    }
    if !a.approvals.is_empty() {
        out.push_str(
            "\n## Manual steps\n\n| step | title | outcome | by | at |\n|---|---|---|---|---|\n",
        );
        for s in &a.approvals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                s.step,
                cell(&s.title),
                s.outcome,
                cell(s.by.as_deref().unwrap_or("-")),
                clock(s.at)
            );
        }
    }
    if !a.resumes.is_empty() {
        out.push_str("\n## Resumes\n\n");
        for r in &a.resumes {
            let _ = writeln!(
                out,
                "- {} by {}{}",
                clock(r.at),
                r.operator,
                if r.changed.is_empty() {
                    String::new()
                } else {
                    format!(" (changed: {})", r.changed.join(", "))
                }
            );
        }
    }
    let failed: Vec<&Operation> = a
        .operations
        .iter()
        .filter(|o| !o.errors.is_empty() || !o.warnings.is_empty())
        .collect();
    if a.failure.is_some() || !failed.is_empty() {
        out.push_str("\n## Failures and warnings\n\n");
        if let Some(f) = &a.failure {
            let _ = writeln!(out, "- the run stopped: {f}");
        }
        for o in failed {
            let _ = writeln!(out, "- {} of {} ({}):", o.operation, o.vm, o.state);
            for e in o.errors.iter().chain(&o.warnings) {
                let _ = writeln!(out, "  - {}", e);
            }
        }
    }
    if !a.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &a.notes {
            let _ = writeln!(out, "- {} {}", clock(n.at), n.text);
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
                &h.sha256[..12.min(h.sha256.len())]
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
            Entry::Waited { jobs, outcome } => format!(
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
