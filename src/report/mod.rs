//! The audit record of a run, built from its journal: every operation on a timeline with
//! its lane, each VM's path through its states, job durations, approvals, the achieved
//! recovery time and failures with the service's errors. Rendered as markdown (with a
//! Mermaid Gantt chart), JSON or a self-contained HTML page; `show` prints the journal.

mod forms;
mod html;
mod markdown;
mod show;
pub mod watch;

use forms::{lists, summary, tables};

pub use html::html;
pub use markdown::markdown;
pub use show::show;

/// The version of the JSON form; it changes only when a field changes meaning or goes.
pub const JSON_FORMAT: &str = "runbook-report/1";

use crate::backend::{Item, JobInfo, Site};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::journal::{Answer, Entry, Loaded, Record, RunState, StepOutcome, Waited};
use crate::plan::render::offset;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A run's audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// [`JSON_FORMAT`]: what the JSON form's fields mean (docs/report.md).
    pub format: &'static str,
    pub run: String,
    pub runbook: String,
    /// The target, or `embedded simulator`.
    pub target: String,
    pub simulated: bool,
    pub operator: String,
    pub started: String,
    pub state: String,
    /// The parameters' values the run started with (absent when it had none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
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
    /// The script's name of the operation (`planned_failover`), or `cancel of job ID`.
    pub operation: String,
    /// The runbook line that made the call.
    pub location: Option<Place>,
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
    /// A recovery plan's job: each member's task, as last seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<crate::backend::TaskInfo>,
}

impl Operation {
    /// The job's duration by the service, else as the run saw it.
    pub fn duration(&self) -> Option<u64> {
        self.job_seconds
            .or_else(|| self.end.map(|e| e.saturating_sub(self.start)))
    }
}

/// A place in a runbook: `{file, line, column}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Place {
    /// The place the journal records as `file:line:column` (a file name may hold `:`); a
    /// text that is not one is kept whole as the file.
    pub fn parse(text: &str) -> Place {
        let mut parts = text.rsplitn(3, ':');
        let (column, line, file) = (parts.next(), parts.next(), parts.next());
        match (column.map(str::parse), line.map(str::parse), file) {
            (Some(Ok(column)), Some(Ok(line)), Some(file)) => Place {
                file: file.to_string(),
                line,
                column,
            },
            _ => Place {
                file: text.to_string(),
                line: 0,
                column: 0,
            },
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VmPath {
    pub vm: String,
    /// Each state the run read, consecutive repeats dropped.
    pub states: Vec<Observed>,
}

/// A VM's state as the run read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Seconds from the run's start.
    pub at: u64,
    /// The script's word (`status(vm).state`): `protected`, `failover_commit_pending`, ...
    pub state: &'static str,
    pub active_location: Site,
    /// The service's own protection state (`PlannedFailoverCommitRequired`, ...).
    pub service_state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: u32,
    pub title: String,
    pub by: Option<String>,
    /// When it was answered, in seconds from the run's start on the run's clock (simulated
    /// on the embedded simulator).
    pub at: u64,
    /// When it was answered on the wall clock (RFC 3339), if the journal says.
    pub answered_wall: Option<String>,
    /// How long the step waited for its answer, in real seconds.
    pub waited_real_seconds: Option<u64>,
    /// The step's timeout, in real seconds: people answer in real time at any speed.
    pub timeout_real_seconds: Option<u64>,
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

fn observed(item: &Item, at: u64) -> Observed {
    Observed {
        at,
        state: item.steady_state(),
        active_location: item.active_location,
        service_state: item.protection_state.clone(),
    }
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
            format: JSON_FORMAT,
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
            params: header.params.clone(),
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
        let mut paths: BTreeMap<String, Vec<Observed>> = BTreeMap::new();
        let mut path = |vm: &str, seen: Observed| {
            let states = paths.entry(vm.to_string()).or_default();
            let same = |o: &Observed| {
                (o.state, o.active_location, &o.service_state)
                    == (seen.state, seen.active_location, &seen.service_state)
            };
            if !states.last().is_some_and(same) {
                states.push(seen);
            }
        };
        let mut actions: BTreeMap<u64, String> = BTreeMap::new();
        for Record { seq, at, entry } in &loaded.records {
            let at = *at;
            match entry {
                Entry::Notified {
                    channel,
                    event,
                    ok: false,
                    why,
                    ..
                } => audit.notes.push(Note {
                    at: offset(at),
                    text: format!(
                        "notification `{event}` to `{channel}` was not delivered{}",
                        why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                    ),
                }),
                Entry::Notified { .. } => {}
                Entry::ActionIntent { name, .. } => {
                    actions.insert(*seq, name.clone());
                }
                Entry::ActionDone {
                    intent,
                    ok,
                    seconds,
                    why,
                    ..
                } => audit.notes.push(Note {
                    at: offset(at),
                    text: format!(
                        "action `{}` {} in {seconds:.1}s{}",
                        actions.get(intent).map_or("?", String::as_str),
                        if *ok { "succeeded" } else { "failed" },
                        why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                    ),
                }),
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
                            Some(j) if operation == "resume" => format!("resume of job {j}"),
                            Some(j) => format!("cancel of job {j}"),
                            None => operation.clone(),
                        },
                        location: line.as_deref().map(Place::parse),
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
                        tasks: Vec::new(),
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
                    operation: operation.as_str().to_string(),
                    location: line.as_deref().map(Place::parse),
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
                    tasks: Vec::new(),
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
                        // A resume answers with the plan's job it resumed: that job's row
                        // stays the plan operation's own; the resume is done once accepted.
                        Answer::Ok(job) if op.operation.starts_with("resume") => {
                            op.job = Some(job.id.clone());
                            op.state = "resumed".into();
                            op.end = Some(offset(at).max(op.start));
                            op.job_seconds = Some(0);
                        }
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
                        Waited::Done(jobs) | Waited::TimedOut(jobs) | Waited::Suspended(jobs) => {
                            jobs
                        }
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
                            path(&item.name, observed(&item, offset(at)));
                        }
                    }
                }
                Entry::Step {
                    number,
                    title,
                    outcome,
                    answered_wall,
                    waited_real_seconds,
                    timeout_real_seconds,
                } => audit.approvals.push(StepRecord {
                    step: *number,
                    title: title.clone(),
                    by: match outcome {
                        StepOutcome::Approved { by } => Some(by.clone()),
                        StepOutcome::TimedOut => None,
                    },
                    at: offset(at),
                    answered_wall: answered_wall.clone(),
                    waited_real_seconds: *waited_real_seconds,
                    timeout_real_seconds: *timeout_real_seconds,
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
                        path(&item.name, observed(item, offset(at)));
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
    if !job.tasks.is_empty() {
        op.tasks = job.tasks.clone();
    }
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

pub fn json(audit: &Audit) -> String {
    serde_json::to_string_pretty(audit).unwrap_or_default() + "\n"
}
