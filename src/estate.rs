//! What a target holds now: the `runbook status` table and `runbook inventory export`, which
//! writes an inventory from the live state so pull-request checks run against the real
//! estate's names and states.

use crate::backend::{Backend, BackendError, Item, Operation, PlanState, Provider, Site};
use crate::clock::Timestamp;
use crate::run::summary::plain_table;

/// The status table: one row per item.
pub fn status_table(items: &[Item]) -> String {
    let mut table = plain_table(vec![
        "VM",
        "protection state",
        "active on",
        "health",
        "allowed operations",
        "last drill",
    ]);
    for item in items {
        let allowed: Vec<&str> = item
            .allowed_operations
            .iter()
            .filter_map(|a| Operation::from_allowed_name(a))
            .map(Operation::as_str)
            .collect();
        table.add_row(vec![
            item.name.clone(),
            item.protection_state.clone(),
            item.active_location.as_str().to_string(),
            item.health.clone(),
            if allowed.is_empty() {
                "-".to_string()
            } else {
                allowed.join(", ")
            },
            item.last_test_failover
                .map_or_else(|| "never".to_string(), Timestamp::rfc3339),
        ]);
    }
    table.to_string()
}

/// The recovery plans' table of `runbook status`: each plan's groups in boot order, what
/// it allows now and its running job.
pub fn plans_table(plans: &[(String, Vec<Vec<String>>)], states: &[PlanState]) -> String {
    let mut table = plain_table(vec![
        "recovery plan",
        "groups (boot order)",
        "allowed operations",
        "running job",
    ]);
    for (name, groups) in plans {
        let state = states.iter().find(|s| &s.name == name);
        let groups: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{}: {}", i + 1, g.join(", ")))
            .collect();
        let allowed: Vec<&str> = state
            .map(|s| {
                s.allowed_operations
                    .iter()
                    .filter_map(|a| Operation::from_allowed_name(a))
                    .map(Operation::as_str)
                    .collect()
            })
            .unwrap_or_default();
        table.add_row(vec![
            name.clone(),
            groups.join(" | "),
            if allowed.is_empty() {
                "-".to_string()
            } else {
                allowed.join(", ")
            },
            state
                .and_then(|s| s.current_job.clone())
                .unwrap_or_else(|| "-".to_string()),
        ]);
    }
    table.to_string()
}

/// Each recovery plan's state now (for `runbook status`).
pub async fn plan_states(
    backend: &dyn Backend,
    estate: &Estate,
) -> Result<Vec<PlanState>, BackendError> {
    let mut out = Vec::new();
    for (name, _) in &estate.plans {
        out.push(backend.plan_state(name).await?);
    }
    Ok(out)
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// What a target holds: its items (by name), its sites' servers and its recovery plans.
#[derive(Debug, Clone)]
pub struct Estate {
    pub items: Vec<Item>,
    pub providers: Vec<Provider>,
    /// Each plan's name and its groups' members, in boot order, by name.
    pub plans: Vec<(String, Vec<Vec<String>>)>,
}

/// Reads the items, providers and recovery plans of a backend.
pub async fn read(backend: &dyn Backend) -> Result<Estate, BackendError> {
    let mut items = backend.list_items().await?;
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let providers = backend.providers().await?;
    let mut plans = backend.plans().await?;
    plans.sort();
    Ok(Estate {
        items,
        providers,
        plans,
    })
}

/// The error for a target whose estate could not be read, `message` saying which and why:
/// rejected credentials are a usage error (exit code 2), like missing ones; anything else
/// is the service's (exit code 1).
pub fn unreadable(e: &BackendError, message: String) -> crate::error::Error {
    match e {
        BackendError::Credentials(_) => crate::error::Error::Usage(message),
        _ => crate::error::Error::Service(message),
    }
}

impl Estate {
    /// An inventory file describing the estate as it is at `now`.
    pub fn inventory_toml(&self, origin: &str, now: Timestamp) -> String {
        let mut out = format!(
            "# Exported by `runbook inventory export` from {origin} at {}.\n# Durations are the simulator's defaults; adjust them to what your jobs take.\nstart = {}\n",
            now.rfc3339(),
            quoted(&now.rfc3339())
        );
        for site in [Site::Primary, Site::Recovery] {
            if let Some(p) = self.providers.iter().find(|p| p.site == site) {
                out.push_str(&format!(
                    "\n[sites.{}]\nname = {}\nconnected = {}\n",
                    site.as_str(),
                    quoted(&p.name),
                    p.connected
                ));
            }
        }
        for (name, groups) in &self.plans {
            let groups: Vec<String> = groups
                .iter()
                .map(|g| {
                    let members: Vec<String> = g.iter().map(|m| quoted(m)).collect();
                    format!("[{}]", members.join(", "))
                })
                .collect();
            out.push_str(&format!(
                "\n[plans.{}]\ngroups = [{}]\n",
                quoted(name),
                groups.join(", ")
            ));
        }
        for item in &self.items {
            out.push_str(&format!("\n[[items]]\nname = {}\n", quoted(&item.name)));
            if item.active_location == Site::Recovery {
                out.push_str("active_location = \"recovery\"\n");
            }
            let state = item.steady_state();
            if state != "protected" {
                out.push_str(&format!("state = \"{state}\"\n"));
            }
            let health = item.health.to_ascii_lowercase();
            if health != "normal" && matches!(health.as_str(), "warning" | "critical") {
                out.push_str(&format!("health = \"{health}\"\n"));
            }
            if let Some(t) = item.last_test_failover {
                out.push_str(&format!("last_test_failover = {}\n", quoted(&t.rfc3339())));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::inventory::Inventory;
    use crate::backend::sim::Simulator;
    use crate::clock::VirtualClock;
    use crate::script::exec::block_on;
    use std::sync::Arc;

    #[test]
    fn an_exported_inventory_reads_back_as_the_same_estate() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/runbooks/inventory.toml"
        ))
        .unwrap();
        let inv = Inventory::parse(&text, "example").unwrap();
        let sim = Simulator::new(&inv, Arc::new(VirtualClock::new(inv.start)), false);
        let estate = block_on(read(&sim)).unwrap();
        let (items, providers) = (&estate.items, &estate.providers);
        let exported = estate.inventory_toml("the test", inv.start);
        let again = Inventory::parse(&exported, "exported").unwrap();
        let sim2 = Simulator::new(&again, Arc::new(VirtualClock::new(again.start)), false);
        let estate2 = block_on(read(&sim2)).unwrap();
        let (items2, providers2) = (&estate2.items, &estate2.providers);
        let view = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .map(|i| {
                    format!(
                        "{} {} {} {} {:?}",
                        i.name,
                        i.protection_state,
                        i.active_location.as_str(),
                        i.health,
                        i.last_test_failover
                    )
                })
                .collect()
        };
        assert_eq!(view(items2), view(items));
        assert_eq!(providers2, providers);
        assert!(!estate.plans.is_empty(), "the example has recovery plans");
        assert_eq!(estate2.plans, estate.plans);
        assert!(status_table(items).contains("fs-01"));
    }
}
