//! Every call through the journal: reads answered from it on resume and recorded otherwise;
//! operations whose intent is on disk before the request leaves and whose answer follows;
//! settling an intent whose answer was lost; and the refusal when a resumed run takes
//! another path than its journal (divergence).

use super::{Host, Raise};
use crate::backend::{BackendError, JobInfo, OperationRequest};
use crate::clock::Timestamp;
use crate::diagnostics::{Code, Finding};
use crate::journal::{Answer, Entry, Journal, Record};
use rhai::NativeCallContext;

impl Host {
    /// Records a description of the run (a note, a verification) unless it is replayed.
    pub(super) fn describe(&self, entry: Entry) {
        if let Some(j) = &self.journal {
            j.describe(self.clock.now(), entry);
        }
    }

    /// The run took another path than the journal records: it cannot be resumed safely.
    pub(super) fn diverged(&self, ctx: &NativeCallContext, doing: &str, recorded: Record) -> Raise {
        self.refuse(
            ctx,
            Finding::new(
                Code::Refused,
                format!(
                    "the resumed run does not follow its journal: it now makes {doing}, where record {} of the journal is {}",
                    recorded.seq,
                    recorded.entry.describe()
                ),
            )
            .label("the run went another way here")
            .help("nothing was issued; the runbook behaves differently than when the run started (did it or its inventory change?). Look at `runbook show RUN` and start a new run"),
        )
    }

    /// Like [`Host::diverged`], for a record that matched in kind but not in substance.
    pub(super) fn diverged_at(
        &self,
        ctx: &NativeCallContext,
        doing: &str,
        seq: u64,
        recorded: &str,
    ) -> Raise {
        self.refuse(
            ctx,
            Finding::new(
                Code::Refused,
                format!(
                    "the resumed run does not follow its journal: it now makes {doing}, where record {seq} of the journal has {recorded}"
                ),
            )
            .label("the run went another way here")
            .help("nothing was issued; the runbook behaves differently than when the run started. Look at `runbook show RUN` and start a new run"),
        )
    }

    /// A read, answered from the journal on resume and recorded otherwise. A recorded
    /// failure that is not the service's own answer (it could not be reached, the
    /// credentials were rejected) with nothing after it is read again: the run stopped there.
    pub(super) fn read<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        ctx: &NativeCallContext,
        call: &str,
        key: &str,
        live: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<Result<T, BackendError>, Raise> {
        self.read_as(ctx, call, key, false, live)
    }

    /// [`Host::read`] of what changes while nobody looks (a job's state): an answer the
    /// last attempt stopped on is stale, whatever it was, and is read again.
    pub(super) fn read_fresh<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        ctx: &NativeCallContext,
        call: &str,
        key: &str,
        live: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<Result<T, BackendError>, Raise> {
        self.read_as(ctx, call, key, true, live)
    }

    fn read_as<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        ctx: &NativeCallContext,
        call: &str,
        key: &str,
        fresh: bool,
        live: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<Result<T, BackendError>, Raise> {
        let Some(j) = &self.journal else {
            return Ok(live());
        };
        loop {
            match j.next_answer() {
                Some(Record {
                    seq,
                    entry:
                        Entry::Read {
                            call: c,
                            key: k,
                            answer,
                        },
                    ..
                }) if c == call && k == key => match answer {
                    // The attempt stopped on it: the next one's answer follows, if any.
                    ref a
                        if j.stopped_on(seq)
                            && (fresh || matches!(a, Answer::Err(e) if !e.is_answer())) =>
                    {
                        if j.replaying() {
                            continue;
                        }
                        break;
                    }
                    Answer::Ok(v) => {
                        self.replayed_read.set(true);
                        return Ok(serde_json::from_value(v).map_err(|e| {
                            BackendError::Transport(format!(
                                "the journal's answer is unreadable: {e}"
                            ))
                        }));
                    }
                    Answer::Err(e) => {
                        self.replayed_read.set(true);
                        return Ok(Err(e));
                    }
                },
                Some(other) => {
                    return Err(self.diverged(ctx, &format!("a read of {call} `{key}`"), other))
                }
                None => break,
            }
        }
        self.replayed_read.set(false);
        let result = live();
        let answer = match &result {
            Ok(v) => serde_json::to_value(v).map(Answer::Ok).ok(),
            Err(e) => Some(Answer::Err(e.clone())),
        };
        if let Some(answer) = answer {
            let entry = Entry::Read {
                call: call.to_string(),
                key: key.to_string(),
                answer,
            };
            if let Err(e) = j.append(self.clock.now(), entry) {
                tracing::warn!("{e}");
            }
        }
        Ok(result)
    }

