//! The one engine builder every command uses, so what `check` validates is exactly what
//! `run` executes: strict variables, every limit set explicitly, dynamic dispatch and the
//! standard package's `sleep`/`exit` disabled, output routed to the observer, imports
//! sandboxed, and the primitives registered from the registry.

use super::host::Host;
use super::registry::PRIMITIVES;
use super::resolver::Resolver;
use super::types;
use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, Module, OptimizationLevel, Shared};

type SharedModule = Shared<Module>;
use std::any::TypeId;
use std::rc::Rc;

/// The limits, identical in debug and release builds.
pub mod limits {
    pub const OPERATIONS: u64 = 5_000_000;
    pub const CALL_LEVELS: usize = 48;
    pub const EXPR_DEPTH: usize = 64;
    pub const FN_EXPR_DEPTH: usize = 32;
    pub const STRING_SIZE: usize = 1 << 20;
    pub const ARRAY_SIZE: usize = 10_000;
    pub const MAP_SIZE: usize = 10_000;
    pub const MODULES: usize = 32;
}

/// Symbols a runbook may not use: dynamic dispatch hides calls from the checks; `sleep` and
/// `exit` bypass the run's clock and outcome.
pub const FORBIDDEN: &[&str] = &["eval", "Fn", "sleep", "exit"];

thread_local! {
    static STD: SharedModule = StandardPackage::new().as_shared_module();
}

/// Builds the engine for one runbook. `call_stack` keeps Rhai's call stack (its debugging
/// interface), which gives findings inside functions and modules their chain of calls; it
/// costs about a third of a dry run's time, so `check` turns it on only to explain findings.
pub fn build(host: Rc<Host>, resolver: Resolver, call_stack: bool) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(STD.with(Clone::clone));
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
    types::register(&mut engine);
    for prim in PRIMITIVES {
        for arity in prim.arities() {
            let h = host.clone();
            engine.register_raw_fn(
                prim.name,
                vec![TypeId::of::<Dynamic>(); arity],
                move |ctx, args| h.call(prim, &ctx, args),
            );
        }
    }
    // The standard package's `sleep` and `exit` are shadowed by refusals (the static checks
    // report them too); the engine's own functions are found before the package's.
    for name in ["sleep", "exit"] {
        for arity in 0..=1 {
            let h = host.clone();
            engine.register_raw_fn(name, vec![TypeId::of::<Dynamic>(); arity], move |ctx, _| {
                Err::<Dynamic, _>(h.forbidden(&ctx))
            });
        }
    }
    let h = host.clone();
    engine.on_print(move |text| h.observer().print(text));
    let h = host.clone();
    engine.on_debug(move |text, _, _| h.observer().print(text));
    let h = host.clone();
    engine.on_progress(move |ops| {
        if ops % 4096 == 0 && h.is_interrupted() {
            Some("interrupted".into())
        } else {
            None
        }
    });
    if call_stack {
        host.keep_call_stack();
        #[allow(deprecated)] // rhai marks this API volatile, not deprecated; rhai is pinned
        engine.register_debugger(
            |_, dbg| dbg,
            |_, _, _, _, _| Ok(rhai::debugger::DebuggerCommand::Continue),
        );
    }
    engine.set_module_resolver(resolver);
    engine
}
