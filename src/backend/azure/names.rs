//! The vault's protected items by name: listed (all pages) and cached for a poll interval,
//! names resolved to ids, and what is read through them: recovery plans' members and
//! the providers' sites.

use super::requests::Pages;
use super::{convert, wire, Azure};
use crate::backend::{BackendError, Item, JobState, PlanState, Provider, Site};
use std::collections::HashMap;

impl Azure {
    /// Every protected item (all pages), cached by name for [`Azure::read_item`].
    pub(crate) async fn read_items(&self) -> Result<Vec<Item>, BackendError> {
        let items: Vec<Item> = self
            .all_items()
            .await?
            .iter()
            .map(convert::item_from_wire)
            .collect();
        let now = std::time::Instant::now();
        let mut cache = self.items.lock().await;
        for item in &items {
            cache.insert(item.name.clone(), (item.clone(), now));
        }
        Ok(items)
    }

    /// One item: as cached in this poll interval, else from a new vault-wide list.
    pub(crate) async fn read_item(&self, name: &str) -> Result<Item, BackendError> {
        {
            let cache = self.items.lock().await;
            if let Some((item, at)) = cache.get(name) {
                if at.elapsed() < self.poll_min {
                    return Ok(item.clone());
                }
            }
        }
        // One vault-wide list answers for every item read in the next poll interval.
        self.read_items().await?;
        if let Some((item, _)) = self.items.lock().await.get(name) {
            return Ok(item.clone());
        }
        let id = self.id_of(name).await?;
        let (item, _) = self.get::<wire::ProtectedItem>(&id).await?;
        Ok(convert::item_from_wire(&item))
    }

    /// The names of a recovery plan's protected items.
    pub(crate) async fn members_of(&self, plan: &str) -> Result<Vec<String>, BackendError> {
        let (found, _) = self
            .get::<wire::RecoveryPlan>(&format!("replicationRecoveryPlans/{plan}"))
            .await
            .map_err(|e| match e {
                BackendError::Service(s) if s.code.contains("NotFound") => {
                    BackendError::UnknownPlan {
                        name: plan.to_string(),
                        candidates: Vec::new(),
                    }
                }
                other => other,
            })?;
        Ok(members(&found, &self.names_by_id().await?))
    }

    /// A recovery plan's allowed operations and running job.
    pub(crate) async fn read_plan_state(&self, plan: &str) -> Result<PlanState, BackendError> {
        let (found, _) = self
            .get::<wire::RecoveryPlan>(&format!("replicationRecoveryPlans/{plan}"))
            .await
            .map_err(|e| match e {
                BackendError::Service(s) if s.code.contains("NotFound") => {
                    BackendError::UnknownPlan {
                        name: plan.to_string(),
                        candidates: Vec::new(),
                    }
                }
                other => other,
            })?;
        let p = &found.properties;
        let running = p
            .current_scenario_status
            .as_deref()
            .is_some_and(|s| !JobState::parse(s).is_terminal() && s != "None");
        Ok(PlanState {
            name: found.name.clone(),
            allowed_operations: p.allowed_operations.clone(),
            current_job: p
                .current_scenario
                .as_ref()
                .filter(|_| running)
                .and_then(|c| c.job_id.rsplit('/').next().map(String::from))
                .filter(|id| !id.is_empty()),
        })
    }

    /// Item names by their ids (lower-cased, as ARM compares them).
    async fn names_by_id(&self) -> Result<HashMap<String, String>, BackendError> {
        Ok(self
            .names()
            .await?
            .into_iter()
            .map(|(n, id)| (id.to_lowercase(), n))
            .collect())
    }

