//! The one engine builder every command uses, so what `check` validates is exactly what
//! `run` executes: strict variables, every limit set explicitly, dynamic dispatch and the
//! standard package's `sleep`/`exit` disabled, output routed to the observer, imports
//! sandboxed, and the primitives registered from the registry.
//!
//! The primitives and the `Vm`/`Job` types live in one module built once per thread; each
//! engine finds its run's [`Host`] in the engine's tag. This keeps building an engine cheap
//! (`check` builds one per runbook, thousands in one process).

use super::host::Host;
use super::limits::{self, FORBIDDEN};
use super::registry::PRIMITIVES;
use super::resolver::Resolver;
use super::types;
use rhai::packages::{Package, StandardPackage};
use rhai::{
    Dynamic, Engine, EvalAltResult, FuncRegistration, Module, NativeCallContext, OptimizationLevel,
    RhaiFunc, Shared,
};
use std::any::TypeId;
use std::rc::Rc;

type SharedModule = Shared<Module>;

thread_local! {
    static STD: SharedModule = StandardPackage::new().as_shared_module();
    static API: SharedModule = api_module();
}

/// The run's host, from the engine's tag.
fn host(ctx: &NativeCallContext) -> Result<Rc<Host>, Box<EvalAltResult>> {
    ctx.tag()
        .and_then(|t| t.read_lock::<Rc<Host>>().map(|h| h.clone()))
        .ok_or_else(|| {
            EvalAltResult::ErrorSystem(
                "engine without a host".into(),
                "the engine was not built by script::engine::build".into(),
            )
            .into()
        })
}

fn add_raw(
    module: &mut Module,
    name: &str,
    arity: usize,
    func: impl Fn(NativeCallContext, &mut [&mut Dynamic]) -> Result<Dynamic, Box<EvalAltResult>>
        + 'static,
) {
    FuncRegistration::new(name)
        .in_global_namespace()
        .set_into_module_raw(
            module,
            vec![TypeId::of::<Dynamic>(); arity],
            RhaiFunc::Method {
                func: Shared::new(
                    move |ctx: Option<NativeCallContext>, args: &mut [&mut Dynamic]| {
                        let ctx = ctx.ok_or_else(|| {
                            Box::new(EvalAltResult::ErrorSystem(
                                "no call context".into(),
                                "".into(),
                            ))
                        })?;
                        func(ctx, args)
                    },
                ),
                has_context: true,
                is_pure: true,
                is_volatile: true,
            },
        );
}

/// The script API as a module: every primitive at each argument count it accepts, the
/// types' properties, and refusals shadowing the standard package's `sleep` and `exit`.
fn api_module() -> SharedModule {
    let mut module = Module::new();
    types::register_into(&mut module);
    super::callbacks::register_into(&mut module);
    for prim in PRIMITIVES {
        for arity in prim.arities() {
            add_raw(&mut module, prim.name, arity, move |ctx, args| {
                host(&ctx)?.call(prim, &ctx, args)
            });
        }
    }
    for name in ["sleep", "exit"] {
        for arity in 0..=1 {
            add_raw(&mut module, name, arity, |ctx, _| {
                Err(host(&ctx)?.forbidden(&ctx))
            });
        }
    }
    module.into()
}

/// Builds the engine for one runbook. `call_stack` keeps Rhai's call stack (its debugging
/// interface), which gives findings inside functions and modules their chain of calls; it
/// costs about a third of a dry run's time, so `check` turns it on only to explain findings.
pub fn build(host: Rc<Host>, resolver: Resolver, call_stack: bool) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(STD.with(Clone::clone));
    // Registered after the standard package, so its functions are found first.
    engine.register_global_module(API.with(Clone::clone));
    types::name_types(&mut engine);
    engine
        .set_strict_variables(true)
        .set_optimization_level(OptimizationLevel::None)
        .set_max_operations(limits::OPERATIONS)
        .set_max_call_levels(limits::CALL_LEVELS)
        .set_max_expr_depths(limits::EXPR_DEPTH, limits::FN_EXPR_DEPTH)
        .set_max_string_size(limits::STRING_SIZE)
        .set_max_array_size(limits::ARRAY_SIZE)
        .set_max_map_size(limits::MAP_SIZE)
        .set_max_modules(limits::MODULES);
    for symbol in FORBIDDEN {
        engine.disable_symbol(*symbol);
    }
    let h = host.clone();
    engine.on_print(move |text| h.observer().print(text));
    let h = host.clone();
    engine.on_debug(move |text, _, _| h.observer().print(text));
    watch(&mut engine, host.clone(), None);
    if call_stack {
        host.keep_call_stack();
        #[allow(deprecated)] // rhai marks this API volatile, not deprecated; rhai is pinned
        engine.register_debugger(
            |_, dbg| dbg,
            |_, _, _, _, _| Ok(rhai::debugger::DebuggerCommand::Continue),
        );
    }
    engine.set_default_tag(Dynamic::from(host));
    engine.set_module_resolver(resolver);
    engine
}

