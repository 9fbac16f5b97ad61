//! `runbook.toml`, found by walking up from the runbook's folder, and reading text files
//! with errors an operator can act on.

use crate::error::Error;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The project configuration file's name.
pub const FILE_NAME: &str = "runbook.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    inventory: Option<String>,
    #[serde(default)]
    simulator: SimulatorSection,
    #[serde(default)]
    targets: std::collections::BTreeMap<String, crate::backend::azure::TargetConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorSection {
    speed: Option<toml::Spanned<f64>>,
}

/// A loaded `runbook.toml` (or none).
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: Option<PathBuf>,
    /// The inventory, resolved against the file's folder.
    pub inventory: Option<PathBuf>,
    /// The simulator's speed factor for `run`.
    pub speed: Option<f64>,
    /// Real services runbooks can run against (`[targets.NAME]`).
    pub targets: std::collections::BTreeMap<String, crate::backend::azure::TargetConfig>,
}

impl Config {
    /// Finds `runbook.toml` in `start` or the nearest folder above it.
    pub fn discover(start: &Path) -> Result<Config, Error> {
        let start = if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            start
        };
        let absolute = std::path::absolute(start).map_err(|e| Error::io(start, &e))?;
        for dir in absolute.ancestors() {
            let candidate = dir.join(FILE_NAME);
            if candidate.is_file() {
                return Config::load(&candidate);
            }
        }
        Ok(Config::default())
    }

    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = read_text(path)?;
        let shown = crate::paths::display(path);
        let file: File = toml::from_str(&text).map_err(|e| Error::Config {
            path: shown.clone(),
            message: e.message().to_string(),
            span: e.span().map(Into::into),
            text: text.clone(),
            help: Some(
                "runbook.toml knows `inventory = \"FILE\"`, `[simulator] speed = N` and `[targets.NAME]` (subscription, resource_group, vault, api_version, endpoint, poll_min)".into(),
            ),
        })?;
        if let Some(speed) = &file.simulator.speed {
            let value = *speed.get_ref();
            if !(0.01..=10_000_000.0).contains(&value) {
                return Err(Error::Config {
                    path: shown,
                    message: format!("speed must be between 0.01 and 10000000, not {value}"),
                    span: Some(speed.span().into()),
                    text,
                    help: None,
                });
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Config {
            path: Some(path.to_path_buf()),
            inventory: file.inventory.map(|i| dir.join(i)),
            speed: file.simulator.speed.map(|s| s.into_inner()),
            targets: file.targets,
        })
    }
}

impl Config {
    /// The target named `name`, or an error naming the known ones.
    pub fn target(&self, name: &str) -> Result<&crate::backend::azure::TargetConfig, Error> {
        self.targets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "no target `{name}` in {}; known: {}",
                self.path.as_deref().map_or(
                    "runbook.toml (none found)".to_string(),
                    crate::paths::display
                ),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The backend for target `name`, with a credential from the environment.
    pub fn backend(&self, name: &str) -> Result<crate::backend::azure::Azure, Error> {
        use crate::backend::azure::Azure;
        let target = self.target(name)?;
        let credential = Azure::credential_from_env(target).map_err(Error::Usage)?;
        Azure::new(target, credential).map_err(Error::Usage)
    }
}

/// Reads a UTF-8 text file; a directory, a missing file or invalid UTF-8 is a clear error.
pub fn read_text(path: &Path) -> Result<String, Error> {
    if path.is_dir() {
        return Err(Error::Io {
            path: path.display().to_string(),
            message: "it is a directory; name a file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes());
        let line = text[..at.min(text.len())].matches('\n').count() + 1;
        Error::Io {
            path: path.display().to_string(),
            message: format!(
                "it is not UTF-8 text (invalid byte at offset {at}, line {line}); save it as UTF-8"
            ),
        }
    })
}
