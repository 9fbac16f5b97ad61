//! The lock a run holds on its target: `.runbook/locks/<vault>.lock`. The running process
//! holds an exclusive `flock` on the file, which the kernel releases when the process
//! ends, however it ends; the file names its holder (run, host, process, since when). A
//! file that names a holder but is not locked was left by a run whose process is gone: a
//! stale lock, reported, and taken over only when the operator says so (or by a resume of
//! the run that holds it). Taking over marks the old run as superseded, so it cannot be
//! resumed behind the new one's back.

use super::runs::{create_private_dir, supersede};
use crate::error::Error;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub use super::store::Holder;

/// A held lock; released (and its holder cleared) on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    holder: Holder,
    /// The stale holder this lock was taken over from (`--take-over`).
    took_over: Option<Holder>,
}

/// A file name for a lock on `identity` (the vault's full id).
fn file_name(identity: &str) -> String {
    format!(
        "{}.lock",
        &super::sha256(identity.to_lowercase().as_bytes())[..16]
    )
}

/// Opens (or creates, for its owner only) a lock file, keeping what it holds.
pub(super) fn open_lock_file(path: &Path) -> Result<File, Error> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| Error::io(path, &e))
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl Lock {
    /// Takes the lock on `identity` for `holder`. A stale lock is taken over only with
    /// `take_over`, or when it is held by the same run (a resume after a crash).
    pub fn acquire(
        project: &Path,
        identity: &str,
        holder: Holder,
        take_over: bool,
    ) -> Result<Lock, Error> {
        let dir = project.join(".runbook").join("locks");
        create_private_dir(&dir).map_err(|e| {
            Error::Usage(format!(
                "cannot create the lock folder {}: {e}; nothing was run",
                crate::paths::display(&dir)
            ))
        })?;
        let path = dir.join(file_name(identity));
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let message = match read_holder(&mut file) {
                    Some(current) => format!(
                        "target `{}` is locked by run {} (process {} on {}, since {}); a second run against the same VMs is refused. Wait for it to end, or follow it with `runbook show {}`",
                        holder.target, current.run, current.pid, current.host, current.since, current.run
                    ),
                    None => format!(
                        "target `{}` is locked by another run that is starting ({})",
                        holder.target,
                        crate::paths::display(&path)
                    ),
                };
                return Err(Error::Usage(message));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, &e)),
        }
        let mut took_over = None;
        if let Some(stale) = read_holder(&mut file) {
            if stale.run != holder.run {
                let journal = super::runs::runs_dir(project)
                    .join(&stale.run)
                    .join("journal.jsonl");
                let started = super::load(&journal).is_ok_and(|l| l.header().is_some());
                if !take_over && !started {
                    return Err(Error::Usage(format!(
                        "target `{}` has a stale lock: run {} (process {} on {}, since {}) is gone before it recorded its start, so it issued nothing and cannot be resumed. Pass --take-over to start a new run",
                        holder.target, stale.run, stale.pid, stale.host, stale.since
                    )));
                }
                if !take_over {
                    return Err(Error::Usage(format!(
                        "target `{}` has a stale lock: run {} (process {} on {}, since {}) is gone. Resume it with `runbook resume {}`, or pass --take-over to start a new run anyway",
                        holder.target, stale.run, stale.pid, stale.host, stale.since, stale.run
                    )));
                }
                supersede(project, &stale.run, &holder.run);
                tracing::info!(run = %stale.run, "took over a stale lock");
                took_over = Some(stale);
            }
        }
        let text = serde_json::to_string_pretty(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&path, &e))?;
        Ok(Lock {
            file,
            holder,
            took_over,
        })
    }
}

impl super::store::Held for Lock {
    fn holder(&self) -> &Holder {
        &self.holder
    }

    fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_ref()
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Cleared, then unlocked: an empty, unlocked file is a free lock.
        let _ = self.file.set_len(0).and_then(|()| self.file.sync_all());
        let _ = self.file.unlock();
    }
}

/// The path of a lock file, for tests.
pub fn path_of(project: &Path, identity: &str) -> PathBuf {
    project
        .join(".runbook")
        .join("locks")
        .join(file_name(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder {
            run: run.into(),
            user: "me".into(),
            host: super::super::hostname(),
            pid,
            since: "2026-11-26T00:00:00Z".into(),
            target: "prod".into(),
        }
    }

    #[test]
    fn a_second_run_is_refused_and_a_stale_lock_needs_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "vault", holder("a", 1), false).unwrap();
        let err = Lock::acquire(dir.path(), "VAULT", holder("b", 2), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("locked by run a"), "{err}");
        // A run that died holding it: its name stays, its flock goes.
        let path = path_of(dir.path(), "vault");
        let _ = first.file.unlock();
        std::mem::forget(first);
        let err = Lock::acquire(dir.path(), "vault", holder("b", 2), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stale lock: run a"), "{err}");
        // Run `a` never recorded its start: there is nothing to resume.
        assert!(err.contains("before it recorded its start"), "{err}");
        assert!(!err.contains("runbook resume"), "{err}");
        let same_run = Lock::acquire(dir.path(), "vault", holder("a", 3), false).unwrap();
        drop(same_run);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "released");
        let free = Lock::acquire(dir.path(), "vault", holder("c", 4), false);
        assert!(free.is_ok());
    }
}