    /// Every recovery plan of the vault (paged): its name and its groups' members' names, in
    /// boot order (the groups without protected items, such as Shutdown, left out).
    pub(crate) async fn read_plans(&self) -> Result<Vec<(String, Vec<Vec<String>>)>, BackendError> {
        let mut plans = Vec::new();
        let mut pages = Pages::new("replicationRecoveryPlans");
        while let Some(path) = pages.next()? {
            let (page, _) = self.get::<wire::Page<wire::RecoveryPlan>>(&path).await?;
            plans.extend(page.value);
            pages.link(page.next_link);
        }
        let by_id = self.names_by_id().await?;
        Ok(plans
            .into_iter()
            .map(|plan| {
                let groups = plan
                    .properties
                    .groups
                    .iter()
                    .map(|g| names_of(&g.replication_protected_items, &by_id))
                    .filter(|g| !g.is_empty())
                    .collect();
                (plan.name, groups)
            })
            .collect())
    }

    /// The providers, each on the site of the fabric its items are protected from.
    pub(crate) async fn read_providers(&self) -> Result<Vec<Provider>, BackendError> {
        let (page, _) = self
            .get::<wire::Page<wire::Provider>>("replicationRecoveryServicesProviders")
            .await?;
        let items = self.all_items().await?;
        let primary_fabrics: Vec<String> = items
            .iter()
            .map(|i| i.properties.primary_fabric_friendly_name.clone())
            .collect();
        Ok(page
            .value
            .iter()
            .map(|p| Provider {
                name: p.properties.friendly_name.clone(),
                site: if primary_fabrics.contains(&p.properties.fabric_friendly_name) {
                    Site::Primary
                } else {
                    Site::Recovery
                },
                connected: p
                    .properties
                    .connection_status
                    .eq_ignore_ascii_case("Connected"),
            })
            .collect())
    }

    /// The protected item id of each VM name, read once per run (all pages).
    async fn names(&self) -> Result<HashMap<String, String>, BackendError> {
        let mut cache = self.names.lock().await;
        if let Some(names) = cache.as_ref() {
            return Ok(names.clone());
        }
        let items = self.all_items().await?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut twice = Vec::new();
        for item in &items {
            if names
                .insert(item.properties.friendly_name.clone(), item.id.clone())
                .is_some()
            {
                twice.push(item.properties.friendly_name.clone());
            }
        }
        for name in twice {
            // Ambiguous: such a name cannot be used; say so when it is.
            names.insert(name, String::new());
        }
        *cache = Some(names.clone());
        Ok(names)
    }

    async fn all_items(&self) -> Result<Vec<wire::ProtectedItem>, BackendError> {
        let mut out = Vec::new();
        let mut pages = Pages::new("replicationProtectedItems");
        while let Some(path) = pages.next()? {
            let (page, _) = self.get::<wire::Page<wire::ProtectedItem>>(&path).await?;
            out.extend(page.value);
            pages.link(page.next_link);
        }
        Ok(out)
    }

    pub(crate) async fn id_of(&self, name: &str) -> Result<String, BackendError> {
        let names = self.names().await?;
        match names.get(name) {
            Some(id) if id.is_empty() => Err(BackendError::Transport(format!(
                "more than one protected item in the vault is named `{name}`; rename them so a runbook can tell them apart"
            ))),
            Some(id) => Ok(id.clone()),
            None => {
                let mut candidates: Vec<String> = names.keys().cloned().collect();
                candidates.sort();
                Err(BackendError::UnknownItem {
                    name: name.to_string(),
                    candidates,
                })
            }
        }
    }
}

/// The names of a plan's members, in its groups' order.
fn members(plan: &wire::RecoveryPlan, by_id: &HashMap<String, String>) -> Vec<String> {
    plan.properties
        .groups
        .iter()
        .flat_map(|g| names_of(&g.replication_protected_items, by_id))
        .collect()
}

/// The names of `items` (a plan group's), as far as the vault knows them.
fn names_of(items: &[wire::PlanMember], by_id: &HashMap<String, String>) -> Vec<String> {
    items
        .iter()
        .filter_map(|m| by_id.get(&m.id.to_lowercase()).cloned())
        .collect()
}
