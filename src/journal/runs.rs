//! Run folders: `.runbook/runs/<id>/` under the runbook project (the folder of
//! `runbook.toml`, else the runbook's own folder). A run folder holds the journal and the
//! approvals given with `runbook approve`; everything in it is readable only by its owner.

use super::store::Store;
use super::{Entry, Header, Loaded, RunState, FILE};
use crate::clock::Timestamp;
use crate::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The folder of a project's runs.
pub fn runs_dir(project: &Path) -> PathBuf {
    project.join(".runbook").join("runs")
}

/// The project a runbook belongs to: the folder of the `runbook.toml` that applies to it,
/// else its own folder.
pub fn project_of(config: Option<&Path>, runbook: &Path) -> PathBuf {
    let folder = match config.and_then(Path::parent) {
        Some(dir) => dir.to_path_buf(),
        None => crate::paths::folder_of(runbook),
    };
    std::path::absolute(&folder).unwrap_or(folder)
}

/// The project for commands that name a run: `--project`, else the nearest folder from the
/// current one up that has runs or a `runbook.toml`.
pub fn discover_project(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(dir) = given {
        return std::path::absolute(dir).map_err(|e| Error::io(dir, &e));
    }
    let here = std::env::current_dir().map_err(|e| Error::io(Path::new("."), &e))?;
    for dir in here.ancestors() {
        if runs_dir(dir).is_dir() || dir.join(crate::config::FILE_NAME).is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    Ok(here)
}

/// `--project DIR` for a command about a run of `project`, unless the current folder
/// finds that project by itself.
pub fn project_arg(project: &Path) -> String {
    if discover_project(None).ok().as_deref() == Some(project) {
        String::new()
    } else {
        format!(" --project {}", crate::paths::display(project))
    }
}

/// Creates a folder only its owner can read, with its parents.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Creates a new file only its owner can read and write; fails if it exists.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).read(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The new name must survive a crash too.
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(file)
}

/// Marks run `old` as superseded by `new`: it cannot be resumed any more.
pub(super) fn supersede(project: &Path, old: &str, new: &str) {
    let dir = runs_dir(project).join(old);
    if dir.is_dir() {
        let _ = std::fs::write(dir.join(SUPERSEDED), new);
    }
}

/// The file in a run folder that names the run that took its lock over.
pub const SUPERSEDED: &str = "superseded";

/// The run that took over `dir`'s run's lock, if one did.
pub fn superseded_by(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(SUPERSEDED))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Makes a new run folder with a fresh id: `YYYYMMDD-HHMMSS-xxxx`.
pub fn create_run(project: &Path, now: Timestamp) -> Result<(String, PathBuf), Error> {
    let runs = runs_dir(project);
    create_private_dir(&runs).map_err(|e| {
        Error::Usage(format!(
            "cannot create the run folder {}: {}; nothing was run",
            crate::paths::display(&runs),
            io_reason(&e)
        ))
    })?;
    for attempt in 0..100u32 {
        let id = new_id(now, attempt);
        let dir = runs.join(&id);
        match std::fs::DirBuilder::new().create(&dir) {
            Ok(()) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                }
                // The new folder's name must survive a power loss, as its journal will.
                for folder in [runs.as_path(), project.join(".runbook").as_path()] {
                    File::open(folder)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| Error::io(folder, &e))?;
                }
                return Ok((id, dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Usage(format!(
                    "cannot create the run folder {}: {}; nothing was run",
                    crate::paths::display(&dir),
                    io_reason(&e)
                )))
            }
        }
    }
    Err(Error::Usage("cannot find a free run id".into()))
}

/// A fresh run id for `now`: `YYYYMMDD-HHMMSS-xxxx`, the last part from this process,
/// the moment and `attempt`.
pub fn new_id(now: Timestamp, attempt: u32) -> String {
    let stamp = now.rfc3339();
    let digits: String = stamp
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let salt = super::sha256(
        format!(
            "{}/{}/{attempt}/{:?}/{:?}",
            std::process::id(),
            now.0,
            std::time::Instant::now(),
            std::time::SystemTime::now()
        )
        .as_bytes(),
    );
    format!(
        "{}-{}-{}",
        &digits[..8.min(digits.len())],
        &digits[8.min(digits.len())..],
        &salt[..4]
    )
}

