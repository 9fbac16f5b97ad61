//! `runbook.toml`, found by walking up from the runbook's folder; its paths stay inside its
//! folder (see [`crate::files`], which reads every file).

use crate::error::Error;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The project configuration file's name.
pub const FILE_NAME: &str = "runbook.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    inventory: Option<toml::Spanned<String>>,
    #[serde(default)]
    simulator: SimulatorSection,
    #[serde(default)]
    check: CheckSection,
    #[serde(default)]
    targets: std::collections::BTreeMap<String, crate::backend::azure::TargetConfig>,
    state: Option<StateSection>,
    #[serde(default)]
    actions: std::collections::BTreeMap<String, crate::actions::ActionConfig>,
    #[serde(default)]
    notify: std::collections::BTreeMap<String, crate::notify::NotifyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    url: toml::Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorSection {
    speed: Option<toml::Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSection {
    time_limit: Option<toml::Spanned<String>>,
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
    /// How long `check` may spend on one runbook (`[check] time_limit`).
    pub time_limit: Option<std::time::Duration>,
    /// Real services runbooks can run against (`[targets.NAME]`).
    pub targets: std::collections::BTreeMap<String, crate::backend::azure::TargetConfig>,
    /// Where runs' journals and locks are kept (`[state] url`); none: the project's
    /// `.runbook/` folder.
    pub state: Option<crate::journal::store::StateUrl>,
    /// The actions runbooks may run (`[actions.NAME]`).
    pub actions: std::collections::BTreeMap<String, crate::actions::ActionConfig>,
    /// The channels told of a run's events (`[notify.NAME]`).
    pub notify: std::collections::BTreeMap<String, crate::notify::NotifyConfig>,
}

impl Config {
    /// What its actions and channels need and this machine does not have: environment
    /// variables they name that are not set, programs that are not found. A live run says
    /// so before its first operation, not at the action in the middle of the recovery.
    pub fn unready(&self) -> Vec<String> {
        let unset = |var: &str| std::env::var_os(var).is_none_or(|v| v.is_empty());
        let mut out = Vec::new();
        let dir = self.actions().dir;
        for (name, action) in &self.actions {
            for var in action.secret_headers.values().filter(|v| unset(v)) {
                out.push(format!("action `{name}` needs ${var}, which is not set"));
            }
            if let Some(program) = action.command.as_ref().and_then(|c| c.first()) {
                if !program_found(program, &dir) {
                    out.push(format!(
                        "action `{name}`: the program `{program}` is not found"
                    ));
                }
            }
        }
        for (name, channel) in &self.notify {
            let vars = channel
                .webhook_env
                .iter()
                .chain(channel.secret_headers.values());
            for var in vars.filter(|v| unset(v)) {
                out.push(format!("channel `{name}` needs ${var}, which is not set"));
            }
        }
        out
    }

    /// The actions it declares, with the folder their commands run in.
    pub fn actions(&self) -> crate::actions::Actions {
        crate::actions::Actions {
            dir: self
                .path
                .as_deref()
                .map(crate::paths::folder_of)
                .unwrap_or_else(|| PathBuf::from(".")),
            declared: self.actions.clone(),
            channels: self.notify.clone(),
        }
    }

    /// Finds `runbook.toml` in `start` or the nearest folder above it.
    pub fn discover(start: &Path) -> Result<Config, Error> {
        match find(start) {
            Some(path) => Config::load(&path),
            None => Ok(Config::default()),
        }
    }

    /// Loads `path`, which must be a file inside its own folder (no link out of it), and
    /// refuses an inventory that resolves outside that folder.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let dir = crate::paths::folder_of(path);
        let text = crate::files::read_inside(path, &dir)?;
        let shown = crate::paths::display(path);
        let file: File = toml::from_str(&text).map_err(|e| Error::Config {
            path: shown.clone(),
            message: crate::diagnostics::shorten(e.message().to_string()),
            span: e.span().map(Into::into),
            text: text.clone(),
            help: Some(
                "runbook.toml knows `inventory = \"FILE\"`, `[simulator] speed = N`, `[check] time_limit = \"10s\"`, `[state] url = \"az://CONTAINER/PREFIX\"`, `[actions.NAME]`, `[notify.NAME]` and `[targets.NAME]` (subscription, resource_group, vault, api_version, endpoint, poll_min)".into(),
            ),
        })?;
        let at = |span: std::ops::Range<usize>, message: String| Error::Config {
            path: shown.clone(),
            message,
            span: Some(span.into()),
            text: text.clone(),
            help: None,
        };
        let inventory = file.inventory.map(|i| (dir.join(i.get_ref()), i));
        if let Some((path, named)) = &inventory {
            // A missing inventory is reported when it is read, by the command that needs it.
            if std::fs::symlink_metadata(path).is_ok() {
                if let Err(Error::Io { message, .. }) = crate::files::resolve_inside(path, &dir) {
                    return Err(at(
                        named.span(),
                        format!("the inventory `{}`: {message}", named.get_ref()),
                    ));
                }
            }
        }
        let time_limit = match &file.check.time_limit {
            Some(limit) => Some(
                crate::clock::parse_duration(limit.get_ref())
                    .map_err(|m| at(limit.span(), format!("time_limit: {m}")))?,
            ),
            None => None,
        };
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
        let state = match &file.state {
            Some(section) => Some(
                crate::journal::store::StateUrl::parse(section.url.get_ref())
                    .map_err(|m| at(section.url.span(), m))?,
            ),
            None => None,
        };
        if let Some(problem) = file
            .actions
            .iter()
            .find_map(|(n, a)| a.problem(n))
            .or_else(|| file.notify.iter().find_map(|(n, c)| c.problem(n)))
        {
            return Err(Error::Config {
                path: shown,
                message: problem,
                span: None,
                text,
                help: Some("an action is `[actions.NAME]` with `command = [\"program\", \"arg\"]` or `webhook = \"https://...\"`, and optionally `timeout`, `expected` (durations), `idempotent` and `secret_headers = { Header = \"ENV_VAR\" }`".into()),
            });
        }
        Ok(Config {
            actions: file.actions,
            notify: file.notify,
            path: Some(path.to_path_buf()),
            inventory: inventory.map(|(path, _)| path),
            speed: file.simulator.speed.map(|s| s.into_inner()),
            time_limit,
            targets: file.targets,
            state,
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

/// `runbook.toml` in `start` or the nearest folder above it.
pub fn find(start: &Path) -> Option<PathBuf> {
    let start = if start.as_os_str().is_empty() {
        Path::new(".")
    } else {
        start
    };
    let absolute = std::path::absolute(start).ok()?;
    absolute
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        // Any file, even one that cannot be read: loading it says why.
        .find(|candidate| std::fs::symlink_metadata(candidate).is_ok_and(|m| !m.is_dir()))
}

/// Reads a runbook named on the command line (see [`crate::files`]).
pub use crate::files::read_script as read_text;

/// Whether `program` can be run: a path (relative to `dir`) that exists, or a name found on
/// `PATH`.
fn program_found(program: &str, dir: &Path) -> bool {
    if program.contains('/') {
        return crate::actions::program_path(program, dir).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}
