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
    /// The title of the step approved (empty in approvals of earlier versions): an approval
    /// answers only a step of that title, whatever its number became.
    #[serde(default)]
    pub title: String,
    /// Who approved, from where: `user@host (uid N)`.
    pub by: String,
    /// Wall clock, RFC 3339.
    pub at: String,
}

/// Where the approval of step `step` titled `title` is kept, in a run's `approvals/`: an
/// approval answers only a step of that title, whatever its number became in another attempt.
pub fn file_name(step: u32, title: &str) -> String {
    format!(
        "{step}-{}.json",
        &super::sha256(title.trim().as_bytes())[..12]
    )
}

impl Given {
    /// Whether it answers step `title`.
    pub fn answers(&self, title: &str) -> bool {
        self.title.is_empty() || self.title.trim() == title.trim()
    }
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
        title: waiting.title.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::store::local::LocalStore;

    /// Step numbers can change between attempts (a step asked in one attempt and not in
    /// the next): an approval answers only the step of its title.
    #[test]
    fn an_approval_answers_only_the_step_of_its_title() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let given = Given {
            step: 1,
            title: "Run action `bump` again?".into(),
            by: "me".into(),
            at: "2026-12-02T00:00:00Z".into(),
        };
        assert_eq!(store.add_approval("run", &given), Ok(true));
        assert_eq!(
            store.add_approval("run", &given),
            Ok(false),
            "approved already"
        );
        assert!(store.approval("run", 1, "Primary site back").is_none());
        assert_eq!(
            store.approval("run", 1, "Run action `bump` again?"),
            Some(given.clone())
        );
        // The other step of that number can be approved in its turn.
        let other = Given {
            title: "Primary site back".into(),
            ..given
        };
        assert_eq!(store.add_approval("run", &other), Ok(true));
        assert_eq!(store.approval("run", 1, "Primary site back"), Some(other));
    }
}
