//! Where runs are kept: one trait, [`Store`], for a run's journal, its vault lock and its
//! approvals, with two implementations: the project's `.runbook/` folder ([`local`], the
//! default) and Azure Blob Storage ([`blob`], `[state] url = "az://CONTAINER/PREFIX"`), so any
//! machine with the same `runbook.toml` sees, approves and resumes the same runs.

pub mod blob;
mod blob_journal;
mod container;
pub mod lease;
pub mod local;

use super::approvals::{Given, Waiting};
use super::{Loaded, Record};
use crate::clock::Timestamp;
use crate::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[state] url`: a container and a prefix in Azure Blob Storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUrl {
    pub container: String,
    /// Folders inside the container, without slashes at either end; may be empty.
    pub prefix: String,
}

impl StateUrl {
    /// Reads `az://CONTAINER/PREFIX`.
    pub fn parse(text: &str) -> Result<StateUrl, String> {
        let rest = text.strip_prefix("az://").ok_or_else(|| {
            format!("the state url `{text}` must start with az:// (az://CONTAINER/PREFIX, e.g. az://runbook-state/dr-team)")
        })?;
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&container.len())
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !container.starts_with('-')
            && !container.ends_with('-')
            && !container.contains("--");
        if !valid {
            return Err(format!(
                "`{container}` is not a container name: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(|c| c.is_control() || c == '\\')
        {
            return Err(format!(
                "`{prefix}` is not a prefix: folder names separated by single slashes, without `.` or `..`"
            ));
        }
        Ok(StateUrl {
            container: container.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for StateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "az://{}", self.container)
        } else {
            write!(f, "az://{}/{}", self.container, self.prefix)
        }
    }
}

/// Who holds a vault's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub run: String,
    /// Who runs it: `user@host (uid N)`.
    #[serde(default)]
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// Wall clock, RFC 3339.
    pub since: String,
    /// The target as runbook.toml names it.
    pub target: String,
}

/// Where a run's records go: each one durable before `write` returns.
pub trait Sink: Send {
    /// Makes record `seq` (`line`, JSON ending in a newline) durable.
    fn write(&mut self, seq: u64, line: &[u8]) -> Result<(), String>;
    /// Leaves record `seq` half written, as a crash while writing would (a test's crash
    /// point); a store whose writes are whole leaves nothing.
    fn write_torn(&mut self, seq: u64, line: &[u8]);
}

/// A held vault lock, released when the last reference goes.
pub trait Held: Send + Sync {
    fn holder(&self) -> &Holder;
    /// The run whose stale lock this one took over, if it did.
    fn took_over(&self) -> Option<&Holder>;
    /// Whether this holder may still write, from what it knows (no request): a lost or
    /// expired lease says why.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// Before a mutating request: whether this holder's lease is still the current one,
    /// asked of the store.
    fn fence(&self) -> Result<(), String> {
        self.check()
    }
    /// Cancels `token` (no new operation) when the lease is lost.
    fn watch(&self, token: CancellationToken) {
        let _ = token;
    }
}

/// Where a project's runs are kept: their journals, the vault locks and the approvals.
pub trait Store: Send + Sync {
    /// The project folder (of `runbook.toml`, else the runbook's).
    fn project(&self) -> &Path;
    /// Where runs are kept, for messages.
    fn describe(&self) -> String;
    /// Where run `id`'s journal is, for messages.
    fn journal_place(&self, id: &str) -> String;
    /// What `runbook runs` says when there are none.
    fn none_found(&self) -> String;
    /// A fresh run id, `YYYYMMDD-HHMMSS-xxxx`, and room for its journal.
    fn create_run(&self, now: Timestamp) -> Result<String, Error>;
    /// Forgets a new run that wrote nothing.
    fn discard(&self, id: &str);
    /// The ids of the project's runs, oldest first.
    fn ids(&self) -> Result<Vec<String>, Error>;
    /// Reads run `id`'s journal, with whether the run runs now and who superseded it.
    fn load(&self, id: &str) -> Result<Loaded, String>;
    /// The records of run `id` after record `after` (to follow a live run).
    fn records_after(&self, id: &str, after: u64) -> Result<Vec<Record>, String> {
        Ok(self
            .load(id)?
            .records
            .into_iter()
            .filter(|r| r.seq > after)
            .collect())
    }
    /// Where the records of new run `id` go.
    fn create_journal(&self, id: &str) -> Result<Box<dyn Sink>, String>;
    /// Where the records of a resumed run go, after the ones `loaded` read.
    fn reopen_journal(&self, id: &str, loaded: &Loaded) -> Result<Box<dyn Sink>, String>;
    /// Takes the lock on vault `identity` for `holder` (see [`super::lock`]).
    fn lock(&self, identity: &str, holder: Holder, take_over: bool)
        -> Result<Arc<dyn Held>, Error>;
    /// Says that run `id` waits at a manual step.
    fn set_waiting(&self, id: &str, waiting: &Waiting) -> Result<(), String>;
    /// Says that run `id` no longer waits at `waiting`, unless another process (one that
    /// took the run over) said it waits since.
    fn clear_waiting(&self, id: &str, waiting: &Waiting);
    /// The step run `id` says it waits at, if its process still runs.
    fn waiting(&self, id: &str) -> Option<Waiting>;
    /// Records an approval; false when the step was approved already.
    fn add_approval(&self, id: &str, given: &Given) -> Result<bool, String>;
    /// The approval of step `step` titled `title`, if one was given.
    fn approval(&self, id: &str, step: u32, title: &str) -> Option<Given>;
    /// How often a waiting run looks for an approval given elsewhere.
    fn approval_poll(&self) -> Duration;
}

/// The store of `project`: Blob Storage when its `runbook.toml` has `[state]`, else the
/// project's `.runbook/` folder.
pub fn open(project: &Path, config: &crate::config::Config) -> Result<Arc<dyn Store>, Error> {
    match &config.state {
        Some(url) => Ok(Arc::new(Arc::new(blob::BlobStore::open(project, url)?))),
        None => Ok(Arc::new(local::LocalStore::new(project))),
    }
}

/// The store of the project commands about runs use (`--project`, else found from here).
pub fn discover(given: Option<&Path>) -> Result<Arc<dyn Store>, Error> {
    let project = super::runs::discover_project(given)?;
    let config = match crate::config::find(&project).filter(|p| p.parent() == Some(&project)) {
        Some(path) => crate::config::Config::load(&path)?,
        None => crate::config::Config::default(),
    };
    open(&project, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_urls_are_checked() {
        let url = StateUrl::parse("az://runbook-state/dr-team/").unwrap();
        assert_eq!(url.container, "runbook-state");
        assert_eq!(url.prefix, "dr-team");
        assert_eq!(url.to_string(), "az://runbook-state/dr-team");
        assert_eq!(StateUrl::parse("az://abc").unwrap().prefix, "");
        for bad in [
            "https://x/y",
            "az://A-b/x",
            "az://ab/x",
            "az://a--b/x",
            "az://abc/x//y",
            "az://abc/../y",
        ] {
            assert!(StateUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
