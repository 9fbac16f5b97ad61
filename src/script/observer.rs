//! What a run shows its operator: the host reports events here; `check` discards them,
//! `run` draws progress on stderr.

use crate::backend::JobInfo;
use crate::diagnostics::Finding;
use std::time::Duration;

/// The operator's answer to a manual step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAnswer {
    Approved {
        by: String,
    },
    Aborted,
    TimedOut,
    /// No operator can answer (no terminal); the text says what to do.
    Unavailable(String),
}

/// A manual step as the host asks for it.
pub struct StepRequest<'a> {
    /// The step's number in the run (1, 2, ...), as `runbook approve RUN STEP` names it.
    pub number: u32,
    pub title: &'a str,
    pub instructions: Option<&'a str>,
    pub timeout: Duration,
    /// An approval given from another terminal (`runbook approve`), if one was: who.
    pub external: Option<&'a dyn Fn() -> Option<String>>,
    /// The command that approves the step from another terminal.
    pub approve_command: Option<String>,
}

pub trait Observer {
    /// `print` and `debug` from the script.
    fn print(&self, _text: &str) {}
    fn note(&self, _text: &str) {}
    fn job_started(&self, _job: &JobInfo) {}
    fn job_updated(&self, _job: &JobInfo) {}
    fn verified(&self, _vm: &str, _what: &str) {}
    fn warning(&self, _finding: &Finding) {}
    /// A wait the run makes on its own that is long enough for an operator to wonder (e.g.
    /// "throttled by the service: retrying in 58s"): for the progress line.
    fn notice(&self, _text: &str) {}
    fn manual_step(&self, title: &str, instructions: Option<&str>, timeout: Duration)
        -> StepAnswer;
    /// A manual step with its number and a way to be approved from elsewhere; observers
    /// that cannot wait for others answer as [`Observer::manual_step`].
    fn step(&self, request: &StepRequest) -> StepAnswer {
        self.manual_step(request.title, request.instructions, request.timeout)
    }
}

/// Discards everything and confirms manual steps: the dry run of `check`.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn manual_step(
        &self,
        _title: &str,
        _instructions: Option<&str>,
        _timeout: Duration,
    ) -> StepAnswer {
        StepAnswer::Approved {
            by: "dry run (auto-confirmed)".into(),
        }
    }
}