/// Removes the folder of a run that never started (nothing in it but what its start wrote),
/// and `.runbook/runs/` and `.runbook/` of `project` when that leaves them empty.
pub fn discard(project: &Path, dir: &Path) {
    let journal = dir.join(FILE);
    // A journal with records stays: only a run that wrote nothing is discarded.
    if journal.metadata().is_ok_and(|m| m.len() > 0) {
        return;
    }
    let _ = std::fs::remove_file(&journal);
    let _ = std::fs::remove_dir(dir);
    let runs = runs_dir(project);
    if std::fs::remove_dir(&runs).is_ok() {
        let _ = std::fs::remove_dir(project.join(".runbook"));
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Finds run `id` (or a unique prefix of one) in `store`.
pub fn find(store: &dyn Store, id: &str) -> Result<String, Error> {
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(Error::Usage(format!("`{id}` is not a run id")));
    }
    let ids = store.ids()?;
    if ids.iter().any(|r| r == id) {
        return Ok(id.to_string());
    }
    let matches: Vec<&String> = ids.iter().filter(|r| r.starts_with(id)).collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::Usage(format!(
            "no run `{id}` in {} (see `runbook runs`)",
            store.describe()
        ))),
        many => Err(Error::Usage(format!(
            "`{id}` names several runs: {}",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The ids of a project's runs, oldest first.
pub fn ids(project: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(runs_dir(project)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(FILE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}

/// A run as `runbook runs` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub id: String,
    pub runbook: String,
    pub target: String,
    pub operator: String,
    pub started: String,
    pub state: String,
    pub operations: usize,
}

/// Whether a process holds the journal's lock: its run is running.
pub(crate) fn is_locked(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    )
}

/// Where a run stands, from its journal: how its last attempt ended, or whether its
/// process still runs.
pub fn state_of(loaded: &Loaded) -> String {
    if let Some(by) = &loaded.superseded {
        return format!("superseded by run {by}");
    }
    let mut end = None;
    for r in &loaded.records {
        match &r.entry {
            Entry::Start(_) | Entry::Resumed { .. } => end = None,
            Entry::End { state, .. } => end = Some(*state),
            _ => {}
        }
    }
    // A run on the embedded simulator cannot be resumed: its state died with it.
    let resumable = if loaded.header().is_some_and(|h| h.target.is_some()) {
        " (resumable)"
    } else {
        ""
    };
    match end {
        Some(RunState::Succeeded) => "succeeded".into(),
        Some(RunState::Failed) => format!("failed{resumable}"),
        Some(RunState::Interrupted) => format!("interrupted{resumable}"),
        None if loaded.running => "running".into(),
        None => format!("crashed{resumable}"),
    }
}

/// What `runbook runs` says when a project has no runs: where it looked, where runs are
/// kept, and the projects in the folders just below, if any (`--project runbooks`).
pub fn none_found(project: &Path) -> String {
    let mut out = format!(
        "no runs in {} (looked in {}); a run is kept in its runbook's project: the folder of the runbook.toml that applies to it, else the runbook's own folder",
        crate::paths::display(project),
        crate::paths::display(&runs_dir(project))
    );
    let mut below: Vec<PathBuf> = std::fs::read_dir(project)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join(crate::config::FILE_NAME).is_file() || runs_dir(p).is_dir())
                .collect()
        })
        .unwrap_or_default();
    below.sort();
    if let Some(first) = below.first() {
        let names: Vec<String> = below.iter().map(|p| crate::paths::display(p)).collect();
        out.push_str(&format!(
            ". Projects below: {}; e.g. `runbook runs --project {}`",
            names.join(", "),
            crate::paths::display(first)
        ));
    }
    out
}

/// Every run in `store`, oldest first. Unreadable journals are listed as such.
pub fn list(store: &dyn Store) -> Result<Vec<Summary>, Error> {
    Ok(store
        .ids()?
        .into_iter()
        .map(|id| match store.load(&id) {
            Ok(loaded) => summarize(&id, &loaded),
            Err(e) => Summary {
                id,
                runbook: String::new(),
                target: String::new(),
                operator: String::new(),
                started: String::new(),
                state: format!("unreadable: {e}"),
                operations: 0,
            },
        })
        .collect())
}

pub fn summarize(id: &str, loaded: &Loaded) -> Summary {
    let header: Option<&Header> = loaded.header();
    Summary {
        id: id.to_string(),
        runbook: header.map_or_else(String::new, |h| crate::paths::display(&h.runbook)),
        target: header
            .and_then(|h| h.target.clone())
            .unwrap_or_else(|| "simulator".into()),
        operator: header.map_or_else(String::new, |h| h.operator.clone()),
        started: header.map_or_else(String::new, |h| h.started_wall.clone()),
        state: state_of(loaded),
        operations: loaded
            .records
            .iter()
            .filter(|r| matches!(r.entry, Entry::Intent { .. }))
            .count(),
    }
}
