//! Reading the user's files, one way for every command: only regular files, each under a
//! size cap, and only inside the folder they belong to, so that no path, `..`, link or glob
//! makes runbook read (and then show, in a finding's snippet or a TOML error) a file outside
//! the project.
//!
//! A file named on the command line belongs to its own project: the folder of the nearest
//! `runbook.toml` at or above its folder, else its folder. A file named by `runbook.toml` (the
//! inventory) belongs to that file's project; a module, to its runbook's folder.

use crate::error::Error;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest runbook, module, inventory or `runbook.toml` read.
pub const MAX_BYTES: u64 = 8 << 20;

/// The most lines a runbook or module may have: Rhai places findings by a 16-bit line
/// number, so findings past that line would point at the wrong place.
pub const MAX_LINES: usize = u16::MAX as usize;

/// The longest line, in characters, of a runbook or module (Rhai's columns are 16-bit too).
pub const MAX_COLUMNS: usize = u16::MAX as usize;

/// The project a file named on the command line belongs to.
pub fn project_of(path: &Path) -> PathBuf {
    let folder = crate::paths::folder_of(path);
    crate::journal::runs::project_of(crate::config::find(&folder).as_deref(), path)
}

/// Reads a file named on the command line (a runbook, `--inventory`): it must lie inside its
/// own project once links are followed.
pub fn read_named(path: &Path) -> Result<String, Error> {
    read_inside(path, &project_of(path))
}

/// Reads a runbook or module named on the command line, and refuses one whose findings Rhai
/// could not place (see [`MAX_LINES`], [`MAX_COLUMNS`]).
pub fn read_script(path: &Path) -> Result<String, Error> {
    let text = read_named(path)?;
    fits_positions(path, &text)?;
    Ok(text)
}

/// Reads `path`, which must resolve inside `folder` (through `..` and links): a regular file
/// of at most [`MAX_BYTES`] of UTF-8 text (a byte-order mark is dropped).
pub fn read_inside(path: &Path, folder: &Path) -> Result<String, Error> {
    let real = resolve_inside(path, folder)?;
    read_regular(path, &real)
}

/// The real path of `path` (links and `..` followed), when it lies inside `folder`: the one
/// rule of what runbook may read.
pub fn resolve_inside(path: &Path, folder: &Path) -> Result<PathBuf, Error> {
    let real = std::fs::canonicalize(path).map_err(|e| Error::io(path, &e))?;
    let within = std::fs::canonicalize(folder).map_err(|e| Error::io(folder, &e))?;
    if real.starts_with(&within) {
        return Ok(real);
    }
    Err(Error::Io {
        path: path.display().to_string(),
        message: format!(
            "it resolves to `{}`, outside `{}`, the folder it must stay in; runbook reads only files inside the project (the folder of runbook.toml, else the runbook's folder): move the file there or name one there",
            real.display(),
            crate::paths::display(folder)
        ),
    })
}

/// Opens `real` without waiting (a FIFO would block), checks it is a regular file, and reads
/// at most [`MAX_BYTES`] of it. Errors name `shown`, the path as the user wrote it.
fn read_regular(shown: &Path, real: &Path) -> Result<String, Error> {
    let refuse = |message: String| Error::Io {
        path: shown.display().to_string(),
        message,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(real).map_err(|e| Error::io(shown, &e))?;
    let meta = file.metadata().map_err(|e| Error::io(shown, &e))?;
    if meta.is_dir() {
        return Err(refuse("it is a directory; name a file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(format!(
            "it is not a regular file but {}; name a file",
            kind(&meta)
        )));
    }
    let too_large = || {
        refuse(format!(
            "it is larger than {} MiB, the most runbook reads; runbooks and inventories are far smaller",
            MAX_BYTES >> 20
        ))
    };
    if meta.len() > MAX_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(shown, &e))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    decode(shown, bytes)
}

/// What kind of file that is not a regular file or a folder `meta` describes.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    let _ = meta;
    "a special file"
}

