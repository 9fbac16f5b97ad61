//! Live progress of a run on stderr: a spinner per job on a terminal, plain lines otherwise;
//! notes, verifications, warnings, and manual-step prompts.

use crate::backend::{JobInfo, JobState, Notices};
use crate::clock::{human, Clock, Timestamp};
use crate::diagnostics::{summary_line, Finding};
use crate::script::observer::{Observer, StepAnswer, StepRequest};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Lines above the spinners (or on stderr), stamped with the run's time: what the script's
/// thread and the backend (its [`Notices`], from the runtime's threads) both print.
struct Lines {
    multi: Option<MultiProgress>,
    clock: Arc<dyn Clock>,
    start: Timestamp,
}

impl Lines {
    fn line(&self, text: &str) {
        let t = self.clock.now().since(self.start).as_secs();
        let text = format!(
            "[+{:02}:{:02}:{:02}] {text}",
            t / 3600,
            (t % 3600) / 60,
            t % 60
        );
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => errln!("{text}"),
        }
    }
}

impl Notices for Lines {
    fn notice(&self, text: &str) {
        self.line(text);
    }
}

/// Where the backend tells of its long waits before a run's progress exists (while the
/// live state is read for the plan): plain lines on stderr.
pub(super) struct Plain;

impl Notices for Plain {
    fn notice(&self, text: &str) {
        errln!("{text}");
    }
}

/// How progress is shown.
pub struct Progress {
    multi: Option<MultiProgress>,
    out: Arc<Lines>,
    bars: RefCell<HashMap<String, ProgressBar>>,
    last_state: RefCell<HashMap<String, String>>,
    /// A recovery plan's job's tasks as last shown, by job and VM.
    last_task: RefCell<HashMap<(String, String), String>>,
    /// When the run first saw each job, on its own clock: a service's clock may run ahead
    /// of it (the simulator server, sped up), so the job's own start time says nothing of
    /// how long the run has waited.
    first_seen: RefCell<HashMap<String, Timestamp>>,
    clock: Arc<dyn Clock>,
    auto_approve: bool,
    /// Lines the operator types, read by one thread for the whole run.
    lines: RefCell<Option<Receiver<String>>>,
    /// Cancelled by Ctrl-C: a manual step stops waiting.
    interrupt: CancellationToken,
    /// `-q`: no lines or spinners for jobs.
    quiet: bool,
}

impl Progress {
    /// `bars`: draw spinners (only when stderr is a terminal).
    pub fn new(
        clock: Arc<dyn Clock>,
        bars: bool,
        auto_approve: bool,
        interrupt: CancellationToken,
    ) -> Self {
        let start = clock.now();
        let quiet = crate::verbosity::quiet();
        let multi = (bars && !quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            out: Arc::new(Lines {
                multi: multi.clone(),
                clock: clock.clone(),
                start,
            }),
            multi,
            bars: RefCell::new(HashMap::new()),
            last_state: RefCell::new(HashMap::new()),
            last_task: RefCell::new(HashMap::new()),
            first_seen: RefCell::new(HashMap::new()),
            clock,
            auto_approve,
            lines: RefCell::new(None),
            interrupt,
            quiet,
        }
    }

