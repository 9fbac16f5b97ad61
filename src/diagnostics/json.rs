//! Findings as JSON, for tools: each finding with its code, severity, message, the file and
//! the region it covers (start and end in 1-based lines and character columns), its help and
//! the chain of calls that led to it.

use super::{Finding, Location, Severity, Sources};

/// A line and a character column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One call of the chain that led into a module: where `function` was called.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Call<'a> {
    pub function: &'a str,
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
}

/// A finding as `check --format json` prints it. Every key is always present (`null` when
/// it does not apply), so tools can read them without guessing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JsonFinding<'a> {
    pub code: &'static str,
    pub slug: &'static str,
    pub severity: Severity,
    pub message: &'a str,
    /// The file the finding is in: a module's when it lies in one, else the checked file.
    pub file: &'a str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The position just after the last character the finding covers.
    pub end: Option<Position>,
    /// The text shown under the labelled source, when it differs from the message.
    pub label: Option<&'a str>,
    pub help: Option<&'a str>,
    /// Further facts: the service's error details, expected and actual values.
    pub notes: &'a [String],
    /// Innermost call first, down to the call in the checked file.
    pub called_from: Vec<Call<'a>>,
    /// The parameters' values that produce it, one entry per combination `check` dry-ran
    /// (empty: every combination does).
    pub params: &'a [String],
}

impl<'a> JsonFinding<'a> {
    /// `finding` of the checked file `file`, with its end read from `sources`.
    pub fn new(finding: &'a Finding, sources: &Sources, file: &'a str) -> Self {
        let region = finding.location.as_ref().map(|l| sources.region(l));
        JsonFinding {
            code: finding.code.as_str(),
            slug: finding.code.slug(),
            severity: finding.severity,
            message: &finding.message,
            file: finding.location.as_ref().map_or(file, |l| &*l.source),
            line: region.map(|r| r.line),
            column: region.map(|r| r.column),
            end: region.map(|r| Position {
                line: r.end_line,
                column: r.end_column,
            }),
            label: (!finding.label.is_empty()).then_some(finding.label.as_str()),
            help: finding.help.as_deref(),
            notes: &finding.notes,
            called_from: finding
                .chain
                .iter()
                .map(|frame| call(&frame.function, &frame.location))
                .collect(),
            params: &finding.params,
        }
    }
}

fn call<'a>(function: &'a str, location: &'a Location) -> Call<'a> {
    Call {
        function,
        file: &location.source,
        line: location.line,
        column: location.column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Frame};

    #[test]
    fn a_finding_in_a_module_names_the_module_its_end_and_the_call() {
        let mut sources = Sources::default();
        sources.insert("lib.rhai", "fn f(vm) {\n    commit(vm)\n}\n");
        let finding = Finding::new(Code::CommitWithoutVerify, "no verify")
            .at(Some(Location::new("lib.rhai", 2, 5, 0)))
            .help("verify first")
            .chain(vec![Frame {
                function: "f".into(),
                location: Location::new("plan.rhai", 3, 1, 1),
            }]);
        let json = serde_json::to_value(JsonFinding::new(&finding, &sources, "plan.rhai")).unwrap();
        assert_eq!(json["code"], "RB108");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["file"], "lib.rhai");
        assert_eq!(
            (json["line"].as_u64(), json["column"].as_u64()),
            (Some(2), Some(5))
        );
        assert_eq!(json["end"], serde_json::json!({ "line": 2, "column": 11 }));
        assert_eq!(json["help"], "verify first");
        assert_eq!(json["label"], serde_json::Value::Null);
        assert_eq!(json["called_from"][0]["file"], "plan.rhai");
    }

    #[test]
    fn a_finding_without_a_place_belongs_to_the_checked_file() {
        let finding = Finding::new(Code::NamesNotChecked, "no inventory");
        let json =
            serde_json::to_value(JsonFinding::new(&finding, &Sources::default(), "plan.rhai"))
                .unwrap();
        assert_eq!(json["file"], "plan.rhai");
        assert_eq!(json["line"], serde_json::Value::Null);
        assert_eq!(json["end"], serde_json::Value::Null);
        assert_eq!(json["severity"], "note");
    }
}
