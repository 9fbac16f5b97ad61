//! `runbook simulator serve`: the in-process simulator behind an HTTP server that speaks the
//! ASR REST API (the same paths, api-version, 202 with `Location`/`Azure-AsyncOperation`/
//! `Retry-After`/`x-ms-request-id`, job resources, ARM error bodies, bearer-token checks), so
//! the `azure` backend is tested over real HTTP and teams can rehearse against it.
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
pub mod faults;
pub mod throttle;

use crate::backend::azure::{convert, wire};
use crate::backend::sim::Simulator;
use crate::backend::{Backend, BackendError, Item, Site};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
pub use faults::{Fault, FaultKind};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Items per page of the protected-item list (the service pages too).
const PAGE: usize = 100;

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

    /// `Retry-After` in seconds: the service's 30 s, sped up like the simulation.
    fn retry_after(&self) -> String {
        ((30.0 / self.speed).round() as u64).to_string()
    }

    /// Waits `delay`, or less if the server is stopping.
    async fn hold(&self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.stopping.cancelled() => {}
        }
    }

    /// Answers a request of `kind` with `answer`, unless an armed fault fires on it.
    async fn answer(&self, kind: &str, answer: impl Future<Output = Response>) -> Response {
        self.count(kind);
        let fired = lock(&self.faults).take(kind);
        let Some(fault) = fired else {
            return answer.await;
        };
        self.count(&format!("fault {}", fault.fault.name()));
        let delay = fault.delay();
        match fault.fault {
            FaultKind::ServerError => {
                self.hold(delay).await;
                arm_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "The server encountered an internal error. Please retry the request. (fault injected by the simulator)",
                )
            }
            FaultKind::TooManyRequests => {
                self.hold(delay).await;
                let mut r = arm_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "The request was throttled by the service. Please retry after 1 second. (fault injected by the simulator)",
                );
                insert(r.headers_mut(), "retry-after", "1");
                r
            }
            FaultKind::Malformed => {
                self.hold(delay).await;
                (
                    StatusCode::OK,
                    [("content-type", "application/json; charset=utf-8")],
                    r#"{"value": ["#,
                )
                    .into_response()
            }
            FaultKind::Slow => {
                self.hold(delay).await;
                answer.await
            }
            FaultKind::Drop => {
                self.hold(delay).await;
                drop_connection()
            }
            FaultKind::AcceptThenHang => {
                drop(answer.await);
                self.hold(delay).await;
                drop_connection()
            }
        }
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

/// Drops the connection without an answer: unwinds the connection's task (tokio ends it and
/// closes the socket) without running the panic hook, so nothing is printed. This needs
/// unwinding panics (the default; the crate does not set `panic = "abort"`).
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("runbook simulator: connection dropped by a fault"))
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

fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = wire::ArmError {
        error: wire::ArmErrorBody {
            code: code.into(),
            message: message.into(),
        },
    };
    (status, axum::Json(body)).into_response()
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn backend_error(e: BackendError) -> Response {
    match e {
        BackendError::UnknownItem { name, .. } => arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The protected item '{name}' was not found."),
        ),
        BackendError::UnknownPlan { name, .. } => arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The recovery plan '{name}' was not found."),
        ),
        BackendError::UnknownJob(id) => arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The job '{id}' was not found."),
        ),
        BackendError::NotAllowed { reason, .. } => {
            arm_error(StatusCode::BAD_REQUEST, "OperationNotAllowed", reason)
        }
        BackendError::Service(s) => arm_error(StatusCode::BAD_REQUEST, &s.code, s.message),
        BackendError::Transport(m) => {
            arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", m)
        }
    }
}

/// A request on an ASR vault path, by what it asks for.
enum Route {
    Items,
    Item { name: String },
    Action { name: String, action: String },
    Jobs,
    Job { id: String },
    Cancel { id: String },
    Providers,
    Plan { name: String },
    NotVault,
    Unknown,
}

