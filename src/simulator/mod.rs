//! `runbook simulator serve`: the in-process simulator behind an HTTP server that speaks the
//! ASR REST API (the same paths, api-version, 202 with `Location`/`Azure-AsyncOperation`/
//! `Retry-After`/`x-ms-request-id`, job resources, ARM error bodies, bearer-token checks), so
//! the `azure` backend is tested over real HTTP and teams can rehearse against it with any
//! ARM client (Microsoft's Python SDK passes: see tests/conformance/).
//!
//! Long-running operations are served as ARM clients follow them (see `operations.rs`):
//! `replicationOperationStatus/{op}` and the action's `operationresults/{op}`, with the
//! request's api-version in every link. Recovery plans are listed, read and acted on (one
//! job per plan action, run group by group: see `backend::sim`).
//!
//! Beyond the ASR paths it has:
//! - a client-credentials token endpoint, `POST /{tenant}/oauth2/v2.0/token` (see [`auth`]);
//! - ARM's throttling: token buckets for reads and writes, 429 with `Retry-After` when empty,
//!   `x-ms-ratelimit-remaining-subscription-reads`/`-writes` on every other answer;
//! - faults for tests (see [`faults`]): `POST /_simulator/faults` arms them, `DELETE` clears
//!   them, `GET` lists those still armed;
//! - `GET /_simulator/stats`: requests by kind (`"GET job"`, `"POST plannedFailover"`...),
//!   refusals (`"401"`, `"429"`, `"400 api-version"`, `"404"`) and faults fired (`"fault
//!   500"`...). A throttled or unauthenticated request counts only as its refusal; a request a
//!   fault fired on counts as its kind and as the fault.

pub mod auth;
mod control;
pub mod faults;
mod items;
mod jobs;
mod operations;
mod paging;
mod plans;
mod responses;
mod routing;
pub mod throttle;

use crate::backend::sim::Simulator;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
pub use faults::{Fault, FaultKind};
use responses::{arm_error, insert};
use routing::handle;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How the server is set up. `Default` is what [`Server::new`] gives: the token
/// `runbook-simulator`, real time, ARM's throttling limits, no faults, no client credentials.
#[derive(Clone)]
pub struct ServerOptions {
    /// The static bearer token accepted (empty: none, only tokens the endpoint issued).
    pub token: String,
    /// How much faster than real time the simulation runs (`Retry-After` on jobs is sped up
    /// alike; throttling and token lifetimes are not).
    pub speed: f64,
    /// Faults armed at start, as if posted to `/_simulator/faults` in this order.
    pub faults: Vec<Fault>,
    /// Reads (GET): the bucket's size (ARM: 250) and its refill per second (ARM: 25).
    pub reads_burst: u32,
    pub reads_per_second: f64,
    /// Writes (POST, PUT, PATCH, DELETE): the bucket's size (ARM: 200) and its refill per
    /// second (ARM: 10). An infinite rate turns throttling off.
    pub writes_burst: u32,
    pub writes_per_second: f64,
    /// The client-credentials flow's application id and secret; without both the token
    /// endpoint refuses every request (401 `invalid_client`).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// How long an issued token is valid (real time; default one hour).
    pub token_lifetime: Duration,
    /// Entries per page of every list (the service's: 100); smaller pages make clients
    /// follow `nextLink`.
    pub page_size: usize,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            token: "runbook-simulator".into(),
            speed: 1.0,
            faults: Vec::new(),
            reads_burst: 250,
            reads_per_second: 25.0,
            writes_burst: 200,
            writes_per_second: 10.0,
            client_id: None,
            client_secret: None,
            token_lifetime: Duration::from_secs(3600),
            page_size: paging::PAGE,
        }
    }
}

/// Shows neither the token nor the secret.
impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ServerOptions")
            .field("token", &redacted(&self.token))
            .field("speed", &self.speed)
            .field("faults", &self.faults)
            .field("reads_burst", &self.reads_burst)
            .field("reads_per_second", &self.reads_per_second)
            .field("writes_burst", &self.writes_burst)
            .field("writes_per_second", &self.writes_per_second)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_deref().map(redacted),
            )
            .field("token_lifetime", &self.token_lifetime)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// The server's state.
