//! The module resolver: serves the embedded stdlib (`import "runbook/<module>"`) and `.rhai`
//! files inside the runbook's own folder; nothing else on disk is reachable.

use super::stdlib;
use crate::diagnostics::Sources;
use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ParseError, Position, Scope, Shared, AST};

type SharedModule = Shared<Module>;
type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    /// The stdlib's modules are the same text for every runbook: parse and evaluate them
    /// once per thread.
    static STDLIB_ASTS: RefCell<HashMap<String, Result<AST, ParseError>>> = RefCell::new(HashMap::new());
    static STDLIB_MODULES: RefCell<HashMap<String, SharedModule>> = RefCell::new(HashMap::new());
    /// Texts that stand in for files while [`with_overlay`] runs on this thread.
    static OVERLAY: RefCell<Rc<Overlay>> = RefCell::new(Rc::default());
}

/// Texts by absolute path (canonical when the file exists) that imports read instead of the
/// file: an editor's unsaved buffers, for the language server.
pub type Overlay = HashMap<PathBuf, Arc<str>>;

/// Runs `f` with every resolver of this thread reading `overlay`'s texts instead of the files
/// they stand for. The language server checks on a thread of its own, so an overlay never
/// reaches a command's resolver.
pub fn with_overlay<R>(overlay: Overlay, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Rc<Overlay>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                OVERLAY.with(|o| *o.borrow_mut() = previous);
            }
        }
    }
    let previous = OVERLAY.with(|o| std::mem::replace(&mut *o.borrow_mut(), Rc::new(overlay)));
    let _restore = Restore(Some(previous));
    f()
}

/// The overlay's text for `path`, if it has one.
fn overlaid(path: &Path) -> Option<Arc<str>> {
    OVERLAY.with(|o| o.borrow().get(path).cloned())
}

/// An import's source name, text and parse result.
pub type Loaded = (String, Arc<str>, Result<AST, ParseError>);

/// The prefix of stdlib imports.
pub const STDLIB_PREFIX: &str = "runbook/";

struct Inner {
    root: Option<PathBuf>,
    sources: RefCell<Sources>,
    /// Each loaded source's file (none for the stdlib), by source name.
    files: RefCell<std::collections::BTreeMap<String, Option<PathBuf>>>,
    names: RefCell<HashMap<String, String>>,
    cache: RefCell<HashMap<String, SharedModule>>,
    /// Imports being evaluated, outermost first: an import of one of them is a cycle.
    loading: RefCell<Vec<String>>,
    /// The check's time limit, which a module's parse must keep too.
    limit: std::cell::Cell<Option<super::limits::TimeLimit>>,
}

/// Shared by the engine and the static checker.
#[derive(Clone)]
pub struct Resolver(Rc<Inner>);

impl Resolver {
    /// A resolver for a runbook in folder `root` (`None`: only the stdlib).
    pub fn new(root: Option<&Path>) -> Self {
        Resolver(Rc::new(Inner {
            root: root.and_then(|r| std::fs::canonicalize(r).ok()),
            sources: RefCell::new(Sources::default()),
            files: RefCell::new(std::collections::BTreeMap::new()),
            names: RefCell::new(HashMap::new()),
            cache: RefCell::new(HashMap::new()),
            loading: RefCell::new(Vec::new()),
            limit: std::cell::Cell::new(None),
        }))
    }

    /// Refuses modules that do not parse before `limit` passes.
    pub fn limit_time(&self, limit: super::limits::TimeLimit) {
        self.0.limit.set(Some(limit));
    }

    /// Every source loaded so far.
    pub fn sources(&self) -> Sources {
        self.0.sources.borrow().clone()
    }

    /// Every module loaded so far: source name, file (none for the stdlib), text.
    pub fn modules(&self) -> Vec<(String, Option<PathBuf>, Arc<str>)> {
        let sources = self.0.sources.borrow();
        self.0
            .files
            .borrow()
            .iter()
            .filter_map(|(name, file)| {
                let text = sources.get(name)?.clone();
                Some((name.clone(), file.clone(), text))
            })
            .collect()
    }

    /// The source name an import path was loaded under.
    pub fn source_name(&self, path: &str) -> Option<String> {
        self.0.names.borrow().get(path).cloned()
    }

