//! Files the language server shows an editor that are no files of the user's: the embedded
//! stdlib's modules (for go to definition, and findings located in them) and each code's
//! `runbook explain` text (the link of a diagnostic's code), written read-only under
//! `$XDG_CACHE_HOME/runbook/lsp/<digest>/` (else `~/.cache/...`, else the temporary folder).
//! The digest is of the content, so servers of different builds never share a folder and a
//! folder once written never changes.

use crate::diagnostics::{explain, Code};
use crate::script::stdlib;
use lsp_types::Url;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The cache folder of this build's files, or none when it could not be written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// Writes the files under the user's cache folder (see the module's documentation).
    pub(crate) fn create() -> Cache {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        Cache::create_in(&base.join("runbook").join("lsp"))
    }

    /// Writes the files into a folder of `base` named by their digest.
    pub(crate) fn create_in(base: &Path) -> Cache {
        let files = files();
        let mut digest = Sha256::new();
        for (name, content) in &files {
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update(content.as_bytes());
            digest.update([0]);
        }
        let hex: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = base.join(hex);
        match write_all(&dir, &files) {
            Ok(()) => Cache { dir: Some(dir) },
            Err(e) => {
                tracing::warn!("cannot write the language server's files in {}: {e}; go to definition into the stdlib and links to explanations are off", dir.display());
                Cache { dir: None }
            }
        }
    }

    /// The file of a stdlib module, by its source name (`stdlib/failover.rhai`) or import
    /// path (`runbook/failover`).
    pub(crate) fn stdlib_file(&self, name: &str) -> Option<PathBuf> {
        let module = name
            .strip_prefix("stdlib/")
            .or_else(|| name.strip_prefix(crate::script::resolver::STDLIB_PREFIX))?;
        let module = module.strip_suffix(".rhai").unwrap_or(module);
        stdlib::get(module)?;
        Some(self.dir.as_ref()?.join(format!("stdlib/{module}.rhai")))
    }

    /// The `file:` URL of a code's explanation (markdown).
    pub(crate) fn explanation(&self, code: Code) -> Option<Url> {
        let path = self
            .dir
            .as_ref()?
            .join(format!("explain/{}.md", code.as_str()));
        Url::from_file_path(path).ok()
    }
}

/// Every file: `(path in the folder, content)`.
fn files() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = stdlib::MODULES
        .iter()
        .map(|(name, text)| (format!("stdlib/{name}.rhai"), text.to_string()))
        .collect();
    out.extend(Code::ALL.iter().map(|&code| {
        (
            format!("explain/{}.md", code.as_str()),
            explain::markdown(code),
        )
    }));
    out
}

/// Writes each file that is missing, whole or not at all (a temporary file renamed into
/// place, so two servers starting at once never see half a file), and read-only.
fn write_all(dir: &Path, files: &[(String, String)]) -> std::io::Result<()> {
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|on_disk| on_disk == content.as_bytes()) {
            continue;
        }
        let folder = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(folder)?;
        let mut file = tempfile::NamedTempFile::new_in(folder)?;
        std::io::Write::write_all(&mut file, content.as_bytes())?;
        let mut permissions = file.as_file().metadata()?.permissions();
        permissions.set_readonly(true);
        file.as_file().set_permissions(permissions)?;
        file.persist(&path).map_err(|e| e.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdlib_and_the_explanations_are_written_read_only_once() {
        let base = tempfile::tempdir().unwrap();
        let cache = Cache::create_in(base.path());
        let failover = cache.stdlib_file("stdlib/failover.rhai").unwrap();
        assert_eq!(
            cache.stdlib_file("runbook/failover"),
            Some(failover.clone())
        );
        assert_eq!(
            std::fs::read_to_string(&failover).unwrap(),
            stdlib::get("failover").unwrap()
        );
        assert!(std::fs::metadata(&failover)
            .unwrap()
            .permissions()
            .readonly());
        assert_eq!(cache.stdlib_file("stdlib/nothing.rhai"), None);
        assert_eq!(cache.stdlib_file("lib/steps.rhai"), None);
        let url = cache.explanation(Code::UnknownVm).unwrap();
        let text = std::fs::read_to_string(url.to_file_path().unwrap()).unwrap();
        assert_eq!(text, explain::markdown(Code::UnknownVm));
        // A second server of the same build finds the folder as it is.
        let again = Cache::create_in(base.path());
        assert_eq!(again.stdlib_file("runbook/failover"), Some(failover));
    }

    #[test]
    fn without_a_folder_there_are_no_files() {
        let base = tempfile::tempdir().unwrap();
        let blocked = base.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let cache = Cache::create_in(&blocked);
        assert_eq!(cache.stdlib_file("runbook/failover"), None);
        assert_eq!(cache.explanation(Code::UnknownVm), None);
    }
}
