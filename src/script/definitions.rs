//! Definition files (`.d.rhai`) of the script API for Rhai editor tooling, in Rhai's own
//! definitions format: `module static;` for what every runbook can call, a
//! `module "runbook/<name>";` per stdlib module, and `///` documentation on every item.
//! The primitives and properties come from the registry, the stdlib's functions and their
//! doc comments from its embedded source, so the definitions say what the engine runs.

use super::limits;
use super::registry::{OptSpec, ParamKind, Primitive, Property, PRIMITIVES, PROPERTIES};
use super::resolver::STDLIB_PREFIX;
use super::stdlib;
use crate::error::Error;
use std::path::{Path, PathBuf};

/// The file of the primitives and properties.
const API_FILE: &str = "runbook.d.rhai";

/// Every definition file: `(file name, content)`, the API's first, then one per stdlib
/// module in the stdlib's order.
pub fn files() -> Vec<(String, String)> {
    let mut files = vec![(API_FILE.to_string(), api())];
    for (name, source) in stdlib::MODULES {
        files.push((format!("runbook-{name}.d.rhai"), module(name, source)));
    }
    files
}

/// Writes every definition file into `dir`, created if missing; returns the paths written.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    if dir.is_file() {
        return Err(Error::Usage(format!(
            "`{}` is a file; --definitions names the folder to write the definitions in",
            crate::paths::display(dir)
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, &e))?;
    files()
        .into_iter()
        .map(|(name, content)| {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(|e| Error::write(&path, &e))?;
            Ok(path)
        })
        .collect()
}

/// `module static;`: the properties of `Vm` and `Job`, then every primitive at each
/// argument count it accepts.
fn api() -> String {
    let mut out = String::from(
        "/// The runbook script API: the primitives every runbook can call and the properties\n\
         /// of the `Vm` and `Job` handles they return. Written by `runbook api --definitions`.\n\
         module static;\n",
    );
    for property in PROPERTIES {
        out.push('\n');
        out.push_str(&property_definition(property));
    }
    for primitive in PRIMITIVES {
        for arity in primitive.arities() {
            out.push('\n');
            out.push_str(&primitive_definition(primitive, arity));
        }
    }
    out
}

/// `fn get state(job: Job) -> String;` with its documentation.
fn property_definition(property: &Property) -> String {
    format!(
        "{}fn get {}({}: {}) -> {};\n",
        doc_comment(property.doc),
        property.name,
        property.owner.to_lowercase(),
        property.owner,
        property.returns
    )
}

/// The definition of `primitive` called with its first `arity` parameters, documented with
/// its parameters, options and effect.
fn primitive_definition(primitive: &Primitive, arity: usize) -> String {
    let doc = primitive_doc(primitive);
    let params: Vec<String> = primitive.params[..arity]
        .iter()
        .map(|p| format!("{}: {}", p.name, param_type(p.kind)))
        .collect();
    let returns = return_type(primitive.returns)
        .map(|t| format!(" -> {t}"))
        .unwrap_or_default();
    format!(
        "{}fn {}({}){returns};\n",
        doc_comment(&doc),
        primitive.name,
        params.join(", ")
    )
}

/// A primitive's documentation in markdown: what it does, its parameters, its options and
/// its effect (the definitions' doc comment, and the language server's hover).
pub(crate) fn primitive_doc(primitive: &Primitive) -> String {
    let mut doc = format!("{}\n\nParameters:", primitive.doc);
    for param in primitive.params {
        let optional = if param.optional { " (optional)" } else { "" };
        doc.push_str(&format!(
            "\n* `{}`{optional}: {}",
            param.name,
            param.kind.describe()
        ));
    }
    if !primitive.options.is_empty() {
        doc.push_str("\n\nOptions:");
        for option in primitive.options {
            doc.push_str(&format!("\n* {}", option_line(option)));
        }
    }
    doc.push_str(&format!(
        "\n\nEffect: {} ({}).",
        primitive.effect.as_str(),
        primitive.effect.describe()
    ));
    doc
}

/// `` `kind` (required): one of "planned", "unplanned". planned (no data loss; ...) ``
pub(crate) fn option_line(option: &OptSpec) -> String {
    let mut line = format!("`{}`", option.key);
    if option.required {
        line.push_str(" (required)");
    }
    line.push_str(&format!(": {}", option.kind.describe()));
    if let Some((key, value)) = option.only_with {
        line.push_str(&format!(", only with `{key}: \"{value}\"`"));
    }
    format!("{line}; {}", option.doc)
}

/// The Rhai type of a parameter. A VM may be a `Vm` or a name, so it is any (`?`).
fn param_type(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Vm => "?",
        ParamKind::Job => "Job",
        ParamKind::Jobs => "Array",
        ParamKind::Text => "String",
        ParamKind::Args => "Map",
        ParamKind::Options => "Map",
    }
}

/// The Rhai type of what a primitive returns, as the registry words it; `None` for `()`.
fn return_type(returns: &str) -> Option<&str> {
    match returns {
        "()" => None,
        "map" => Some("Map"),
        r if r.starts_with("array of ") => Some("Array"),
        r => Some(r),
    }
}

