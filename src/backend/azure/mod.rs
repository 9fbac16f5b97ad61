//! The `azure` backend: Azure Site Recovery's REST API over reqwest, for a target named in
//! `runbook.toml`. This first version covers the operations runbooks use, long-running
//! operations (202 with `Location`), `Retry-After`, GET retries on 5xx/429/connection
//! errors, and a bearer token from `AZURE_ACCESS_TOKEN`. Not built yet: client-credential,
//! managed-identity and Azure CLI tokens, token buckets, job-list sweeps, adopting the job of
//! a POST that timed out.

pub mod convert;
pub mod wire;

use super::{Backend, BackendError, Item, JobInfo, OperationRequest, Provider, ServiceError, Site};
use crate::clock::{parse_duration, Timestamp};
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// The api-version used unless the target names another (a stable version whose schema
/// the project has).
pub const DEFAULT_API_VERSION: &str = "2024-04-01";

/// A target as `runbook.toml` describes it (`[targets.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
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
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| format!("endpoint `{}` is not a URL: {e}", self.endpoint))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            other => Err(format!(
                "endpoint `{}` uses {other}: https is required (plain http only on a loopback address)",
                self.endpoint
            )),
        }?;
        parse_duration(&self.poll_min).map(|_| ())
    }
}

/// The service, as a [`Backend`].
pub struct Azure {
    http: reqwest::Client,
    base: String,
    api_version: String,
    token: String,
    poll_min: Duration,
    names: Mutex<Option<HashMap<String, String>>>,
    requests: AtomicU64,
}

/// How often a GET is tried before its error is reported.
const GET_ATTEMPTS: u32 = 4;

