//! Renders findings with miette, once, at the edge of the program.

use super::position::label_chars;
use super::{char_span_to_bytes, offset_of, Finding, Frame, Location, Severity, Snippet, Sources};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use std::fmt;

/// How findings are drawn.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 100,
        }
    }
}

/// One line per finding: `path:line:col: error[RB101]: message`.
pub fn summary_line(finding: &Finding) -> String {
    let place = finding.place();
    let prefix = if place.is_empty() {
        String::new()
    } else {
        format!("{place}: ")
    };
    let from = finding
        .chain
        .last()
        .map(|f| format!(" (called from {})", f.location))
        .unwrap_or_default();
    format!(
        "{prefix}{}[{}]: {}{from}",
        finding.severity,
        finding.code.as_str(),
        finding.message
    )
}

/// Renders one finding as a report: the `path:line:col` line, then miette's drawing with
/// the labelled source, the chain of calls and the help.
pub fn render(finding: &Finding, sources: &Sources, options: RenderOptions) -> String {
    let theme = if options.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(options.width)
        .with_links(false)
        // The summary line above gives line and column in characters; miette's header
        // would count bytes.
        .without_primary_span_start();
    let report = Report::new(finding, sources);
    let mut out = summary_line(finding);
    out.push('\n');
    if handler.render_report(&mut out, &report).is_err() {
        out.push_str(&finding.message);
        out.push('\n');
    }
    out
}

/// Renders every finding, separated by blank lines.
pub fn render_all(findings: &[Finding], sources: &Sources, options: RenderOptions) -> String {
    findings
        .iter()
        .map(|f| render(f, sources, options))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A finding with its source text, in the shape miette draws.
struct Report {
    message: String,
    severity: miette::Severity,
    help: Option<String>,
    source: Option<Snippet>,
    label: Option<LabeledSpan>,
    related: Vec<Report>,
}

impl Report {
    fn new(finding: &Finding, sources: &Sources) -> Self {
        let (source, label) = match &finding.location {
            Some(loc) => locate(loc, &finding.label_text(), sources),
            None => (None, None),
        };
        let mut help = finding.help.clone().unwrap_or_default();
        for note in &finding.notes {
            if !help.is_empty() {
                help.push('\n');
            }
            help.push_str(note);
        }
        Report {
            message: finding.message.clone(),
            severity: match finding.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
                Severity::Note => miette::Severity::Advice,
            },
            help: (!help.is_empty()).then_some(help),
            source,
            label,
            related: finding
                .chain
                .iter()
                .map(|f| Report::frame(f, sources))
                .collect(),
        }
    }

    fn frame(frame: &Frame, sources: &Sources) -> Self {
        let (source, label) = locate(
            &frame.location,
            &format!("`{}` called here", frame.function),
            sources,
        );
        Report {
            message: format!("called from {}", frame.location),
            severity: miette::Severity::Advice,
            help: None,
            source,
            label,
            related: Vec::new(),
        }
    }
}

fn locate(loc: &Location, text: &str, sources: &Sources) -> (Option<Snippet>, Option<LabeledSpan>) {
    let Some(content) = sources.get(&loc.source) else {
        return (None, None);
    };
    let Some(offset) = offset_of(content, loc.line, loc.column) else {
        return (None, None);
    };
    let len = char_span_to_bytes(content, offset, label_chars(content, offset, loc.len));
    let (source, span) = Snippet::around(&loc.source, content, offset, len);
    let label = LabeledSpan::new_with_span(Some(text.to_string()), span);
    (Some(source), Some(label))
}

impl Finding {
    fn label_text(&self) -> String {
        if self.label.is_empty() {
            self.code.summary().to_string()
        } else {
            self.label.clone()
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label
            .clone()
            .map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = LabeledSpan>>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
        }
    }
}