    /// Refuses a mutating call when the journal cannot be written.
    fn journal_writable(
        &self,
        ctx: &NativeCallContext,
        what: &str,
        j: &Journal,
    ) -> Result<(), Raise> {
        match j.broken() {
            None => Ok(()),
            Some(why) => Err(self.journal_failed(ctx, what, why)),
        }
    }

    /// Starts an operation through the journal: its intent is on disk before the request
    /// leaves, and its answer after. On resume, a recorded answer is replayed; an intent
    /// without an answer is settled with the service before anything is sent again.
    pub(super) fn issue(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        request: OperationRequest,
    ) -> Result<(Result<JobInfo, BackendError>, bool), Raise> {
        let Some(j) = &self.journal else {
            if let Some(job) = self.adopt_inherited(ctx, None, name, &request)? {
                return Ok((Ok(job), false));
            }
            return Ok((
                self.exec.block_on(self.backend.start(name, &request)),
                false,
            ));
        };
        let op = request.operation;
        match j.next_answer() {
            Some(Record {
                seq,
                at,
                entry:
                    Entry::Intent {
                        vm,
                        operation,
                        key,
                        request: recorded,
                        ..
                    },
            }) if vm == name && operation == op.as_str() => {
                let request = OperationRequest {
                    key: Some(key),
                    ..request
                };
                let same = |r: OperationRequest| OperationRequest { key: None, ..r };
                if recorded.is_some_and(|r| same(r) != same(request.clone())) {
                    return Err(self.diverged_at(
                        ctx,
                        &format!("{op} of `{name}` with other parameters"),
                        seq,
                        "the same operation with the parameters the run started with",
                    ));
                }
                loop {
                    return match j.next_answer() {
                        Some(Record {
                            seq: answered,
                            entry: Entry::Issued { intent, answer, .. },
                            ..
                        }) if intent == seq => {
                            let answer: Result<JobInfo, BackendError> = answer.into();
                            // A lost (or unbelieved) answer the run stopped on: the next
                            // attempt settled it (its answer follows), or the service is
                            // asked now what became of it.
                            if answer.as_ref().is_err_and(|e| !e.is_answer())
                                && j.stopped_on(answered)
                            {
                                if j.replaying() {
                                    continue;
                                }
                                // Refused credentials: the request was not taken (no
                                // token, or a 401), so there is no job to look for.
                                let taken = !matches!(answer, Err(BackendError::Credentials(_)));
                                return self
                                    .settle(ctx, j, (seq, at), name, request, taken)
                                    .map(|a| (a, false));
                            }
                            Ok((answer, true))
                        }
                        Some(other) => Err(self.diverged(
                            ctx,
                            &format!("the answer to {op} of `{name}`"),
                            other,
                        )),
                        None => self
                            .settle(ctx, j, (seq, at), name, request, true)
                            .map(|a| (a, false)),
                    };
                }
            }
            Some(other) => return Err(self.diverged(ctx, &format!("{op} of `{name}`"), other)),
            None => {}
        }
        if let Some(job) = self.adopt_inherited(ctx, Some(j), name, &request)? {
            return Ok((Ok(job), false));
        }
        self.journal_writable(ctx, &format!("{op} of `{name}`"), j)?;
        let seq = j.next_seq();
        let request = OperationRequest {
            key: Some(j.key(seq)),
            ..request
        };
        let intent = Entry::Intent {
            vm: name.to_string(),
            operation: op.as_str().to_string(),
            request: Some(request.clone()),
            job: None,
            action: None,
            key: j.key(seq),
            line: Some(self.site(ctx).runbook_location().to_string()),
        };
        j.append(self.clock.now(), intent)
            .map_err(|why| self.journal_failed(ctx, &format!("{op} of `{name}`"), why))?;
        let answer = self.exec.block_on(self.backend.start(name, &request));
        self.record_issued(j, seq, &answer, false);
        Ok((answer, false))
    }

