//! A primitive's arguments as the handlers need them: VM names (from a `Vm` or a string),
//! job handles, strings and the strictly parsed option map, each refused with a finding that
//! says what the primitive takes.

use super::{Call, Host, Raise};
use crate::backend::Item;
use crate::diagnostics::{Code, Finding};
use crate::script::options::{type_name, Opts};
use crate::script::registry::Primitive;
use crate::script::types::{JobHandle, VmHandle};
use rhai::{Array, Dynamic, ImmutableString, Map, NativeCallContext};

impl Host {
    pub(super) fn vm_name(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<String, Raise> {
        if let Some(vm) = arg.read_lock::<VmHandle>() {
            return Ok(vm.name.to_string());
        }
        if let Some(name) = arg.read_lock::<ImmutableString>() {
            return Ok(name.to_string());
        }
        Err(self.fail(
            ctx,
            Finding::new(
                Code::InvalidArgument,
                format!(
                    "`{}` needs a Vm or a VM name, not {}",
                    prim.name,
                    type_name(arg)
                ),
            )
            .help("pass `vm(\"name\")` or the name as a string"),
        ))
    }

    /// The VM the call's first argument names.
    pub(super) fn vm_arg(&self, call: &Call) -> Result<String, Raise> {
        self.vm_name(call.ctx, call.prim, call.arg(0))
    }

    /// The item named `name`, read through the journal.
    pub(super) fn lookup(&self, ctx: &NativeCallContext, name: &str) -> Result<Item, Raise> {
        self.names_used.set(true);
        self.read(ctx, "item", name, || {
            self.exec.block_on(self.backend.item(name))
        })?
        .map_err(|e| self.backend_error(ctx, e))
    }

    fn job_of(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<JobHandle, Raise> {
        arg.read_lock::<JobHandle>()
            .map(|j| j.clone())
            .ok_or_else(|| {
                self.fail(
                    ctx,
                    Finding::new(
                        Code::InvalidArgument,
                        format!("`{}` needs a Job, not {}", prim.name, type_name(arg)),
                    )
                    .help("pass the value an operation such as failover(...) returned"),
                )
            })
    }

    /// The job the call's first argument holds.
    pub(super) fn job_arg(&self, call: &Call) -> Result<JobHandle, Raise> {
        self.job_of(call.ctx, call.prim, call.arg(0))
    }

    /// The jobs of the array the call's first argument holds.
    pub(super) fn jobs_arg(&self, call: &Call) -> Result<Vec<JobHandle>, Raise> {
        let (ctx, prim, arg) = (call.ctx, call.prim, call.arg(0));
        let Some(items) = arg.read_lock::<Array>().map(|a| a.clone()) else {
            return Err(self.fail(
                ctx,
                Finding::new(
                    Code::InvalidArgument,
                    format!(
                        "`{}` needs an array of Jobs, not {}",
                        prim.name,
                        type_name(arg)
                    ),
                ),
            ));
        };
        items.iter().map(|j| self.job_of(ctx, prim, j)).collect()
    }

    /// The string the call's first argument holds.
    pub(super) fn text_arg(&self, call: &Call) -> Result<String, Raise> {
        let arg = call.arg(0);
        arg.read_lock::<ImmutableString>()
            .map(|s| s.to_string())
            .ok_or_else(|| {
                self.fail(
                    call.ctx,
                    Finding::new(
                        Code::InvalidArgument,
                        format!(
                            "`{}` needs a string, not {}",
                            call.prim.name,
                            type_name(arg)
                        ),
                    ),
                )
            })
    }

    /// The call's options (its last parameter, when the primitive has one), parsed strictly.
    pub(super) fn opts(&self, call: &Call) -> Result<Opts, Raise> {
        let (ctx, prim) = (call.ctx, call.prim);
        let arg = prim.options_index().and_then(|i| call.opt_arg(i));
        let parsed = match arg {
            None => Opts::parse(prim, None),
            Some(a) => match a.read_lock::<Map>() {
                Some(m) => Opts::parse(prim, Some(&m)),
                None => {
                    return Err(self.fail(
                        ctx,
                        Finding::new(
                            Code::InvalidArgument,
                            format!(
                                "the options of `{}` must be a map `#{{ ... }}`, not {}",
                                prim.name,
                                type_name(a)
                            ),
                        ),
                    ))
                }
            },
        };
        parsed.map_err(|p| {
            self.fail(
                ctx,
                Finding::new(p.code(), p.message(prim))
                    .label(format!("option `{}`", p.key()))
                    .help(p.help(prim)),
            )
        })
    }
}
