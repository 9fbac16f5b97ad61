//! Paths as shown to people: relative to the working folder when below it.

use std::path::Path;

/// `path` relative to the current folder when it lies below it, else as given.
pub fn display(path: &Path) -> String {
    if let (Ok(cwd), Ok(abs)) = (std::env::current_dir(), std::path::absolute(path)) {
        if let Ok(rel) = abs.strip_prefix(&cwd) {
            return rel.display().to_string();
        }
    }
    path.display().to_string()
}