impl Azure {
    /// A client for `target` with bearer `token` (never logged or shown).
    pub fn new(target: &TargetConfig, token: String) -> Result<Azure, String> {
        target.check()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Azure {
            http,
            base: format!(
                "{}{}",
                target.endpoint.trim_end_matches('/'),
                target.vault_path()
            ),
            api_version: target.api_version.clone(),
            token,
            poll_min: parse_duration(&target.poll_min).unwrap_or(Duration::from_secs(5)),
            names: Mutex::new(None),
            requests: AtomicU64::new(0),
        })
    }

    /// The token from the environment.
    pub fn token_from_env() -> Result<String, String> {
        std::env::var("AZURE_ACCESS_TOKEN").map_err(|_| {
            "no credentials: set AZURE_ACCESS_TOKEN to a bearer token for https://management.azure.com (client credentials, managed identity and the Azure CLI are not supported yet)".to_string()
        })
    }

    fn url(&self, path_or_url: &str) -> String {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else if path_or_url.starts_with('/') && !path_or_url.starts_with("/subscriptions") {
            format!("{}{path_or_url}", self.base)
        } else if path_or_url.starts_with("/subscriptions") {
            let root = self.base.split("/subscriptions").next().unwrap_or_default();
            format!("{root}{path_or_url}")
        } else {
            format!("{}/{path_or_url}", self.base)
        };
        if url.contains("api-version=") {
            url
        } else if url.contains('?') {
            format!("{url}&api-version={}", self.api_version)
        } else {
            format!("{url}?api-version={}", self.api_version)
        }
    }

    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 32) as u32,
            (t >> 16) as u16,
            n & 0xfff,
            std::process::id() & 0xfff,
            t & 0xffff_ffff_ffff
        )
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&wire::ActionInput>,
    ) -> Result<(StatusCode, HeaderMap, String), BackendError> {
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header("x-ms-client-request-id", self.request_id());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| BackendError::Transport(without_url(e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| BackendError::Transport(without_url(e)))?;
        Ok((status, headers, text))
    }

    /// GET with retries on 5xx, 429 and connection errors, honouring `Retry-After`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, HeaderMap), BackendError> {
        let url = self.url(path);
        let mut delay = Duration::from_millis(200);
        let mut last = BackendError::Transport("no attempt".into());
        for attempt in 1..=GET_ATTEMPTS {
            match self.send(Method::GET, &url, None).await {
                Ok((status, headers, text)) if status.is_success() => {
                    let value = serde_json::from_str(&text).map_err(|e| {
                        BackendError::Transport(format!(
                            "the service answered with JSON the client cannot read ({e})"
                        ))
                    })?;
                    return Ok((value, headers));
                }
                Ok((status, headers, text))
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    last = arm_error(status, &headers, &text);
                    delay = retry_after(&headers).unwrap_or(delay);
                }
                Ok((status, headers, text)) => return Err(arm_error(status, &headers, &text)),
                Err(e) => last = e,
            }
            if attempt < GET_ATTEMPTS {
                tracing::debug!(attempt, ?delay, "retrying GET");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        Err(last)
    }

    /// The protected item id of each VM name, read once per run (all pages).
    async fn names(&self) -> Result<HashMap<String, String>, BackendError> {
        let mut cache = self.names.lock().await;
        if let Some(names) = cache.as_ref() {
            return Ok(names.clone());
        }
        let items = self.all_items().await?;
        let mut names = HashMap::new();
        for item in &items {
            if names
                .insert(item.properties.friendly_name.clone(), item.id.clone())
                .is_some()
            {
                return Err(BackendError::Transport(format!(
                    "two protected items are named `{}` in the vault; rename one so runbooks can name it",
                    item.properties.friendly_name
                )));
            }
        }
        *cache = Some(names.clone());
        Ok(names)
    }

    async fn all_items(&self) -> Result<Vec<wire::ProtectedItem>, BackendError> {
        let mut out = Vec::new();
        let mut next = Some("replicationProtectedItems".to_string());
        while let Some(path) = next {
            let (page, _) = self.get::<wire::Page<wire::ProtectedItem>>(&path).await?;
            out.extend(page.value);
            next = page.next_link;
        }
        Ok(out)
    }

    async fn id_of(&self, name: &str) -> Result<String, BackendError> {
        let names = self.names().await?;
        names.get(name).cloned().ok_or_else(|| {
            let mut candidates: Vec<String> = names.keys().cloned().collect();
            candidates.sort();
            BackendError::UnknownItem {
                name: name.to_string(),
                candidates,
            }
        })
    }

    fn job_info(&self, job: &wire::Job, headers: &HeaderMap) -> Result<JobInfo, BackendError> {
        let mut info = convert::job_from_wire(job).ok_or_else(|| {
            BackendError::Transport(format!(
                "job {} is not a runbook operation ({})",
                job.name, job.properties.scenario_name
            ))
        })?;
        let after = retry_after(headers).unwrap_or(Duration::from_secs(30));
        info.retry_after = Some(after.max(self.poll_min));
        Ok(info)
    }
}

/// A transport error's text, without the URL (which names the vault).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    };
    format!("{kind} ({})", e.without_url())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-ms-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (request id {v})"))
        .unwrap_or_default()
}

fn arm_error(status: StatusCode, headers: &HeaderMap, text: &str) -> BackendError {
    let body: Option<wire::ArmError> = serde_json::from_str(text).ok();
    let (code, message) = body.map_or_else(
        || (status.as_u16().to_string(), format!("HTTP {status}")),
        |b| (b.error.code, b.error.message),
    );
    BackendError::Service(ServiceError {
        code,
        message: format!("{message}{}", request_id(headers)),
        possible_causes: String::new(),
        recommended_action: String::new(),
    })
}

/// The job name in a 202's `Location` (`.../operationresults/{job}?...`), else in
/// `Azure-AsyncOperation`, else `x-ms-request-id`.
pub fn job_name(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(loc) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        if let Some((_, rest)) = loc.split_once("operationresults/") {
            return Some(rest.split(['?', '/']).next().unwrap_or(rest).to_string());
        }
    }
    if let Some(op) = header("azure-asyncoperation") {
        let path = op.split('?').next().unwrap_or(&op);
        if let Some(last) = path.rsplit('/').next() {
            return Some(last.to_string());
        }
    }
    header("x-ms-request-id")
}

#[async_trait::async_trait]
impl Backend for Azure {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn knows_names(&self) -> bool {
        true
    }