    /// The job of the same operation on `name` that the run this one took over from
    /// started and did not see end: adopted (and recorded as this run's, with the old
    /// request's key, so a resume finds it too) if it is still in flight, rather than
    /// issued a second time. `None` when there is none, it ended, or its request never
    /// reached the service: then the operation is issued as usual.
    fn adopt_inherited(
        &self,
        ctx: &NativeCallContext,
        j: Option<&Journal>,
        name: &str,
        request: &OperationRequest,
    ) -> Result<Option<JobInfo>, Raise> {
        let same = |r: &OperationRequest| {
            OperationRequest {
                key: None,
                ..r.clone()
            } == OperationRequest {
                key: None,
                ..request.clone()
            }
        };
        let found = {
            let mut inherited = self.inherited.borrow_mut();
            let Some(at) = inherited.iter().position(|u| {
                u.vm == name
                    && u.operation == request.operation
                    && u.request.as_ref().is_none_or(same)
            }) else {
                return Ok(None);
            };
            inherited.remove(at)
        };
        let op = request.operation;
        let old = OperationRequest {
            key: Some(found.key.clone()),
            ..request.clone()
        };
        let now = match &found.job {
            Some(job) => self.exec.block_on(self.backend.job(&job.id)).map(Some),
            None => self
                .exec
                .block_on(self.backend.find_started(name, &old, found.at)),
        };
        let job = match (now, &found.job) {
            (Ok(Some(job)), _) if !job.state.is_terminal() => job,
            // It ended, or its request never reached the service: nothing to adopt.
            (Ok(_), _) => return Ok(None),
            // Not readable now: following what is known is safe, issuing it again is not.
            (Err(_), Some(known)) => known.clone(),
            (Err(e), None) => {
                return Err(self.refuse(
                    ctx,
                    Finding::new(
                        Code::Refused,
                        format!("cannot tell whether the {op} of `{name}` that run {} issued reached the service: {e}", found.run),
                    )
                    .help("nothing was sent. Check the vault's job list for the operation; run again once the service answers"),
                ))
            }
        };
        if let Some(j) = j {
            let what = format!("{op} of `{name}`");
            self.journal_writable(ctx, &what, j)?;
            let seq = j.next_seq();
            let intent = Entry::Intent {
                vm: name.to_string(),
                operation: op.as_str().to_string(),
                request: Some(old),
                job: None,
                action: None,
                key: found.key.clone(),
                line: Some(self.site(ctx).runbook_location().to_string()),
            };
            j.append(self.clock.now(), intent)
                .map_err(|why| self.journal_failed(ctx, &what, why))?;
            self.record_issued(j, seq, &Ok(job.clone()), true);
        }
        self.observer.note(&format!(
            "{op} of `{name}`: adopted job {} that run {} started and did not see end; not issued again",
            job.id, found.run
        ));
        Ok(Some(job))
    }

    fn journal_failed(&self, ctx: &NativeCallContext, what: &str, why: String) -> Raise {
        self.refuse(
            ctx,
            Finding::new(Code::Refused, format!("{what} was not issued: {why}"))
                .help("free the disk (or fix the folder's permissions, or let the state store be reached again), then `runbook resume` the run; jobs already started go on in the service"),
        )
    }

    /// Records the answer to intent `seq`, a lost one too (in its place, so that a script
    /// that handled it replays the same way; a resume settles it only when nothing follows).
    fn record_issued(
        &self,
        j: &Journal,
        seq: u64,
        answer: &Result<JobInfo, BackendError>,
        settled: bool,
    ) {
        let entry = Entry::Issued {
            intent: seq,
            answer: Answer::from(answer.clone()),
            settled,
        };
        if let Err(e) = j.append(self.clock.now(), entry) {
            tracing::warn!("{e}");
        }
    }

