//! What a live run does before its first operation: it reads the vault's live state (as
//! `inventory export` does, recovery plans included), dry-runs the runbook against it on the
//! virtual clock, and refuses to start when that dry run has errors, exactly as `check`
//! would. Otherwise it shows the plan (operations per VM, skipped ones, the estimated
//! recovery time) and asks the operator to go ahead; `--yes` answers for an unattended run.
//! A live run is never less safe than the dry run `check` approved.

use super::RunOptions;
use crate::backend::inventory::{Inventory, Reconnect};
use crate::backend::Backend;
use crate::clock::{human, Timestamp};
use crate::config::Config;
use crate::diagnostics::{render, RenderOptions, Severity};
use crate::error::Error;
use crate::plan::{Basis, Outcome, Plan};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

/// Refuses before anything is read when nobody can answer the question and `--yes` was not
/// given.
pub(super) fn can_ask(opts: &RunOptions) -> Result<(), Error> {
    if opts.yes || std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Error::Usage(
        "a live run shows its plan and asks for confirmation on a terminal before its first operation; pass --yes to run unattended. Nothing was read or issued".into(),
    ))
}

/// Plans `text` against the live state of `target` and asks to go ahead, unless `go_ahead`
/// says why not to ask. `Ok` means the run may start; every refusal says that nothing was
/// issued.
pub(super) fn confirm(
    opts: &RunOptions,
    config: &Config,
    target: &str,
    backend: &dyn Backend,
    text: &str,
    rt: &tokio::runtime::Runtime,
    go_ahead: Option<&str>,
) -> Result<(), Error> {
    let estate = rt.block_on(crate::estate::read(backend)).map_err(|e| {
        let message =
            format!("cannot read target `{target}` to plan the run: {e}; nothing was issued");
        crate::estate::unreadable(&e, message)
    })?;
    // Jobs running now are not in the plan's estate: the operator hears of them.
    let busy: Vec<String> = estate
        .items
        .iter()
        .filter_map(|i| {
            i.current_job
                .as_ref()
                .map(|job| format!("{} (job {job})", i.name))
        })
        .collect();
    let origin = format!("the live state of target `{target}`");
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let live = Inventory::parse(&estate.inventory_toml(&origin, now), &origin)?;
    let file = match &config.inventory {
        Some(path) => Some(Inventory::load(path).map_err(|e| match &config.path {
            Some(by) => e.named_by(by),
            None => e,
        })?),
        None => None,
    };
    let (mut inventory, durations) = match (&file, &config.inventory) {
        (Some(file), Some(path)) => (
            live.with_durations_of(file),
            format!("durations from {}", crate::paths::display(path)),
        ),
        _ => (
            live,
            "built-in default durations (name an inventory in runbook.toml for your own)"
                .to_string(),
        ),
    };
    let assumed = assume_reconnects(&mut inventory, file.as_ref());
    let name = crate::paths::display(&opts.path);
    let root = crate::paths::folder_of(&opts.path);
    let render_opts = RenderOptions {
        color: opts.color,
        width: 100,
    };
    let plan = match crate::plan::plan_text_params(
        &name,
        text,
        Some(&root),
        Some(&inventory),
        &opts.params,
    ) {
        Outcome::Rejected(report) => {
            for f in &report.findings {
                errln!("{}", render(f, &report.sources, render_opts));
            }
            return Err(Error::NotStarted(format!(
                "the dry run against {origin} ({durations}) has {} error(s), as `runbook check` would report; nothing was issued",
                report.count(Severity::Error)
            )));
        }
        Outcome::Planned(plan) => plan,
    };
    for f in &plan.findings {
        errln!("{}", render(f, &plan.sources, render_opts));
    }
    errln!("{}", summary(&plan, &inventory, &origin, &durations));
    for line in &assumed {
        errln!("  {line}");
    }
    for line in config.unready() {
        errln!("  warning: {line}: the runbook stops there if it uses it");
    }
    if !busy.is_empty() {
        errln!(
            "  warning: {} VM(s) have a job in progress now, which the plan does not show: {}. The service refuses another operation on them until it ends; `runbook status --target {target}` shows them",
            busy.len(),
            busy.join(", ")
        );
    }
    if let Some(why) = go_ahead {
        errln!("starting: {why}");
        return Ok(());
    }
    err!("Start the live run against target `{target}`? Its operations are real. Type 'yes' to start: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim().eq_ignore_ascii_case("yes") || answer.trim().eq_ignore_ascii_case("y") {
        Ok(())
    } else {
        Err(Error::NotStarted(
            "the run was not started; nothing was issued".into(),
        ))
    }
}

