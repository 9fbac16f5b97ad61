//! `runbook check`'s findings as the protocol's diagnostics: each in the file it is located
//! in (a finding inside the embedded stdlib at the user's call of it), with its code, a link
//! to the code's explanation, its range in UTF-16 columns, the chain of calls as related
//! information, and the replacement a quick fix applies.

use super::cache::Cache;
use super::documents::Documents;
use crate::check::Report;
use crate::diagnostics::{line_col_of, utf16_position, Finding, Location, Severity, Sources};
use crate::error::Error;
use lsp_types::{
    CodeDescription, Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, NumberOrString,
    Position, Range, Url,
};
use std::collections::HashMap;

/// Diagnostics by the URL of the document they are in.
pub(crate) type ByDocument = HashMap<Url, Vec<Diagnostic>>;

/// The name a diagnostic's `source` carries, as editors show it.
pub(crate) const SOURCE: &str = "runbook";

/// What the key of a diagnostic's `data` holding its quick fix is named.
pub(crate) const REPLACEMENT: &str = "replacement";

/// How source names of findings become the editor's URLs.
pub(crate) struct Targets<'a> {
    /// The checked document: its source name and URL.
    pub name: &'a str,
    pub uri: &'a Url,
    pub docs: &'a Documents,
    pub cache: &'a Cache,
}

impl Targets<'_> {
    /// The URL of source `name`: the checked document, a stdlib module's cached file, or a
    /// module's file (named as `paths::display` shows it, so relative to this process's
    /// working folder).
    pub(crate) fn uri(&self, name: &str, sources: &Sources) -> Option<Url> {
        if name == self.name {
            return Some(self.uri.clone());
        }
        if sources.is_embedded(name) {
            return Url::from_file_path(self.cache.stdlib_file(name)?).ok();
        }
        self.docs.uri_of(&std::path::absolute(name).ok()?)
    }

    fn location(&self, location: &Location, sources: &Sources) -> Option<lsp_types::Location> {
        Some(lsp_types::Location::new(
            self.uri(&location.source, sources)?,
            range(location, sources),
        ))
    }
}

/// Every finding of `report` as a diagnostic, by document; the checked document always has
/// an entry (empty when it is clean).
pub(crate) fn diagnostics(report: &Report, targets: &Targets) -> ByDocument {
    let mut out = ByDocument::new();
    out.insert(targets.uri.clone(), Vec::new());
    for finding in &report.findings {
        let (uri, diagnostic) = diagnostic(finding, &report.sources, targets);
        out.entry(uri).or_default().push(diagnostic);
    }
    out
}

/// One finding as a diagnostic, and the document it is in.
fn diagnostic(finding: &Finding, sources: &Sources, targets: &Targets) -> (Url, Diagnostic) {
    let anchor = finding.anchor(sources);
    let placed = anchor.and_then(|a| Some((targets.uri(&a.source, sources)?, range(a, sources))));
    let (uri, range) = placed.unwrap_or_else(|| (targets.uri.clone(), Range::default()));
    let mut related = Vec::new();
    if let (Some(location), Some(anchor)) = (&finding.location, anchor) {
        if location != anchor {
            if let Some(at) = targets.location(location, sources) {
                related.push(DiagnosticRelatedInformation {
                    location: at,
                    message: format!("found here, in {}", location.source),
                });
            }
        }
    }
    for frame in &finding.chain {
        if Some(&frame.location) == anchor {
            continue;
        }
        if let Some(at) = targets.location(&frame.location, sources) {
            related.push(DiagnosticRelatedInformation {
                location: at,
                message: format!("`{}` is called here", frame.function),
            });
        }
    }
    // A quick fix replaces the finding's own text, never the call it is anchored at.
    let data = finding
        .replacement
        .as_ref()
        .filter(|_| finding.location.is_some() && finding.location.as_ref() == anchor)
        .map(|r| serde_json::json!({ REPLACEMENT: r }));
    let diagnostic = Diagnostic {
        range,
        severity: Some(severity(finding.severity)),
        code: Some(NumberOrString::String(finding.code.as_str().to_string())),
        code_description: targets
            .cache
            .explanation(finding.code)
            .map(|href| CodeDescription { href }),
        source: Some(SOURCE.to_string()),
        message: message(finding),
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data,
    };
    (uri, diagnostic)
}

/// The message, its notes, and its help, one per line.
fn message(finding: &Finding) -> String {
    let mut lines = vec![finding.message.clone()];
    lines.extend(finding.notes.iter().cloned());
    if let Some(help) = &finding.help {
        lines.push(format!("help: {help}"));
    }
    lines.join("\n")
}

fn severity(severity: Severity) -> DiagnosticSeverity {
    match severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Note => DiagnosticSeverity::INFORMATION,
    }
}