    /// An intent whose answer never reached the journal (the runner crashed), or was lost
    /// on the way: finds the job it created (unless `may_be_taken` is false: the service
    /// refused the request's credentials); if the service has none and the VM still allows
    /// the operation, the request never arrived and is sent now (with the same key);
    /// otherwise stops.
    fn settle(
        &self,
        ctx: &NativeCallContext,
        j: &Journal,
        (seq, at): (u64, Timestamp),
        name: &str,
        request: OperationRequest,
        may_be_taken: bool,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let op = request.operation;
        let cannot = |why: String| {
            self.refuse(
                ctx,
                Finding::new(
                    Code::Refused,
                    format!("cannot tell whether the {op} of `{name}` (journal record {seq}) reached the service: {why}"),
                )
                .help("nothing was sent again. Check the vault's job list for the operation; resume again once the service answers"),
            )
        };
        let found = if may_be_taken {
            self.exec
                .block_on(self.backend.find_started(name, &request, at))
                .map_err(|e| cannot(e.to_string()))?
        } else {
            None
        };
        if let Some(job) = found {
            self.observer.note(&format!(
                "{op} of `{name}`: found job {} started before the interruption; following it",
                job.id
            ));
            let answer = Ok(job);
            self.record_issued(j, seq, &answer, true);
            return Ok(answer);
        }
        if request.plan {
            // The plan must still allow the operation, with no job of its own running.
            let plan = self
                .exec
                .block_on(self.backend.plan_state(name))
                .map_err(|e| cannot(e.to_string()))?;
            if !plan.allows(op) || plan.current_job.is_some() {
                return Err(cannot(format!(
                    "the service has no job for it, and recovery plan `{name}` now allows {}{}",
                    if plan.allowed_operations.is_empty() {
                        "no operation".to_string()
                    } else {
                        plan.allowed_operations.join(", ")
                    },
                    plan.current_job
                        .as_deref()
                        .map(|job| format!(", with job {job} running"))
                        .unwrap_or_default()
                )));
            }
            // What cannot be undone goes out only to members still as they were verified.
            if op == crate::backend::Operation::Commit {
                let members = self
                    .state
                    .borrow()
                    .plan_members
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                for vm in members {
                    let item = self
                        .exec
                        .block_on(self.backend.item(&vm))
                        .map_err(|e| cannot(e.to_string()))?;
                    self.still_verified(ctx, &vm, op, &item)?;
                }
            }
            return self.send_settled(ctx, j, seq, name, request);
        }
        let item = self
            .exec
            .block_on(self.backend.item(name))
            .map_err(|e| cannot(e.to_string()))?;
        // The VM must still be where the intent found it: the request never arrived.
        let moved = request
            .direction
            .is_some_and(|d| d.source() != item.active_location);
        if !item.allows(op) || item.current_job.is_some() || moved {
            return Err(cannot(format!(
                "the service has no job for it, and `{name}` is now {}{}",
                item.protection_state,
                item.current_job
                    .as_deref()
                    .map(|job| format!(" with job {job} running"))
                    .unwrap_or_default()
            )));
        }
        // What cannot be undone goes out only to a VM still as it was verified.
        if op == crate::backend::Operation::Commit {
            self.still_verified(ctx, name, op, &item)?;
        }
        self.send_settled(ctx, j, seq, name, request)
    }

    /// Sends the request of intent `seq`, which the service proved it never received.
    fn send_settled(
        &self,
        ctx: &NativeCallContext,
        j: &Journal,
        seq: u64,
        name: &str,
        request: OperationRequest,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let (op, target) = (request.operation, request.target(name));
        self.observer.note(&format!(
            "{op} of {target} never reached the service before the interruption; issuing it now"
        ));
        self.journal_writable(ctx, &format!("{op} of {target}"), j)?;
        let answer = self.exec.block_on(self.backend.start(name, &request));
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }

    /// The recorded answer to intent `seq`: `None` when there is none, or when it is a lost
    /// answer the last attempt stopped on (later attempts' answers superseding earlier ones).
    fn answer_of(
        &self,
        j: &Journal,
        seq: u64,
    ) -> Option<Result<Result<JobInfo, BackendError>, Record>> {
        loop {
            return match j.next_answer()? {
                Record {
                    seq: answered,
                    entry: Entry::Issued { intent, answer, .. },
                    ..
                } if intent == seq => {
                    let answer: Result<JobInfo, BackendError> = answer.into();
                    if answer.as_ref().is_err_and(|e| !e.is_answer()) && j.stopped_on(answered) {
                        if j.replaying() {
                            continue;
                        }
                        return None;
                    }
                    Some(Ok(answer))
                }
                other => Some(Err(other)),
            };
        }
    }