impl Route {
    /// `vault` and the route of `path`.
    fn parse(method: &Method, path: &str) -> (String, Route) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.RecoveryServices/vaults/{v}/...
        let keyword = |i: usize, word: &str| {
            segments
                .get(i)
                .is_some_and(|s| s.eq_ignore_ascii_case(word))
        };
        if segments.len() < 8
            || !keyword(0, "subscriptions")
            || !keyword(2, "resourceGroups")
            || !keyword(4, "providers")
            || !keyword(5, "Microsoft.RecoveryServices")
            || !keyword(6, "vaults")
        {
            return (String::new(), Route::NotVault);
        }
        let vault = format!("/{}", segments[..8].join("/"));
        let rest = &segments[8..];
        let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let at = |i: usize| rest[i].to_string();
        let route = match (method, lower.as_slice()) {
            (&Method::GET, ["replicationprotecteditems"]) => Route::Items,
            (
                &Method::GET,
                ["replicationfabrics", _, "replicationprotectioncontainers", _, "replicationprotecteditems", _],
            ) => Route::Item { name: at(5) },
            (
                &Method::POST,
                ["replicationfabrics", _, "replicationprotectioncontainers", _, "replicationprotecteditems", _, _],
            ) => Route::Action {
                name: at(5),
                action: at(6),
            },
            (&Method::GET, ["replicationjobs"]) => Route::Jobs,
            (&Method::GET, ["replicationjobs", _]) => Route::Job { id: at(1) },
            (&Method::POST, ["replicationjobs", _, "cancel"]) => Route::Cancel { id: at(1) },
            (&Method::GET, ["replicationrecoveryservicesproviders"]) => Route::Providers,
            (&Method::GET, ["replicationrecoveryplans", _]) => Route::Plan { name: at(1) },
            _ => Route::Unknown,
        };
        (vault, route)
    }

    /// The kind counted in the stats and matched by faults.
    fn kind(&self) -> String {
        match self {
            Route::Items => "GET items".into(),
            Route::Item { .. } => "GET item".into(),
            Route::Action { action, .. } => format!("POST {action}"),
            Route::Jobs => "GET jobs".into(),
            Route::Job { .. } => "GET job".into(),
            Route::Cancel { .. } => "POST cancel".into(),
            Route::Providers => "GET providers".into(),
            Route::Plan { .. } => "GET plan".into(),
            Route::NotVault | Route::Unknown => "404".into(),
        }
    }
}

/// `/{tenant}/oauth2/v2.0/token`.
fn is_token_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), [tenant, oauth2, version, token]
        if !tenant.is_empty()
            && oauth2.eq_ignore_ascii_case("oauth2")
            && version.eq_ignore_ascii_case("v2.0")
            && token.eq_ignore_ascii_case("token"))
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/_simulator/stats" {
        return json(&server.stats());
    }
    if path == "/_simulator/clock" {
        // The simulation's time, for benchmarks that relate job times to the wall clock.
        let now = server.sim.now();
        return json(
            &serde_json::json!({ "now": now.rfc3339(), "now_ms": now.0, "speed": server.speed }),
        );
    }
    if path == "/_simulator/faults" {
        return faults_endpoint(&server, &method, &body);
    }
    if method == Method::POST && is_token_path(&path) {
        return server
            .answer("POST token", async { token_endpoint(&server, &body) })
            .await;
    }
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    match server.auth.check(authorization, Instant::now()) {
        auth::Bearer::Valid => {}
        auth::Bearer::Expired => {
            server.count("401");
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token has expired. Get a new token and send the request again.",
            );
        }
        auth::Bearer::Invalid => {
            server.count("401");
            return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or its bearer token is not valid.");
        }
    }
    if !uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|q| q.starts_with("api-version=") && q.len() > 12)
    {
        server.count("400 api-version");
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let (header, left) = match server.throttle(&method) {
        Ok(taken) => taken,
        Err(r) => return *r,
    };
    let (vault, route) = Route::parse(&method, &path);
    // Links in answers are absolute, as the service's are (`http://` + the Host asked for).
    let origin = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
    );
    let mut r = server
        .answer(
            &route.kind(),
            arm_request(
                &server,
                &method,
                &uri,
                &vault,
                route,
                &body,
                Caller {
                    client_request_id: client_request_id(&headers),
                    origin,
                },
            ),
        )
        .await;
    insert(r.headers_mut(), header, &left.to_string());
    r
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect()
        })
}

impl Server {
    /// A job's `activityId`: the creating request's client id, as the service shows it.
    fn activity(&self, job: &str) -> Option<String> {
        lock(&self.activities)
            .get(job)
            .map(|id| format!("{id}-P ActivityId: {job}"))
    }
}

/// Who asked: the client's request id and the origin links in answers point to.
struct Caller {
    client_request_id: Option<String>,
    origin: String,
}

