//! Go to definition (a module's function across files, the stdlib's in its cached copy; a
//! runbook's own function; an import's module) and the quick fixes of "did you mean"
//! findings (replace the typo with the name suggested).

use super::convert::REPLACEMENT;
use super::project::{range_in, Project};
use super::syntax::{self, Kind};
use super::worker::Published;
use crate::diagnostics::offset_of_utf16;
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Location, Range, TextEdit, Url, WorkspaceEdit,
};
use std::collections::HashMap;

/// Where what is at byte `offset` of the document at `uri` is defined.
pub(crate) fn definition(project: &Project, uri: &Url, offset: usize) -> Option<Location> {
    let tokens = &project.tokens;
    let at = syntax::token_at(tokens, offset)?;
    match &tokens[at].kind {
        Kind::Ident(name) => {
            if let Some(alias) = syntax::namespace_of(tokens, at) {
                let module = project.module_of_alias(alias)?;
                let found = defined(&module.text, name)?;
                return Some(Location::new(module.uri?, found));
            }
            if syntax::after_period(tokens, at) {
                return None;
            }
            let found = defined(project.text(), name)?;
            Some(Location::new(uri.clone(), found))
        }
        Kind::Str(path) if at > 0 && tokens[at - 1].kind == Kind::Import => {
            let module = project.module(path)?;
            Some(Location::new(module.uri?, Range::default()))
        }
        _ => None,
    }
}

/// The range of the name of the first function `text` defines as `name`.
fn defined(text: &str, name: &str) -> Option<Range> {
    let tokens = syntax::tokens(text);
    let found = syntax::definitions(&tokens)
        .into_iter()
        .find(|t| t.kind == Kind::Ident(name.to_string()))?;
    Some(range_in(text, found.start, found.end))
}

/// The quick fixes of the diagnostics last published for `uri` (of the version `text` is)
/// that overlap `range`.
pub(crate) fn code_actions(
    uri: &Url,
    text: &str,
    version: i32,
    range: Range,
    published: &Published,
) -> Vec<CodeActionOrCommand> {
    let Some((Some(checked), diagnostics)) = published.get(uri) else {
        return Vec::new();
    };
    if checked != version {
        // The ranges are of an older text; the next check publishes fresh ones.
        return Vec::new();
    }
    diagnostics
        .into_iter()
        .filter(|d| d.range.start <= range.end && range.start <= d.range.end)
        .filter_map(|d| {
            let replacement = d.data.as_ref()?.get(REPLACEMENT)?.as_str()?.to_string();
            let start = offset_of_utf16(text, d.range.start.line, d.range.start.character)?;
            let end = offset_of_utf16(text, d.range.end.line, d.range.end.character)?;
            let written = text.get(start..end)?;
            if !same_shape(written, &replacement) {
                return None;
            }
            let edit = TextEdit::new(d.range, replacement.clone());
            Some(CodeActionOrCommand::CodeAction(CodeAction {
                title: format!("Replace `{written}` with `{replacement}`"),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![d]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..CodeAction::default()
            }))
        })
        .collect()
}

/// Whether `written` is what a replacement of its kind replaces: a string literal for a
/// string literal, a name for a name (so a fix never cuts a token in half).
fn same_shape(written: &str, replacement: &str) -> bool {
    let quoted = |s: &str| s.len() >= 2 && s.starts_with('"') && s.ends_with('"');
    let name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    (quoted(written) && quoted(replacement)) || (name(written) && name(replacement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_replace_whole_tokens_only() {
        assert!(same_shape("failvoer", "failover"));
        assert!(same_shape("\"web-1\"", "\"web-01\""));
        assert!(!same_shape("\"kidn", "kind"), "a key written as a string");
        assert!(!same_shape("failvoer(", "failover"));
        assert!(!same_shape("", "x"));
    }

    /// Each kind of "did you mean" finding carries the replacement its help names, and
    /// writing it in place of the finding's text makes the finding go.
    #[test]
    fn every_did_you_mean_replacement_fixes_its_finding() {
        use crate::backend::inventory::Inventory;
        use crate::check::check_text;
        use crate::diagnostics::offset_of;
        let inventory = Inventory::parse(
            "[plans]\nweb-tier = [\"web-01\"]\n[[items]]\nname = \"web-01\"\n",
            "inventory.toml",
        )
        .unwrap();
        let cases = [
            ("import \"runbook/failover\" as failover;\nfailover::gruop([vm(\"web-01\")], #{ kind: \"planned\" }, \"1h\");\nfailover::protect([vm(\"web-01\")], \"2h\");", "group"),
            ("wait_job(failvoer(vm(\"web-01\"), #{ kind: \"planned\" }));", "failover"),
            ("wait_job(failover(vm(\"web-01\"), #{ kind: \"unplanned\", shutdwn_source: true }));", "shutdown_source"),
            ("wait_job(failover(vm(\"web-01\"), #{ kind: \"planed\" }));", "\"planned\""),
            ("note(vm(\"web-1\").name);", "\"web-01\""),
            ("let w = vms(#{ plan: \"web-teir\" });", "\"web-tier\""),
        ];
        for (text, expected) in cases {
            let report = check_text("fix.rhai", text, None, Some(&inventory));
            let finding = report
                .findings
                .iter()
                .find(|f| f.replacement.is_some())
                .unwrap_or_else(|| panic!("a replacement in {:#?}", report.findings));
            assert_eq!(finding.replacement.as_deref(), Some(expected), "{text}");
            let at = finding.location.as_ref().unwrap();
            let region = report.sources.region(at);
            let start = offset_of(text, region.line, region.column).unwrap();
            let end = offset_of(text, region.end_line, region.end_column).unwrap();
            assert!(
                same_shape(&text[start..end], expected),
                "{}",
                &text[start..end]
            );
            let fixed = format!("{}{expected}{}", &text[..start], &text[end..]);
            let again = check_text("fix.rhai", &fixed, None, Some(&inventory));
            assert!(
                again.findings.iter().all(|f| f.code != finding.code),
                "{fixed}: {:#?}",
                again.findings
            );
        }
    }

    #[test]
    fn definitions_are_found_by_name() {
        let text = "// 😀\nfn a() {}\nfn b(x) { a() }\n";
        let range = defined(text, "b").unwrap();
        assert_eq!((range.start.line, range.start.character), (2, 3));
        assert_eq!(range.end.character, 4);
        assert_eq!(defined(text, "c"), None);
    }
}