    /// Resumes a plan's job suspended at manual action `action`, through the journal. An
    /// unsettled resume is sent again only while the job still waits at that action: a job
    /// that went on (or waits at another action) was resumed already.
    pub(super) fn issue_resume(
        &self,
        ctx: &NativeCallContext,
        job: &JobInfo,
        action: &str,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let comments = format!("approved in runbook: {action}");
        let send = || {
            self.exec
                .block_on(self.backend.resume_job(&job.id, &comments))
        };
        let Some(j) = &self.journal else {
            return Ok(send());
        };
        let what = format!("the resume of job {}", job.id);
        let seq = match j.next_answer() {
            Some(Record {
                seq,
                entry:
                    Entry::Intent {
                        job: Some(id),
                        operation,
                        ..
                    },
                ..
            }) if id == job.id && operation == "resume" => match self.answer_of(j, seq) {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(other)) => return Err(self.diverged(ctx, &what, other)),
                // Never answered, or its answer was lost: the job says what became of it.
                None => {
                    let now = self.exec.block_on(self.backend.job(&job.id));
                    match &now {
                        Ok(info)
                            if info.waiting.as_deref() == Some(action)
                                && !info.state.is_terminal() =>
                        {
                            seq
                        }
                        Ok(_) => {
                            self.record_issued(j, seq, &now, true);
                            return Ok(now);
                        }
                        Err(e) => {
                            return Err(self.refuse(
                                ctx,
                                Finding::new(
                                    Code::Refused,
                                    format!("cannot tell whether {what} (journal record {seq}) reached the service: {e}"),
                                )
                                .help("nothing was sent again; resume again once the service answers"),
                            ))
                        }
                    }
                }
            },
            Some(other) => return Err(self.diverged(ctx, &what, other)),
            None => {
                self.journal_writable(ctx, &what, j)?;
                let seq = j.next_seq();
                let intent = Entry::Intent {
                    vm: job.vm.clone(),
                    operation: "resume".into(),
                    request: None,
                    job: Some(job.id.clone()),
                    action: Some(action.to_string()),
                    key: j.key(seq),
                    line: Some(self.site(ctx).runbook_location().to_string()),
                };
                j.append(self.clock.now(), intent)
                    .map_err(|why| self.journal_failed(ctx, &what, why))?;
                seq
            }
        };
        let answer = send();
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }

    /// Cancels a job through the journal, as [`Host::issue`] starts one. Cancelling again
    /// is harmless, so an unsettled cancel is simply sent again unless the job ended.
    pub(super) fn issue_cancel(
        &self,
        ctx: &NativeCallContext,
        job: &JobInfo,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let Some(j) = &self.journal else {
            return Ok(self.exec.block_on(self.backend.cancel_job(&job.id)));
        };
        let what = format!("the cancel of job {}", job.id);
        let seq = match j.next_answer() {
            Some(Record {
                seq,
                entry:
                    Entry::Intent {
                        job: Some(id),
                        operation,
                        ..
                    },
                ..
            }) if id == job.id && operation == "cancel" => match j.next_answer() {
                Some(Record {
                    entry: Entry::Issued { intent, answer, .. },
                    ..
                }) if intent == seq => return Ok(answer.into()),
                Some(other) => return Err(self.diverged(ctx, &what, other)),
                None => {
                    let now = self.exec.block_on(self.backend.job(&job.id));
                    if let Ok(info) = &now {
                        if info.state.is_terminal() {
                            self.record_issued(j, seq, &now, true);
                            return Ok(now);
                        }
                    }
                    seq
                }
            },
            Some(other) => return Err(self.diverged(ctx, &what, other)),
            None => {
                self.journal_writable(ctx, &what, j)?;
                let seq = j.next_seq();
                let intent = Entry::Intent {
                    vm: job.vm.clone(),
                    operation: "cancel".into(),
                    request: None,
                    job: Some(job.id.clone()),
                    action: None,
                    key: j.key(seq),
                    line: Some(self.site(ctx).runbook_location().to_string()),
                };
                j.append(self.clock.now(), intent)
                    .map_err(|why| self.journal_failed(ctx, &what, why))?;
                seq
            }
        };
        let answer = self.exec.block_on(self.backend.cancel_job(&job.id));
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }
}