/// The answer to an authorized ARM request.
async fn arm_request(
    server: &Server,
    method: &Method,
    uri: &Uri,
    vault: &str,
    route: Route,
    body: &[u8],
    caller: Caller,
) -> Response {
    let Caller {
        client_request_id,
        origin,
    } = caller;
    let origin = origin.as_str();
    let path = uri.path();
    match route {
        Route::NotVault => arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource path '{path}' is not an ASR vault path."),
        ),
        Route::Unknown => arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("No {method} operation exists at '{path}'."),
        ),
        Route::Items => list_items(server, vault, uri, origin).await,
        Route::Item { name } => match find_item(server, &name).await {
            Ok(item) => json(&item_wire(server, vault, &item).await),
            Err(r) => r,
        },
        Route::Action { name, action } => {
            let input: wire::ActionInput = if body.is_empty() {
                wire::ActionInput::default()
            } else {
                match serde_json::from_slice(body) {
                    Ok(b) => b,
                    Err(e) => {
                        return arm_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidRequestContent",
                            format!("The request content is not valid JSON: {e}"),
                        )
                    }
                }
            };
            let request = match convert::request_of(&action.to_ascii_lowercase(), &input) {
                Ok(r) => r,
                Err(m) => return arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", m),
            };
            let item = match find_item(server, &name).await {
                Ok(item) => item,
                Err(r) => return r,
            };
            // What reached the service, per item: how tests prove nothing was sent twice.
            server.count(&format!("issued {} {}", item.name, request.operation.as_str()));
            match server.sim.start(&item.name, &request).await {
                Ok(job) => {
                    if let Some(id) = client_request_id {
                        // The service echoes the client's request id in the job's activityId.
                        lock(&server.activities).insert(job.id.clone(), id);
                    }
                    accepted(server, origin, vault, path, &job.id)
                }
                Err(e) => backend_error(e),
            }
        }
        Route::Jobs => list_jobs(server, vault, uri, origin).await,
        Route::Job { id } => match server.sim.job(&id).await {
            Ok(job) => {
                let item_id = item_id_of(server, vault, &job.vm).await;
                let mut r = json(&convert::job_to_wire(&job, vault, &item_id, server.activity(&job.id).as_deref()));
                if !job.state.is_terminal() {
                    insert(r.headers_mut(), "retry-after", &server.retry_after());
                }
                r
            }
            Err(e) => backend_error(e),
        },
        Route::Cancel { id } => match server.sim.cancel_job(&id).await {
            Ok(job) => accepted(server, origin, vault, path, &job.id),
            Err(e) => backend_error(e),
        },
        Route::Providers => match server.sim.providers().await {
            Ok(providers) => json(&wire::Page {
                value: providers
                    .iter()
                    .map(|p| wire::Provider {
                        id: format!("{vault}/replicationFabrics/{0}/replicationRecoveryServicesProviders/{0}-vmm", p.site.as_str()),
                        name: format!("{}-vmm", p.site.as_str()),
                        properties: wire::ProviderProperties {
                            friendly_name: p.name.clone(),
                            connection_status: if p.connected { "Connected" } else { "NotConnected" }.into(),
                            fabric_friendly_name: p.site.as_str().into(),
                        },
                    })
                    .collect(),
                next_link: None,
            }),
            Err(e) => backend_error(e),
        },
        Route::Plan { name } => match server.sim.plan_members(&name).await {
            Ok(members) => {
                let mut ids = Vec::new();
                for m in &members {
                    ids.push(wire::PlanMember {
                        id: item_id_of(server, vault, m).await,
                    });
                }
                json(&wire::RecoveryPlan {
                    id: format!("{vault}/replicationRecoveryPlans/{name}"),
                    name: name.clone(),
                    properties: wire::RecoveryPlanProperties {
                        friendly_name: name,
                        groups: vec![wire::RecoveryPlanGroup {
                            group_type: "Boot".into(),
                            replication_protected_items: ids,
                        }],
                    },
                })
            }
            Err(e) => backend_error(e),
        },
    }
}

/// `POST /_simulator/faults` arms (one fault or a list), `DELETE` disarms all, `GET` lists
/// those still armed. No authentication: the simulator is a test tool.
fn faults_endpoint(server: &Server, method: &Method, body: &[u8]) -> Response {
    let armed = |server: &Server| json(&serde_json::json!({ "armed": server.armed_faults() }));
    match *method {
        Method::GET => armed(server),
        Method::DELETE => {
            let left = lock(&server.faults).clear();
            json(&serde_json::json!({ "cleared": left }))
        }
        Method::POST => {
            let request: faults::FaultRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidFault",
                        format!("expected {{\"on\": \"GET job\", \"fault\": \"500\" | \"429\" | \"drop\" | \"slow\" | \"malformed\" | \"accept-then-hang\", \"times\": 1, \"delay_ms\": 0}} or a list of them: {e}"),
                    )
                }
            };
            let faults = request.into_vec();
            if let Some(e) = faults.iter().find_map(|f| f.validate().err()) {
                return arm_error(StatusCode::BAD_REQUEST, "InvalidFault", e);
            }
            for f in faults {
                server.arm(f);
            }
            armed(server)
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "/_simulator/faults takes GET, POST and DELETE.",
        ),
    }
}

