//! Runs kept in Azure Blob Storage (`[state] url = "az://CONTAINER/PREFIX"`), through the
//! `object_store` crate: under the prefix, `runs/<id>/journal/` (the records, see
//! [`super::blob_journal`]), `runs/<id>/waiting.json`, `runs/<id>/approvals/<step>-<title hash>.json` and
//! `runs/<id>/superseded`; `locks/<vault>.json` (the leases, see [`super::lease`]); and
//! `clock`, a probe blob whose last-modified time is the store's now.
//!
//! Credentials come from the environment as the Azure SDKs read them (see [`connect`]);
//! none is ever written to a blob. Every request has a timeout and few retries, so an
//! unreachable store stops a run within seconds rather than minutes.

use super::lease::{self, Standing};
use super::{Held, Holder, Sink, StateUrl, Store};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::journal::approvals::{Given, Waiting};
use crate::journal::{Entry, Loaded, Record};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, PutMode, PutPayload, UpdateVersion};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Azurite's account and its published key (not a secret: the emulator's documented default).
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A blob as read, with the store's time of its last write and its version.
pub struct Clocked {
    pub bytes: Bytes,
    pub modified: DateTime<Utc>,
    pub version: UpdateVersion,
}

/// The requests, without the runtime they run on (tasks on that runtime hold this).
pub struct Client {
    azure: MicrosoftAzure,
    prefix: String,
    /// The blob endpoint, for messages and the container's creation.
    pub(super) endpoint: String,
    pub(super) account: String,
    /// The shared key, when the credential is one (for the container's creation only).
    pub(super) key: Option<String>,
    pub(super) container: String,
}

/// What went wrong, in a line: the store's status and error code when it answered, else
/// what the client says (object_store's messages name the URL, never a credential).
fn reason(e: &object_store::Error) -> String {
    let text = e.to_string();
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next());
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|s| s.split(':').next());
    match (status, code) {
        (Some(status), Some(code)) => format!("the store answered {status} ({code})"),
        (Some(status), None) => format!("the store answered {status}"),
        _ => crate::diagnostics::shorten(text.lines().next().unwrap_or_default().to_string()),
    }
}

/// Whether `e` says the container does not exist.
fn no_container(e: &object_store::Error) -> bool {
    e.to_string().contains("ContainerNotFound")
}

