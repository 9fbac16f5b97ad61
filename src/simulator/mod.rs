//! `runbook simulator serve`: the in-process simulator behind an HTTP server that speaks the
//! ASR REST API (the same paths, api-version, 202 with `Location`/`Azure-AsyncOperation`/
//! `Retry-After`/`x-ms-request-id`, job resources, ARM error bodies, bearer-token checks), so
//! the `azure` backend is tested over real HTTP and teams can rehearse against it.
//! Not built yet: the token endpoint, throttling with 429, fault injection over HTTP.

use crate::backend::azure::{convert, wire};
use crate::backend::sim::Simulator;
use crate::backend::{Backend, BackendError, Item, Site};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Items per page of the protected-item list (the service pages too).
const PAGE: usize = 100;

/// The server's state.
pub struct Server {
    sim: Arc<Simulator>,
    token: String,
    speed: f64,
    stats: Mutex<BTreeMap<String, u64>>,
}

impl Server {
    pub fn new(sim: Arc<Simulator>, token: String, speed: f64) -> Arc<Server> {
        Arc::new(Server {
            sim,
            token,
            speed,
            stats: Mutex::new(BTreeMap::new()),
        })
    }

    fn count(&self, kind: &str) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *stats.entry(kind.to_string()).or_default() += 1;
    }

    /// Requests by kind (`"POST plannedFailover"`, `"GET job"`...).
    pub fn stats(&self) -> BTreeMap<String, u64> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Retry-After` in seconds: the service's 30 s, sped up like the simulation.
    fn retry_after(&self) -> String {
        ((30.0 / self.speed).round() as u64).to_string()
    }
}

/// The router: everything goes through one handler that reads the ARM path itself (ARM
/// paths are case-insensitive).
pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(server))
        .with_graceful_shutdown(shutdown)
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
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ") == Some(server.token.as_str()));
    if !authorized {
        server.count("401");
        return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or its bearer token is not valid.");
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
        server.count("404");
        return arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource path '{path}' is not an ASR vault path."),
        );
    }
    let vault = format!("/{}", segments[..8].join("/"));
    let rest: Vec<String> = segments[8..].iter().map(|s| s.to_string()).collect();
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (method.clone(), lower.as_slice()) {
        (Method::GET, ["replicationprotecteditems"]) => {
            server.count("GET items");
            list_items(&server, &vault, &uri).await
        }
        (
            Method::GET,
            ["replicationfabrics", _, "replicationprotectioncontainers", _, "replicationprotecteditems", _],
        ) => {
            server.count("GET item");
            match find_item(&server, &rest[5]).await {
                Ok(item) => json(&item_wire(&server, &vault, &item).await),
                Err(r) => r,
            }
        }
        (
            Method::POST,
            ["replicationfabrics", _, "replicationprotectioncontainers", _, "replicationprotecteditems", _, action],
        ) => {
            server.count(&format!("POST {}", rest[6]));
            let input: wire::ActionInput = if body.is_empty() {
                wire::ActionInput::default()
            } else {
                match serde_json::from_slice(&body) {
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
            let request = match convert::request_of(action, &input) {
                Ok(r) => r,
                Err(m) => return arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", m),
            };
            let item = match find_item(&server, &rest[5]).await {
                Ok(item) => item,
                Err(r) => return r,
            };
            match server.sim.start(&item.name, &request).await {
                Ok(job) => accepted(&server, &vault, &path, &job.id),
                Err(e) => backend_error(e),
            }
        }
        (Method::GET, ["replicationjobs", _]) => {
            server.count("GET job");
            match server.sim.job(&rest[1]).await {
                Ok(job) => {
                    let item_id = item_id_of(&server, &vault, &job.vm).await;
                    let mut r = json(&convert::job_to_wire(&job, &vault, &item_id));
                    if !job.state.is_terminal() {
                        insert(r.headers_mut(), "retry-after", &server.retry_after());
                    }
                    r
                }
                Err(e) => backend_error(e),
            }
        }
        (Method::POST, ["replicationjobs", _, "cancel"]) => {
            server.count("POST cancel");
            match server.sim.cancel_job(&rest[1]).await {
                Ok(job) => accepted(&server, &vault, &path, &job.id),
                Err(e) => backend_error(e),
            }
        }
        (Method::GET, ["replicationrecoveryservicesproviders"]) => {
            server.count("GET providers");
            match server.sim.providers().await {
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
            }
        }
        (Method::GET, ["replicationrecoveryplans", _]) => {
            server.count("GET plan");
            match server.sim.plan_members(&rest[1]).await {
                Ok(members) => {
                    let mut ids = Vec::new();
                    for m in &members {
                        ids.push(wire::PlanMember {
                            id: item_id_of(&server, &vault, m).await,
                        });
                    }
                    json(&wire::RecoveryPlan {
                        id: format!("{vault}/replicationRecoveryPlans/{}", rest[1]),
                        name: rest[1].clone(),
                        properties: wire::RecoveryPlanProperties {
                            friendly_name: rest[1].clone(),
                            groups: vec![wire::RecoveryPlanGroup {
                                group_type: "Boot".into(),
                                replication_protected_items: ids,
                            }],
                        },
                    })
                }
                Err(e) => backend_error(e),
            }
        }
        _ => {
            server.count("404");
            arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!("No {method} operation exists at '{path}'."),
            )
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// 202 Accepted, empty body, with the headers a client finds its job by.
fn accepted(server: &Server, vault: &str, action_path: &str, job: &str) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    let version = crate::backend::azure::DEFAULT_API_VERSION;
    let h = r.headers_mut();
    insert(
        h,
        "location",
        &format!("{action_path}/operationresults/{job}?api-version={version}"),
    );
    insert(
        h,
        "azure-asyncoperation",
        &format!("{vault}/replicationOperationStatus/{job}?api-version={version}"),
    );
    insert(h, "retry-after", &server.retry_after());
    insert(h, "x-ms-request-id", job);
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

async fn list_items(server: &Server, vault: &str, uri: &Uri) -> Response {
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
            "{vault}/replicationProtectedItems?api-version={}&$skiptoken={}",
            crate::backend::azure::DEFAULT_API_VERSION,
            skip + PAGE
        )
    });
    json(&wire::Page { value, next_link })
}
