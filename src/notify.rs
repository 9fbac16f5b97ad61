//! Notifications: `[notify.NAME]` channels of `runbook.toml` (a webhook, its URL or headers
//! secret in environment variables), told of a run's events (started, a manual step
//! waiting, an operation failed, finished or stopped) and of `notify(channel, text)`. A
//! delivery never stops or slows the run: it is sent from the runtime in the background
//! with bounded retries; one that fails prints a warning line, and every outcome is kept
//! for the journal.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Attempts per delivery, and the pause before each retry.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(300);
/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The body's shape.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One object per event: `event`, `run`, `text` and the event's fields.
    #[default]
    Json,
    /// A Microsoft Teams incoming webhook's message card.
    Teams,
    /// A Slack incoming webhook's message.
    Slack,
}

/// `[notify.NAME]` of `runbook.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The URL (https, or http on loopback).
    pub webhook: Option<String>,
    /// The environment variable that holds the URL, when the URL is a secret.
    pub webhook_env: Option<String>,
    #[serde(default)]
    pub kind: Kind,
    /// Headers whose values are secrets: header name to environment variable.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
}

impl NotifyConfig {
    /// Why the channel cannot be used, if it cannot.
    pub fn problem(&self, name: &str) -> Option<String> {
        match (&self.webhook, &self.webhook_env) {
            (Some(_), Some(_)) => Some(format!(
                "channel `{name}` has both webhook and webhook_env: give one"
            )),
            (None, None) => Some(format!(
                "channel `{name}` needs `webhook = \"https://...\"` or `webhook_env = \"VARIABLE\"`"
            )),
            (Some(url), None) => crate::actions::webhook_url(url)
                .err()
                .map(|e| format!("the webhook of channel `{name}`: {e}")),
            (None, Some(_)) => None,
        }
    }

    fn url(&self) -> Result<String, String> {
        match (&self.webhook, &self.webhook_env) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
            }
            (None, None) => Err("no webhook".into()),
        }
    }
}

/// One delivery's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: String,
    pub event: String,
    pub ok: bool,
    pub attempts: u32,
    pub why: Option<String>,
}

/// The run's notifier: its channels, the runtime deliveries run on, and their outcomes.
pub struct Notifier {
    pub channels: BTreeMap<String, NotifyConfig>,
    run: String,
    handle: Option<tokio::runtime::Handle>,
    outcomes: Arc<Mutex<Vec<Delivery>>>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier of `channels` for run `run` that delivers on `handle` (none: it only
    /// knows the channels' names, as `check` does).
    pub fn new(
        channels: BTreeMap<String, NotifyConfig>,
        run: &str,
        handle: Option<tokio::runtime::Handle>,
    ) -> Notifier {
        Notifier {
            channels,
            run: run.to_string(),
            handle,
            outcomes: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// Tells every channel of `event`.
    pub fn event(&self, event: &str, text: &str, fields: serde_json::Value) {
        for name in self.channels.keys() {
            self.send(name, event, text, fields.clone());
        }
    }

    /// Sends `event` to channel `name` in the background.
    pub fn send(&self, name: &str, event: &str, text: &str, fields: serde_json::Value) {
        let (Some(handle), Some(config)) = (&self.handle, self.channels.get(name)) else {
            return;
        };
        let body = body(config.kind, event, &self.run, text, fields);
        let config = config.clone();
        let outcomes = self.outcomes.clone();
        let pending = self.pending.clone();
        let (channel, event) = (name.to_string(), event.to_string());
        pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        handle.spawn(async move {
            let (ok, attempts, why) = deliver(&config, &body).await;
            if !ok {
                errln!(
                    "warning: notification `{event}` to channel `{channel}` was not delivered after {attempts} attempt(s): {}; the run goes on",
                    why.as_deref().unwrap_or("it failed")
                );
            }
            if let Ok(mut all) = outcomes.lock() {
                all.push(Delivery {
                    channel,
                    event,
                    ok,
                    attempts,
                    why,
                });
            }
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }

    /// The deliveries that ended since the last call.
    pub fn take(&self) -> Vec<Delivery> {
        self.outcomes
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }

    /// Waits at most `limit` for deliveries in flight (at the end of the run); returns how
    /// many were still in flight then.
    pub fn settle(&self, limit: Duration) -> usize {
        let until = std::time::Instant::now() + limit;
        loop {
            let pending = self.pending.load(std::sync::atomic::Ordering::SeqCst);
            if pending == 0 || std::time::Instant::now() >= until {
                return pending;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The body of `event` in the channel's `kind`.
fn body(
    kind: Kind,
    event: &str,
    run: &str,
    text: &str,
    fields: serde_json::Value,
) -> serde_json::Value {
    let line = format!("runbook run {run}: {text}");
    match kind {
        Kind::Json => {
            let mut object = serde_json::json!({ "event": event, "run": run, "text": text });
            if let (Some(o), serde_json::Value::Object(more)) = (object.as_object_mut(), fields) {
                o.extend(more);
            }
            object
        }
        Kind::Slack => serde_json::json!({ "text": line }),
        Kind::Teams => serde_json::json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": format!("runbook: {event}"),
            "text": line,
        }),
    }
}

/// Posts `body`, retrying a bounded number of times; never says the URL or a header value.
async fn deliver(config: &NotifyConfig, body: &serde_json::Value) -> (bool, u32, Option<String>) {
    let url = match config.url().and_then(|u| crate::actions::webhook_url(&u)) {
        Ok(url) => url,
        Err(e) => return (false, 0, Some(e)),
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => return (false, 0, Some(format!("no HTTP client: {e}"))),
    };
    let mut why = None;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(BACKOFF * (attempt - 1)).await;
        }
        let mut request = client.post(url.clone()).json(body);
        for (header, var) in &config.secret_headers {
            match std::env::var(var) {
                Ok(value) => request = request.header(header.as_str(), value),
                Err(_) => {
                    return (
                        false,
                        attempt,
                        Some(format!("the environment variable {var} is not set")),
                    )
                }
            }
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return (true, attempt, None),
            Ok(r) => why = Some(format!("the webhook answered {}", r.status())),
            Err(_) => why = Some("the webhook could not be reached".into()),
        }
    }
    (false, ATTEMPTS, why)
}