impl Client {
    /// `PREFIX/rest`.
    pub fn key(&self, rest: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rest)
        } else {
            Key::from(format!("{}/{rest}", self.prefix))
        }
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Clocked>, String> {
        match self.azure.get(key).await {
            Ok(got) => {
                let modified = got.meta.last_modified;
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(|e| reason(&e))?;
                Ok(Some(Clocked {
                    bytes,
                    modified,
                    version,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(reason(&e)),
        }
    }

    /// Writes `bytes` at `key`; `None` when the condition of `mode` failed (someone else
    /// wrote it first).
    pub async fn put(
        &self,
        key: &Key,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<Option<UpdateVersion>, String> {
        match self
            .azure
            .put_opts(key, PutPayload::from(bytes), mode.into())
            .await
        {
            Ok(put) => Ok(Some(UpdateVersion {
                e_tag: put.e_tag,
                version: put.version,
            })),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(reason(&e)),
        }
    }

    /// The blob at `key` if it changed since `etag` (a conditional read: nothing comes
    /// back when it did not).
    pub async fn changed_since(
        &self,
        key: &Key,
        etag: Option<&str>,
    ) -> Result<Option<Bytes>, String> {
        let options = GetOptions {
            if_none_match: etag.map(str::to_string),
            ..GetOptions::default()
        };
        match self.azure.get_opts(key, options).await {
            Ok(got) => got.bytes().await.map(Some).map_err(|e| reason(&e)),
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            Err(object_store::Error::NotFound { .. }) => Ok(Some(Bytes::new())),
            Err(e) => Err(reason(&e)),
        }
    }

    pub async fn delete(&self, key: &Key) -> Result<(), String> {
        match self.azure.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(reason(&e)),
        }
    }

    /// Every blob under `key/`, with its size.
    pub async fn list(&self, key: &Key) -> Result<Vec<object_store::ObjectMeta>, String> {
        use futures::TryStreamExt;
        match self.azure.list(Some(key)).try_collect().await {
            Ok(all) => Ok(all),
            Err(e) if matches!(e, object_store::Error::NotFound { .. }) || no_container(&e) => {
                Ok(Vec::new())
            }
            Err(e) => Err(reason(&e)),
        }
    }

    /// The folders just under `key/`.
    pub async fn folders(&self, key: &Key) -> Result<Option<Vec<String>>, String> {
        match self.azure.list_with_delimiter(Some(key)).await {
            Ok(listed) => Ok(Some(
                listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect(),
            )),
            // The container does not exist (yet).
            Err(e) if matches!(e, object_store::Error::NotFound { .. }) || no_container(&e) => {
                Ok(None)
            }
            Err(e) => Err(reason(&e)),
        }
    }

    /// The store's now: the last-modified time of the probe blob, written just now.
    pub async fn store_now(&self) -> Result<DateTime<Utc>, String> {
        let key = self.key("clock");
        self.put(
            &key,
            Bytes::from_static(b"the store's clock\n"),
            PutMode::Overwrite,
        )
        .await?;
        let meta = self.azure.head(&key).await.map_err(|e| reason(&e))?;
        Ok(meta.last_modified)
    }

    pub(super) fn credentials(&self) -> &object_store::azure::AzureCredentialProvider {
        self.azure.credentials()
    }
}

/// Whether `url`'s host is this machine (http is allowed there only).
pub(crate) fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A client for `url` with the credentials of the environment: `AZURE_STORAGE_ACCOUNT_NAME`
/// with `AZURE_STORAGE_ACCOUNT_KEY`; else client credentials (`AZURE_CLIENT_ID`,
/// `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`); else managed identity (`IDENTITY_ENDPOINT`,
/// or the instance metadata service when `AZURE_STORAGE_USE_MANAGED_IDENTITY` is true);
/// else the Azure CLI. `AZURE_STORAGE_USE_EMULATOR=true` means Azurite's account and key at
/// `http://127.0.0.1:10000`; `AZURE_STORAGE_ENDPOINT` overrides the address in both.
pub fn connect(url: &StateUrl) -> Result<Client, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let flag = |name: &str| {
        var(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    };
    let emulator = flag("AZURE_STORAGE_USE_EMULATOR");
    let account = var("AZURE_STORAGE_ACCOUNT_NAME")
        .or_else(|| emulator.then(|| EMULATOR_ACCOUNT.to_string()));
    let key =
        var("AZURE_STORAGE_ACCOUNT_KEY").or_else(|| emulator.then(|| EMULATOR_KEY.to_string()));
    let endpoint = match (var("AZURE_STORAGE_ENDPOINT"), &account) {
        (Some(e), _) => e.trim_end_matches('/').to_string(),
        (None, _) if emulator => format!("http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"),
        (None, Some(a)) => format!("https://{a}.blob.core.windows.net"),
        (None, None) => {
            return Err("the state store needs an account: set AZURE_STORAGE_ACCOUNT_NAME (with AZURE_STORAGE_ACCOUNT_KEY, or a credential as for targets), AZURE_STORAGE_ENDPOINT, or AZURE_STORAGE_USE_EMULATOR=true for Azurite".into())
        }
    };
    let parsed = url::Url::parse(&endpoint)
        .map_err(|e| format!("AZURE_STORAGE_ENDPOINT `{endpoint}` is not a URL: {e}"))?;
    let local = loopback(&parsed);
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && local) {
        return Err(format!(
            "the state store's endpoint `{endpoint}` must use https (http only on this machine's loopback, for Azurite)"
        ));
    }
    // The account is the endpoint's first segment for Azurite's path-style addresses.
    let account = account
        .or_else(|| {
            parsed
                .path_segments()
                .and_then(|mut s| s.next().map(str::to_string))
                .filter(|s| !s.is_empty())
        })
        .or_else(|| {
            parsed
                .host_str()
                .and_then(|h| h.split('.').next())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let options = object_store::ClientOptions::new()
        .with_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(3))
        .with_allow_http(local);
    let retry = object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(8),
        ..object_store::RetryConfig::default()
    };
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(account.clone())
        .with_container_name(url.container.clone())
        .with_endpoint(endpoint.clone())
        .with_client_options(options)
        .with_retry(retry);
    builder = match (
        &key,
        var("AZURE_CLIENT_ID"),
        var("AZURE_CLIENT_SECRET"),
        var("AZURE_TENANT_ID"),
    ) {
        (Some(k), ..) => builder.with_access_key(k.clone()),
        (None, Some(id), Some(secret), Some(tenant)) => {
            builder.with_client_secret_authorization(id, secret, tenant)
        }
        _ if var("IDENTITY_ENDPOINT").is_some() => {
            builder.with_msi_endpoint(var("IDENTITY_ENDPOINT").unwrap_or_default())
        }
        _ if flag("AZURE_STORAGE_USE_MANAGED_IDENTITY") => builder,
        _ => builder.with_use_azure_cli(true),
    };
    let azure = builder
        .build()
        .map_err(|e| format!("cannot reach the state store {url}: {}", reason(&e)))?;
    Ok(Client {
        azure,
        prefix: url.prefix.clone(),
        endpoint,
        account,
        key,
        container: url.container.clone(),
    })
}

/// Runs in Blob Storage.
pub struct BlobStore {
    project: PathBuf,
    url: StateUrl,
    client: Arc<Client>,
    rt: tokio::runtime::Runtime,
    /// The store's clock minus this machine's, measured once (for showing which runs run).
    skew: OnceLock<chrono::Duration>,
}

impl BlobStore {
    pub fn open(project: &Path, url: &StateUrl) -> Result<BlobStore, Error> {
        let client = connect(url).map_err(Error::Usage)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("state-store")
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
        Ok(BlobStore {
            project: project.to_path_buf(),
            url: url.clone(),
            client: Arc::new(client),
            rt,
            skew: OnceLock::new(),
        })
    }

    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// Runs `f` on the store's runtime and waits for it, from any thread.
    pub fn block<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .expect("the state store's runtime runs while the store lives")
    }

    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f)
    }

    /// `az://container/prefix` and the endpoint, for messages.
    pub fn describe_store(&self) -> String {
        format!("{} ({})", self.url, self.client.endpoint)
    }

    /// A blob's place, for messages.
    pub fn show(&self, key: &Key) -> String {
        format!("az://{}/{key}", self.url.container)
    }

    pub fn lock_path(&self, identity: &str) -> Key {
        let hash = crate::journal::sha256(identity.to_lowercase().as_bytes());
        self.client.key(&format!("locks/{}.json", &hash[..16]))
    }

    fn run_key(&self, id: &str, rest: &str) -> Key {
        self.client.key(&format!("runs/{id}/{rest}"))
    }

    pub fn read_clocked(&self, key: &Key) -> Result<Option<Clocked>, String> {
        let (c, k) = (self.client.clone(), key.clone());
        self.block(async move { c.get(&k).await })
            .map_err(|e| format!("cannot read {}: {e}", self.show(key)))
    }

    pub fn put(
        &self,
        key: &Key,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<Option<UpdateVersion>, String> {
        let (c, k) = (self.client.clone(), key.clone());
        self.block(async move { c.put(&k, bytes, mode).await })
            .map_err(|e| format!("cannot write {}: {e}", self.show(key)))
    }

    pub fn changed_since(&self, key: &Key, etag: Option<&str>) -> Result<Option<Bytes>, String> {
        let (c, k, e) = (self.client.clone(), key.clone(), etag.map(str::to_string));
        self.block(async move { c.changed_since(&k, e.as_deref()).await })
    }

    /// The store's now, from a probe written just now.
    pub fn store_now(&self) -> Result<DateTime<Utc>, String> {
        let c = self.client.clone();
        let before = Utc::now();
        let now = self
            .block(async move { c.store_now().await })
            .map_err(|e| format!("cannot read the clock of {}: {e}", self.describe_store()))?;
        let _ = self.skew.set(now - before);
        Ok(now)
    }

    /// The store's now as this machine reckons it (the skew measured once, else none).
    fn reckoned_now(&self) -> DateTime<Utc> {
        if self.skew.get().is_none() {
            let _ = self.store_now();
        }
        Utc::now() + self.skew.get().copied().unwrap_or_default()
    }

    /// Marks run `old` as superseded by `new`.
    pub fn supersede(&self, old: &str, new: &str) {
        let key = self.run_key(old, "superseded");
        let _ = self.put(&key, Bytes::from(new.to_string()), PutMode::Overwrite);
    }

    /// Creates the container when it is missing.
    fn ensure_container(&self) -> Result<(), Error> {
        let (c, k) = (self.client.clone(), self.client.key("locks"));
        let found = self.block(async move { c.folders(&k).await });
        match found {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let c = self.client.clone();
                self.block(async move { super::container::create(&c).await })
                    .map_err(|e| {
                        Error::Usage(format!(
                            "cannot create the container of {}: {e}; nothing was run",
                            self.describe_store()
                        ))
                    })
            }
            Err(e) => Err(Error::Usage(format!(
                "cannot reach the state store {}: {e}; nothing was run",
                self.describe_store()
            ))),
        }
    }

    /// Whether run `id` (whose header is `vault`) holds its vault's live lease: who, if so.
    fn holder_of(&self, id: &str, vault: Option<&str>) -> Option<String> {
        let lock = self.read_clocked(&self.lock_path(vault?)).ok()??;
        let record: lease::Record = serde_json::from_slice(&lock.bytes).ok()?;
        let live = lease::standing(&record, lock.modified, self.reckoned_now()) == Standing::Live;
        (record.holder.run == id && live).then(|| record.describe())
    }
}

