//! Go to definition (a module's function across files, the stdlib's in its cached copy; a
//! runbook's own function; an import's module) and the quick fixes of "did you mean"
//! findings (replace the typo with the name suggested).

use super::convert::REPLACEMENT;
use super::project::{range_in, Project};
use super::syntax::{self, Kind};
use super::worker::Published;
use crate::diagnostics::offset_of_utf16;
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Location, Range, TextEdit, Url,
    WorkspaceEdit,
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

    #[test]
    fn definitions_are_found_by_name() {
        let text = "// 😀\nfn a() {}\nfn b(x) { a() }\n";
        let range = defined(text, "b").unwrap();
        assert_eq!((range.start.line, range.start.character), (2, 3));
        assert_eq!(range.end.character, 4);
        assert_eq!(defined(text, "c"), None);
    }
}
