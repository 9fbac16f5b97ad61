//! The lock a run holds on its target: `.runbook/locks/<vault>.lock`, made with an
//! exclusive create and removed when the run ends. It names its holder (run, host,
//! process, since when). A lock whose process is gone is stale: it is reported, and taken
//! over only when the operator says so (or by a resume of the run that holds it).

use super::runs::create_private;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run: String,
    pub host: String,
    pub pid: u32,
    /// Wall clock, RFC 3339.
    pub since: String,
    /// The target as runbook.toml names it.
    pub target: String,
}

/// A held lock; removed on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    holder: Holder,
}

/// Whether process `pid` on `host` still runs. A process on another host cannot be seen
/// from here, so it counts as running.
pub fn process_alive(pid: u32, host: &str) -> bool {
    if host != super::hostname() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A file name for a lock on `identity` (the vault's full id).
fn file_name(identity: &str) -> String {
    format!(
        "{}.lock",
        &super::sha256(identity.to_lowercase().as_bytes())[..16]
    )
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
        super::runs::create_private_dir(&dir).map_err(|e| {
            Error::Usage(format!(
                "cannot create the lock folder {}: {e}; nothing was run",
                crate::paths::display(&dir)
            ))
        })?;
        let path = dir.join(file_name(identity));
        for _ in 0..3 {
            match create_private(&path) {
                Ok(mut file) => {
                    let text = serde_json::to_string_pretty(&holder).unwrap_or_default();
                    file.write_all(text.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| Error::io(&path, &e))?;
                    return Ok(Lock { path, holder });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let current = read_holder(&path);
                    let Some(current) = current else {
                        // Written by a process that died before it wrote its name, or
                        // being written right now.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if read_holder(&path).is_none() && take_over {
                            let _ = std::fs::remove_file(&path);
                        } else if read_holder(&path).is_none() {
                            return Err(Error::Usage(format!(
                                "target `{}` has a lock with no holder ({}); if no run is active, pass --take-over",
                                holder.target,
                                crate::paths::display(&path)
                            )));
                        }
                        continue;
                    };
                    let alive = process_alive(current.pid, &current.host);
                    if alive {
                        return Err(Error::Usage(format!(
                            "target `{}` is locked by run {} (process {} on {}, since {}); a second run against the same VMs is refused. Wait for it to end, or follow it with `runbook show {}`",
                            holder.target, current.run, current.pid, current.host, current.since, current.run
                        )));
                    }
                    if !take_over && current.run != holder.run {
                        return Err(Error::Usage(format!(
                            "target `{}` has a stale lock: run {} (process {} on {}, since {}) is gone. Resume it with `runbook resume {}`, or pass --take-over to start a new run anyway",
                            holder.target, current.run, current.pid, current.host, current.since, current.run
                        )));
                    }
                    tracing::info!(run = %current.run, "taking over a stale lock");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(Error::io(&path, &e)),
            }
        }
        Err(Error::Usage(format!(
            "cannot take the lock {}: another run keeps taking it",
            crate::paths::display(&path)
        )))
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only our own lock: a take-over may have replaced it.
        if read_holder(&self.path).as_ref() == Some(&self.holder) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(run: &str, pid: u32) -> Holder {
        Holder {
            run: run.into(),
            host: super::super::hostname(),
            pid,
            since: "2026-11-26T00:00:00Z".into(),
            target: "prod".into(),
        }
    }

    #[test]
    fn a_second_run_is_refused_and_a_stale_lock_needs_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            Lock::acquire(dir.path(), "vault", holder("a", std::process::id()), false).unwrap();
        let err = Lock::acquire(dir.path(), "VAULT", holder("b", std::process::id()), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("locked by run a"), "{err}");
        std::mem::forget(first);
        // Rewrite the holder as a process that cannot exist.
        let path = dir.path().join(".runbook/locks").join(file_name("vault"));
        std::fs::write(
            &path,
            serde_json::to_string(&holder("a", 999_999_999)).unwrap(),
        )
        .unwrap();
        let err = Lock::acquire(dir.path(), "vault", holder("b", 1), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stale lock: run a"), "{err}");
        let same_run = Lock::acquire(dir.path(), "vault", holder("a", std::process::id()), false);
        assert!(same_run.is_ok());
        drop(same_run);
        assert!(!path.exists(), "the lock is removed when its run ends");
    }
}
