//! The primitives that check the estate without changing it: `verify` (a failure shows what
//! was expected and found) and `preflight` (the prerequisites of a recovery).

use super::{Call, Host, Raise};
use crate::backend::BackendError;
use crate::clock::human;
use crate::diagnostics::{Code, Finding};
use crate::journal::Entry;
use rhai::{Array, Dynamic, Map};
use std::time::Duration;

/// The oldest acceptable drill without `max_drill_age`.
pub const DEFAULT_DRILL_AGE: Duration = Duration::from_secs(30 * 86400);

/// `verify(vm, expect)`.
pub(in crate::script) fn verify(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.vm_arg(call)?;
    let opts = h.opts(call)?;
    let item = h.lookup(ctx, &name)?;
    let mut wrong = Vec::new();
    let mut checked = Vec::new();
    if let Some(site) = opts.text("active_location") {
        checked.push(format!("active on {site}"));
        if item.active_location.as_str() != site {
            wrong.push(format!(
                "expected active_location {site}, found {}",
                item.active_location.as_str()
            ));
        }
    }
    if let Some(healthy) = opts.flag("healthy") {
        checked.push(if healthy { "healthy" } else { "not healthy" }.to_string());
        if item.is_healthy() != healthy {
            wrong.push(format!(
                "expected healthy: {healthy}, found replication health {}",
                item.health
            ));
        }
    }
    if let Some(replicating) = opts.flag("replicating") {
        checked.push(
            if replicating {
                "replicating"
            } else {
                "not replicating"
            }
            .to_string(),
        );
        if item.replicating != replicating {
            wrong.push(format!(
                "expected replicating: {replicating}, found {} ({})",
                item.replicating, item.protection_state
            ));
        }
    }
    if wrong.is_empty() {
        h.state
            .borrow_mut()
            .verified
            .insert(name.clone(), (item.active_location, h.clock.now()));
        h.observer.verified(&name, &checked.join(", "));
        h.describe(Entry::Verified {
            vm: name.clone(),
            site: item.active_location,
            what: checked.join(", "),
        });
        return Ok(Dynamic::UNIT);
    }
    let mut finding = Finding::new(
        Code::VerifyFailed,
        format!("verification of `{name}` failed"),
    )
    .label(wrong.join("; "))
    .help("do not commit or reverse a VM that failed verification; find out why first");
    for w in wrong {
        finding = finding.note(w);
    }
    for e in &item.health_errors {
        finding = finding.note(format!("health: {e}"));
    }
    Err(h.fail(ctx, finding))
}

/// `preflight(opts)`.
pub(in crate::script) fn preflight(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let opts = h.opts(call)?;
    let max_age = opts.duration("max_drill_age").unwrap_or(DEFAULT_DRILL_AGE);
    let names: Vec<String> = opts
        .get("vms")
        .and_then(|v| v.read_lock::<Array>().map(|a| a.clone()))
        .unwrap_or_default()
        .iter()
        .map(|v| h.vm_name(ctx, call.prim, v))
        .collect::<Result<_, _>>()?;
    if !names.is_empty() {
        h.names_used.set(true);
    }
    // Recorded as one answer: its findings depend on the time (drill ages), and a
    // resume must see what the run saw.
    let problems = h
        .read(ctx, "preflight", &names.join(","), || {
            h.preflight_problems(&names, max_age)
        })?
        .map_err(|e| h.backend_error(ctx, e))?;
    for p in &problems {
        h.observer.note(&format!("preflight: {p}"));
    }
    if problems.is_empty() {
        h.observer.note(&format!(
            "preflight: {} VMs ready, both sites connected",
            names.len()
        ));
    }
    let mut map = Map::new();
    map.insert("ok".into(), problems.is_empty().into());
    map.insert(
        "problems".into(),
        Dynamic::from_array(problems.into_iter().map(Dynamic::from).collect()),
    );
    map.insert("checked".into(), Dynamic::from_int(names.len() as i64));
    Ok(Dynamic::from_map(map))
}

impl Host {
    /// What stands in the way of a recovery of `names`: unconnected sites, VMs that do
    /// not replicate or are unhealthy, drills waiting for cleanup, old or missing drills.
    fn preflight_problems(
        &self,
        names: &[String],
        max_age: Duration,
    ) -> Result<Vec<String>, BackendError> {
        let mut problems: Vec<String> = Vec::new();
        for p in &self.exec.block_on(self.backend.providers())? {
            if !p.connected {
                problems.push(format!(
                    "the {} site's server `{}` is not connected to Site Recovery",
                    p.site.as_str(),
                    p.name
                ));
            }
        }
        let now = self.clock.now();
        for name in names {
            let item = self.exec.block_on(self.backend.item(name))?;
            if !item.replicating {
                problems.push(format!(
                    "`{name}` is not replicating ({})",
                    item.protection_state
                ));
            }
            if !item.is_healthy() {
                problems.push(format!("`{name}` has {} replication health", item.health));
            }
            if item.test_failover_state.is_some() {
                problems.push(format!("`{name}` has a drill waiting for cleanup"));
            }
            match item.last_test_failover {
                None => problems.push(format!("`{name}` has never had a successful drill")),
                Some(t) if now.since(t) > max_age => problems.push(format!(
                    "`{name}`'s last successful drill was {} ago (older than {})",
                    human(now.since(t)),
                    human(max_age)
                )),
                Some(_) => {}
            }
        }
        Ok(problems)
    }
}
