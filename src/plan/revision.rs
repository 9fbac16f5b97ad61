//! Where `plan --compare` reads a runbook from: a file, or a file at a git revision written
//! as git writes it, `REV:PATH` (e.g. `main:runbooks/failback.rhai`, `HEAD~1:plan.rhai`).
//! PATH is relative to the repository's root, or to the current folder when it starts with
//! `./` or `../`. An argument that names an existing file is always that file.
//!
//! A runbook read from a revision imports its modules from the same revision: the `.rhai`
//! files of its folder at that revision are written to a temporary folder first.

use crate::error::Error;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// A runbook to plan: its name, its text, the folder its imports resolve in, and the file
/// in the working tree whose `runbook.toml` names its inventory.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    pub root: PathBuf,
    pub config_path: PathBuf,
    /// Keeps the temporary folder of a revision's modules until the source is dropped.
    _modules: Option<tempfile::TempDir>,
}

/// Reads `spec`: a file, else `REV:PATH`.
pub fn read(spec: &str) -> Result<Source, Error> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(Source {
            name: crate::paths::display(path),
            text: crate::config::read_text(path)?,
            root: crate::paths::folder_of(path),
            config_path: path.to_path_buf(),
            _modules: None,
        });
    }
    match spec.split_once(':') {
        Some((rev, file)) if !rev.is_empty() && !file.is_empty() => at_revision(spec, rev, file),
        _ => Err(Error::Io {
            path: spec.to_string(),
            message: "no such file (to read a file at a git revision, write REV:PATH, e.g. main:runbooks/failover.rhai)".into(),
        }),
    }
}

/// Runs git with `args` in `dir` and returns its standard output.
fn git(dir: &Path, args: &[&str], spec: &str) -> Result<Vec<u8>, Error> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot read `{spec}`: git could not be run ({e}); REV:PATH needs git on the PATH"
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Usage(format!(
            "cannot read `{spec}` from git: {}",
            stderr.trim().trim_start_matches("fatal: ")
        )));
    }
    Ok(out.stdout)
}

fn git_text(dir: &Path, args: &[&str], spec: &str) -> Result<String, Error> {
    let bytes = git(dir, args, spec)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Usage(format!("`{spec}`: git's answer is not UTF-8 text")))
}

/// `path` without `.` and with `..` applied; `None` if it leaves its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn at_revision(spec: &str, rev: &str, file: &str) -> Result<Source, Error> {
    let here = std::env::current_dir().map_err(|e| Error::io(Path::new("."), &e))?;
    let top = PathBuf::from(
        git_text(&here, &["rev-parse", "--show-toplevel"], spec)?
            .trim()
            .to_string(),
    );
    let relative = if file.starts_with("./") || file.starts_with("../") {
        let prefix = git_text(&here, &["rev-parse", "--show-prefix"], spec)?;
        Path::new(prefix.trim()).join(file)
    } else {
        PathBuf::from(file)
    };
    let in_repo = normalize(&relative).ok_or_else(|| {
        Error::Usage(format!(
            "cannot read `{spec}`: the path leaves the repository"
        ))
    })?;
    let repo_path = in_repo.to_string_lossy().replace('\\', "/");
    let bytes = git(&top, &["show", &format!("{rev}:{repo_path}")], spec)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Io {
        path: spec.to_string(),
        message: "not UTF-8 text".into(),
    })?;
    let folder = in_repo.parent().unwrap_or(Path::new("")).to_path_buf();
    let modules = if imports_local_modules(&text) {
        Some(materialize(&top, rev, &folder, spec)?)
    } else {
        None
    };
    let root = modules
        .as_ref()
        .map_or_else(|| top.join(&folder), |m| m.path().join(&folder));
    Ok(Source {
        name: spec.to_string(),
        text,
        root,
        config_path: top.join(&in_repo),
        _modules: modules,
    })
}

/// Whether `text` imports anything but the stdlib (a cheap look at its import lines).
fn imports_local_modules(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("import") && !l.contains(crate::script::resolver::STDLIB_PREFIX)
    })
}

/// Writes the `.rhai` files under `folder` at `rev` into a new temporary folder, at the same
/// paths relative to the repository's root.
fn materialize(
    top: &Path,
    rev: &str,
    folder: &Path,
    spec: &str,
) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::tempdir()
        .map_err(|e| Error::Usage(format!("cannot make a temporary folder: {e}")))?;
    let under = folder.to_string_lossy().replace('\\', "/");
    let mut args = vec!["ls-tree", "-r", "--name-only", "--full-tree", rev];
    if !under.is_empty() {
        args.extend(["--", under.as_str()]);
    }
    let names = git_text(top, &args, spec)?;
    for name in names.lines().filter(|n| n.ends_with(".rhai")) {
        let content = git(top, &["show", &format!("{rev}:{name}")], spec)?;
        let target = dir.path().join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, &e))?;
        }
        std::fs::write(&target, content).map_err(|e| Error::io(&target, &e))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_inside_the_repository() {
        assert_eq!(
            normalize(Path::new("runbooks/./lib/../plan.rhai")),
            Some(PathBuf::from("runbooks/plan.rhai"))
        );
        assert_eq!(normalize(Path::new("../outside.rhai")), None);
    }

    #[test]
    fn only_non_stdlib_imports_need_the_revision_s_modules() {
        assert!(!imports_local_modules("import \"runbook/drill\" as d;\n"));
        assert!(imports_local_modules("import \"lib/steps\" as s;\n"));
    }

    #[test]
    fn a_missing_file_without_a_revision_says_how_to_name_one() {
        let err = read("no-such-plan.rhai").unwrap_err();
        assert!(err.to_string().contains("REV:PATH"), "{err}");
    }
}
