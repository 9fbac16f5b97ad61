//! The vault lock of this machine's user, beside each project's: two copies of a project
//! (two clones, two folders) on one machine would each hold their own project lock and
//! both issue operations on the same VMs. Each live run also holds an exclusive `flock` on
//! a file named by the vault and the service's endpoint, in the user's state folder, which
//! the kernel releases however the process ends.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Who holds the machine's lock of a vault, for the refusal's message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run: String,
    pid: u32,
    project: String,
    since: String,
}

/// The lock, held while this lives.
#[derive(Debug)]
pub struct MachineLock {
    _file: File,
}

/// Where the user's locks are: `$XDG_STATE_HOME/runbook/locks`, else
/// `~/.local/state/runbook/locks`; `None` without a home (then only the project's lock holds).
fn folder() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(state.join("runbook").join("locks"))
}

/// The lock's key: the vault's identity at the service's endpoint (its host as written
/// or as `127.0.0.1` for `localhost`, its port), so one vault is one lock however it is named.
pub fn key(identity: &str, endpoint: &str) -> String {
    let place = match url::Url::parse(endpoint) {
        Ok(url) => {
            let host = match url.host_str() {
                Some("localhost") => "127.0.0.1".to_string(),
                Some(h) => h.to_ascii_lowercase(),
                None => String::new(),
            };
            format!(
                "{}://{host}:{}",
                url.scheme(),
                url.port_or_known_default().unwrap_or(0)
            )
        }
        Err(_) => endpoint.trim_end_matches('/').to_ascii_lowercase(),
    };
    format!("{}@{place}", identity.to_lowercase())
}

/// Takes the machine's lock of `key` for run `run` of `project`, or says which run of
/// which project holds it.
pub fn acquire(
    key: &str,
    run: &str,
    project: &Path,
    target: &str,
) -> Result<Option<MachineLock>, Error> {
    let Some(dir) = folder() else {
        return Ok(None);
    };
    super::runs::create_private_dir(&dir).map_err(|e| Error::io(&dir, &e))?;
    let path = dir.join(format!("{}.lock", &super::sha256(key.as_bytes())[..16]));
    let mut file = super::lock::open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let message = match serde_json::from_str::<Holder>(&text) {
                Ok(h) => format!(
                    "target `{target}` is locked on this machine by run {} of another copy of the project ({}, process {}, since {}); a second run against the same VMs is refused. Wait for it to end, or follow it with `runbook show {} --project {}`",
                    h.run, h.project, h.pid, h.since, h.run, h.project
                ),
                Err(_) => format!(
                    "target `{target}` is locked on this machine by another run that is starting ({})",
                    crate::paths::display(&path)
                ),
            };
            return Err(Error::Usage(message));
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(&path, &e)),
    }
    let holder = Holder {
        run: run.to_string(),
        pid: std::process::id(),
        project: crate::paths::display(project),
        since: crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339(),
    };
    let text = serde_json::to_string(&holder).unwrap_or_default();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .map_err(|e| Error::io(&path, &e))?;
    Ok(Some(MachineLock { _file: file }))
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn one_vault_at_one_endpoint_is_one_key() {
        let a = key(
            "/subscriptions/S/resourceGroups/G/vaults/V",
            "http://localhost:8080/",
        );
        let b = key(
            "/subscriptions/s/resourcegroups/g/vaults/v",
            "http://127.0.0.1:8080",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            key(
                "/subscriptions/s/resourcegroups/g/vaults/v",
                "http://127.0.0.1:8081"
            )
        );
        assert_eq!(
            key(
                "/subscriptions/s/resourcegroups/g/vaults/v",
                "https://management.azure.com"
            ),
            "/subscriptions/s/resourcegroups/g/vaults/v@https://management.azure.com:443"
        );
    }
}
