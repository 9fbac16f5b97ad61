//! Manual-step approvals from another terminal or machine. A run waiting at a manual step
//! says so in its store (`waiting.json` in its folder); `runbook approve RUN STEP` checks
//! that the run waits for that step and records the approval (who, from where, when) with
//! create-if-absent, which the run picks up.

use super::store::Store;
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The step a run waits at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub step: u32,
    pub title: String,
    pub pid: u32,
    pub host: String,
}

impl Waiting {
    /// This process waits at `step`.
    pub fn here(step: u32, title: &str) -> Waiting {
        Waiting {
            step,
            title: title.to_string(),
            pid: std::process::id(),
            host: super::hostname(),
        }
    }
}

/// An approval given with `runbook approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    pub step: u32,
    /// Who approved, from where: `user@host (uid N)`.
    pub by: String,
    /// Wall clock, RFC 3339.
    pub at: String,
}

/// Approves the step run `run` waits at; `step` is its number or its title.
pub fn approve(store: &dyn Store, run: &str, step: &str, by: &str) -> Result<Given, Error> {
    let Some(waiting) = store.waiting(run) else {
        return Err(Error::Usage(format!(
            "run {run} is not waiting at a manual step; nothing was approved"
        )));
    };
    let matches = step.parse::<u32>().ok() == Some(waiting.step)
        || step.trim().eq_ignore_ascii_case(waiting.title.trim());
    if !matches {
        return Err(Error::Usage(format!(
            "run {run} waits at step {} (`{}`), not at `{step}`; nothing was approved",
            waiting.step, waiting.title
        )));
    }
    let given = Given {
        step: waiting.step,
        by: by.to_string(),
        at: crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339(),
    };
    match store.add_approval(run, &given) {
        Ok(true) => Ok(given),
        Ok(false) => Err(Error::Usage(format!(
            "step {} of run {run} was approved already",
            waiting.step
        ))),
        Err(e) => Err(Error::Usage(format!(
            "cannot record the approval of step {} of run {run}: {e}; nothing was approved",
            waiting.step
        ))),
    }
}
