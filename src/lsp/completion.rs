//! Completion: the primitives, their option keys and values (all from the registry), a
//! module's functions after `alias::`, the properties of handles after `.`, and the
//! inventory's VM and recovery plan names inside `vm("...")`, a VM parameter's string,
//! `preflight(#{ vms: [...] })` and `vms(#{ plan: "..." })`.

use super::hover::{self, named, Named};
use super::project::Project;
use super::syntax::{self, Kind, Place};
use crate::diagnostics::string_literal;
use crate::script::definitions::module_functions;
use crate::script::registry::{OptKind, OptSpec, PRIMITIVES, PROPERTIES};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, TextEdit,
};

/// The completions at byte `offset`.
pub(crate) fn complete(project: &Project, offset: usize) -> Vec<CompletionItem> {
    let tokens = &project.tokens;
    // The token being typed: a string the cursor is inside, or a name it ends.
    let typing = tokens.iter().position(|t| match t.kind {
        Kind::Str(_) => t.start < offset && offset < t.end,
        Kind::Unterminated => t.start < offset && offset <= t.end,
        Kind::Ident(_) => t.start < offset && offset <= t.end,
        _ => false,
    });
    if let Some(at) = typing {
        let token = &tokens[at];
        if matches!(token.kind, Kind::Str(_) | Kind::Unterminated) {
            let end = match token.kind {
                Kind::Str(_) => token.end - 1,
                _ => token.end,
            };
            let content = project.range(token.start + 1, end);
            return in_string(project, &syntax::place(tokens, at))
                .into_iter()
                .map(|mut item| {
                    item.text_edit = Some(CompletionTextEdit::Edit(TextEdit::new(
                        content,
                        item.label.clone(),
                    )));
                    item
                })
                .collect();
        }
    } else if syntax::in_comment(project.text(), tokens, offset) {
        return Vec::new();
    }
    // The name being typed (or the place a name would go): what stands before it decides.
    let at = typing.unwrap_or_else(|| tokens.iter().take_while(|t| t.end <= offset).count());
    if let Some(alias) = syntax::namespace_of(tokens, at) {
        return module(project, alias);
    }
    if syntax::after_period(tokens, at) {
        return PROPERTIES
            .iter()
            .map(|p| CompletionItem {
                detail: Some(format!("{}.{}: {}", p.owner, p.name, p.returns)),
                documentation: Some(markdown(p.doc.to_string())),
                kind: Some(CompletionItemKind::PROPERTY),
                ..CompletionItem::new_simple(p.name.to_string(), String::new())
            })
            .collect();
    }
    match syntax::place(tokens, at) {
        Place::OptionKey { call, index } => match hover::primitive_of(&call) {
            Some(prim) if prim.options_index() == Some(index) => prim
                .options
                .iter()
                .map(|spec| CompletionItem {
                    detail: Some(spec.kind.describe()),
                    documentation: Some(markdown(hover::option(prim, spec))),
                    kind: Some(CompletionItemKind::FIELD),
                    ..CompletionItem::new_simple(spec.key.to_string(), String::new())
                })
                .collect(),
            _ => Vec::new(),
        },
        Place::OptionValue {
            call, index, key, ..
        } => match hover::option_of(&call, index, &key) {
            Some((prim, spec)) => values(spec)
                .into_iter()
                .map(|value| CompletionItem {
                    documentation: Some(markdown(hover::option(prim, spec))),
                    kind: Some(CompletionItemKind::VALUE),
                    ..CompletionItem::new_simple(value, spec.kind.describe())
                })
                .collect(),
            None => Vec::new(),
        },
        _ => primitives(),
    }
}

/// Every primitive, with its signature and documentation.
fn primitives() -> Vec<CompletionItem> {
    PRIMITIVES
        .iter()
        .map(|prim| CompletionItem {
            kind: Some(CompletionItemKind::FUNCTION),
            documentation: Some(markdown(hover::primitive(prim))),
            ..CompletionItem::new_simple(
                prim.name.to_string(),
                format!("{} -> {}", prim.signature(), prim.returns),
            )
        })
        .collect()
}

/// The public functions of the module imported as `alias`.
fn module(project: &Project, alias: &str) -> Vec<CompletionItem> {
    let Some(module) = project.module_of_alias(alias) else {
        return Vec::new();
    };
    module_functions(&module.text)
        .into_iter()
        .map(|f| CompletionItem {
            kind: Some(CompletionItemKind::FUNCTION),
            documentation: Some(markdown(f.doc.clone())),
            ..CompletionItem::new_simple(
                f.name.clone(),
                format!("{}({})", f.name, f.params.join(", ")),
            )
        })
        .collect()
}

