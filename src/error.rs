//! The program's errors that are not findings in a runbook: I/O, configuration and usage.
//! Each maps to an exit code; only `main` renders them.

use crate::diagnostics::Snippet;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, SourceSpan};

/// Exit codes: 0 success, 1 the runbook has errors or its run failed, 2 usage, configuration or I/O.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FINDINGS: i32 = 1;
    pub const USAGE: i32 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    /// A file that was read but cannot be used, at a place in it (not UTF-8, too many lines).
    #[error("{path}:{line}:{column}: {message}")]
    Located {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write `{path}`: {message}")]
    Write { path: String, message: String },
    #[error("{path}: {message}")]
    Config {
        path: String,
        message: String,
        span: Option<SourceSpan>,
        text: String,
        help: Option<String>,
    },
    #[error("{0}")]
    Usage(String),
    /// The service could not be read.
    #[error("{0}")]
    Service(String),
    /// A run that did not start: its dry run has errors, or the operator said no. Nothing
    /// was issued.
    #[error("{0}")]
    NotStarted(String),
    /// A bug: the run failed without a finding to show.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) | Error::Service(_) | Error::NotStarted(_) => exit::FINDINGS,
            _ => exit::USAGE,
        }
    }

    /// Adds which configuration file named the file an I/O error is about.
    pub fn named_by(self, config: &std::path::Path) -> Error {
        match self {
            Error::Io { path, message } => Error::Io {
                path,
                message: format!("{message} (named by {})", crate::paths::display(config)),
            },
            Error::Located {
                path,
                line,
                column,
                message,
            } => Error::Located {
                path,
                line,
                column,
                message: format!("{message} (named by {})", crate::paths::display(config)),
            },
            other => other,
        }
    }

    pub fn io(path: &std::path::Path, err: &std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            message: reason(err),
        }
    }

    /// A file or folder that could not be written (or created).
    pub fn write(path: &std::path::Path, err: &std::io::Error) -> Error {
        Error::Write {
            path: path.display().to_string(),
            message: reason(err),
        }
    }

    /// The file, line and column the error is about, when it is about a place in a file.
    pub fn location(&self) -> Option<(String, usize, usize)> {
        match self {
            Error::Located {
                path, line, column, ..
            } => Some((path.clone(), *line, *column)),
            Error::Config {
                path,
                span: Some(span),
                text,
                ..
            } => {
                let (line, column) = crate::diagnostics::line_col_of(text, span.offset());
                Some((path.clone(), line, column))
            }
            _ => None,
        }
    }

    /// Renders the error for a terminal: `path:line:col: message` and the labelled text.
    pub fn render(&self, color: bool) -> String {
        match self {
            Error::Config {
                path,
                message,
                span,
                text,
                help,
            } => {
                let place = span.map_or(path.clone(), |s| {
                    let (line, col) = crate::diagnostics::line_col_of(text, s.offset());
                    format!("{path}:{line}:{col}")
                });
                let mut diag = MietteDiagnostic::new(message.clone());
                if let Some(help) = help {
                    diag = diag.with_help(help.clone());
                }
                let report = match span {
                    Some(span) => {
                        let (snippet, span) =
                            Snippet::around(path, text, span.offset(), span.len());
                        diag =
                            diag.with_label(LabeledSpan::new_with_span(Some("here".into()), span));
                        miette::Report::new(diag).with_source_code(snippet)
                    }
                    None => miette::Report::new(diag),
                };
                let theme = if color {
                    GraphicalTheme::unicode()
                } else {
                    GraphicalTheme::unicode_nocolor()
                };
                let mut out = format!("error: {place}: {message}\n");
                let handler = GraphicalReportHandler::new_themed(theme)
                    .with_links(false)
                    .with_width(100)
                    .without_primary_span_start();
                let _ = handler.render_report(&mut out, report.as_ref());
                out
            }
            other => format!("error: {other}\n"),
        }
    }
}

/// Why an I/O operation failed, in words.
fn reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    }
}