    /// Finds an import's text: `(source name, text)`, or why it cannot be imported.
    pub fn load(&self, path: &str) -> Result<(String, Arc<str>), String> {
        if let Some(module) = path.strip_prefix(STDLIB_PREFIX) {
            let text = stdlib::get(module).ok_or_else(|| {
                let known: Vec<String> = stdlib::MODULES
                    .iter()
                    .map(|(n, _)| format!("\"{STDLIB_PREFIX}{n}\""))
                    .collect();
                format!(
                    "the stdlib has no module `{module}`; it has {}",
                    known.join(", ")
                )
            })?;
            let name = format!("stdlib/{module}.rhai");
            self.remember(path, &name, text, true);
            self.0.files.borrow_mut().insert(name.clone(), None);
            return Ok((name, Arc::from(text)));
        }
        let rel = Path::new(path);
        if rel.is_absolute() || path.starts_with('/') || path.starts_with('\\') {
            return Err(format!(
                "`{path}` is an absolute path; runbooks import only the stdlib (\"{STDLIB_PREFIX}...\") and modules in their own folder"
            ));
        }
        if rel.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::Prefix(_) | Component::RootDir
            )
        }) {
            return Err(format!(
                "`{path}` leaves the runbook's folder; modules must sit in the runbook's folder or below it"
            ));
        }
        let Some(root) = &self.0.root else {
            return Err(format!(
                "`{path}` cannot be imported here: only the stdlib is available"
            ));
        };
        let mut file = root.join(rel);
        if file.extension().is_none() {
            file.set_extension("rhai");
        }
        let real = match std::fs::canonicalize(&file) {
            Ok(real) => real,
            // A module the editor has open but never saved.
            Err(_) if overlaid(&file).is_some() => file.clone(),
            Err(_) => {
                return Err(format!(
                    "module `{path}` not found (looked for {})",
                    crate::paths::display(&file)
                ))
            }
        };
        // An open buffer stands in for a file inside the folder (`real` is the file's real
        // path, or for one never saved the folder's path joined with the import's, no `..`).
        let buffer = overlaid(&real).filter(|_| real.starts_with(root));
        if buffer.is_none() && crate::files::resolve_inside(&real, root).is_err() {
            return Err(format!("`{path}` resolves outside the runbook's folder (through a link); it cannot be imported"));
        }
        let text = match buffer {
            Some(text) => Ok(text.to_string()),
            None => crate::files::read_inside(&real, root),
        }
        .and_then(|text| crate::files::fits_positions(&file, &text).map(|()| text))
        .map_err(|e| e.to_string())?;
        let name = crate::paths::display(&file);
        self.remember(path, &name, &text, false);
        self.0.files.borrow_mut().insert(name.clone(), Some(real));
        Ok((name, Arc::from(text.as_str())))
    }

    /// Loads and parses an import: `(source name, text, parse result)`.
    pub fn load_ast(&self, engine: &Engine, path: &str) -> Result<Loaded, String> {
        let (name, text) = self.load(path)?;
        if let Some(limit) = self.0.limit.get() {
            if !super::engine::parses_in_time(&text, limit) {
                return Err(format!(
                    "parsing it took longer than the check's time limit of {}",
                    crate::clock::human(limit.allowed)
                ));
            }
        }
        let parse = || {
            engine.compile(&*text).map(|mut ast| {
                ast.set_source(name.as_str());
                ast
            })
        };
        let ast = if path.starts_with(STDLIB_PREFIX) {
            STDLIB_ASTS.with(|cache| {
                cache
                    .borrow_mut()
                    .entry(name.clone())
                    .or_insert_with(parse)
                    .clone()
            })
        } else {
            parse()
        };
        Ok((name, text, ast))
    }

    /// Records an import's source name and text (`embedded`: the stdlib's, not a file's).
    fn remember(&self, path: &str, name: &str, text: &str, embedded: bool) {
        self.0
            .names
            .borrow_mut()
            .insert(path.to_string(), name.to_string());
        let mut sources = self.0.sources.borrow_mut();
        if sources.get(name).is_some() {
            return;
        }
        if embedded {
            sources.insert_embedded(name, text);
        } else {
            sources.insert(name, text);
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> RhaiResultOf<SharedModule> {
        if let Some(m) = self.0.cache.borrow().get(path) {
            return Ok(m.clone());
        }
        let stdlib = path.starts_with(STDLIB_PREFIX);
        if stdlib {
            if let Some(m) = STDLIB_MODULES.with(|c| c.borrow().get(path).cloned()) {
                // Still record the source, for findings inside the module.
                let _ = self.load(path);
                return Ok(m);
            }
        }
        let in_module = |message: String| {
            Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                EvalAltResult::ErrorRuntime(message.into(), pos).into(),
                pos,
            ))
        };
        if self.0.loading.borrow().len() >= super::limits::MODULES {
            return Err(in_module(format!(
                "imports nest deeper than {} modules",
                super::limits::MODULES
            )));
        }
        if self.0.loading.borrow().iter().any(|p| p == path) {
            let mut chain = self.0.loading.borrow().clone();
            chain.push(path.to_string());
            return Err(in_module(format!("import cycle: {}", chain.join(" → "))));
        }
        let (_, _, ast) = self.load_ast(engine, path).map_err(|message| {
            Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                EvalAltResult::ErrorRuntime(message.into(), pos).into(),
                pos,
            ))
        })?;
        let ast = ast.map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                e.into(),
                pos,
            ))
        })?;
        self.0.loading.borrow_mut().push(path.to_string());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine);
        self.0.loading.borrow_mut().pop();
        let module =
            module.map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)))?;
        let shared: SharedModule = module.into();
        if stdlib {
            STDLIB_MODULES.with(|c| c.borrow_mut().insert(path.to_string(), shared.clone()));
        }
        self.0
            .cache
            .borrow_mut()
            .insert(path.to_string(), shared.clone());
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_stands_in_for_files_only_while_it_is_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.rhai"), "fn saved() {}").unwrap();
        let real = std::fs::canonicalize(dir.path().join("m.rhai")).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let overlay = Overlay::from([
            (real, Arc::from("fn unsaved() {}")),
            (root.join("new.rhai"), Arc::from("fn never_saved() {}")),
        ]);
        let text = |path: &str| Resolver::new(Some(dir.path())).load(path).map(|(_, t)| t);
        with_overlay(overlay, || {
            assert_eq!(&*text("m").unwrap(), "fn unsaved() {}");
            assert_eq!(&*text("new").unwrap(), "fn never_saved() {}");
            // The stdlib is never overlaid.
            assert!(text("runbook/failover").unwrap().contains("fn group"));
        });
        assert_eq!(&*text("m").unwrap(), "fn saved() {}");
        assert!(
            text("new").unwrap_err().contains("not found"),
            "gone with the overlay"
        );
    }
}
