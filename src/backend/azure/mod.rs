//! The `azure` backend: Azure Site Recovery's REST API over reqwest, for a target named in
//! `runbook.toml`.
//!
//! - Long-running operations: a POST's job is named by `Location` (`operationresults/{job}`),
//!   else `Azure-AsyncOperation`, else `x-ms-request-id`; a 200 means it completed at once.
//! - Polling: while several jobs are outstanding, one job-list sweep (filtered by start time,
//!   paged) answers for all of them, at most once per poll interval; `Retry-After` is honoured.
//! - Limits: client-side token buckets keep reads and writes under ARM's limits; a 429 waits
//!   for `Retry-After`.
//! - Retries: GETs on 5xx, 429, connection errors and unreadable answers, with exponential
//!   backoff and jitter. A POST is never blindly repeated: after a timeout or a dropped
//!   connection the backend looks for the job that POST created for the item and adopts it.
//! - Tokens come from [`auth`]; they never appear in logs or errors.

pub mod auth;
pub mod bucket;
pub mod convert;
pub mod wire;

use super::{Backend, BackendError, Item, JobInfo, OperationRequest, Provider, ServiceError, Site};
use crate::clock::{parse_duration, Timestamp};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
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
}

impl TargetConfig {
    /// The vault this target names, whatever the target is called: what a run locks.
    pub fn identity(&self) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/vaults/{}",
            self.endpoint.trim_end_matches('/'),
            self.subscription,
            self.resource_group,
            self.vault
        )
        .to_lowercase()
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
        }
    }
}

/// The service, as a [`Backend`].
pub struct Azure {
    http: reqwest::Client,
    base: String,
    api_version: String,
    tokens: auth::Tokens,
    poll_min: Duration,
    reads: bucket::Bucket,
    writes: bucket::Bucket,
    names: Mutex<Option<HashMap<String, String>>>,
    /// Items as last listed, until a job on them starts or ends or a poll interval passes.
    items: Mutex<HashMap<String, (Item, std::time::Instant)>>,
    polls: Mutex<Polls>,
    requests: AtomicU64,
}

/// What the poller knows of the jobs this run started.
#[derive(Default)]
struct Polls {
    /// Jobs not seen ended, with their start.
    outstanding: HashMap<String, Timestamp>,
    /// The latest answer for each job and when it came.
    seen: HashMap<String, (JobInfo, std::time::Instant)>,
    last_sweep: Option<std::time::Instant>,
}

/// How many failed attempts (429s aside) a GET makes before its error is reported.
const GET_ATTEMPTS: u32 = 6;
/// How long all the retries of one GET may take.
const RETRY_BUDGET: Duration = Duration::from_secs(300);
/// How often a POST refused with 429 is tried again.
const POST_ATTEMPTS: u32 = 5;

/// Follows `nextLink`s, refusing loops and endless lists.
struct Pages {
    next: Option<String>,
    seen: std::collections::HashSet<String>,
}

/// The most pages one list may have (100,000 items at ARM's page size).
const MAX_PAGES: usize = 1000;

impl Pages {
    fn new(first: &str) -> Pages {
        Pages {
            next: Some(first.to_string()),
            seen: std::collections::HashSet::new(),
        }
    }

    fn next(&mut self) -> Result<Option<String>, BackendError> {
        let Some(next) = self.next.take() else {
            return Ok(None);
        };
        if !self.seen.insert(next.clone()) || self.seen.len() > MAX_PAGES {
            return Err(BackendError::Transport(
                "the service's list does not end (a page links back, or more than 1,000 pages)"
                    .into(),
            ));
        }
        Ok(Some(next))
    }

    fn link(&mut self, next: Option<String>) {
        self.next = next.filter(|n| !n.is_empty());
    }
}

/// Whether a failed send may be retried.
enum Failure {
    /// The request may not have reached the service (connection or timeout).
    Ambiguous(BackendError),
    Other(BackendError),
}