/// A stdlib module: `module "runbook/<name>";` and each of its public functions with the
/// doc comments of its source.
fn module(name: &str, source: &str) -> String {
    let mut out = format!(
        "/// The stdlib module `{STDLIB_PREFIX}{name}`: `import \"{STDLIB_PREFIX}{name}\" as {name};`\n\
         module \"{STDLIB_PREFIX}{name}\";\n"
    );
    for function in module_functions(source) {
        let params: Vec<String> = function.params.iter().map(|p| format!("{p}: ?")).collect();
        out.push('\n');
        out.push_str(&doc_comment(&function.doc));
        out.push_str(&format!(
            "fn {}({}) -> ?;\n",
            function.name,
            params.join(", ")
        ));
    }
    out
}

/// A public function of a module, with its doc comment's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleFunction {
    pub name: String,
    pub params: Vec<String>,
    /// The doc comment without its `///` (lines joined with newlines).
    pub doc: String,
}

/// The public functions of a module's `source`, by name and parameter count; none when it
/// does not parse.
pub(crate) fn module_functions(source: &str) -> Vec<ModuleFunction> {
    // Parsed with the runbook engine's limits. The stdlib parses (a test checks it); a
    // module that did not would define nothing.
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(limits::EXPR_DEPTH, limits::FN_EXPR_DEPTH);
    let Ok(ast) = engine.compile(source) else {
        return Vec::new();
    };
    let mut functions: Vec<_> = ast
        .iter_functions()
        // Closures compile to functions named `anon$<hash>`, which no script can call.
        .filter(|f| f.access != rhai::FnAccess::Private && !f.name.contains('$'))
        .collect();
    functions.sort_by_key(|f| (f.name, f.params.len()));
    functions
        .into_iter()
        .map(|function| {
            let doc: Vec<&str> = function
                .comments
                .iter()
                .flat_map(|c| c.lines())
                .map(|line| {
                    let text = line.trim_start().trim_start_matches('/');
                    text.strip_prefix(' ').unwrap_or(text)
                })
                .collect();
            ModuleFunction {
                name: function.name.to_string(),
                params: function.params.iter().map(|p| p.to_string()).collect(),
                doc: doc.join("\n"),
            }
        })
        .collect()
}

/// `text` as `///` lines (empty lines stay `///`).
fn doc_comment(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "///\n".to_string()
            } else {
                format!("/// {line}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::registry::find;

    #[test]
    fn optional_parameters_give_one_definition_per_argument_count() {
        let wait = find("wait_job").unwrap();
        assert!(primitive_definition(wait, 1).ends_with("fn wait_job(job: Job) -> Job;\n"));
        let full = primitive_definition(wait, 2);
        assert!(
            full.ends_with("fn wait_job(job: Job, opts: Map) -> Job;\n"),
            "{full}"
        );
        assert!(
            full.contains("/// * `opts` (optional): an option map"),
            "{full}"
        );
        assert!(full.contains("/// * `timeout`: a duration"), "{full}");
        assert!(
            primitive_definition(find("note").unwrap(), 1).ends_with("fn note(text: String);\n")
        );
    }

    #[test]
    fn options_say_when_they_are_required_and_what_they_need() {
        let failover = primitive_definition(find("failover").unwrap(), 2);
        assert!(
            failover.contains("/// * `kind` (required): one of \"planned\", \"unplanned\"; "),
            "{failover}"
        );
        assert!(
            failover
                .contains("`shutdown_source`: true or false, only with `kind: \"unplanned\"`; "),
            "{failover}"
        );
        assert!(failover.contains("/// Effect: mutate ("), "{failover}");
    }

    #[test]
    fn every_return_type_is_a_rhai_type() {
        for primitive in PRIMITIVES {
            if let Some(t) = return_type(primitive.returns) {
                assert!(
                    ["Vm", "Job", "Array", "Map", "?"].contains(&t),
                    "{}: {t}",
                    primitive.name
                );
            }
        }
    }

    #[test]
    fn stdlib_modules_keep_their_doc_comments() {
        let (_, source) = stdlib::MODULES.iter().find(|(n, _)| *n == "drill").unwrap();
        let text = module("drill", source);
        assert!(text.contains("module \"runbook/drill\";\n"), "{text}");
        assert!(text.contains("/// Runs a DR drill of `vms`"), "{text}");
        assert!(
            text.contains("fn run(vms: ?, network: ?, timeout: ?) -> ?;\n"),
            "{text}"
        );
        assert!(
            !text.contains("anon$"),
            "closures are not functions to call: {text}"
        );
    }

    #[test]
    fn properties_are_getters_of_their_type() {
        let state = PROPERTIES.iter().find(|p| p.name == "state").unwrap();
        let text = property_definition(state);
        assert!(text.starts_with("/// `NotStarted`"), "{text}");
        assert!(
            text.ends_with("fn get state(job: Job) -> String;\n"),
            "{text}"
        );
    }
}
