//! Hover: a primitive's, an option's, a property's or a module function's documentation
//! (the registry's and the module's doc comments, as the `.d.rhai` definitions render them),
//! and a VM's or a recovery plan's state in the inventory.

use super::project::Project;
use super::syntax::{self, Kind, Place};
use crate::backend::inventory::Inventory;
use crate::backend::Operation;
use crate::diagnostics::did_you_mean;
use crate::script::definitions::{module_functions, option_line, primitive_doc};
use crate::script::registry::{self, OptKind, OptSpec, ParamKind, Primitive, PROPERTIES};
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind};

/// What to show for the token at byte `offset`.
pub(crate) fn hover(project: &Project, offset: usize) -> Option<Hover> {
    let tokens = &project.tokens;
    let at = syntax::token_at(tokens, offset)?;
    let token = &tokens[at];
    let text = match &token.kind {
        Kind::Ident(name) => identifier(project, at, name)?,
        Kind::Str(value) => match syntax::place(tokens, at) {
            // A quoted key (`"default": ...`, a word Rhai reserves).
            Place::OptionKey { call, index }
                if tokens.get(at + 1).is_some_and(|t| t.kind == Kind::Colon) =>
            {
                let (prim, spec) = option_of(&call, index, value)?;
                option(prim, spec)
            }
            place => string(project, &place, value)?,
        },
        _ => return None,
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(project.range(token.start, token.end)),
    })
}

fn identifier(project: &Project, at: usize, name: &str) -> Option<String> {
    let tokens = &project.tokens;
    if let Some(alias) = syntax::namespace_of(tokens, at) {
        let module = project.module_of_alias(alias)?;
        let import = syntax::import_of(tokens, alias)?;
        let function = module_functions(&module.text)
            .into_iter()
            .find(|f| f.name == name)?;
        return Some(format!(
            "```rhai\nfn {}({})\n```\n\n{}\n\n(from `{import}`)",
            function.name,
            function.params.join(", "),
            function.doc
        ));
    }
    if syntax::after_period(tokens, at) {
        let properties: Vec<String> = PROPERTIES
            .iter()
            .filter(|p| p.name == name)
            .map(|p| format!("`{}.{}` ({}): {}", p.owner, p.name, p.returns, p.doc))
            .collect();
        return (!properties.is_empty()).then(|| properties.join("\n\n"));
    }
    if let Place::OptionKey { call, index } = syntax::place(tokens, at) {
        let followed_by_colon = tokens.get(at + 1).is_some_and(|t| t.kind == Kind::Colon);
        if let Some((prim, spec)) = option_of(&call, index, name).filter(|_| followed_by_colon) {
            return Some(option(prim, spec));
        }
    }
    let prim = registry::find(name)?;
    // A runbook's own function of that name is not the primitive.
    let own = syntax::definitions(tokens)
        .iter()
        .any(|t| t.kind == Kind::Ident(name.to_string()));
    (!own).then(|| primitive(prim))
}

/// A primitive's signature and documentation.
pub(crate) fn primitive(prim: &Primitive) -> String {
    format!(
        "```rhai\n{} -> {}\n```\n\n{}",
        prim.signature(),
        prim.returns,
        primitive_doc(prim)
    )
}

/// An option's documentation.
pub(crate) fn option(prim: &Primitive, spec: &OptSpec) -> String {
    format!("Option of `{}`: {}", prim.name, option_line(spec))
}

/// The primitive a call is of, when it is one.
pub(crate) fn primitive_of(call: &syntax::Callee) -> Option<&'static Primitive> {
    call.namespace
        .is_none()
        .then(|| registry::find(&call.name))?
}

/// The option `key` of the option map that is argument `index` of `call`.
pub(crate) fn option_of(
    call: &syntax::Callee,
    index: usize,
    key: &str,
) -> Option<(&'static Primitive, &'static OptSpec)> {
    let prim = primitive_of(call)?;
    (prim.options_index() == Some(index)).then_some(())?;
    Some((prim, prim.option(key)?))
}

/// What a string literal names, by where it stands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named {
    Vm,
    Plan,
    /// A value of this option.
    Value(&'static Primitive, &'static OptSpec),
}