impl Azure {
    /// A client for `target` with tokens from `credential` (never logged or shown).
    pub fn new(target: &TargetConfig, credential: auth::Credential) -> Result<Azure, String> {
        target.check()?;
        let timeout = parse_duration(&target.timeout).unwrap_or(Duration::from_secs(60));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Azure {
            tokens: auth::Tokens::new(credential, http.clone()),
            http,
            base: format!(
                "{}{}",
                target.endpoint.trim_end_matches('/'),
                target.vault_path()
            ),
            api_version: target.api_version.clone(),
            poll_min: parse_duration(&target.poll_min).unwrap_or(Duration::from_secs(5)),
            reads: bucket::Bucket::new(target.reads_per_second, 250.0),
            writes: bucket::Bucket::new(target.writes_per_second, 200.0),
            names: Mutex::new(None),
            items: Mutex::new(HashMap::new()),
            polls: Mutex::new(Polls::default()),
            requests: AtomicU64::new(0),
        })
    }

    /// The credential the environment offers (see [`auth::Credential::from_env`]).
    pub fn credential_from_env(target: &TargetConfig) -> Result<auth::Credential, String> {
        auth::Credential::from_env(&target.authority)
    }

    fn url(&self, path_or_url: &str) -> String {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else if path_or_url.starts_with("/subscriptions")
            || path_or_url.starts_with("/Subscriptions")
        {
            let root = self.base.split("/subscriptions").next().unwrap_or_default();
            format!("{root}{path_or_url}")
        } else if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
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

    /// Whether a URL the service named may receive the token: the endpoint's own origin, or
    /// https on a host below the endpoint's domain (ARM's regional hosts).
    fn allowed_url(&self, url: &str) -> bool {
        let (Ok(u), Ok(base)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.base)) else {
            return false;
        };
        let same_origin = u.scheme() == base.scheme()
            && u.host_str() == base.host_str()
            && u.port_or_known_default() == base.port_or_known_default();
        if same_origin {
            return true;
        }
        let (Some(host), Some(base_host)) = (u.host_str(), base.host_str()) else {
            return false;
        };
        let domain = base_host.split_once('.').map_or(base_host, |(_, d)| d);
        u.scheme() == "https"
            && domain.contains('.')
            && (host == base_host || host.ends_with(&format!(".{domain}")))
    }

    fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    fn request_id(&self) -> String {
        let n = self.next_request();
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

    /// Sends one request (after its token bucket), refreshing an expired token once.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&wire::ActionInput>,
    ) -> Result<(StatusCode, HeaderMap, String), Failure> {
        self.send_as(method, url, body, &self.request_id()).await
    }

    /// Sends with a given `x-ms-client-request-id` (a POST keeps one across its attempts,
    /// so the job it created can be recognised).
    async fn send_as(
        &self,
        method: Method,
        url: &str,
        body: Option<&wire::ActionInput>,
        client_request_id: &str,
    ) -> Result<(StatusCode, HeaderMap, String), Failure> {
        if !self.allowed_url(url) {
            return Err(Failure::Other(BackendError::Transport(format!(
                "the service pointed to `{}`, which is not the target's endpoint; the client does not follow it",
                url.split('?').next().unwrap_or_default()
            ))));
        }
        let write = method != Method::GET;
        let mut refresh = false;
        loop {
            if write {
                self.writes.take().await;
            } else {
                self.reads.take().await;
            }
            let token = self.tokens.get(refresh).await.map_err(Failure::Other)?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header("x-ms-client-request-id", client_request_id);
            if let Some(b) = body {
                req = req.json(b);
            }
            tracing::trace!(%method, path = url.split('?').next().unwrap_or_default(), "request");
            let resp = req
                .send()
                .await
                .map_err(|e| Failure::Ambiguous(BackendError::Transport(without_url(e))))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp
                .text()
                .await
                .map_err(|e| Failure::Ambiguous(BackendError::Transport(without_url(e))))?;
            if status == StatusCode::UNAUTHORIZED
                && !refresh
                && text.contains("ExpiredAuthenticationToken")
            {
                // Not processed: safe to send again with a new token.
                refresh = true;
                continue;
            }
            return Ok((status, headers, text));
        }
    }

    /// GET with retries on 5xx, 429, connection errors and unreadable answers. A 429 waits
    /// for `Retry-After` and does not count as a failed attempt; all retries of one GET stay
    /// within [`RETRY_BUDGET`].
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, HeaderMap), BackendError> {
        let url = self.url(path);
        let give_up = std::time::Instant::now() + RETRY_BUDGET;
        let mut delay = Duration::from_millis(200);
        let mut failures = 0;
        loop {
            let (last, wait) = match self.send(Method::GET, &url, None).await {
                Ok((status, headers, text)) if status.is_success() => {
                    match serde_json::from_str::<serde_json::Value>(&text)
                        .and_then(|v| serde_json::from_value::<T>(without_nulls(v)))
                    {
                        Ok(value) => return Ok((value, headers)),
                        Err(e) => {
                            failures += 1;
                            let err = BackendError::Transport(format!(
                                "the service answered with JSON the client cannot read ({e}){}",
                                request_id(&headers)
                            ));
                            (err, None)
                        }
                    }
                }
                Ok((status, headers, text)) if status == StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&headers).unwrap_or(Duration::from_secs(1));
                    (arm_error(status, &headers, &text), Some(wait))
                }
                Ok((status, headers, text)) if status.is_server_error() => {
                    failures += 1;
                    (arm_error(status, &headers, &text), retry_after(&headers))
                }
                Ok((status, headers, text)) => return Err(arm_error(status, &headers, &text)),
                Err(Failure::Ambiguous(e)) => {
                    failures += 1;
                    (e, None)
                }
                Err(Failure::Other(e)) => return Err(e),
            };
            let pause = wait.unwrap_or_else(|| self.jitter(delay));
            if failures >= GET_ATTEMPTS || std::time::Instant::now() + pause > give_up {
                return Err(last);
            }
            tracing::debug!(failures, ?pause, "retrying GET");
            tokio::time::sleep(pause).await;
            if wait.is_none() {
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }

    /// `d` with up to a quarter of it added at random, so clients do not retry in step.
    fn jitter(&self, d: Duration) -> Duration {
        let n = self.next_request().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |x| x.subsec_nanos() as u64);
        let fraction = ((n ^ t) % 1000) as f64 / 4000.0;
        d + d.mul_f64(fraction)
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

    async fn id_of(&self, name: &str) -> Result<String, BackendError> {
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

    fn job_info(
        &self,
        job: &wire::Job,
        headers: &HeaderMap,
        known: Option<&JobInfo>,
    ) -> Result<JobInfo, BackendError> {
        let mut info = convert::job_from_wire(job, known).ok_or_else(|| {
            BackendError::Transport(format!(
                "job {} is not a runbook operation ({})",
                job.name, job.properties.scenario_name
            ))
        })?;
        let after = retry_after(headers).unwrap_or(Duration::from_secs(30));
        info.retry_after = Some(after.max(self.poll_min));
        Ok(info)
    }

    /// Reads one job directly.
    async fn job_once(&self, id: &str) -> Result<JobInfo, BackendError> {
        let (job, headers) = self
            .get::<wire::Job>(&format!("replicationJobs/{id}"))
            .await?;
        let known = self.polls.lock().await.seen.get(id).map(|(j, _)| j.clone());
        self.job_info(&job, &headers, known.as_ref())
    }

    /// Records a job's latest state for the poller.
    async fn remember(&self, info: &JobInfo) {
        let mut polls = self.polls.lock().await;
        let before = polls.seen.get(&info.id).map(|(j, _)| j.state.clone());
        if before.as_ref() != Some(&info.state) {
            // The item's state changes with its job's: read it again when asked.
            self.items.lock().await.remove(&info.vm);
        }
        if info.state.is_terminal() {
            polls.outstanding.remove(&info.id);
        } else {
            polls.outstanding.insert(info.id.clone(), info.started);
        }
        polls
            .seen
            .insert(info.id.clone(), (info.clone(), std::time::Instant::now()));
    }

    /// After a POST whose answer was lost: the job it created for `vm`, if any.
    /// After a POST whose answer was lost: the job that POST created, recognised by the
    /// client request id the service echoes in the job's `activityId`. Looks a few times, as
    /// a new job can take a moment to be listed.
    async fn adopt(&self, client_request_id: &str, since: Timestamp) -> Option<JobInfo> {
        let mut pause = Duration::from_millis(250);
        for _ in 0..5 {
            if let Ok(jobs) = self.list_jobs(since).await {
                if let Some(job) = jobs
                    .iter()
                    .find(|j| j.properties.activity_id.contains(client_request_id))
                {
                    let mut info = convert::job_from_wire(job, None)?;
                    info.retry_after = Some(self.poll_min);
                    return Some(info);
                }
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        None
    }

    /// The jobs started since `since`, as the service shows them (all pages).
    async fn list_jobs(&self, since: Timestamp) -> Result<Vec<wire::Job>, BackendError> {
        let filter = format!("replicationJobs?$filter=startTime eq '{}'", since.rfc3339());
        let mut out = Vec::new();
        let mut pages = Pages::new(&filter);
        while let Some(path) = pages.next()? {
            let (page, _) = self.get::<wire::Page<wire::Job>>(&path).await?;
            out.extend(page.value);
            pages.link(page.next_link);
        }
        Ok(out)
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

/// Checks that `text` is an https URL, or http on a loopback address.
fn secure_url(what: &str, text: &str) -> Result<(), String> {
    let url =
        reqwest::Url::parse(text).map_err(|e| format!("{what} `{text}` is not a URL: {e}"))?;
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
            "{what} `{text}` uses {other}: https is required (plain http only on a loopback address)"
        )),
    }
}

/// The service sends `null` for fields it has no value for yet (a job that has not started):
/// dropped, they take their defaults.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(without_nulls).collect())
        }
        other => other,
    }
}