/// UTF-8 text without its byte-order mark; invalid UTF-8 is an error at its line and column.
fn decode(shown: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The valid prefix is UTF-8 by definition.
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let (line, column) = crate::diagnostics::line_col_of(before, before.len());
        Error::Located {
            path: crate::paths::display(shown),
            line,
            column,
            message: format!(
                "cannot read it: it is not UTF-8 text (an invalid byte at line {line}, column {column}, offset {}); save it as UTF-8",
                valid.len()
            ),
        }
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Refuses a script with more lines or longer lines than Rhai can place findings in.
pub fn fits_positions(path: &Path, text: &str) -> Result<(), Error> {
    let located = |line: usize, column: usize, message: String| Error::Located {
        path: crate::paths::display(path),
        line,
        column,
        message,
    };
    // A last line break ends the last line; it does not start another.
    let lines = text.strip_suffix('\n').unwrap_or(text);
    for (i, line) in lines.split('\n').enumerate() {
        if i >= MAX_LINES {
            return Err(located(
                i + 1,
                1,
                format!(
                    "it has more than {MAX_LINES} lines, the most a runbook or module may have (findings past that line could not be placed); split it into modules"
                ),
            ));
        }
        if line.len() > MAX_COLUMNS && line.chars().count() > MAX_COLUMNS {
            return Err(located(
                i + 1,
                MAX_COLUMNS + 1,
                format!(
                    "line {} is longer than {MAX_COLUMNS} characters, the most a runbook line may have (findings past that column could not be placed); break it into shorter lines",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: Error) -> String {
        err.to_string()
    }

    #[test]
    fn a_file_inside_its_folder_is_read_and_loses_its_byte_order_mark() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.rhai");
        std::fs::write(&file, "\u{feff}let x = 1;\n").unwrap();
        assert_eq!(read_inside(&file, dir.path()).unwrap(), "let x = 1;\n");
    }

    #[test]
    fn links_dot_dots_and_absolute_paths_out_of_the_folder_are_refused_unread() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.toml");
        std::fs::write(&secret, "SECRET=hunter2").unwrap();
        let project = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, project.path().join("link.rhai")).unwrap();
        let escape = project
            .path()
            .join("..")
            .join(outside.path().file_name().unwrap())
            .join("secret.toml");
        for path in [project.path().join("link.rhai"), escape, secret.clone()] {
            let err = message(read_inside(&path, project.path()).unwrap_err());
            assert!(err.contains("outside"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let environ =
            message(read_inside(Path::new("/proc/self/environ"), project.path()).unwrap_err());
        assert!(environ.contains("outside"), "{environ}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.rhai");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let err = message(read_inside(&fifo, dir.path()).unwrap_err());
        assert!(
            err.contains("FIFO"),
            "a FIFO is refused without blocking: {err}"
        );
        let err = message(read_inside(Path::new("/dev/zero"), Path::new("/dev")).unwrap_err());
        assert!(err.contains("device"), "{err}");
        let err = message(read_inside(dir.path(), dir.path()).unwrap_err());
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn files_over_the_cap_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (9 << 20) as usize]).unwrap();
        let err = message(read_inside(&big, dir.path()).unwrap_err());
        assert!(err.contains("larger than 8 MiB"), "{err}");
        let exact = dir.path().join("exact.toml");
        std::fs::write(&exact, vec![b'#'; MAX_BYTES as usize]).unwrap();
        assert!(
            read_inside(&exact, dir.path()).is_ok(),
            "8 MiB itself is read"
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.rhai");
        std::fs::write(&file, b"let a = 1;\nlet \xc3\xa9 = \"\xff\";\n").unwrap();
        let err = read_inside(&file, dir.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Located {
                    line: 2,
                    column: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn scripts_must_fit_rhais_positions() {
        let path = Path::new("long.rhai");
        let lines = "x\n".repeat(MAX_LINES);
        assert!(fits_positions(path, &lines).is_ok(), "65,535 lines fit");
        let err = fits_positions(path, &format!("{lines}x")).unwrap_err();
        assert!(
            matches!(&err, Error::Located { line: 65_536, .. }),
            "{err:?}"
        );
        let wide = format!("let a = 1;\n{}", "é".repeat(MAX_COLUMNS + 1));
        let err = fits_positions(path, &wide).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Located {
                    line: 2,
                    column: 65_536,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(fits_positions(path, &"é".repeat(MAX_COLUMNS)).is_ok());
    }
}