/// The client-credentials flow, answered like Azure AD (never echoing what was sent).
fn token_endpoint(server: &Server, body: &[u8]) -> Response {
    let form = String::from_utf8_lossy(body);
    let mut r = match server.auth.issue(&form, Instant::now()) {
        Ok(issued) => json(&serde_json::json!({
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        })),
        Err(refusal) => (
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
            axum::Json(serde_json::json!({
                "error": refusal.error,
                "error_description": refusal.description,
            })),
        )
            .into_response(),
    };
    insert(r.headers_mut(), "cache-control", "no-store");
    r
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// 202 Accepted, empty body, with the headers a client finds its job by.
fn accepted(server: &Server, origin: &str, vault: &str, action_path: &str, job: &str) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    let version = crate::backend::azure::DEFAULT_API_VERSION;
    let h = r.headers_mut();
    insert(
        h,
        "location",
        &format!("{origin}{action_path}/operationresults/{job}?api-version={version}"),
    );
    insert(
        h,
        "azure-asyncoperation",
        &format!("{origin}{vault}/replicationOperationStatus/{job}?api-version={version}"),
    );
    insert(h, "retry-after", &server.retry_after());
    // The service names the job by its full path here.
    insert(
        h,
        "x-ms-request-id",
        &format!("{vault}/replicationJobs/{job}"),
    );
    r
}

fn item_path(vault: &str, item: &Item) -> String {
    let fabric = match item.active_location {
        Site::Primary | Site::Recovery => "primary",
    };
    format!(
        "{vault}/replicationFabrics/{fabric}/replicationProtectionContainers/{fabric}-container/replicationProtectedItems/{}",
        item.id
    )
}

async fn item_id_of(server: &Server, vault: &str, name: &str) -> String {
    match server.sim.item(name).await {
        Ok(item) => item_path(vault, &item),
        Err(_) => String::new(),
    }
}

async fn item_wire(server: &Server, vault: &str, item: &Item) -> wire::ProtectedItem {
    let current = match &item.current_job {
        Some(id) => server.sim.job(id).await.ok(),
        None => None,
    };
    convert::item_to_wire(item, &item_path(vault, item), current.as_ref())
}

async fn find_item(server: &Server, arm_name: &str) -> Result<Item, Response> {
    let items = server.sim.list_items().await.map_err(backend_error)?;
    items
        .into_iter()
        .find(|i| i.id.eq_ignore_ascii_case(arm_name))
        .ok_or_else(|| {
            arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("The protected item '{arm_name}' was not found."),
            )
        })
}

async fn list_items(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let items = match server.sim.list_items().await {
        Ok(items) => items,
        Err(e) => return backend_error(e),
    };
    let skip: usize = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|q| q.strip_prefix("$skiptoken="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut value = Vec::new();
    for item in items.iter().skip(skip).take(PAGE) {
        value.push(item_wire(server, vault, item).await);
    }
    let next_link = (skip + PAGE < items.len()).then(|| {
        format!(
            "{origin}{vault}/replicationProtectedItems?api-version={}&$skiptoken={}",
            crate::backend::azure::DEFAULT_API_VERSION,
            skip + PAGE
        )
    });
    json(&wire::Page { value, next_link })
}

/// A query parameter's value, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|q| {
        let (k, v) = q.split_once('=')?;
        let k = auth::percent_decode(k);
        (k == name).then(|| auth::percent_decode(v))
    })
}

/// `startTime eq '2026-11-26T02:00:00Z'` in a job list's `$filter`: jobs from that time on.
fn filter_start(filter: &str) -> Option<crate::clock::Timestamp> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find("starttime")?;
    let rest = &filter[at..];
    let open = rest.find('\'')?;
    let close = rest[open + 1..].find('\'')?;
    crate::backend::azure::parse_time(&rest[open + 1..open + 1 + close])
}

async fn list_jobs(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let since = query_param(uri, "$filter")
        .as_deref()
        .and_then(filter_start)
        .unwrap_or_default();
    let jobs = match server.sim.jobs_since(since).await {
        Ok(jobs) => jobs,
        Err(e) => return backend_error(e),
    };
    let skip: usize = query_param(uri, "$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut value = Vec::new();
    for job in jobs.iter().skip(skip).take(PAGE) {
        let item_id = item_id_of(server, vault, &job.vm).await;
        value.push(convert::job_to_wire(
            job,
            vault,
            &item_id,
            server.activity(&job.id).as_deref(),
        ));
    }
    let next_link = (skip + PAGE < jobs.len()).then(|| {
        let filter = query_param(uri, "$filter").unwrap_or_default();
        format!(
            "{origin}{vault}/replicationJobs?api-version={}&$filter={}&$skiptoken={}",
            crate::backend::azure::DEFAULT_API_VERSION,
            filter.replace(' ', "%20").replace('\'', "%27"),
            skip + PAGE
        )
    });
    json(&wire::Page { value, next_link })
}

#[cfg(test)]
mod tests {
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
