//! `runbook lsp`: a language server over standard input and output, so editors show
//! `runbook check`'s findings as you type, explain the API on hover, complete names, go to
//! definitions and fix typos. `lsp-server` speaks the protocol; this loop answers requests
//! itself (they are quick) and leaves checks to a thread of their own (`worker`), so it is
//! never blocked by one. See docs/editors.md.

mod cache;
mod completion;
mod convert;
mod documents;
mod hover;
mod navigate;
mod project;
mod syntax;
mod transport;
mod worker;

use crate::diagnostics::offset_of_utf16;
use crate::error::{exit, Error};
use documents::Documents;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, Notification as _,
};
use lsp_types::request::{
    CodeActionRequest, Completion, GotoDefinition, HoverRequest, RegisterCapability, Request as _,
};
use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionProviderCapability, CompletionOptions, OneOf,
    ServerCapabilities, TextDocumentPositionParams, TextDocumentSyncCapability,
    TextDocumentSyncKind, Url,
};
use project::Project;
use std::sync::Arc;
use worker::{Job, Published, Shared};

/// Serves the editor on standard input and output until it says `exit`.
pub fn serve() -> Result<i32, Error> {
    let (connection, io) = transport::stdio();
    let ran = run(connection);
    // The input and output threads end once the editor closes its end (or, after a
    // protocol error, soon: the reader's own error is the better message then).
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(io.join());
    });
    let io = match &ran {
        Ok(()) => rx.recv().ok(),
        Err(_) => rx.recv_timeout(std::time::Duration::from_secs(1)).ok(),
    };
    match (ran, io) {
        (_, Some(Err(e))) => Err(Error::Usage(format!(
            "language server: the editor's messages cannot be read or answered: {e}"
        ))),
        (Err(e), _) => Err(e),
        (Ok(()), _) => Ok(exit::OK),
    }
}

/// What the server offers.
fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(
            TextDocumentSyncKind::INCREMENTAL,
        )),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![":".into(), "\"".into(), ".".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        ..ServerCapabilities::default()
    }
}

/// Asks the editor, when it can, to say when `.rhai` and `.toml` files change on disk: a
/// module saved elsewhere, runbook.toml or an inventory edited.
fn watch_files(connection: &Connection, params: &serde_json::Value) {
    let pointer = "/capabilities/workspace/didChangeWatchedFiles/dynamicRegistration";
    if params.pointer(pointer) != Some(&serde_json::Value::Bool(true)) {
        return;
    }
    let options = lsp_types::DidChangeWatchedFilesRegistrationOptions {
        watchers: vec![lsp_types::FileSystemWatcher {
            glob_pattern: lsp_types::GlobPattern::String("**/*.{rhai,toml}".into()),
            kind: None,
        }],
    };
    let registration = lsp_types::Registration {
        id: "runbook-files".into(),
        method: DidChangeWatchedFiles::METHOD.into(),
        register_options: serde_json::to_value(options).ok(),
    };
    let request = Request::new(
        lsp_server::RequestId::from("runbook-watch-files".to_string()),
        RegisterCapability::METHOD.into(),
        lsp_types::RegistrationParams {
            registrations: vec![registration],
        },
    );
    let _ = connection.sender.send(request.into());
}

/// The protocol's initialization, then messages until `shutdown` and `exit`. The connection
/// is dropped at the end, so its writer thread ends.
fn run(connection: Connection) -> Result<(), Error> {
    let protocol = |e: lsp_server::ProtocolError| Error::Usage(format!("language server: {e}"));
    let (id, params) = connection.initialize_start().map_err(protocol)?;
    connection
        .initialize_finish(
            id,
            serde_json::json!({
                "capabilities": capabilities(),
                "serverInfo": { "name": "runbook", "version": env!("CARGO_PKG_VERSION") },
            }),
        )
        .map_err(protocol)?;
    watch_files(&connection, &params);
    let shared = Arc::new(Shared {
        docs: Documents::default(),
        published: Published::default(),
        cache: Arc::new(cache::Cache::create()),
        sender: connection.sender.clone(),
    });
    let (jobs, queue) = crossbeam_channel::unbounded();
    let checker = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("runbook-lsp-check".into())
            .spawn(move || worker::run(&queue, &shared))
            .map_err(|e| Error::Internal(format!("cannot start the check thread: {e}")))?
    };
    let server = Server {
        shared: &shared,
        jobs,
    };
    let mut result = Ok(());
    for message in &connection.receiver {
        match message {
            Message::Request(request) => match connection.handle_shutdown(&request) {
                Ok(true) => break,
                Ok(false) => {
                    let _ = connection.sender.send(server.answer(request).into());
                }
                Err(e) => {
                    result = Err(protocol(e));
                    break;
                }
            },
            Message::Notification(notification) => server.notice(notification),
            Message::Response(_) => {}
        }
    }
    drop(server);
    let _ = checker.join();
    result
}