/// `Retry-After` in seconds, at most five minutes.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
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
/// `Azure-AsyncOperation`, else `x-ms-request-id` (the last segment of each). Only for a
/// 202: every ARM answer carries an `x-ms-request-id`.
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
    let last = |value: &str| {
        let path = value.split('?').next().unwrap_or(value);
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(op) = header("azure-asyncoperation") {
        if let Some(name) = last(&op) {
            return Some(name);
        }
    }
    header("x-ms-request-id").and_then(|v| last(&v))
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

    async fn item(&self, name: &str) -> Result<Item, BackendError> {
        {
            let cache = self.items.lock().await;
            if let Some((item, at)) = cache.get(name) {
                if at.elapsed() < self.poll_min {
                    return Ok(item.clone());
                }
            }
        }
        // One vault-wide list answers for every item read in the next poll interval.
        self.list_items().await?;
        if let Some((item, _)) = self.items.lock().await.get(name) {
            return Ok(item.clone());
        }
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

    async fn find_started(
        &self,
        vm: &str,
        request: &OperationRequest,
        since: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError> {
        let Some(key) = &request.key else {
            return Ok(None);
        };
        let jobs = self.list_jobs(since).await?;
        let Some(job) = jobs
            .iter()
            .find(|j| j.properties.activity_id.contains(key.as_str()))
        else {
            return Ok(None);
        };
        let known = JobInfo {
            id: job.name.clone(),
            operation: request.operation,
            vm: vm.to_string(),
            state: super::JobState::NotStarted,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: since,
            ended: None,
            retry_after: None,
            expected_end: None,
        };
        let mut info = convert::job_from_wire(job, Some(&known)).ok_or_else(|| {
            BackendError::Transport(format!("the service's job for `{vm}` is unreadable"))
        })?;
        info.retry_after = Some(self.poll_min);
        self.remember(&info).await;
        Ok(Some(info))
    }

    async fn start(&self, vm: &str, request: &OperationRequest) -> Result<JobInfo, BackendError> {
        let id = self.id_of(vm).await?;
        let (action, body) = convert::action_of(request);
        let url = self.url(&format!("{id}/{action}"));
        // Jobs this POST may create start after this (with room for clock skew).
        let since = Timestamp::from_system(std::time::SystemTime::now() - Duration::from_secs(300));
        // One client request id for every attempt: the service echoes it in the job it
        // creates, so a job whose POST answer was lost is recognised.
        let client_request_id = request.key.clone().unwrap_or_else(|| self.request_id());
        let lost = |e: BackendError| {
            BackendError::Transport(format!(
                "the {} of `{vm}` may have been issued: its answer was lost ({e}) and its job was not found; check the vault's job list before issuing it again",
                request.operation
            ))
        };
        let mut attempt = 0;
        let (status, headers, text) = loop {
            attempt += 1;
            match self
                .send_as(Method::POST, &url, body.as_ref(), &client_request_id)
                .await
            {
                Ok((StatusCode::TOO_MANY_REQUESTS, headers, _)) if attempt < POST_ATTEMPTS => {
                    // Refused, not accepted: sending it again is safe.
                    tokio::time::sleep(retry_after(&headers).unwrap_or(Duration::from_secs(1)))
                        .await;
                }
                Ok((status, headers, text)) if status.is_server_error() => {
                    // A gateway error says nothing of whether the service took the request.
                    if let Some(job) = self.adopt(&client_request_id, since).await {
                        self.remember(&job).await;
                        return Ok(job);
                    }
                    return Err(lost(arm_error(status, &headers, &text)));
                }
                Ok(answer) => break answer,
                Err(Failure::Other(e)) => return Err(e),
                Err(Failure::Ambiguous(e)) => {
                    // The service may have created the job: adopt it; never send it again.
                    tracing::debug!(vm, operation = %request.operation, "POST answer lost; looking for its job");
                    if let Some(job) = self.adopt(&client_request_id, since).await {
                        self.remember(&job).await;
                        return Ok(job);
                    }
                    return Err(lost(e));
                }
            }
        };
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            let named = if status == StatusCode::ACCEPTED
                || headers.contains_key(LOCATION)
                || headers.contains_key("azure-asyncoperation")
            {
                job_name(&headers)
            } else {
                None
            };
            let job = match named {
                // Right after the 202 a job has not started: no need to ask.
                Some(job) => JobInfo {
                    id: job,
                    operation: request.operation,
                    vm: vm.to_string(),
                    state: super::JobState::NotStarted,
                    errors: Vec::new(),
                    warnings: Vec::new(),
                    started: Timestamp::from_system(std::time::SystemTime::now()),
                    ended: None,
                    retry_after: Some(
                        retry_after(&headers)
                            .unwrap_or(self.poll_min)
                            .max(self.poll_min),
                    ),
                    expected_end: None,
                },
                None if status == StatusCode::OK => {
                    // Completed at once: there is no job to follow.
                    let now = Timestamp::from_system(std::time::SystemTime::now());
                    JobInfo {
                        id: format!("completed-{}", self.next_request()),
                        operation: request.operation,
                        vm: vm.to_string(),
                        state: super::JobState::Succeeded,
                        errors: Vec::new(),
                        warnings: Vec::new(),
                        started: now,
                        ended: Some(now),
                        retry_after: None,
                        expected_end: None,
                    }
                }
                None => {
                    return Err(BackendError::Transport(format!(
                        "the service accepted {} of `{vm}` but named no job{}",
                        request.operation,
                        request_id(&headers)
                    )))
                }
            };
            self.remember(&job).await;
            return Ok(job);
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
        // A recent enough answer (from a sweep or a direct read) serves every caller in this
        // poll interval.
        {
            let polls = self.polls.lock().await;
            if let Some((info, at)) = polls.seen.get(id) {
                if info.state.is_terminal() || at.elapsed() < self.poll_min {
                    return Ok(info.clone());
                }
            }
        }
        let (sweep, since) = {
            let polls = self.polls.lock().await;
            let due = polls
                .last_sweep
                .is_none_or(|t| t.elapsed() >= self.poll_min);
            (
                polls.outstanding.len() >= 2 && polls.outstanding.contains_key(id) && due,
                polls.outstanding.values().min().copied(),
            )
        };
        if let (true, Some(since)) = (sweep, since) {
            // One list for all outstanding jobs instead of one GET each.
            self.polls.lock().await.last_sweep = Some(std::time::Instant::now());
            // With room for the service's clock being behind the client's.
            let since = Timestamp(since.0.saturating_sub(300_000));
            if let Ok(jobs) = self.jobs_since(since).await {
                let mut found = None;
                for mut job in jobs {
                    // The next sweep is due one poll interval from now.
                    job.retry_after = Some(self.poll_min);
                    self.remember(&job).await;
                    if job.id == id {
                        found = Some(job);
                    }
                }
                // A job this sweep did not list is read directly below.
                if let Some(info) = found {
                    return Ok(info);
                }
            }
        }
        let info = self.job_once(id).await?;
        self.remember(&info).await;
        Ok(info)
    }

    async fn jobs_since(&self, since: Timestamp) -> Result<Vec<JobInfo>, BackendError> {
        let jobs = self.list_jobs(since).await?;
        let polls = self.polls.lock().await;
        Ok(jobs
            .iter()
            .filter_map(|j| {
                let known = polls.seen.get(&j.name).map(|(info, _)| info);
                convert::job_from_wire(j, known)
            })
            .collect())
    }

    async fn cancel_job(&self, id: &str) -> Result<JobInfo, BackendError> {
        let url = self.url(&format!("replicationJobs/{id}/cancel"));
        let (status, headers, text) =
            self.send(Method::POST, &url, None)
                .await
                .map_err(|f| match f {
                    Failure::Ambiguous(e) | Failure::Other(e) => e,
                })?;
        if !status.is_success() {
            return Err(arm_error(status, &headers, &text));
        }
        let info = self.job_once(id).await?;
        self.remember(&info).await;
        Ok(info)
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
    fn null_fields_and_idle_markers_read_as_absent() {
        // Shaped after recorded answers: a job that has not started has null fields, an
        // idle item names the scenario "None", a cleaned-up drill is MarkedForDeletion.
        let job = serde_json::json!({
            "id": "/Subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/j1",
            "name": "j1",
            "properties": {"activityId": null, "scenarioName": null, "state": "NotStarted", "tasks": null,
                           "errors": [{"providerErrorDetails": {"errorMessage": null}}], "startTime": null,
                           "targetObjectName": null}
        });
        let job: wire::Job = serde_json::from_value(without_nulls(job)).unwrap();
        let known = JobInfo {
            id: "j1".into(),
            operation: super::super::Operation::PlannedFailover,
            vm: "web-01".into(),
            state: super::super::JobState::NotStarted,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: Timestamp(5),
            ended: None,
            retry_after: None,
            expected_end: None,
        };
        let info = convert::job_from_wire(&job, Some(&known)).unwrap();
        assert_eq!((info.vm.as_str(), info.started), ("web-01", Timestamp(5)));
        assert!(
            convert::job_from_wire(&job, None).is_none(),
            "no scenario and nothing known"
        );

        let item = serde_json::json!({
            "id": "/x/replicationProtectedItems/i1", "name": "i1",
            "properties": {"friendlyName": "vm1", "protectionState": "Protected", "activeLocation": "Primary",
                           "testFailoverState": "MarkedForDeletion",
                           "currentScenario": {"scenarioName": "None", "jobId": "/x/replicationJobs/None"}}
        });
        let item: wire::ProtectedItem = serde_json::from_value(without_nulls(item)).unwrap();
        let item = convert::item_from_wire(&item);
        assert!(
            item.current_job.is_none() && item.test_failover_state.is_none(),
            "{item:?}"
        );
    }

    #[test]
    fn links_to_other_hosts_do_not_get_the_token() {
        let local = Azure::new(
            &TargetConfig::new("s", "g", "v", "http://127.0.0.1:9"),
            auth::Credential::Static("t".into()),
        )
        .unwrap();
        assert!(local.allowed_url("http://127.0.0.1:9/subscriptions/s/x?$skiptoken=1"));
        assert!(!local.allowed_url("http://127.0.0.1:10/subscriptions/s/x"));
        let arm = Azure::new(
            &TargetConfig::new("s", "g", "v", "https://management.azure.com"),
            auth::Credential::Static("t".into()),
        )
        .unwrap();
        assert!(arm.allowed_url("https://westus.management.azure.com/subscriptions/s/x"));
        assert!(!arm.allowed_url("http://westus.management.azure.com/subscriptions/s/x"));
        assert!(!arm.allowed_url("https://evil.example/subscriptions/s/x"));
        let insecure = TargetConfig {
            authority: "http://login.example".into(),
            ..TargetConfig::new("s", "g", "v", "https://management.azure.com")
        };
        assert!(insecure.check().unwrap_err().contains("authority"));
    }

    #[test]
    fn urls_carry_the_api_version_and_follow_links_as_given() {
        let target = TargetConfig::new("s", "g", "v", "https://management.azure.com/");
        let azure = Azure::new(&target, auth::Credential::Static("t".into())).unwrap();
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
