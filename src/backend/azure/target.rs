//! The target a run drives (`[targets.NAME]` in `runbook.toml`): its fields and their
//! defaults, their checks, and the vault it names.

use super::requests::secure_url;
use crate::clock::parse_duration;

/// The api-version used unless the target names another (a stable version whose schema
/// the project has).
pub const DEFAULT_API_VERSION: &str = "2024-04-01";

/// A target as `runbook.toml` describes it (`[targets.NAME]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub subscription: String,
    pub resource_group: String,
    pub vault: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The shortest interval between two polls of a job, whatever `Retry-After` says.
    #[serde(default = "default_poll_min")]
    pub poll_min: String,
    /// Where client-credential tokens come from.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Client-side limits (ARM allows reads 25/s, writes 10/s per principal).
    #[serde(default = "default_reads")]
    pub reads_per_second: f64,
    #[serde(default = "default_writes")]
    pub writes_per_second: f64,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// How long after a request a job it created may take to appear in the job list: a
    /// resume looks for the job of an operation whose answer was lost until the request's
    /// `timeout` and then this have passed since it left (and a job this long old that the
    /// service says it does not know is unknown, not "not readable yet").
    #[serde(default = "default_listing_delay")]
    pub listing_delay: String,
}

fn default_listing_delay() -> String {
    "30s".into()
}

impl TargetConfig {
    /// The vault this target names, whatever the target is called and however its endpoint
    /// is spelt (`localhost` or `127.0.0.1`, a regional host): what a run locks. ARM compares
    /// these names case-insensitively, and a subscription id is unique across clouds.
    pub fn identity(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/vaults/{}",
            self.subscription.trim(),
            self.resource_group.trim(),
            self.vault.trim()
        )
        .to_lowercase()
    }

    /// Whether `recorded` (the vault a journal names) is this target's vault. Journals of
    /// earlier versions put the endpoint in front of it, which does not matter.
    pub fn names_vault(&self, recorded: &str) -> bool {
        let recorded = recorded.to_lowercase();
        let at = recorded.find("/subscriptions/").unwrap_or(0);
        recorded[at..] == self.identity()
    }
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_reads() -> f64 {
    25.0
}

fn default_writes() -> f64 {
    10.0
}

fn default_timeout() -> String {
    "60s".into()
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.into()
}

fn default_endpoint() -> String {
    "https://management.azure.com".into()
}

fn default_poll_min() -> String {
    "5s".into()
}

impl TargetConfig {
    /// The vault's path: every request goes below it.
    pub fn vault_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.RecoveryServices/vaults/{}",
            self.subscription, self.resource_group, self.vault
        )
    }

    /// Checks the endpoint: https, or http on a loopback address only.
    pub fn check(&self) -> Result<(), String> {
        secure_url("endpoint", &self.endpoint)?;
        secure_url("authority", &self.authority)?;
        parse_duration(&self.poll_min)?;
        parse_duration(&self.timeout)?;
        parse_duration(&self.listing_delay)?;
        if !(self.reads_per_second > 0.0 && self.writes_per_second > 0.0) {
            return Err("reads_per_second and writes_per_second must be positive".into());
        }
        Ok(())
    }

    /// A target with the defaults for everything but the vault and the endpoint.
    pub fn new(
        subscription: &str,
        resource_group: &str,
        vault: &str,
        endpoint: &str,
    ) -> TargetConfig {
        TargetConfig {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            vault: vault.into(),
            api_version: default_api_version(),
            endpoint: endpoint.into(),
            poll_min: default_poll_min(),
            authority: default_authority(),
            reads_per_second: default_reads(),
            writes_per_second: default_writes(),
            timeout: default_timeout(),
            listing_delay: default_listing_delay(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_the_vault_whatever_the_endpoint_and_the_case() {
        let a = TargetConfig::new("SUB-1", "DR-rg", "Vault", "http://127.0.0.1:8080");
        let b = TargetConfig::new("sub-1", "dr-RG", "vault", "http://localhost:8080/");
        assert_eq!(a.identity(), b.identity());
        assert_eq!(
            a.identity(),
            "/subscriptions/sub-1/resourcegroups/dr-rg/vaults/vault"
        );
        let other = TargetConfig::new("sub-1", "dr-rg", "vault-2", "http://127.0.0.1:8080");
        assert_ne!(a.identity(), other.identity());
        // A journal written before: the endpoint in front.
        assert!(b.names_vault(
            "http://127.0.0.1:8080/subscriptions/sub-1/resourcegroups/dr-rg/vaults/vault"
        ));
        assert!(b.names_vault(&a.identity()));
        assert!(!other.names_vault(&a.identity()));
    }
}
