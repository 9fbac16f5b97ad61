//! The check thread: checks open documents off the message loop, a short while after the
//! last change (debounced), with every open document's text in place of its file, drops
//! results of versions the editor has moved past, and publishes each document's diagnostics
//! (the union of what the checks of every open document found in it).

use super::cache::Cache;
use super::convert::{self, ByDocument, Targets};
use super::documents::{Document, Documents};
use crate::check::{check_text, inventory_for};
use crate::script::resolver::with_overlay;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lsp_server::{Message, Notification};
use lsp_types::notification::{Notification as _, PublishDiagnostics};
use lsp_types::{Diagnostic, PublishDiagnosticsParams, Url};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after a change a document is checked, if no other change came meanwhile.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(150);

/// What the message loop tells the check thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// A document was opened (`now`: check it at once) or changed; the documents that may
    /// import it are checked again too.
    Touched { uri: Url, now: bool },
    /// A document was closed: what its checks found goes, the others are checked again.
    Closed(Url),
    /// Files changed on disk (a module, runbook.toml, an inventory): every open document is
    /// checked again.
    Everything,
}

/// The diagnostics last published, by document, with the version they are of: what the
/// editor shows, and what quick fixes are made from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published(Arc<Mutex<HashMap<Url, Versioned>>>);

/// Diagnostics and the version of the document they were found in (none for a document
/// that is not open).
pub(crate) type Versioned = (Option<i32>, Vec<Diagnostic>);

impl Published {
    pub(crate) fn get(&self, uri: &Url) -> Option<Versioned> {
        self.lock().get(uri).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Url, Versioned>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the check thread shares with the message loop.
pub(crate) struct Shared {
    pub docs: Documents,
    pub published: Published,
    pub cache: Arc<Cache>,
    pub sender: Sender<Message>,
}

/// Runs until the message loop drops its end of `jobs`.
pub(crate) fn run(jobs: &Receiver<Job>, shared: &Shared) {
    let mut state = State::default();
    loop {
        let next = state.pending.values().min().copied();
        let job = match next {
            Some(due) => jobs.recv_deadline(due),
            None => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match job {
            Ok(job) => state.take(job, shared),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // A burst of changes is one check.
        while let Ok(job) = jobs.try_recv() {
            state.take(job, shared);
        }
        let now = Instant::now();
        let due: Vec<Url> = state
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(uri, _)| uri.clone())
            .collect();
        for uri in due {
            state.pending.remove(&uri);
            if let Some(doc) = shared.docs.get(&uri) {
                let found = check(&uri, &doc, shared);
                // The editor moved on while this ran: a newer check is pending.
                if shared
                    .docs
                    .get(&uri)
                    .is_some_and(|d| d.version == doc.version)
                {
                    state.found.insert(uri.clone(), found);
                    state.publish(&uri, shared);
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// When each document is due to be checked.
    pending: HashMap<Url, Instant>,
    /// What the last check of each open document found, by the document it is in.
    found: HashMap<Url, ByDocument>,
}

impl State {
    fn take(&mut self, job: Job, shared: &Shared) {
        let now = Instant::now();
        let later = now + DEBOUNCE;
        let uri = match job {
            Job::Touched { uri, now: at_once } => {
                self.pending
                    .insert(uri.clone(), if at_once { now } else { later });
                uri
            }
            Job::Everything => {
                for uri in shared.docs.uris() {
                    self.pending.entry(uri).or_insert(later);
                }
                return;
            }
            Job::Closed(uri) => {
                self.pending.remove(&uri);
                if let Some(found) = self.found.remove(&uri) {
                    for target in found.keys() {
                        self.send(target, false, shared);
                    }
                }
                uri
            }
        };
        // Any other document may import this one.
        for other in shared.docs.uris() {
            if other != uri {
                self.pending.entry(other).or_insert(later);
            }
        }
    }

    /// Publishes what changed after the check of `owner`.
    fn publish(&mut self, owner: &Url, shared: &Shared) {
        let targets: Vec<Url> = self.found[owner].keys().cloned().collect();
        let before: Vec<Url> = shared
            .published
            .lock()
            .keys()
            .filter(|t| !targets.contains(t))
            .cloned()
            .collect();
        self.send(owner, true, shared);
        for target in targets.iter().chain(&before).filter(|t| *t != owner) {
            self.send(target, false, shared);
        }
    }

    /// Sends the union of what every check found in `target` when it differs from what was
    /// sent last, or `always` (a checked document's own, so the editor knows its version was
    /// checked).
    fn send(&self, target: &Url, always: bool, shared: &Shared) {
        let mut diagnostics: Vec<Diagnostic> = Vec::new();
        let own = self.found.get(target).and_then(|f| f.get(target));
        let others = self
            .found
            .iter()
            .filter(|(owner, _)| *owner != target)
            .filter_map(|(_, found)| found.get(target));
        for d in own.into_iter().chain(others).flatten() {
            if !diagnostics.contains(d) {
                diagnostics.push(d.clone());
            }
        }
        let version = shared.docs.get(target).map(|d| d.version);
        let mut published = shared.published.lock();
        let last = published.get(target).map(|(_, l)| l);
        if !always && last.map_or(diagnostics.is_empty(), |l| *l == diagnostics) {
            return;
        }
        published.insert(target.clone(), (version, diagnostics.clone()));
        drop(published);
        let params = PublishDiagnosticsParams {
            uri: target.clone(),
            diagnostics,
            version,
        };
        let _ = shared.sender.send(Message::Notification(Notification::new(
            PublishDiagnostics::METHOD.to_string(),
            params,
        )));
    }
}

/// `runbook check` of one open document: its runbook.toml and inventory found as `check`
/// finds them, imports read from the open documents first. A panic (a bug) is one error.
fn check(uri: &Url, doc: &Document, shared: &Shared) -> ByDocument {
    let started = Instant::now();
    let name = match &doc.path {
        Some(path) => crate::paths::display(path),
        None => uri.to_string(),
    };
    let run = || -> ByDocument {
        let inventory = match &doc.path {
            Some(path) => match inventory_for(path, None) {
                Ok(inventory) => inventory,
                Err(e) => {
                    return ByDocument::from([(
                        uri.clone(),
                        vec![convert::unchecked(&e, &shared.docs)],
                    )])
                }
            },
            None => None,
        };
        let root = doc.path.as_deref().map(crate::paths::folder_of);
        let report = with_overlay(shared.docs.overlay(), || {
            check_text(&name, &doc.text, root.as_deref(), inventory.as_ref())
        });
        let targets = Targets {
            name: &name,
            uri,
            docs: &shared.docs,
            cache: &shared.cache,
        };
        convert::diagnostics(&report, &targets)
    };
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        let bug = crate::error::Error::Internal(
            "the check panicked (a bug in runbook: please report it with this runbook)".into(),
        );
        ByDocument::from([(uri.clone(), vec![convert::unchecked(&bug, &shared.docs)])])
    });
    tracing::debug!(
        "checked {name} (version {}) in {:?}",
        doc.version,
        started.elapsed()
    );
    found
}