pub struct Server {
    sim: Arc<Simulator>,
    speed: f64,
    auth: auth::Auth,
    reads: Mutex<throttle::Bucket>,
    writes: Mutex<throttle::Bucket>,
    faults: Mutex<faults::Faults>,
    stats: Mutex<BTreeMap<String, u64>>,
    /// The client request id of the POST that created each job.
    activities: Mutex<std::collections::HashMap<String, String>>,
    /// Operations on jobs (cancel, restart, resume), each with an id of its own.
    operations: Mutex<operations::JobOperations>,
    page_size: usize,
    /// Cancelled when [`serve`]'s shutdown completes: held connections let go.
    stopping: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// A server that accepts the static `token`, with ARM's throttling limits and no faults.
    pub fn new(sim: Arc<Simulator>, token: String, speed: f64) -> Arc<Server> {
        Server::with_options(
            sim,
            ServerOptions {
                token,
                speed,
                ..ServerOptions::default()
            },
        )
    }

    pub fn with_options(sim: Arc<Simulator>, options: ServerOptions) -> Arc<Server> {
        let now = Instant::now();
        let mut faults = faults::Faults::default();
        for f in options.faults {
            faults.arm(f);
        }
        Arc::new(Server {
            sim,
            speed: options.speed,
            auth: auth::Auth::new(
                options.token,
                options.client_id,
                options.client_secret,
                options.token_lifetime,
            ),
            reads: Mutex::new(throttle::Bucket::new(
                options.reads_burst,
                options.reads_per_second,
                now,
            )),
            writes: Mutex::new(throttle::Bucket::new(
                options.writes_burst,
                options.writes_per_second,
                now,
            )),
            faults: Mutex::new(faults),
            stats: Mutex::new(BTreeMap::new()),
            activities: Mutex::new(std::collections::HashMap::new()),
            operations: Mutex::new(operations::JobOperations::default()),
            page_size: options.page_size.max(1),
            stopping: CancellationToken::new(),
        })
    }

    fn count(&self, kind: &str) {
        *lock(&self.stats).entry(kind.to_string()).or_default() += 1;
    }

    /// Requests by kind (`"POST plannedFailover"`, `"GET job"`...), refusals (`"401"`,
    /// `"429"`...), faults fired (`"fault 500"`...) and operations that reached an item
    /// (`"issued web-01 commit"`).
    pub fn stats(&self) -> BTreeMap<String, u64> {
        lock(&self.stats).clone()
    }

    /// Arms a fault (after those already armed).
    pub fn arm(&self, fault: Fault) {
        lock(&self.faults).arm(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The faults still armed, with the firings they have left.
    pub fn armed_faults(&self) -> Vec<Fault> {
        lock(&self.faults).armed()
    }

    /// `Retry-After` in seconds: the service's 30 s, sped up like the simulation, and never
    /// below 1 (clients take 0 for "no header" and wait their own default, often 30 s).
    fn retry_after(&self) -> String {
        ((30.0 / self.speed).round() as u64).max(1).to_string()
    }

    /// Waits `delay`, or less if the server is stopping.
    async fn hold(&self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.stopping.cancelled() => {}
        }
    }

    /// Answers a request of `kind` (to `path_and_query`) with `answer`, unless an armed
    /// fault fires on it.
    async fn answer(
        self: &Arc<Self>,
        kind: &str,
        path_and_query: &str,
        answer: impl Future<Output = Response> + Send + 'static,
    ) -> Response {
        self.count(kind);
        let fired = lock(&self.faults).take(kind);
        let Some(fault) = fired else {
            return answer.await;
        };
        self.count(&format!("fault {}", fault.fault.name()));
        self.faulted(fault, path_and_query, answer).await
    }

    /// Takes a token from the bucket of `method`: `Ok((header, tokens left))`, or the 429
    /// (counted as `"429"`).
    fn throttle(&self, method: &Method) -> Result<(&'static str, u64), Box<Response>> {
        let read = method == Method::GET || method == Method::HEAD;
        let (bucket, header, what) = if read {
            (
                &self.reads,
                "x-ms-ratelimit-remaining-subscription-reads",
                "read",
            )
        } else {
            (
                &self.writes,
                "x-ms-ratelimit-remaining-subscription-writes",
                "write",
            )
        };
        let taken = lock(bucket).take(Instant::now());
        match taken {
            Ok(left) => Ok((header, left)),
            Err(secs) => {
                self.count("429");
                let mut r = arm_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "SubscriptionRequestsThrottled",
                    format!("Number of {what} requests for the subscription exceeded the limit. Please try again after {secs} seconds."),
                );
                insert(r.headers_mut(), "retry-after", &secs.to_string());
                Err(Box::new(r))
            }
        }
    }
}

