//! `runbook show`: a run's journal, one line per record, as it happened.

use super::clock;
use crate::clock::{human, Timestamp};
use crate::journal::{Answer, Entry, Loaded, Record, StepOutcome, Waited};
use std::fmt::Write as _;

/// The journal, one line per record, for `runbook show`.
pub fn show(id: &str, loaded: &Loaded) -> String {
    let mut out = String::new();
    let origin = loaded.records.first().map_or(Timestamp(0), |r| r.at);
    let _ = writeln!(out, "run {id}: {}", crate::journal::runs::state_of(loaded));
    for r in &loaded.records {
        let _ = writeln!(out, "{}", line(r, origin));
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

/// One record as `runbook show` prints it, its time counted from `origin` (the run's start).
pub(crate) fn line(r: &Record, origin: Timestamp) -> String {
    let at = clock(r.at.since(origin).as_secs());
    let what = match &r.entry {
        Entry::Notified {
            channel,
            event,
            ok,
            attempts,
            why,
        } => format!(
            "notification `{event}` to `{channel}` {} after {attempts} attempt(s){}",
            if *ok { "delivered" } else { "not delivered" },
            why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
        ),
        Entry::ActionIntent { name, key, line } => format!(
            "action `{name}` starts (key {key}){}",
            line.as_deref()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default()
        ),
        Entry::ActionDone {
            intent,
            ok,
            exit,
            status,
            seconds,
            why,
            ..
        } => format!(
            "action of record {intent} {} in {seconds:.1}s{}{}",
            if *ok { "succeeded" } else { "failed" },
            exit.or(status.map(i32::from))
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
        ),
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
                .map_or_else(|| operation.clone(), |j| format!("{operation} of job {j}")),
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
                Waited::Suspended(jobs) => format!(
                    "suspended at manual action {}",
                    jobs.iter()
                        .filter_map(|j| j.waiting.as_deref())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Waited::Failed(e) => e.to_string(),
            }
        ),
        Entry::Step {
            number,
            title,
            outcome,
            answered_wall,
            waited_real_seconds,
            ..
        } => format!(
            "manual step {number} `{title}`: {}{}",
            match outcome {
                StepOutcome::Approved { by } => format!("approved by {by}"),
                StepOutcome::TimedOut => "timed out".into(),
            },
            match (answered_wall, waited_real_seconds) {
                (Some(wall), Some(waited)) => format!(
                    " at {wall} on the wall clock, after {} of real time",
                    human(std::time::Duration::from_secs(*waited))
                ),
                _ => String::new(),
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
    format!("{:>5} {at} {what}", r.seq)
}
