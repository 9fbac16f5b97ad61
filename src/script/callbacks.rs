//! Rhai's array functions whose callbacks' errors Rhai drops: `sort` with a comparator and
//! `dedup` with one treat an error as an answer and go on. A failed verification or a
//! refused operation inside such a callback would then vanish, and the run would go on on a
//! wrong premise. These replacements let every error through, as `map` or `filter` do, so
//! it stops the run unless the script catches it.

use rhai::{
    Array, Dynamic, EvalAltResult, FnPtr, FuncRegistration, ImmutableString, Module,
    NativeCallContext,
};
use std::cmp::Ordering;

type Failure = Box<EvalAltResult>;

/// Registers the replacements into `module` (registered after Rhai's standard package, so
/// they are found first).
pub fn register_into(module: &mut Module) {
    for name in ["sort", "sort_by"] {
        FuncRegistration::new(name)
            .in_global_namespace()
            .set_into_module(module, sort_by);
    }
    FuncRegistration::new("dedup")
        .in_global_namespace()
        .set_into_module(module, dedup_by);
    // The same, with the comparator named by a string (`xs.sort("by_name")`), which Rhai
    // still accepts and would otherwise answer with its own, error-dropping versions.
    for name in ["sort", "sort_by"] {
        FuncRegistration::new(name)
            .in_global_namespace()
            .set_into_module(
                module,
                |ctx: NativeCallContext, array: &mut Array, f: ImmutableString| {
                    sort_by(ctx, array, named(&f)?)
                },
            );
    }
    FuncRegistration::new("dedup")
        .in_global_namespace()
        .set_into_module(
            module,
            |ctx: NativeCallContext, array: &mut Array, f: ImmutableString| {
                dedup_by(ctx, array, named(&f)?)
            },
        );
}

/// The function a string names, as a callback.
fn named(name: &str) -> Result<FnPtr, Failure> {
    FnPtr::new(name)
}

/// What Rhai's `sort` makes of a comparator's answer: a number (its sign), or a boolean
/// (`true`: the first comes first); anything else orders by type.
fn ordering(answer: &Dynamic, x: &Dynamic, y: &Dynamic) -> Ordering {
    let n = answer
        .as_int()
        .or_else(|_| answer.as_bool().map(|b| if b { -1 } else { 1 }));
    match n {
        Ok(n) => n.cmp(&0),
        Err(_) => x.type_id().cmp(&y.type_id()),
    }
}

fn sort_by(ctx: NativeCallContext, array: &mut Array, comparer: FnPtr) -> Result<(), Failure> {
    if array.len() <= 1 {
        return Ok(());
    }
    let mut failure: Option<Failure> = None;
    // `slice::sort_by` may panic when the comparator is not a total order (and it is not
    // one once it has failed): catch that as Rhai does.
    let sorted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        array.sort_by(|x, y| {
            if failure.is_some() {
                return Ordering::Equal;
            }
            match comparer.call_raw(&ctx, None, [x.clone(), y.clone()]) {
                Ok(answer) => ordering(&answer, x, y),
                Err(e) => {
                    failure = Some(e);
                    Ordering::Equal
                }
            }
        });
    }));
    match (failure, sorted) {
        (Some(e), _) => Err(e),
        (None, Ok(())) => Ok(()),
        (None, Err(_)) => Err(EvalAltResult::ErrorRuntime(
            "error in comparer for sorting".into(),
            ctx.call_position(),
        )
        .into()),
    }
}

fn dedup_by(ctx: NativeCallContext, array: &mut Array, comparer: FnPtr) -> Result<(), Failure> {
    let mut failure: Option<Failure> = None;
    array.dedup_by(|x, y| {
        if failure.is_some() {
            return false;
        }
        match comparer.call_raw(&ctx, None, [y.clone(), x.clone()]) {
            Ok(answer) => answer.as_bool().unwrap_or(false),
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    });
    failure.map_or(Ok(()), Err)
}
