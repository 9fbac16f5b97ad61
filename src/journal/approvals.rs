//! Manual-step approvals from another terminal. A run waiting at a manual step writes
//! `waiting.json` in its folder; `runbook approve RUN STEP` checks that the run waits for
//! that step and writes `approvals/<step>.json` (who, when), which the run picks up.

use super::runs::{create_private, create_private_dir};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

const WAITING: &str = "waiting.json";

/// The step a run waits at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub step: u32,
    pub title: String,
    pub pid: u32,
    pub host: String,
}

/// An approval given with `runbook approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    pub step: u32,
    pub by: String,
    /// Wall clock, RFC 3339.
    pub at: String,
}

/// Says that the run in `dir` waits at `step`.
pub fn set_waiting(dir: &Path, step: u32, title: &str) -> std::io::Result<()> {
    let waiting = Waiting {
        step,
        title: title.to_string(),
        pid: std::process::id(),
        host: super::hostname(),
    };
    let tmp = dir.join(format!("{WAITING}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_private(&tmp)?;
    file.write_all(serde_json::to_string(&waiting)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(WAITING))
}

pub fn clear_waiting(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(WAITING));
}

/// The approval of `step` given from another terminal, if any.
pub fn given(dir: &Path, step: u32) -> Option<Given> {
    let text = std::fs::read_to_string(dir.join("approvals").join(format!("{step}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Approves the step the run in `dir` waits at; `step` is its number or its title.
pub fn approve(dir: &Path, run: &str, step: &str, by: &str) -> Result<Given, Error> {
    let waiting: Option<Waiting> = std::fs::read_to_string(dir.join(WAITING))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(waiting) = waiting.filter(|w| super::process_alive(w.pid, &w.host)) else {
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
    let folder = dir.join("approvals");
    create_private_dir(&folder).map_err(|e| Error::io(&folder, &e))?;
    let path = folder.join(format!("{}.json", waiting.step));
    let mut file = match create_private(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Usage(format!(
                "step {} of run {run} was approved already",
                waiting.step
            )))
        }
        Err(e) => return Err(Error::io(&path, &e)),
    };
    let text = serde_json::to_string(&given).unwrap_or_default();
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&path, &e))?;
    Ok(given)
}
