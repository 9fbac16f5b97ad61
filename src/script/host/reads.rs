//! The primitives that read the estate: `vm`, `vms` (a name glob or a recovery plan's
//! members) and `status`, with the map `status` returns.

use super::{Call, Host, Raise};
use crate::backend::{Item, Operation};
use crate::diagnostics::{Code, Finding};
use crate::script::types::VmHandle;
use rhai::{Dynamic, Map};

/// `vm(name)`.
pub(in crate::script) fn vm(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    h.lookup(call.ctx, &name)?;
    Ok(Dynamic::from(VmHandle { name: name.into() }))
}

/// `status(vm)`.
pub(in crate::script) fn status(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.vm_arg(call)?;
    let item = h.lookup(call.ctx, &name)?;
    Ok(Dynamic::from_map(status_map(&item)))
}

/// `vms(#{ name, plan })`.
pub(in crate::script) fn vms(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let opts = h.opts(call)?;
    let glob = opts.text("name");
    let plan = opts.text("plan");
    if glob.is_none() && plan.is_none() {
        return Err(h.fail(
            ctx,
            Finding::new(
                Code::InvalidOption,
                "`vms` needs `name` (a glob) or `plan` (a recovery plan)",
            )
            .help("write e.g. vms(#{ name: \"web-*\" }) or vms(#{ plan: \"web-tier\" })"),
        ));
    }
    if !h.backend.knows_names() {
        let site = h.site(ctx);
        h.warn(h.at(
            Finding::new(
                Code::NamesNotChecked,
                "without an inventory `vms` finds no VM, so what the runbook does with them was not checked",
            )
            .label("no VMs here")
            .help("name an inventory in runbook.toml (`inventory = \"inventory.toml\"`) or pass --inventory FILE"),
            &site,
        ));
        return Ok(Dynamic::from_array(Vec::new()));
    }
    let mut names: Vec<String> = match &plan {
        Some(p) => h
            .read(ctx, "plan", p, || {
                h.exec.block_on(h.backend.plan_members(p))
            })?
            .map_err(|e| h.backend_error(ctx, e))?,
        None => h
            .read(ctx, "items", "", || {
                h.exec
                    .block_on(h.backend.list_items())
                    .map(|items| items.into_iter().map(|i| i.name).collect())
            })?
            .map_err(|e| h.backend_error(ctx, e))?,
    };
    if let Some(g) = &glob {
        let pattern = glob::Pattern::new(g).map_err(|e| {
            h.fail(
                ctx,
                Finding::new(
                    Code::InvalidOption,
                    format!("`{g}` is not a valid name glob: {e}"),
                )
                .help("use * and ? as wildcards, e.g. \"web-*\""),
            )
        })?;
        names.retain(|n| pattern.matches(n));
        if names.is_empty() && h.backend.knows_names() {
            return Err(h.fail(
                ctx,
                Finding::new(Code::UnknownVm, format!("no VM matches `{g}`"))
                    .help("check the glob against the names in the inventory"),
            ));
        }
    }
    Ok(Dynamic::from_array(
        names
            .into_iter()
            .map(|n| Dynamic::from(VmHandle { name: n.into() }))
            .collect(),
    ))
}

/// The map `status(vm)` returns.
pub fn status_map(item: &Item) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), item.name.clone().into());
    m.insert("state".into(), script_state(item).into());
    m.insert(
        "protection_state".into(),
        item.protection_state.clone().into(),
    );
    m.insert(
        "active_location".into(),
        item.active_location.as_str().into(),
    );
    m.insert("health".into(), item.health.to_lowercase().into());
    m.insert("replicating".into(), item.replicating.into());
    m.insert(
        "allowed".into(),
        Dynamic::from_array(
            item.allowed_operations
                .iter()
                .filter_map(|a| Operation::from_allowed_name(a))
                .map(|o| Dynamic::from(o.as_str().to_string()))
                .collect(),
        ),
    );
    m.insert(
        "test_failover_state".into(),
        item.test_failover_state
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from),
    );
    m.insert(
        "last_test_failover".into(),
        item.last_test_failover
            .map_or(Dynamic::UNIT, |t| t.rfc3339().into()),
    );
    m
}

/// The script's name for an item's state, from ASR's strings.
pub fn script_state(item: &Item) -> &'static str {
    if item.current_job.is_some() {
        "busy"
    } else {
        item.steady_state()
    }
}
