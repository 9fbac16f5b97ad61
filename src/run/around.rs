//! What a run brings along besides its script: the parameters' values (`--set` and the
//! defaults, or on resume the journal's), the actions and notification channels of
//! runbook.toml, and the run's events told to those channels.

use crate::config::Config;
use crate::diagnostics::Finding;
use crate::journal::Header;
use crate::script::host::Host;
use crate::script::params::{resolve, Values};
use std::path::Path;
use std::sync::Arc;

/// The parameters' values of the runbook `ast` (none when it did not compile): those the
/// journal `recorded` when resuming, else `sets` and the defaults; why not, when a value is
/// unknown, bad or missing.
pub(super) fn values(
    ast: Option<&rhai::AST>,
    source: &Arc<str>,
    recorded: Option<&Header>,
    sets: &[(String, String)],
) -> Result<Values, String> {
    let Some(ast) = ast else {
        return Ok(Values::new());
    };
    let (declared, _) = crate::check::params::discover(ast, source);
    let recorded: Option<Vec<(String, String)>> =
        recorded.map(|h| h.params.clone().into_iter().collect());
    resolve(&declared, recorded.as_deref().unwrap_or(sets), true)
}

/// Gives `host` the actions and channels of the runbook.toml found from `folder` up, its
/// deliveries made on `handle` for run `run`.
pub(super) fn declare(
    host: &Host,
    folder: &Path,
    run: Option<&str>,
    handle: &tokio::runtime::Handle,
) {
    let declared = Config::discover(folder)
        .map(|c| c.actions())
        .unwrap_or_default();
    host.set_notifier(Arc::new(crate::notify::Notifier::new(
        declared.channels.clone(),
        run.unwrap_or("unjournaled"),
        Some(handle.clone()),
    )));
    host.set_actions(declared);
}

/// Tells the channels the run (or its resume) started.
pub(super) fn started(host: &Host, name: &str, target: Option<&str>, resuming: bool) {
    let (event, verb) = if resuming {
        ("run_resumed", "resumed")
    } else {
        ("run_started", "started")
    };
    let venue = target.map_or_else(
        || " on the embedded simulator".to_string(),
        |t| format!(" against target `{t}`"),
    );
    host.notify_event(
        event,
        &format!("{verb} {name}{venue}"),
        serde_json::json!({ "runbook": name, "target": target }),
    );
}

/// Tells the channels how the run ended.
pub(super) fn ended(host: &Host, name: &str, failure: Option<&Finding>, interrupted: bool) {
    let (event, said) = match (failure, interrupted) {
        (_, true) => ("run_stopped", "was interrupted".to_string()),
        (Some(f), false) => ("run_stopped", format!("failed: {}", f.message)),
        (None, false) => ("run_finished", "succeeded".to_string()),
    };
    let state = if event == "run_finished" {
        "succeeded"
    } else {
        "stopped"
    };
    host.notify_event(
        event,
        &format!("{name} {said}"),
        serde_json::json!({ "state": state }),
    );
}