    /// Waits for an approval given from another terminal.
    fn wait_elsewhere(
        &self,
        timeout: Duration,
        elsewhere: &dyn Fn(()) -> Option<String>,
    ) -> StepAnswer {
        let started = std::time::Instant::now();
        loop {
            if self.interrupt.is_cancelled() {
                return StepAnswer::Aborted;
            }
            if let Some(by) = elsewhere(()) {
                self.line(&format!("  approved by {by}"));
                return StepAnswer::Approved { by };
            }
            if started.elapsed() >= timeout {
                return StepAnswer::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn line(&self, text: &str) {
        self.out.line(text);
    }

    /// Where the backend tells of the waits it makes on its own: the same progress lines.
    pub fn notices(&self) -> Arc<dyn Notices> {
        self.out.clone()
    }

    /// A running job's spinner text: what it is, its state, how long the run has waited.
    fn running(&self, job: &JobInfo) -> String {
        let waited = self.clock.now().since(self.seen_since(job));
        format!(
            "{} {} ({} so far)",
            Progress::describe(job),
            job.state,
            human(waited)
        )
    }

    /// When the run first saw `job` (now, the first time it is asked).
    fn seen_since(&self, job: &JobInfo) -> Timestamp {
        *self
            .first_seen
            .borrow_mut()
            .entry(job.id.clone())
            .or_insert_with(|| self.clock.now())
    }

    fn describe(job: &JobInfo) -> String {
        if job.plan {
            let done = job
                .tasks
                .iter()
                .filter(|t| t.state == JobState::Succeeded)
                .count();
            let tasks = match job.tasks.len() {
                0 => String::new(),
                n => format!(" ({done}/{n} VMs done)"),
            };
            format!("{} of recovery plan {}{tasks}", job.operation, job.vm)
        } else {
            format!("{} of {}", job.operation, job.vm)
        }
    }

    /// A plan's per-VM tasks whose state changed since last shown, one line each (a failed
    /// one also in a quiet run).
    fn tasks_changed(&self, job: &JobInfo) {
        for task in &job.tasks {
            let key = (job.id.clone(), task.vm.clone());
            let state = task.state.to_string();
            let previous = self.last_task.borrow_mut().insert(key, state.clone());
            if previous.as_deref() == Some(state.as_str()) || task.state == JobState::NotStarted {
                continue;
            }
            if self.quiet && task.state != JobState::Failed {
                continue;
            }
            self.line(&format!(
                "  {} group {}: {} of {} {state}",
                job.vm, task.group, job.operation, task.vm
            ));
            for e in &task.errors {
                for l in e.lines() {
                    self.line(&format!("    {l}"));
                }
            }
        }
    }

    /// The operator's lines, from a reader thread started on first use (one for the run, so
    /// no answer is swallowed by a reader left over from an earlier step).
    fn operator_lines(&self) -> std::cell::RefMut<'_, Option<Receiver<String>>> {
        let mut lines = self.lines.borrow_mut();
        if lines.is_none() {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            *lines = Some(rx);
        }
        lines
    }

    /// Removes any bars left (at the end of a run).
    pub fn finish(&self) {
        for (_, bar) in self.bars.borrow_mut().drain() {
            bar.abandon();
        }
    }
}

impl Observer for Progress {
    fn print(&self, text: &str) {
        self.line(text);
    }

    fn note(&self, text: &str) {
        self.line(&format!("note: {text}"));
    }

    fn job_started(&self, job: &JobInfo) {
        self.seen_since(job);
        if self.quiet {
            return;
        }
        self.line(&format!(
            "started {} (job {})",
            Progress::describe(job),
            job.id
        ));
        for w in &job.warnings {
            self.line(&format!("warning: {}: {w}", Progress::describe(job)));
        }
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("{} {}", Progress::describe(job), job.state));
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bars.borrow_mut().insert(job.id.clone(), bar);
        }
    }

    fn job_updated(&self, job: &JobInfo) {
        self.tasks_changed(job);
        let running = self.running(job);
        if let Some(bar) = self.bars.borrow().get(&job.id) {
            bar.set_message(running);
        }
        let previous = self
            .last_state
            .borrow_mut()
            .insert(job.id.clone(), job.state.to_string());
        if previous.as_deref() == Some(job.state.as_str()) {
            return;
        }
        // Quiet runs still say when a job failed.
        if self.quiet && !(job.state.is_terminal() && job.state != JobState::Succeeded) {
            return;
        }
        if job.state.is_terminal() {
            if let Some(bar) = self.bars.borrow_mut().remove(&job.id) {
                bar.finish_and_clear();
            }
            let took = job.duration().map(human).unwrap_or_default();
            let mark = if job.state == JobState::Succeeded {
                "done"
            } else {
                "FAILED"
            };
            self.line(&format!(
                "{mark}: {} {} in {took}",
                Progress::describe(job),
                job.state
            ));
            for e in &job.errors {
                for l in e.lines() {
                    self.line(&format!("  {l}"));
                }
            }
        } else if self.multi.is_none() && previous.is_some() {
            self.line(&format!("{} is {}", Progress::describe(job), job.state));
        }
    }

    fn verified(&self, vm: &str, what: &str) {
        self.line(&format!("verified {vm}: {what}"));
    }

    fn warning(&self, finding: &Finding) {
        self.line(&summary_line(finding));
    }

    fn notice(&self, text: &str) {
        self.line(text);
    }