/// The range a location covers, in the protocol's 0-based lines and UTF-16 columns.
pub(crate) fn range(location: &Location, sources: &Sources) -> Range {
    let region = sources.region(location);
    let text = sources.get(&location.source).map_or("", |t| &**t);
    let (line, character) = utf16_position(text, region.line, region.column);
    let (end_line, end_character) = utf16_position(text, region.end_line, region.end_column);
    Range::new(
        Position::new(line, character),
        Position::new(end_line, end_character),
    )
}

/// A runbook that could not be checked (its `runbook.toml` or inventory is unreadable or
/// wrong), as `check` would exit 2 for it: one error at its start, pointing at the problem.
pub(crate) fn unchecked(error: &Error, docs: &Documents) -> Diagnostic {
    let mut message = error.to_string();
    let mut related = None;
    if let Error::Config {
        path,
        span,
        text,
        help,
        ..
    } = error
    {
        if let Some(help) = help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let uri = std::path::absolute(path).ok().and_then(|p| docs.uri_of(&p));
        if let (Some(uri), Some(span)) = (uri, span) {
            let (line, column) = line_col_of(text, span.offset());
            let (line, character) = utf16_position(text, line, column);
            related = Some(vec![DiagnosticRelatedInformation {
                location: lsp_types::Location::new(
                    uri,
                    Range::new(
                        Position::new(line, character),
                        Position::new(line, character),
                    ),
                ),
                message: "the problem is here".into(),
            }]);
        }
    }
    Diagnostic {
        range: Range::default(),
        severity: Some(DiagnosticSeverity::ERROR),
        source: Some(SOURCE.to_string()),
        message: format!("this runbook cannot be checked: {message}"),
        related_information: related,
        ..Diagnostic::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_text;

    fn check(
        name: &str,
        text: &str,
        inventory: Option<&str>,
    ) -> (ByDocument, Cache, tempfile::TempDir) {
        let base = tempfile::tempdir().unwrap();
        let cache = Cache::create_in(base.path());
        let inventory = inventory
            .map(|i| crate::backend::inventory::Inventory::parse(i, "inventory.toml").unwrap());
        let report = check_text(name, text, None, inventory.as_ref());
        let docs = Documents::default();
        let uri = Url::from_file_path(std::path::absolute(name).unwrap()).unwrap();
        let by = diagnostics(
            &report,
            &Targets {
                name,
                uri: &uri,
                docs: &docs,
                cache: &cache,
            },
        );
        (by, cache, base)
    }

    #[test]
    fn ranges_are_in_utf16_and_codes_link_to_their_explanation() {
        // `failvoer` starts at character 12 (0-based) but UTF-16 unit 13: 😀 is two.
        let text = "\tnote(\"😀\"); failvoer(\"a\", #{ kind: \"planned\" });\n";
        let (by, cache, _base) = check("lsp-ranges.rhai", text, None);
        assert_eq!(by.len(), 1, "{by:?}");
        let (uri, diagnostics) = by.into_iter().next().unwrap();
        assert!(uri.path().ends_with("/lsp-ranges.rhai"), "{uri}");
        let d = &diagnostics[0];
        assert_eq!(d.code, Some(NumberOrString::String("RB002".into())));
        assert_eq!(d.severity, Some(DiagnosticSeverity::ERROR));
        assert_eq!(
            d.range,
            Range::new(Position::new(0, 13), Position::new(0, 21))
        );
        assert!(
            d.message.contains("help: did you mean `failover`?"),
            "{}",
            d.message
        );
        assert_eq!(
            d.data,
            Some(serde_json::json!({ "replacement": "failover" }))
        );
        let href = &d.code_description.as_ref().unwrap().href;
        assert_eq!(
            Some(href.clone()),
            cache.explanation(crate::diagnostics::Code::UnknownFunction)
        );
    }

    #[test]
    fn findings_in_the_stdlib_sit_at_the_users_call_with_the_stdlib_as_related_information() {
        // The wait inside the stdlib's `group` is shorter than the failover: RB104 there.
        let text = "import \"runbook/failover\" as failover;\n\nfailover::group([vm(\"db-01\")], #{ kind: \"planned\" }, \"5m\");\n";
        let inventory = "[[items]]\nname = \"db-01\"\ndurations = { planned_failover = \"12m\" }\n";
        let (by, cache, _base) = check("lsp-stdlib.rhai", text, Some(inventory));
        let stdlib =
            Url::from_file_path(cache.stdlib_file("stdlib/failover.rhai").unwrap()).unwrap();
        assert!(
            !by.contains_key(&stdlib),
            "nothing is published in the stdlib: {by:?}"
        );
        let d = by
            .values()
            .flatten()
            .find(|d| d.code == Some(NumberOrString::String("RB104".into())))
            .expect("RB104");
        assert_eq!(
            d.range.start,
            Position::new(2, 10),
            "at `group` in the runbook"
        );
        let related = d.related_information.as_ref().unwrap();
        let inside = related.iter().find(|r| r.location.uri == stdlib).unwrap();
        assert!(
            inside.message.contains("stdlib/failover.rhai"),
            "{}",
            inside.message
        );
        assert_eq!(d.data, None, "no quick fix at a call it was anchored at");
    }
}
