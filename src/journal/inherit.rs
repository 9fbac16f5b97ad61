//! The jobs a run started and did not see end, read from its journal: what a run that takes
//! over its stale lock (`--take-over`) adopts when its runbook reaches the same operation,
//! instead of issuing it a second time.

use super::{Answer, Entry, Loaded, Waited};
use crate::backend::{JobInfo, Operation, OperationRequest};
use crate::clock::Timestamp;

/// An operation a run issued (or was about to) whose end its journal does not show.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    /// The run that issued it.
    pub run: String,
    pub vm: String,
    pub operation: Operation,
    /// Its parameters, as recorded (older journals have none).
    pub request: Option<OperationRequest>,
    /// The client request id it was sent with: how its job is found when its answer is lost.
    pub key: String,
    /// When the request may have left.
    pub at: Timestamp,
    /// Its job as last recorded; none when the answer never reached the journal (or was
    /// lost on the way).
    pub job: Option<JobInfo>,
}

impl Unfinished {
    /// `planned_failover of app-01 (job X)`, for the operator.
    pub fn describe(&self) -> String {
        match &self.job {
            Some(job) => format!("{} of {} (job {})", self.operation, self.vm, job.id),
            None => format!(
                "{} of {} (its answer is not known)",
                self.operation, self.vm
            ),
        }
    }
}

/// The operations of the run `loaded` that may still be in flight: issued without a recorded
/// end. Refused ones, cancels and jobs a wait saw end are left out.
pub fn unfinished(loaded: &Loaded) -> Vec<Unfinished> {
    let run = loaded.header().map(|h| h.run.clone()).unwrap_or_default();
    let mut open: Vec<(u64, Unfinished)> = Vec::new();
    for record in &loaded.records {
        match &record.entry {
            Entry::Intent {
                vm,
                operation,
                request,
                key,
                ..
            } => {
                let Some(operation) = Operation::parse(operation) else {
                    continue; // a cancel
                };
                open.push((
                    record.seq,
                    Unfinished {
                        run: run.clone(),
                        vm: vm.clone(),
                        operation,
                        request: request.clone(),
                        key: key.clone(),
                        at: record.at,
                        job: None,
                    },
                ));
            }
            Entry::Issued { intent, answer, .. } => {
                let Some(at) = open.iter().position(|(seq, _)| seq == intent) else {
                    continue;
                };
                match answer {
                    Answer::Ok(job) if job.state.is_terminal() => {
                        open.remove(at);
                    }
                    Answer::Ok(job) => open[at].1.job = Some(job.clone()),
                    // Refused by the service: nothing runs.
                    Answer::Err(e) if e.is_answer() => {
                        open.remove(at);
                    }
                    // Lost on the way: it may have been issued.
                    Answer::Err(_) => {}
                }
            }
            Entry::Waited { outcome, .. } => match outcome {
                Waited::Done(done) => open.retain(|(_, u)| {
                    !u.job
                        .as_ref()
                        .is_some_and(|j| done.iter().any(|d| d.id == j.id))
                }),
                Waited::TimedOut(running) | Waited::Suspended(running) => {
                    for (_, u) in &mut open {
                        if let Some(now) = running
                            .iter()
                            .find(|r| u.job.as_ref().is_some_and(|j| j.id == r.id))
                        {
                            u.job = Some(now.clone());
                        }
                    }
                }
                Waited::Failed(_) => {}
            },
            _ => {}
        }
    }
    open.into_iter().map(|(_, u)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendError, JobState, ServiceError};
    use crate::journal::Record;

    fn job(id: &str, state: JobState) -> JobInfo {
        JobInfo {
            id: id.into(),
            operation: Operation::PlannedFailover,
            vm: "vm".into(),
            state,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: Timestamp(0),
            ended: None,
            retry_after: None,
            expected_end: None,
            skipped: None,
            plan: false,
            tasks: Vec::new(),
            waiting: None,
        }
    }

    fn intent(seq: u64, vm: &str, operation: &str) -> Record {
        Record {
            seq,
            at: Timestamp(seq),
            entry: Entry::Intent {
                vm: vm.into(),
                operation: operation.into(),
                request: None,
                job: None,
                action: None,
                key: format!("key-{seq}"),
                line: None,
            },
        }
    }

    fn issued(seq: u64, intent: u64, answer: Answer<JobInfo>) -> Record {
        Record {
            seq,
            at: Timestamp(seq),
            entry: Entry::Issued {
                intent,
                answer,
                settled: false,
            },
        }
    }

    #[test]
    fn only_operations_without_a_recorded_end_are_unfinished() {
        let refused = BackendError::Service(ServiceError {
            code: "OperationNotAllowed".into(),
            message: "no".into(),
            possible_causes: String::new(),
            recommended_action: String::new(),
        });
        let records = vec![
            // Waited for and ended.
            intent(1, "a", "planned_failover"),
            issued(2, 1, Answer::Ok(job("j-a", JobState::NotStarted))),
            // Still running when the wait timed out.
            intent(3, "b", "planned_failover"),
            issued(4, 3, Answer::Ok(job("j-b", JobState::NotStarted))),
            Record {
                seq: 5,
                at: Timestamp(5),
                entry: Entry::Waited {
                    jobs: vec!["j-a".into(), "j-b".into()],
                    outcome: Waited::Done(vec![job("j-a", JobState::Succeeded)]),
                    seen: Vec::new(),
                },
            },
            Record {
                seq: 6,
                at: Timestamp(6),
                entry: Entry::Waited {
                    jobs: vec!["j-b".into()],
                    outcome: Waited::TimedOut(vec![job("j-b", JobState::InProgress)]),
                    seen: Vec::new(),
                },
            },
            // Refused: nothing runs.
            intent(7, "c", "commit"),
            issued(8, 7, Answer::Err(refused)),
            // Lost on the way, and never answered.
            intent(9, "d", "commit"),
            issued(10, 9, Answer::Err(BackendError::Transport("lost".into()))),
            intent(11, "e", "reverse_replicate"),
            // A cancel is not an operation to adopt.
            intent(12, "b", "cancel"),
        ];
        let loaded = Loaded {
            path: "journal.jsonl".into(),
            records,
            good_len: 0,
            torn: 0,
            running: false,
            superseded: None,
            holder: None,
        };
        let open = unfinished(&loaded);
        let shown: Vec<String> = open.iter().map(Unfinished::describe).collect();
        assert_eq!(
            shown,
            [
                "planned_failover of b (job j-b)",
                "commit of d (its answer is not known)",
                "reverse_replicate of e (its answer is not known)",
            ]
        );
        assert_eq!(open[0].job.as_ref().unwrap().state, JobState::InProgress);
        assert_eq!((open[1].key.as_str(), open[1].at), ("key-9", Timestamp(9)));
    }
}
