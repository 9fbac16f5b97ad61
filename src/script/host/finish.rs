//! The end of a run: the latest state of every job not known to have ended, and what the
//! runbook leaves behind (jobs never waited for, drills not cleaned up, VMs without
//! replication), as warnings or, in a dry run, as the findings `check` reports.

use super::{Host, JobRecord, Mode};
use crate::backend::Operation;
use crate::diagnostics::{Code, Finding, Severity};

impl Host {
    /// The jobs not known to have ended.
    fn open_jobs(&self) -> Vec<String> {
        self.state
            .borrow()
            .jobs
            .iter()
            .filter(|r| !r.info.state.is_terminal())
            .map(|r| r.info.id.clone())
            .collect()
    }

    /// Asks the service once for every job not known to have ended, so the run's record
    /// and the script's handles show their latest state (for the summary, also after a
    /// failure).
    pub fn refresh_jobs(&self) {
        for id in &self.open_jobs() {
            if let Ok(info) = self.exec.block_on(self.backend.job(id)) {
                self.update(&info);
            }
        }
    }

    /// Checks the state the runbook leaves behind. In a dry run, first lets every job the
    /// service still runs finish, as the real service would.
    pub fn finish(&self) {
        if self.mode == Mode::Check {
            let open = self.open_jobs();
            let mut last = self.clock.now();
            // Let the service finish what it runs, as the real one would.
            for id in &open {
                if let Ok(info) = self.exec.block_on(self.backend.job(id)) {
                    last = last.max(info.expected_end.unwrap_or(last));
                }
            }
            let wait = last.since(self.clock.now());
            if !wait.is_zero() {
                self.sleep(wait);
            }
        }
        self.refresh_jobs();
        let severity = |code: Code| match self.mode {
            Mode::Check => code.severity(),
            Mode::Run => Severity::Warning,
        };
        let unwaited: Vec<JobRecord> = self
            .state
            .borrow()
            .jobs
            .iter()
            .filter(|r| !r.waited)
            .cloned()
            .collect();
        for rec in unwaited {
            self.warn(
                self.at(
                    Finding::new(
                        Code::JobNotWaited,
                        format!(
                            "the {} job of `{}` is never waited for",
                            rec.info.operation, rec.info.vm
                        ),
                    )
                    .label("job started here, never waited for")
                    .help("wait for it with wait_job(job), or collect the jobs and wait_all(jobs)"),
                    &rec.site,
                ),
            );
        }
        let (last_op, drills) = {
            let st = self.state.borrow();
            (st.last_op.clone(), st.drills.clone())
        };
        for (name, site) in last_op {
            let Some(item) = self.item(&name) else {
                continue;
            };
            if item.current_job.is_some() {
                continue;
            }
            if item.test_failover_state.is_some() {
                let at = drills.get(&name).unwrap_or(&site);
                self.warn(
                    self.at(
                        Finding::new(Code::DrillNotCleanedUp, format!("the drill of `{name}` is never cleaned up"))
                            .label("test failover started here")
                            .help(format!(
                                "end the drill with cleanup_test_failover({name:?}) and wait for it, even when verification fails (use try/catch, or the stdlib's drill)"
                            )),
                        at,
                    )
                    .severity(severity(Code::DrillNotCleanedUp)),
                );
            } else if !item.replicating {
                let site_name = item.active_location.as_str();
                let (message, help) = if item.allows(Operation::Commit) {
                    (
                        format!(
                            "`{name}` was failed over but never committed ({}, active on the {site_name} site)",
                            item.protection_state
                        ),
                        format!(
                            "until a commit it runs without replication and cannot be reverse replicated: verify it on the {site_name} site, commit({name:?}) (which deletes the other recovery points), then reverse_replicate({name:?}) once both sites are reachable"
                        ),
                    )
                } else {
                    let next = if item.protection_state.contains("Committed") {
                        format!("reverse_replicate({name:?}) and wait for it, once both sites are reachable")
                    } else {
                        "re-enable replication for it".to_string()
                    };
                    (
                        format!(
                            "`{name}` is left without replication ({}, active on the {site_name} site)",
                            item.protection_state
                        ),
                        format!("a VM that does not replicate has no disaster recovery: {next}"),
                    )
                };
                self.warn(
                    self.at(
                        Finding::new(Code::LeftUnprotected, message)
                            .label("the last operation on this VM")
                            .help(help),
                        &site,
                    )
                    .severity(severity(Code::LeftUnprotected)),
                );
            }
        }
    }
}