    async fn list_items(&self) -> Result<Vec<Item>, BackendError> {
        Ok(self
            .all_items()
            .await?
            .iter()
            .map(convert::item_from_wire)
            .collect())
    }

    async fn item(&self, name: &str) -> Result<Item, BackendError> {
        let id = self.id_of(name).await?;
        let (item, _) = self.get::<wire::ProtectedItem>(&id).await?;
        Ok(convert::item_from_wire(&item))
    }

    async fn plan_members(&self, plan: &str) -> Result<Vec<String>, BackendError> {
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
        let names = self.names().await?;
        let by_id: HashMap<String, String> = names
            .into_iter()
            .map(|(n, id)| (id.to_lowercase(), n))
            .collect();
        Ok(found
            .properties
            .groups
            .iter()
            .flat_map(|g| g.replication_protected_items.iter())
            .filter_map(|m| by_id.get(&m.id.to_lowercase()).cloned())
            .collect())
    }

    async fn start(&self, vm: &str, request: &OperationRequest) -> Result<JobInfo, BackendError> {
        let id = self.id_of(vm).await?;
        let (action, body) = convert::action_of(request);
        let url = self.url(&format!("{id}/{action}"));
        let (status, headers, text) = self.send(Method::POST, &url, body.as_ref()).await?;
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            let Some(job) = job_name(&headers) else {
                return Err(BackendError::Transport(format!(
                    "the service accepted {} of `{vm}` but named no job{}",
                    request.operation,
                    request_id(&headers)
                )));
            };
            return self.job(&job).await;
        }
        match arm_error(status, &headers, &text) {
            BackendError::Service(e)
                if status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT =>
            {
                Err(BackendError::NotAllowed {
                    item: vm.to_string(),
                    operation: request.operation,
                    state: e.code.clone(),
                    allowed: Vec::new(),
                    reason: e.message,
                })
            }
            other => Err(other),
        }
    }

    async fn job(&self, id: &str) -> Result<JobInfo, BackendError> {
        let (job, headers) = self
            .get::<wire::Job>(&format!("replicationJobs/{id}"))
            .await?;
        self.job_info(&job, &headers)
    }

    async fn cancel_job(&self, id: &str) -> Result<JobInfo, BackendError> {
        let url = self.url(&format!("replicationJobs/{id}/cancel"));
        let (status, headers, text) = self.send(Method::POST, &url, None).await?;
        if !status.is_success() {
            return Err(arm_error(status, &headers, &text));
        }
        self.job(id).await
    }

    async fn providers(&self) -> Result<Vec<Provider>, BackendError> {
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
}

/// When a timestamp from the service cannot be read.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339_weak(text))
        .ok()
        .map(Timestamp::from_system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_job_is_found_in_location_then_async_operation_then_request_id() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(job_name(&h).as_deref(), Some("req-1"));
        h.insert(
            "azure-asyncoperation",
            HeaderValue::from_static(
                "https://x/vaults/v/replicationOperationStatus/job-2?api-version=2024-04-01",
            ),
        );
        assert_eq!(job_name(&h).as_deref(), Some("job-2"));
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://x/replicationProtectedItems/i/plannedFailover/operationresults/job-3?api-version=2024-04-01"),
        );
        assert_eq!(job_name(&h).as_deref(), Some("job-3"));
    }

    #[test]
    fn urls_carry_the_api_version_and_follow_links_as_given() {
        let target = TargetConfig {
            subscription: "s".into(),
            resource_group: "g".into(),
            vault: "v".into(),
            api_version: "2024-04-01".into(),
            endpoint: "https://management.azure.com/".into(),
            poll_min: "5s".into(),
        };
        let azure = Azure::new(&target, "t".into()).unwrap();
        assert_eq!(
            azure.url("replicationJobs/j"),
            "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/j?api-version=2024-04-01"
        );
        assert_eq!(
            azure.url("https://regional.example/next?api-version=2024-04-01&$skiptoken=2"),
            "https://regional.example/next?api-version=2024-04-01&$skiptoken=2"
        );
        assert!(azure
            .url("/subscriptions/s/x")
            .starts_with("https://management.azure.com/subscriptions/s/x?api-version="));
    }
}
