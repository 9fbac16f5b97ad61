//! The primitives that check the estate without changing it: `verify` (a failure shows what
//! was expected and found) and `preflight` (the prerequisites of a recovery).

use super::{Call, Host, Raise};
use crate::backend::{BackendError, Item, Operation, Site};
use crate::clock::{human, Timestamp};
use crate::diagnostics::{Code, Finding};
use crate::journal::{Entry, Record};
use crate::script::options::Opts;
use rhai::{Array, Dynamic, Map, NativeCallContext};
use std::time::Duration;

/// The oldest acceptable drill without `max_drill_age`.
pub const DEFAULT_DRILL_AGE: Duration = Duration::from_secs(30 * 86400);

/// What a `verify` expected of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Expect {
    active_location: Option<String>,
    healthy: Option<bool>,
    replicating: Option<bool>,
}

impl Expect {
    fn of(opts: &Opts) -> Expect {
        Expect {
            active_location: opts.text("active_location"),
            healthy: opts.flag("healthy"),
            replicating: opts.flag("replicating"),
        }
    }

    /// What was checked, and what differs in `item`.
    fn compare(&self, item: &Item) -> (Vec<String>, Vec<String>) {
        let mut wrong = Vec::new();
        let mut checked = Vec::new();
        if let Some(site) = &self.active_location {
            checked.push(format!("active on {site}"));
            if item.active_location.as_str() != site {
                wrong.push(format!(
                    "expected active_location {site}, found {}",
                    item.active_location.as_str()
                ));
            }
        }
        if let Some(healthy) = self.healthy {
            checked.push(if healthy { "healthy" } else { "not healthy" }.to_string());
            if item.is_healthy() != healthy {
                wrong.push(format!(
                    "expected healthy: {healthy}, found replication health {}",
                    item.health
                ));
            }
        }
        if let Some(replicating) = self.replicating {
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
        (checked, wrong)
    }
}

/// A verification a VM passed: the site it was active on, when, what was expected, and
/// whether it was answered from the journal of an earlier attempt (a resume).
#[derive(Debug, Clone)]
pub(super) struct Verified {
    pub site: Site,
    pub at: Timestamp,
    pub expect: Expect,
    pub replayed: bool,
}

impl Verified {
    /// Whether it verified the site the VM is active on (not only, say, its health).
    pub fn of_site(&self) -> bool {
        self.expect.active_location.is_some()
    }
}

/// `verify(vm, expect)`.
pub(in crate::script) fn verify(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.vm_arg(call)?;
    let opts = h.opts(call)?;
    let item = h.lookup(ctx, &name)?;
    let expect = Expect::of(&opts);
    let (checked, wrong) = expect.compare(&item);
    if wrong.is_empty() {
        let verified = Verified {
            site: item.active_location,
            at: h.clock.now(),
            expect,
            replayed: h.replayed_read.get(),
        };
        h.state.borrow_mut().verified.insert(name.clone(), verified);
        h.observer.verified(&name, &checked.join(", "));
        h.describe(Entry::Verified {
            vm: name.clone(),
            site: item.active_location,
            what: checked.join(", "),
        });
        return Ok(Dynamic::UNIT);
    }
    Err(h.fail(ctx, verify_failed(&name, &item, wrong, None)))
}

/// The finding of a verification that failed (`why`: a note on when it was made).
fn verify_failed(name: &str, item: &Item, wrong: Vec<String>, why: Option<String>) -> Finding {
    let mut finding = Finding::new(
        Code::VerifyFailed,
        format!("verification of `{name}` failed"),
    )
    .label(wrong.join("; "))
    .help("do not commit or reverse a VM that failed verification; find out why first");
    if let Some(why) = why {
        finding = finding.note(why);
    }
    for w in wrong {
        finding = finding.note(w);
    }
    for e in &item.health_errors {
        finding = finding.note(format!("health: {e}"));
    }
    finding
}

impl Host {
    /// Before a destructive operation goes to the service after a resume: a verification
    /// answered from the journal saw the VM before the interruption, so the VM is read
    /// again now and must still be as it was verified.
    pub(super) fn reverify(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        operation: Operation,
    ) -> Result<(), Raise> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        if !self.verified_before(name) {
            return Ok(());
        }
        let replays_intent = matches!(
            j.peek_answer(),
            Some(Record { entry: Entry::Intent { vm, operation: op, .. }, .. })
                if vm == name && op == operation.as_str()
        );
        // The operation's intent is in the journal: it is not sent again, or if its answer
        // was lost, settling it checks the VM before it sends anything.
        if replays_intent {
            return Ok(());
        }
        let item = self.lookup(ctx, name)?;
        self.still_verified(ctx, name, operation, &item)
    }

