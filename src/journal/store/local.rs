//! The default store: the project's `.runbook/` folder on this machine. A journal is one
//! file of JSON lines, each synced before the run goes on; the vault lock is a `flock`ed file
//! (see [`crate::journal::lock`]); approvals are files in the run's folder.

use super::{Held, Holder, Sink, Store};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::journal::approvals::{Given, Waiting};
use crate::journal::runs::{self, create_private, create_private_dir};
use crate::journal::{Loaded, FILE};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const WAITING: &str = "waiting.json";

/// The runs of a project in its `.runbook/runs/`.
pub struct LocalStore {
    project: PathBuf,
}

impl LocalStore {
    pub fn new(project: &Path) -> LocalStore {
        LocalStore {
            project: project.to_path_buf(),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        runs::runs_dir(&self.project).join(id)
    }
}

impl Store for LocalStore {
    fn project(&self) -> &Path {
        &self.project
    }

    fn describe(&self) -> String {
        crate::paths::display(&runs::runs_dir(&self.project))
    }

    fn journal_place(&self, id: &str) -> String {
        crate::paths::display(&self.dir(id).join(FILE))
    }

    fn none_found(&self) -> String {
        runs::none_found(&self.project)
    }

    fn create_run(&self, now: Timestamp) -> Result<String, Error> {
        runs::create_run(&self.project, now).map(|(id, _)| id)
    }

    fn discard(&self, id: &str) {
        runs::discard(&self.project, &self.dir(id));
    }

    fn ids(&self) -> Result<Vec<String>, Error> {
        Ok(runs::ids(&self.project))
    }

    fn load(&self, id: &str) -> Result<Loaded, String> {
        crate::journal::load(&self.dir(id).join(FILE))
    }

    fn create_journal(&self, id: &str) -> Result<Box<dyn Sink>, String> {
        FileSink::create(&self.dir(id).join(FILE)).map(|s| Box::new(s) as Box<dyn Sink>)
    }

    fn reopen_journal(&self, id: &str, loaded: &Loaded) -> Result<Box<dyn Sink>, String> {
        FileSink::reopen(&self.dir(id).join(FILE), loaded, id).map(|s| Box::new(s) as Box<dyn Sink>)
    }

    fn lock(
        &self,
        identity: &str,
        holder: Holder,
        take_over: bool,
    ) -> Result<Arc<dyn Held>, Error> {
        crate::journal::lock::Lock::acquire(&self.project, identity, holder, take_over)
            .map(|l| Arc::new(l) as Arc<dyn Held>)
    }

    fn set_waiting(&self, id: &str, waiting: &Waiting) -> Result<(), String> {
        let dir = self.dir(id);
        let tmp = dir.join(format!("{WAITING}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut file = create_private(&tmp)?;
            file.write_all(serde_json::to_string(waiting)?.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, dir.join(WAITING))
        };
        write().map_err(|e| e.to_string())
    }

    fn clear_waiting(&self, id: &str, waiting: &Waiting) {
        let path = self.dir(id).join(WAITING);
        let ours = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Waiting>(&t).ok())
            .is_some_and(|w| &w == waiting);
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    fn waiting(&self, id: &str) -> Option<Waiting> {
        let text = std::fs::read_to_string(self.dir(id).join(WAITING)).ok()?;
        let waiting: Waiting = serde_json::from_str(&text).ok()?;
        crate::journal::process_alive(waiting.pid, &waiting.host).then_some(waiting)
    }

    fn add_approval(&self, id: &str, given: &Given) -> Result<bool, String> {
        let folder = self.dir(id).join("approvals");
        create_private_dir(&folder)
            .map_err(|e| format!("{}: {e}", crate::paths::display(&folder)))?;
        let path = folder.join(crate::journal::approvals::file_name(
            given.step,
            &given.title,
        ));
        let shown = |e: std::io::Error| format!("{}: {e}", crate::paths::display(&path));
        let mut file = match create_private(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(shown(e)),
        };
        let text = serde_json::to_string(given).unwrap_or_default();
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(shown)?;
        Ok(true)
    }

    fn approval(&self, id: &str, step: u32, title: &str) -> Option<Given> {
        let path = self
            .dir(id)
            .join("approvals")
            .join(crate::journal::approvals::file_name(step, title));
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    fn approval_poll(&self) -> Duration {
        Duration::ZERO
    }
}

/// A journal file: records appended as lines, each synced. The file is `flock`ed while the
/// run runs: how `runbook runs` tells a running run from a crashed one.
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    /// Creates the journal file of a new run.
    pub fn create(path: &Path) -> Result<FileSink, String> {
        let file = create_private(path)
            .map_err(|e| format!("cannot create the journal {}: {e}", path.display()))?;
        file.try_lock()
            .map_err(|e| format!("cannot lock the journal {}: {e}", path.display()))?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens the journal `loaded` read, to append to it: drops a torn last line first.
    pub fn reopen(path: &Path, loaded: &Loaded, run: &str) -> Result<FileSink, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "run {run} is running in another process; it cannot be resumed twice"
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock the journal {}: {e}", path.display()))
            }
        }
        // What was read before the lock may be out of date: only a journal that did not
        // change since is trusted.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len != loaded.good_len + loaded.torn {
            return Err(format!(
                "the journal {} changed while it was read; run the resume again",
                path.display()
            ));
        }
        if loaded.torn > 0 {
            file.set_len(loaded.good_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot repair the journal {}: {e}", path.display()))?;
        }
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, _seq: u64, line: &[u8]) -> Result<(), String> {
        self.file
            .write_all(line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("the journal {} cannot be written: {e}", self.path.display()))
    }

    fn write_torn(&mut self, _seq: u64, line: &[u8]) {
        let _ = self.file.write_all(&line[..line.len() / 2]);
        let _ = self.file.sync_data();
    }
}