/// What a string at `place` names.
pub(crate) fn named(place: &Place) -> Option<Named> {
    match place {
        Place::Argument { call, index } => {
            let param = primitive_of(call)?.params.get(*index)?;
            (param.kind == ParamKind::Vm).then_some(Named::Vm)
        }
        Place::OptionValue {
            call,
            index,
            key,
            in_array,
        } => {
            let (prim, spec) = option_of(call, *index, key)?;
            match (spec.kind, in_array) {
                (OptKind::VmList, true) => Some(Named::Vm),
                (OptKind::Text, false) if prim.name == "vms" && spec.key == "plan" => {
                    Some(Named::Plan)
                }
                (OptKind::Enum(_), false) | (OptKind::EnumList(_), true) => {
                    Some(Named::Value(prim, spec))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn string(project: &Project, place: &Place, value: &str) -> Option<String> {
    match named(place)? {
        Named::Value(prim, spec) => Some(option(prim, spec)),
        Named::Vm => Some(match project.inventory() {
            Some(inventory) => vm(&inventory, value),
            None => no_inventory(value),
        }),
        Named::Plan => Some(match project.inventory() {
            Some(inventory) => plan(&inventory, value),
            None => no_inventory(value),
        }),
    }
}

fn no_inventory(name: &str) -> String {
    format!("`{name}`: no inventory is known, so neither is its state. Name one in runbook.toml (`inventory = \"inventory.toml\"`).")
}

/// A VM's state where a dry run starts, in the words `status(vm)` uses.
fn vm(inventory: &Inventory, name: &str) -> String {
    let items = Project::items(inventory);
    let Some(item) = items.iter().find(|i| i.name == name) else {
        let hint = did_you_mean(name, items.iter().map(|i| i.name.as_str()))
            .map(|s| format!(": did you mean `{s}`?"))
            .unwrap_or_default();
        return format!("No VM is named `{name}` in {}{hint}", inventory.origin);
    };
    let allowed: Vec<String> = item
        .allowed_operations
        .iter()
        .filter_map(|a| Operation::from_allowed_name(a))
        .map(|o| format!("`{}`", o.as_str()))
        .collect();
    let plans: Vec<String> = inventory
        .plans
        .iter()
        .filter(|(_, plan)| plan.members().any(|m| m == name))
        .map(|(plan, _)| format!("`{plan}`"))
        .collect();
    let mut lines = vec![
        format!("**`{name}`** in {}, as a run starts:", inventory.origin),
        format!("- state: `{}`", item.steady_state()),
        format!("- active on: `{}`", item.active_location.as_str()),
        format!("- health: `{}`", item.health.to_lowercase()),
        format!("- replicating: {}", item.replicating),
        format!(
            "- allowed: {}",
            if allowed.is_empty() {
                "nothing".to_string()
            } else {
                allowed.join(", ")
            }
        ),
    ];
    if let Some(drill) = item.last_test_failover {
        lines.push(format!("- last drill: {}", drill.rfc3339()));
    }
    if !plans.is_empty() {
        lines.push(format!("- recovery plans: {}", plans.join(", ")));
    }
    lines.join("\n")
}

/// A recovery plan's groups in boot order.
fn plan(inventory: &Inventory, name: &str) -> String {
    let Some(plan) = inventory.plans.get(name) else {
        let hint = did_you_mean(name, inventory.plans.keys().map(String::as_str))
            .map(|s| format!(": did you mean `{s}`?"))
            .unwrap_or_default();
        return format!(
            "No recovery plan is named `{name}` in {}{hint}",
            inventory.origin
        );
    };
    let groups: Vec<String> = plan
        .groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let members: Vec<String> = group.iter().map(|m| format!("`{m}`")).collect();
            format!("{}. {}", i + 1, members.join(", "))
        })
        .collect();
    format!(
        "**Recovery plan `{name}`** in {}: its groups in boot order\n\n{}",
        inventory.origin,
        groups.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsp::cache::Cache;
    use crate::lsp::documents::Documents;
    use lsp_types::Url;

    /// The hover's text at `needle` (plus one character) in `text`.
    fn shown(text: &str, needle: &str) -> Option<String> {
        let docs = Documents::default();
        let uri = Url::parse("file:///nowhere/plan.rhai").unwrap();
        docs.open(uri.clone(), text.into(), 1);
        let cache = Cache::default();
        let project = Project::of(&uri, &docs, &cache).unwrap();
        let hover = hover(&project, text.find(needle).unwrap() + 1)?;
        match hover.contents {
            HoverContents::Markup(m) => Some(m.value),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn primitives_options_and_properties_show_their_registry_documentation() {
        let text = "let job = wait_job(commit(vm(\"a\")), #{ timeout: \"1h\" });\nnote(job.state);";
        let commit = shown(text, "commit").unwrap();
        assert!(
            commit.starts_with("```rhai\ncommit(vm) -> Job\n```"),
            "{commit}"
        );
        assert!(
            commit.contains(registry::find("commit").unwrap().doc),
            "{commit}"
        );
        assert!(commit.contains("Effect: destructive"), "{commit}");
        let timeout = shown(text, "timeout").unwrap();
        assert!(
            timeout.starts_with("Option of `wait_job`: `timeout`: a duration"),
            "{timeout}"
        );
        let state = shown(text, "state").unwrap();
        assert!(
            state.starts_with("`Job.state` (String): `NotStarted`"),
            "{state}"
        );
        // A name that is none of these, and a string that names nothing, show nothing.
        assert_eq!(shown(text, "job"), None);
        assert_eq!(shown(text, "\"1h\""), None);
        // Without an inventory, a VM's state is unknown, and it says so.
        let vm = shown(text, "\"a\"").unwrap();
        assert!(vm.contains("no inventory is known"), "{vm}");
    }

    /// Every primitive and option of the registry has its hover, with no change here when
    /// the registry grows.
    #[test]
    fn every_primitive_and_option_in_the_registry_is_documented_on_hover() {
        for prim in registry::PRIMITIVES {
            let text = format!("{}(x);", prim.name);
            let doc = shown(&text, prim.name).unwrap();
            assert!(doc.contains(prim.doc), "{}: {doc}", prim.name);
            let Some(index) = prim.options_index() else {
                continue;
            };
            for spec in prim.options {
                let mut args = vec!["x".to_string(); index];
                // Rhai reserves `default`: such a key is written quoted.
                if spec.key == "default" {
                    args.push(format!("#{{ \"{}\": 1 }}", spec.key));
                } else {
                    args.push(format!("#{{ {}: 1 }}", spec.key));
                }
                let text = format!("{}({});", prim.name, args.join(", "));
                let needle = if spec.key == "default" {
                    format!("\"{}", spec.key)
                } else {
                    format!("{}:", spec.key)
                };
                let doc = shown(&text, &needle).unwrap();
                assert!(doc.contains(spec.doc), "{}.{}: {doc}", prim.name, spec.key);
            }
        }
    }

    #[test]
    fn a_runbook_function_named_like_a_primitive_is_not_the_primitive() {
        let text = "fn note(x) { x }\nnote(1);";
        assert_eq!(shown(text, "note(1)"), None);
    }
}