    fn manual_step(
        &self,
        title: &str,
        instructions: Option<&str>,
        timeout: Duration,
    ) -> StepAnswer {
        self.step(&StepRequest {
            number: 0,
            title,
            instructions,
            timeout,
            external: None,
            approve_command: None,
        })
    }

    fn step(&self, request: &StepRequest) -> StepAnswer {
        let StepRequest {
            number,
            title,
            instructions,
            timeout,
            external,
            approve_command,
        } = request;
        let timeout = *timeout;
        if *number > 0 {
            self.line(&format!("MANUAL STEP {number}: {title}"));
        } else {
            self.line(&format!("MANUAL STEP: {title}"));
        }
        if let Some(i) = instructions {
            for l in i.lines() {
                self.line(&format!("  {l}"));
            }
        }
        if self.auto_approve {
            self.line("  confirmed automatically (--auto-approve, simulation)");
            return StepAnswer::Approved {
                by: "auto-approve (simulation)".into(),
            };
        }
        let external = *external;
        let elsewhere = |()| external.and_then(|f| f());
        if let Some(command) = approve_command {
            self.line(&format!("  to approve from another terminal: {command}"));
        }
        if !std::io::stdin().is_terminal() {
            if external.is_none() {
                return StepAnswer::Unavailable(format!(
                    "manual step `{title}` needs an operator: run in a terminal, or pass --auto-approve (simulator only)"
                ));
            }
            self.line(&format!(
                "  waiting up to {} for the approval",
                human(timeout)
            ));
            return self.wait_elsewhere(timeout, &elsewhere);
        }
        // People answer in real time, whatever the simulator's speed.
        let ask = || {
            err!(
                "  type 'yes' when done, or 'abort' to stop the run (waiting {}): ",
                human(timeout)
            );
            let _ = std::io::stderr().flush();
        };
        let lines = self.operator_lines();
        let Some(rx) = lines.as_ref() else {
            return StepAnswer::Unavailable("cannot read the operator's answer".into());
        };
        // What was typed before this prompt (say, a late answer to an earlier step) does
        // not answer this one.
        while rx.try_recv().is_ok() {}
        let started = std::time::Instant::now();
        let answer = || -> StepAnswer {
            ask();
            loop {
                if self.interrupt.is_cancelled() {
                    return StepAnswer::Aborted;
                }
                if let Some(by) = elsewhere(()) {
                    errln!();
                    return StepAnswer::Approved { by };
                }
                if started.elapsed() >= timeout {
                    return StepAnswer::TimedOut;
                }
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => match line.trim().to_lowercase().as_str() {
                        "yes" | "y" | "done" => {
                            return StepAnswer::Approved {
                                by: crate::journal::operator(),
                            };
                        }
                        "abort" => return StepAnswer::Aborted,
                        _ => ask(),
                    },
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) if external.is_some() => {
                        return self.wait_elsewhere(timeout.saturating_sub(started.elapsed()), &elsewhere)
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return StepAnswer::Unavailable(format!(
                            "manual step `{title}` cannot be confirmed: the terminal's input was closed"
                        ))
                    }
                }
            }
        };
        match &self.multi {
            // Not `suspend`: it panics when the terminal is gone. The bars come back on their
            // next tick.
            Some(m) => {
                let _ = m.clear();
                answer()
            }
            None => answer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Operation;
    use crate::clock::VirtualClock;

    /// The simulator server's clock runs ahead of the run's (it is sped up): how long a job
    /// has run is counted from when the run first saw it, not from the service's start time.
    #[test]
    fn a_spinner_counts_from_when_the_run_first_saw_the_job() {
        let clock = Arc::new(VirtualClock::new(Timestamp(1_000_000)));
        let progress = Progress::new(clock.clone(), false, true, CancellationToken::new());
        let job = JobInfo {
            id: "job-1".into(),
            operation: Operation::PlannedFailover,
            vm: "sql-01".into(),
            state: JobState::InProgress,
            errors: Vec::new(),
            warnings: Vec::new(),
            // Ten hours ahead of the run's clock.
            started: Timestamp(1_000_000 + 36_000_000),
            ended: None,
            retry_after: None,
            expected_end: None,
            skipped: None,
            plan: false,
            tasks: Vec::new(),
            waiting: None,
        };
        progress.job_started(&job);
        clock.advance(Duration::from_secs(90));
        assert_eq!(
            progress.running(&job),
            "planned_failover of sql-01 InProgress (1m 30s so far)"
        );
    }
}
