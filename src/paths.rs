//! Paths as shown to people: relative to the working folder when below it.

use std::path::Path;

/// The folder a file is in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// `path` relative to the current folder when it lies below it (`.` for the folder
/// itself), else as given.
pub fn display(path: &Path) -> String {
    if let (Ok(cwd), Ok(abs)) = (std::env::current_dir(), std::path::absolute(path)) {
        if let Ok(rel) = abs.strip_prefix(&cwd) {
            if rel.as_os_str().is_empty() {
                return ".".into();
            }
            return rel.display().to_string();
        }
    }
    path.display().to_string()
}