/// Texts up to this size parse quickly whatever they hold; longer ones are parsed on a
/// thread of their own first, within the check's time limit.
const QUICK_PARSE: usize = 64 << 10;

/// Texts declaring at most this many names parse quickly whatever their size (a few
/// milliseconds), so they are not parsed twice.
const QUICK_DECLARATIONS: usize = 2_048;

/// An upper bound of the declarations in `text`: its `let`, `const`, `for`, `fn` and
/// `catch` words and its closures' bars (in comments and strings too).
fn declarations(text: &str) -> usize {
    let words = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| matches!(*w, "let" | "const" | "for" | "fn" | "catch"))
        .count();
    words + text.matches('|').count() / 2
}

/// Whether `text` parses (or fails to) before `limit` passes. Rhai's parser takes time
/// quadratic in the variables a script declares (65,535 `let`s take minutes), and it cannot
/// be interrupted: a long text that declares many names is parsed on a thread of its own
/// first, which is left to finish alone when the limit passes first.
pub fn parses_in_time(text: &str, limit: limits::TimeLimit) -> bool {
    if text.len() <= QUICK_PARSE || declarations(text) <= QUICK_DECLARATIONS {
        return true;
    }
    let (done, finished) = std::sync::mpsc::channel();
    let text = text.to_string();
    let parser = std::thread::Builder::new()
        .name("parse".into())
        .stack_size(8 << 20)
        .spawn(move || {
            let mut engine = Engine::new_raw();
            engine
                .set_strict_variables(true)
                .set_optimization_level(OptimizationLevel::None)
                .set_max_expr_depths(limits::EXPR_DEPTH, limits::FN_EXPR_DEPTH);
            for symbol in FORBIDDEN {
                engine.disable_symbol(*symbol);
            }
            let _ = engine.compile(&text);
            let _ = done.send(());
        });
    if parser.is_err() {
        // No thread to be had: parse here, unguarded.
        return true;
    }
    let left = limit
        .deadline
        .saturating_duration_since(std::time::Instant::now());
    !matches!(
        finished.recv_timeout(left),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    )
}

/// The last place a script reached: its source (`None`: the main script) and position.
pub type Place = Rc<std::cell::RefCell<Option<(Option<String>, rhai::Position)>>>;

/// Makes the engine step through the script and remember the last place it reached, for
/// errors Rhai gives no position (a data race). Stepping is slow: only for a second run of a
/// script whose first run ended with such an error.
pub fn record_places(engine: &mut Engine) -> Place {
    let place: Place = Rc::default();
    let seen = place.clone();
    #[allow(deprecated)] // rhai marks this API volatile, not deprecated; rhai is pinned
    engine.register_debugger(
        |_, dbg| dbg,
        move |_, _, _, source, pos| {
            if !pos.is_none() {
                let mut last = seen.borrow_mut();
                match last.as_mut() {
                    Some((s, p)) if s.as_deref() == source => *p = pos,
                    _ => *last = Some((source.map(str::to_string), pos)),
                }
            }
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );
    place
}

/// Stops the script every few thousand operations when the operator interrupted the run,
/// or once `limit` has passed (with the limit as the termination token).
pub fn watch(engine: &mut Engine, host: Rc<Host>, limit: Option<limits::TimeLimit>) {
    engine.on_progress(move |ops| {
        if ops % 1024 != 0 {
            return None;
        }
        if let Some(limit) = limit.filter(limits::TimeLimit::passed) {
            return Some(Dynamic::from(limit));
        }
        host.is_interrupted().then(|| "interrupted".into())
    });
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn only_long_texts_declaring_many_names_are_parsed_twice() {
        let limit = limits::TimeLimit::from_now(std::time::Duration::from_secs(60));
        // Long, few names: parsed once (no guard thread needed).
        let long: String = (0..5_000)
            .map(|i| format!("note(\"line {i} of a long runbook\");\n"))
            .collect();
        assert!(long.len() > QUICK_PARSE && declarations(&long) <= QUICK_DECLARATIONS);
        assert!(parses_in_time(&long, limit));
        // However the words are spaced, they count.
        let spaced: String = (0..3_000).map(|i| format!("let\tv{i}=|x|\nx;\n")).collect();
        assert!(
            declarations(&spaced) >= 3_000 + 3_000,
            "{}",
            declarations(&spaced)
        );
    }
}