/// The literal values an option takes, as they are written.
fn values(spec: &OptSpec) -> Vec<String> {
    let quoted =
        |values: &[&str]| -> Vec<String> { values.iter().map(|v| string_literal(v)).collect() };
    match spec.kind {
        OptKind::Enum(values) => quoted(values),
        OptKind::EnumList(values) => vec![format!("[{}]", quoted(values).join(", "))],
        OptKind::Bool => vec!["true".into(), "false".into()],
        OptKind::Duration => ["\"30m\"", "\"1h\"", "\"4h\""].map(String::from).to_vec(),
        OptKind::Text | OptKind::VmList | OptKind::TextList | OptKind::Value => Vec::new(),
    }
}

/// Names for a string at `place`: VMs, recovery plans or an option's allowed values.
fn in_string(project: &Project, place: &Place) -> Vec<CompletionItem> {
    let value = |label: &str, detail: String| CompletionItem {
        kind: Some(CompletionItemKind::VALUE),
        ..CompletionItem::new_simple(label.to_string(), detail)
    };
    match named(place) {
        Some(Named::Value(_, spec)) => match spec.kind {
            OptKind::Enum(values) | OptKind::EnumList(values) => values
                .iter()
                .map(|v| value(v, format!("`{}`", spec.key)))
                .collect(),
            _ => Vec::new(),
        },
        Some(Named::Vm) => {
            let Some(inventory) = project.inventory() else {
                return Vec::new();
            };
            Project::items(&inventory)
                .iter()
                .map(|item| {
                    value(
                        &item.name,
                        format!(
                            "{} on {}",
                            item.steady_state(),
                            item.active_location.as_str()
                        ),
                    )
                })
                .collect()
        }
        Some(Named::Plan) => {
            let Some(inventory) = project.inventory() else {
                return Vec::new();
            };
            inventory
                .plans
                .iter()
                .map(|(name, plan)| {
                    let members: Vec<&str> = plan.members().map(String::as_str).collect();
                    value(name, format!("recovery plan: {}", members.join(", ")))
                })
                .collect()
        }
        None => Vec::new(),
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsp::cache::Cache;
    use crate::lsp::documents::Documents;
    use lsp_types::Url;

    /// The labels completed at `marker` (removed from `text`).
    fn labels(text: &str, marker: &str) -> Vec<String> {
        let offset = text.find(marker).unwrap();
        let text = text.replacen(marker, "", 1);
        let docs = Documents::default();
        let uri = Url::parse("file:///nowhere/plan.rhai").unwrap();
        docs.open(uri.clone(), text, 1);
        let cache = Cache::default();
        let project = Project::of(&uri, &docs, &cache).unwrap();
        complete(&project, offset)
            .into_iter()
            .map(|i| i.label)
            .collect()
    }

    #[test]
    fn option_values_are_completed_as_they_are_written() {
        let text = "failover(vm(\"a\"), #{ kind: | });";
        assert_eq!(labels(text, "|"), ["\"planned\"", "\"unplanned\""]);
        let text = "failover(vm(\"a\"), #{ kind: \"planned\", shutdown_source: | });";
        assert_eq!(labels(text, "|"), ["true", "false"]);
        let text = "preflight(#{ vms: [], sites: | });";
        assert_eq!(labels(text, "|"), ["[\"primary\", \"recovery\"]"]);
        let text = "preflight(#{ vms: [], sites: [\"|\"] });";
        assert_eq!(labels(text, "|"), ["primary", "recovery"]);
    }

    #[test]
    fn properties_after_a_period_and_nothing_in_comments() {
        let text = "let job = commit(vm(\"a\"));\nnote(job.|);";
        let properties = labels(text, "|");
        assert!(properties.contains(&"state".to_string()), "{properties:?}");
        assert_eq!(properties.len(), PROPERTIES.len());
        assert_eq!(labels("// fail|", "|"), Vec::<String>::new());
        assert_eq!(labels("/* a\n fail|", "|"), Vec::<String>::new());
        // Without an inventory no VM name is known.
        assert_eq!(labels("vm(\"|\")", "|"), Vec::<String>::new());
        assert_eq!(labels("fail|", "|").len(), PRIMITIVES.len());
    }
}