impl Store for Arc<BlobStore> {
    fn project(&self) -> &Path {
        &self.project
    }

    fn describe(&self) -> String {
        self.describe_store()
    }

    fn journal_place(&self, id: &str) -> String {
        self.show(&self.run_key(id, "journal/"))
    }

    fn none_found(&self) -> String {
        format!(
            "no runs in {} (the [state] of {})",
            self.describe_store(),
            crate::paths::display(&self.project.join(crate::config::FILE_NAME))
        )
    }

    fn create_run(&self, now: Timestamp) -> Result<String, Error> {
        self.ensure_container()?;
        // Unique by its salt; the journal's first record, written only if absent, checks it.
        Ok(crate::journal::runs::new_id(now, 0))
    }

    fn discard(&self, _id: &str) {
        // A run that wrote no record left nothing in the store.
    }

    fn ids(&self) -> Result<Vec<String>, Error> {
        let (c, k) = (self.client.clone(), self.client.key("runs"));
        let mut ids = self
            .block(async move { c.folders(&k).await })
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot list the runs in {}: {e}",
                    self.describe_store()
                ))
            })?
            .unwrap_or_default();
        ids.sort();
        Ok(ids)
    }

    fn load(&self, id: &str) -> Result<Loaded, String> {
        let records = self.records_after(id, 0)?;
        let vault = records.iter().find_map(|r| match &r.entry {
            Entry::Start(h) => h.vault.clone(),
            _ => None,
        });
        let holder = self.holder_of(id, vault.as_deref());
        let superseded = self
            .read_clocked(&self.run_key(id, "superseded"))
            .ok()
            .flatten()
            .map(|c| String::from_utf8_lossy(&c.bytes).trim().to_string());
        Ok(Loaded {
            path: PathBuf::from(self.journal_place(id)),
            records,
            good_len: 0,
            torn: 0,
            running: holder.is_some(),
            superseded,
            holder,
        })
    }

    fn records_after(&self, id: &str, after: u64) -> Result<Vec<Record>, String> {
        let (c, k) = (self.client.clone(), self.run_key(id, "journal"));
        let place = self.journal_place(id);
        self.block(async move { super::blob_journal::read(&c, &k, after, &place).await })
    }

    fn create_journal(&self, id: &str) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(super::blob_journal::RecordSink::new(
            self.clone(),
            self.run_key(id, "journal"),
            self.journal_place(id),
            None,
        )))
    }

    fn reopen_journal(&self, id: &str, loaded: &Loaded) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(super::blob_journal::RecordSink::new(
            self.clone(),
            self.run_key(id, "journal"),
            self.journal_place(id),
            Some(loaded),
        )))
    }

    fn lock(
        &self,
        identity: &str,
        holder: Holder,
        take_over: bool,
    ) -> Result<Arc<dyn Held>, Error> {
        lease::acquire(self, identity, holder, take_over)
    }

    fn set_waiting(&self, id: &str, waiting: &Waiting) -> Result<(), String> {
        let body = Bytes::from(serde_json::to_vec(waiting).unwrap_or_default());
        self.put(&self.run_key(id, "waiting.json"), body, PutMode::Overwrite)
            .map(|_| ())
    }

    fn clear_waiting(&self, id: &str, waiting: &Waiting) {
        let key = self.run_key(id, "waiting.json");
        let ours = self
            .read_clocked(&key)
            .ok()
            .flatten()
            .and_then(|c| serde_json::from_slice::<Waiting>(&c.bytes).ok())
            .is_some_and(|w| &w == waiting);
        if ours {
            let (c, k) = (self.client.clone(), key);
            let _ = self.block(async move { c.delete(&k).await });
        }
    }

    fn waiting(&self, id: &str) -> Option<Waiting> {
        let found = self
            .read_clocked(&self.run_key(id, "waiting.json"))
            .ok()??;
        let waiting: Waiting = serde_json::from_slice(&found.bytes).ok()?;
        // Its process may be on another machine: the run's live lease says it still runs.
        self.load(id).ok()?.running.then_some(waiting)
    }

    fn add_approval(&self, id: &str, given: &Given) -> Result<bool, String> {
        let body = Bytes::from(serde_json::to_vec(given).unwrap_or_default());
        let name = crate::journal::approvals::file_name(given.step, &given.title);
        let key = self.run_key(id, &format!("approvals/{name}"));
        self.put(&key, body, PutMode::Create).map(|v| v.is_some())
    }

    fn approval(&self, id: &str, step: u32, title: &str) -> Option<Given> {
        let name = crate::journal::approvals::file_name(step, title);
        let key = self.run_key(id, &format!("approvals/{name}"));
        let found = self.read_clocked(&key).ok()??;
        serde_json::from_slice(&found.bytes).ok()
    }

    fn approval_poll(&self) -> Duration {
        Duration::from_secs(1)
    }
}
