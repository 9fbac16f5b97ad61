//! Findings as data: every problem `check` or `run` reports is a [`Finding`] with a stable
//! code, a severity, a location in a named source and help. They are collected, then rendered
//! once at the edge (see [`render`]).

mod codes;
pub mod explain;
pub mod github;
pub mod json;
mod position;
mod render;
pub mod sarif;
mod snippet;
mod summary;

pub use codes::Code;
pub use position::{
    char_span_to_bytes, line_col_of, offset_of, offset_of_utf16, token_chars_at, utf16_position,
    Region,
};
pub use render::{render, render_all, summary_line, RenderOptions};
pub use snippet::shorten;
pub(crate) use snippet::Snippet;
pub use summary::Summary;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational; never fails a check.
    Note,
    /// Fails a check only with `--deny-warnings`.
    Warning,
    /// The runbook is wrong or its run failed.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in a source: Rhai's 1-based line and character column, and a length in characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub source: Arc<str>,
    pub line: usize,
    pub column: usize,
    /// Length of the labelled text in characters (at least 1 when rendered).
    pub len: usize,
}

impl Location {
    pub fn new(source: impl Into<Arc<str>>, line: usize, column: usize, len: usize) -> Self {
        Location {
            source: source.into(),
            line,
            column,
            len,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.column)
    }
}

/// One frame of the chain of calls that led to a finding inside an imported module:
/// the call of `function` at `location` (in the caller's file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    pub function: String,
    pub location: Location,
}

/// A problem found in a runbook, statically or while it ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    /// Text shown under the label; defaults to the message when empty.
    pub label: String,
    pub help: Option<String>,
    /// Further facts: the service's error details, expected and actual values.
    pub notes: Vec<String>,
    /// Innermost call first: each frame is where the function containing the previous
    /// location was called from.
    pub chain: Vec<Frame>,
    /// The text that replaces the located text to fix the finding: the name a "did you
    /// mean" help suggests, as it is written there (a string literal with its quotes). Editors
    /// offer it as a quick fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// The parameters' values that produce the finding, when `check` dry-ran several and
    /// not all of them do (`down_site=recovery`, one entry per combination).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
}

impl Finding {
    /// A finding with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity(),
            message: shorten(message.into()),
            location: None,
            label: String::new(),
            help: None,
            notes: Vec::new(),
            chain: Vec::new(),
            replacement: None,
            params: Vec::new(),
        }
    }

    /// Says which parameters' values produce the finding, in its message too (so every
    /// output format shows it).
    pub fn with_params(mut self, combinations: Vec<String>) -> Self {
        if combinations.is_empty() {
            return self;
        }
        let shown: Vec<String> = combinations
            .iter()
            .map(|c| {
                if c.is_empty() {
                    "the defaults".to_string()
                } else {
                    c.clone()
                }
            })
            .collect();
        self.message = format!("{} (with {})", self.message, shown.join("; or with "));
        self.params = combinations;
        self
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(shorten(note.into()));
        self
    }

    pub fn notes(mut self, notes: impl IntoIterator<Item = String>) -> Self {
        self.notes.extend(notes.into_iter().map(shorten));
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn chain(mut self, chain: Vec<Frame>) -> Self {
        self.chain = chain;
        self
    }

    /// Says that `text` in place of the located text fixes the finding.
    pub fn replace_with(mut self, text: impl Into<String>) -> Self {
        self.replacement = Some(text.into());
        self
    }

    /// `path:line:col` of the finding, or the empty string when it has no location.
    pub fn place(&self) -> String {
        self.location
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Where the finding belongs among the user's own files: its location, or, when that
    /// lies in an embedded source (the stdlib), the innermost call made outside of it.
    pub fn anchor(&self, sources: &Sources) -> Option<&Location> {
        let location = self.location.as_ref()?;
        if !sources.is_embedded(&location.source) {
            return Some(location);
        }
        self.chain
            .iter()
            .map(|frame| &frame.location)
            .find(|l| !sources.is_embedded(&l.source))
            .or(Some(location))
    }
}

/// The findings of one checked file and the sources they point into, as every output
/// format reads them.
#[derive(Debug, Clone, Copy)]
pub struct FileFindings<'a> {
    /// The checked file, as shown: findings without a location belong to it.
    pub file: &'a str,
    pub findings: &'a [Finding],
    pub sources: &'a Sources,
}

/// A file `check` could not check: the file, why, and the place the reason is about (the
/// file, line and column of a byte that is not UTF-8 or of a TOML error), when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub file: String,
    pub why: String,
    pub at: Option<(String, usize, usize)>,
}

/// The texts of every source a finding may point into: runbooks, their modules and the
/// embedded stdlib. Rhai keeps no source text, so this map does.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: BTreeMap<Arc<str>, Arc<str>>,
    /// Sources embedded in the binary (the stdlib), which are no files of the user's.
    embedded: BTreeSet<Arc<str>>,
}

impl Sources {
    pub fn insert(&mut self, name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) {
        self.files.insert(name.into(), text.into());
    }

    /// Adds a source embedded in the binary rather than read from a file.
    pub fn insert_embedded(&mut self, name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) {
        let name = name.into();
        self.embedded.insert(name.clone());
        self.insert(name, text);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<str>> {
        self.files.get(name)
    }

    pub fn is_embedded(&self, name: &str) -> bool {
        self.embedded.contains(name)
    }

    /// The region a location covers, with its end computed from the source's text.
    pub fn region(&self, location: &Location) -> Region {
        Region::of(
            self.get(&location.source).map(|text| &**text),
            location.line,
            location.column,
            location.len,
        )
    }

    pub fn extend(&mut self, other: &Sources) {
        for (k, v) in &other.files {
            self.files.insert(k.clone(), v.clone());
        }
        self.embedded.extend(other.embedded.iter().cloned());
    }
}

/// Sorts findings by file, line and column, errors before warnings at the same place, and
/// drops exact duplicates (the same finding reached twice, e.g. from two dry-run paths).
pub fn sort_and_dedup(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        a.location
            .cmp(&b.location)
            .then(b.severity.cmp(&a.severity))
            .then(a.code.cmp(&b.code))
            .then(a.message.cmp(&b.message))
    });
    findings.dedup();
}

/// `text` as a Rhai string literal, for a replacement of one.
pub fn string_literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Suggests the closest candidate to `name`, for "did you mean" help.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&str, f64)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(name, candidate);
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_names_only() {
        let names = ["failover", "commit", "reverse_replicate"];
        assert_eq!(did_you_mean("failvoer", names), Some("failover"));
        assert_eq!(
            did_you_mean("reverse_replication", names),
            Some("reverse_replicate")
        );
        assert_eq!(did_you_mean("xyz", names), None);
    }

    #[test]
    fn sort_puts_errors_first_and_removes_duplicates() {
        let loc = Some(Location::new("a.rhai", 3, 1, 1));
        let w = Finding::new(Code::JobNotWaited, "w").at(loc.clone());
        let e = Finding::new(Code::NotAllowed, "e").at(loc);
        let mut all = vec![w.clone(), e.clone(), w.clone()];
        sort_and_dedup(&mut all);
        assert_eq!(all, vec![e, w]);
    }
}