/// The message loop's side: the documents, and the check thread's queue.
struct Server<'a> {
    shared: &'a Shared,
    jobs: crossbeam_channel::Sender<Job>,
}

impl Server<'_> {
    fn notice(&self, notification: Notification) {
        let docs = &self.shared.docs;
        let touched = match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                parse::<lsp_types::DidOpenTextDocumentParams>(notification.params).map(|p| {
                    let d = p.text_document;
                    docs.open(d.uri.clone(), d.text, d.version);
                    Job::Touched {
                        uri: d.uri,
                        now: true,
                    }
                })
            }
            DidChangeTextDocument::METHOD => {
                parse::<lsp_types::DidChangeTextDocumentParams>(notification.params).and_then(|p| {
                    let d = p.text_document;
                    docs.change(&d.uri, d.version, &p.content_changes)
                        .then_some(Job::Touched {
                            uri: d.uri,
                            now: false,
                        })
                })
            }
            // runbook.toml or the inventory may have changed beside it.
            DidSaveTextDocument::METHOD => {
                parse::<lsp_types::DidSaveTextDocumentParams>(notification.params).map(|p| {
                    Job::Touched {
                        uri: p.text_document.uri,
                        now: true,
                    }
                })
            }
            DidChangeWatchedFiles::METHOD => Some(Job::Everything),
            DidCloseTextDocument::METHOD => {
                parse::<lsp_types::DidCloseTextDocumentParams>(notification.params).map(|p| {
                    docs.close(&p.text_document.uri);
                    Job::Closed(p.text_document.uri)
                })
            }
            _ => None,
        };
        if let Some(job) = touched {
            let _ = self.jobs.send(job);
        }
    }

    fn answer(&self, request: Request) -> Response {
        let id = request.id.clone();
        let result = match request.method.as_str() {
            HoverRequest::METHOD => self.at(request.params, |p, _, offset| {
                serde_json::to_value(hover::hover(p, offset)).ok()
            }),
            Completion::METHOD => self.at(request.params, |p, _, offset| {
                serde_json::to_value(completion::complete(p, offset)).ok()
            }),
            GotoDefinition::METHOD => self.at(request.params, |p, uri, offset| {
                serde_json::to_value(navigate::definition(p, uri, offset)).ok()
            }),
            CodeActionRequest::METHOD => {
                parse::<lsp_types::CodeActionParams>(request.params).map(|p| {
                    let uri = p.text_document.uri;
                    let actions = self.shared.docs.get(&uri).map_or_else(Vec::new, |doc| {
                        navigate::code_actions(
                            &uri,
                            &doc.text,
                            doc.version,
                            p.range,
                            &self.shared.published,
                        )
                    });
                    serde_json::to_value(actions).unwrap_or_default()
                })
            }
            method => {
                return Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("runbook's language server does not answer `{method}`"),
                )
            }
        };
        match result {
            Some(value) => Response::new_ok(id, value),
            None => Response::new_err(
                id,
                ErrorCode::InvalidParams as i32,
                "the request's parameters are not what the protocol says".into(),
            ),
        }
    }

    /// Answers a request about a position in an open document: `null` when the document is
    /// not open or the position not in it.
    fn at(
        &self,
        params: serde_json::Value,
        answer: impl Fn(&Project, &Url, usize) -> Option<serde_json::Value>,
    ) -> Option<serde_json::Value> {
        let at: TextDocumentPositionParams = serde_json::from_value(params).ok()?;
        let uri = at.text_document.uri;
        let position = at.position;
        let shared = self.shared;
        let answered = Project::of(&uri, &shared.docs, &shared.cache).and_then(|project| {
            let offset = offset_of_utf16(project.text(), position.line, position.character)?;
            answer(&project, &uri, offset)
        });
        Some(answered.unwrap_or(serde_json::Value::Null))
    }
}

fn parse<T: serde::de::DeserializeOwned>(params: serde_json::Value) -> Option<T> {
    serde_json::from_value(params)
        .map_err(|e| tracing::warn!("a notification's parameters do not parse: {e}"))
        .ok()
}