/// The router: everything goes through one handler that reads the ARM path itself (ARM
/// paths are case-insensitive).
pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

/// Serves until `shutdown` completes; then held connections (faults) are let go.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = server.stopping.clone();
    axum::serve(listener, router(server))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::routing::is_token_path;
    use super::*;
    use crate::backend::inventory::Inventory;
    use crate::clock::{Clock, RealClock};

    const SECRET: &str = "s3cr3t+/=";

    fn options() -> ServerOptions {
        ServerOptions {
            token: "static-tok".into(),
            speed: 1000.0,
            faults: vec![Fault::new("GET providers", FaultKind::ServerError, 1)],
            writes_burst: 2,
            writes_per_second: 1.0,
            client_id: Some("app-1".into()),
            client_secret: Some(SECRET.into()),
            token_lifetime: Duration::from_millis(400),
            ..ServerOptions::default()
        }
    }

    #[test]
    fn defaults_are_arms_and_debug_hides_secrets() {
        let o = ServerOptions::default();
        assert_eq!((o.token.as_str(), o.speed), ("runbook-simulator", 1.0));
        assert_eq!((o.reads_burst, o.reads_per_second), (250, 25.0));
        assert_eq!((o.writes_burst, o.writes_per_second), (200, 10.0));
        assert_eq!(o.token_lifetime, Duration::from_secs(3600));
        assert!(o.faults.is_empty() && o.client_id.is_none() && o.client_secret.is_none());
        let shown = format!("{:?}", options());
        assert!(
            !shown.contains(SECRET) && !shown.contains("static-tok"),
            "{shown}"
        );
        assert!(is_token_path("/contoso.onmicrosoft.com/oauth2/v2.0/token"));
        assert!(!is_token_path("//oauth2/v2.0/token"));
        assert!(!is_token_path("/t/oauth2/token"));
    }

    /// Over real HTTP: the token endpoint, faults armed at start and over HTTP, throttling of
    /// writes, an expired token, and a shutdown that lets held connections go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faults_throttling_and_tokens_over_http() {
        let started = Instant::now();
        let inventory = Inventory::demo();
        let clock: Arc<dyn Clock> = Arc::new(RealClock::starting_at(inventory.start, 1000.0));
        let sim = Arc::new(Simulator::new(&inventory, clock, false));
        let server = Server::with_options(sim, options());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve(listener, server.clone(), async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let base = format!("http://{addr}");
        let vault = format!(
            "{base}/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v"
        );
        let v = "api-version=2024-04-01";
        let token_form = |secret: &str| {
            format!("grant_type=client_credentials&client_id=app-1&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
                secret.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
        };
        let token_request = |form: String| {
            http.post(format!("{base}/tenant-1/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
        };

        // The token endpoint: a wrong secret, then the right one.
        let r = token_request(token_form("wrong")).await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        let r = token_request(token_form(SECRET)).await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 0);
        let issued = body["access_token"].as_str().unwrap().to_string();
        let issued_at = Instant::now();
        let get = |url: String, token: &str| http.get(url).bearer_auth(token).send();

        // The issued token works; every answer says how many reads are left.
        let r = get(format!("{vault}/replicationProtectedItems?{v}"), &issued)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-ms-ratelimit-remaining-subscription-reads"],
            "249"
        );
        let items: serde_json::Value = r.json().await.unwrap();
        let item = items["value"][0]["id"].as_str().unwrap().to_string();

        // A fault armed at start, then faults armed over HTTP, first armed first.
        let r = get(
            format!("{vault}/replicationRecoveryServicesProviders?{v}"),
            "static-tok",
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 500);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InternalServerError");
        let arm = |body: &str| {
            http.post(format!("{base}/_simulator/faults"))
                .body(body.to_string())
                .send()
        };
        let r = arm(r#"{"on": "GET jobs", "fault": "what"}"#).await.unwrap();
        assert_eq!(r.status(), 400);
        let r = arm(r#"[{"on": "GET jobs", "fault": "429"}, {"on": "get JOBS", "fault": "malformed"},
                        {"on": "GET jobs", "fault": "drop", "delay_ms": 0}, {"on": "GET jobs", "fault": "slow", "delay_ms": 50}]"#)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let jobs = format!("{vault}/replicationJobs?{v}");
        let r = get(jobs.clone(), "static-tok").await.unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["retry-after"].to_str().unwrap()
            ),
            (429, "1")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
        let r = get(jobs.clone(), "static-tok").await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.json::<serde_json::Value>().await.is_err(), "malformed");
        let e = get(jobs.clone(), "static-tok").await.unwrap_err();
        assert!(!e.is_timeout(), "dropped at once: {e:?}");
        let slow = Instant::now();
        let r = get(jobs.clone(), "static-tok").await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(slow.elapsed() >= Duration::from_millis(50));
        let r = get(jobs.clone(), "static-tok").await.unwrap();
        assert_eq!(r.status(), 200, "every fault consumed");

        // Accept then hang: the client times out, but the job was created.
        let r = arm(r#"{"on": "POST plannedFailover", "fault": "accept-then-hang"}"#)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let e = http
            .post(format!("{base}{item}/plannedFailover?{v}"))
            .bearer_auth("static-tok")
            .json(&serde_json::json!({"properties": {"failoverDirection": "PrimaryToRecovery"}}))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        let r = get(jobs.clone(), "static-tok").await.unwrap();
        let list: serde_json::Value = r.json().await.unwrap();
        let job = list["value"][0]["name"].as_str().unwrap().to_string();
        assert_eq!(list["value"].as_array().unwrap().len(), 1);

        // Writes: a burst of 2 (the hung POST took one), then 429 for about a second.
        let cancel = || {
            http.post(format!("{vault}/replicationJobs/{job}/cancel?{v}"))
                .bearer_auth("static-tok")
                .send()
        };
        let r = cancel().await.unwrap();
        assert_eq!(
            r.headers()["x-ms-ratelimit-remaining-subscription-writes"],
            "0"
        );
        let r = cancel().await.unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["retry-after"].to_str().unwrap()
            ),
            (429, "1")
        );
        assert!(r
            .headers()
            .get("x-ms-ratelimit-remaining-subscription-writes")
            .is_none());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");

        // The issued token expires (400 ms); the static one does not.
        tokio::time::sleep(Duration::from_millis(400).saturating_sub(issued_at.elapsed())).await;
        let r = get(format!("{vault}/replicationJobs/{job}?{v}"), &issued)
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "ExpiredAuthenticationToken");

        // Stats: kinds, refusals and faults, and never a secret or a token.
        let r = http
            .get(format!("{base}/_simulator/stats"))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(SECRET) && !text.contains(&issued) && !text.contains("static-tok"),
            "{text}"
        );
        let stats = server.stats();
        for (kind, n) in [
            ("POST token", 2),
            ("GET jobs", 6),
            ("GET providers", 1),
            ("POST plannedFailover", 1),
            ("POST cancel", 1),
            ("fault 500", 1),
            ("fault 429", 1),
            ("fault malformed", 1),
            ("fault drop", 1),
            ("fault slow", 1),
            ("fault accept-then-hang", 1),
            ("429", 1),
            ("401", 1),
        ] {
            assert_eq!(stats.get(kind), Some(&n), "{kind}: {stats:?}");
        }

        // A held connection does not hold up the shutdown.
        let r = arm(r#"{"on": "GET job", "fault": "drop", "times": 2}"#)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let held = tokio::spawn(get(
            format!("{vault}/replicationJobs/{job}?{v}"),
            "static-tok",
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = http
            .delete(format!("{base}/_simulator/faults"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["cleared"], 1);
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_millis(500), serving)
            .await
            .expect("shut down at once")
            .unwrap()
            .unwrap();
        assert!(held.await.unwrap().is_err());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