    /// Whether `name`'s last verification was answered from the journal: made before the
    /// run was interrupted.
    pub(super) fn verified_before(&self, name: &str) -> bool {
        self.state
            .borrow()
            .verified
            .get(name)
            .is_some_and(|v| v.replayed)
    }

    /// Refuses `operation` when `item` (read now) is not as `name`'s last verification saw
    /// it before the interruption.
    pub(super) fn still_verified(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        operation: Operation,
        item: &Item,
    ) -> Result<(), Raise> {
        let verified = self.state.borrow().verified.get(name).cloned();
        let Some(verified) = verified.filter(|v| v.replayed) else {
            return Ok(());
        };
        let (_, wrong) = verified.expect.compare(item);
        if wrong.is_empty() {
            return Ok(());
        }
        Err(self.fail(
            ctx,
            verify_failed(
                name,
                item,
                wrong,
                Some(format!(
                    "the {operation} was not issued: `{name}` was verified before the run was interrupted and is not as it was verified any more"
                )),
            ),
        ))
    }
}

/// `preflight(opts)`.
pub(in crate::script) fn preflight(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let opts = h.opts(call)?;
    let max_age = opts.duration("max_drill_age").unwrap_or(DEFAULT_DRILL_AGE);
    let sites: Vec<Site> = match opts
        .get("sites")
        .and_then(|v| v.read_lock::<Array>().map(|a| a.clone()))
    {
        Some(list) => [Site::Primary, Site::Recovery]
            .into_iter()
            .filter(|s| list.iter().any(|v| v.to_string() == s.as_str()))
            .collect(),
        None => vec![Site::Primary, Site::Recovery],
    };
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
    // The key names the sites only when they are not both, so earlier journals still match.
    let key = match sites.as_slice() {
        [_, _] => names.join(","),
        only => format!(
            "{} sites={}",
            names.join(","),
            only.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
    };
    let problems = h
        .read(ctx, "preflight", &key, || {
            h.preflight_problems(&names, &sites, max_age)
        })?
        .map_err(|e| h.backend_error(ctx, e))?;
    for p in &problems {
        h.observer.note(&format!("preflight: {p}"));
    }
    if problems.is_empty() {
        let connected = match sites.as_slice() {
            [_, _] => "both sites connected".to_string(),
            [site] => format!("the {} site connected", site.as_str()),
            _ => "no site checked".to_string(),
        };
        h.observer.note(&format!(
            "preflight: {} VMs ready, {connected}",
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
    /// What stands in the way of a recovery of `names`: unconnected servers of `sites`, VMs
    /// that do not replicate or are unhealthy, drills waiting for cleanup, operations in
    /// progress, old or missing drills.
    fn preflight_problems(
        &self,
        names: &[String],
        sites: &[Site],
        max_age: Duration,
    ) -> Result<Vec<String>, BackendError> {
        let mut problems: Vec<String> = Vec::new();
        for p in &self.exec.block_on(self.backend.providers())? {
            if !p.connected && sites.contains(&p.site) {
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
            if let Some(job) = &item.current_job {
                problems.push(format!(
                    "`{name}` has an operation in progress (job {job}); wait for it first"
                ));
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