/// The plan in a few lines: each VM's operations in order, and the estimated recovery time.
/// A recovery plan's operations are listed under `plan NAME (N VMs)` and count its members.
fn summary(plan: &Plan, inventory: &Inventory, origin: &str, durations: &str) -> String {
    let mut by_vm: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut vms: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut skipped = 0;
    for step in &plan.operations {
        let op = if step.result == "Skipped" {
            skipped += 1;
            format!("{} (skipped: already done)", step.operation)
        } else {
            step.operation.to_string()
        };
        let name = match inventory
            .plans
            .get(&step.vm)
            .filter(|_| !inventory.has(&step.vm))
        {
            Some(members) => {
                vms.extend(members.members().map(String::as_str));
                format!("plan {} ({} VMs)", step.vm, members.members().count())
            }
            None => {
                vms.insert(step.vm.as_str());
                step.vm.clone()
            }
        };
        by_vm.entry(name).or_default().push(op);
    }
    let width = by_vm.keys().map(|v| v.chars().count()).max().unwrap_or(0);
    let mut out = format!("PLAN against {origin} ({durations}):\n");
    for (vm, ops) in &by_vm {
        out.push_str(&format!("  {vm:width$}  {}\n", ops.join(", ")));
    }
    for step in &plan.manual_steps {
        out.push_str(&format!("  manual step: {}\n", step.text));
    }
    let issued = plan.operations.len() - skipped;
    out.push_str(&format!(
        "  {issued} operation(s) to issue on {} VM(s){}",
        vms.len(),
        if skipped > 0 {
            format!(", {skipped} skipped (the VMs are already where the runbook takes them)")
        } else {
            String::new()
        }
    ));
    match plan.recovery.basis {
        Basis::NoOperations => {}
        Basis::Verified => out.push_str(&format!(
            "; estimated recovery time {}",
            human(plan.recovery.time())
        )),
        Basis::LastJobEnd => out.push_str(&format!(
            "; estimated recovery time {} (until the last job ends: some VMs are never verified)",
            human(plan.recovery.time())
        )),
    }
    out
}

/// A site that is disconnected now (the outage) would stay so for the whole dry run, and
/// an outage runbook's reverse replication after "the site is back" would be refused. The
/// plan assumes it comes back as the project's inventory says, else at the first manual
/// step confirmed after a failover (the operator saying it is back); returns what was assumed.
fn assume_reconnects(inventory: &mut Inventory, file: Option<&Inventory>) -> Vec<String> {
    let mut assumed = Vec::new();
    let configured = [
        file.and_then(|f| f.primary.reconnects.clone()),
        file.and_then(|f| f.recovery.reconnects.clone()),
    ];
    let sites = [
        ("primary", &mut inventory.primary),
        ("recovery", &mut inventory.recovery),
    ];
    for ((role, site), configured) in sites.into_iter().zip(configured) {
        if site.connected || site.reconnects.is_some() {
            continue;
        }
        let when = match &configured {
            Some(Reconnect::AtStep(step)) => {
                format!("when the manual step \"{step}\" is confirmed")
            }
            Some(Reconnect::After(d)) => format!("{} after the start", human(*d)),
            _ => "at the first manual step confirmed after a failover".to_string(),
        };
        site.reconnects = Some(configured.unwrap_or(Reconnect::AtStepAfterFailover));
        assumed.push(format!(
            "the {role} site ({}) is disconnected now: the plan assumes it comes back {when}",
            site.name
        ));
    }
    assumed
}
