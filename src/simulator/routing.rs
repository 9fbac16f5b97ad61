//! From a request to its answer: authentication, api-version, throttling and faults around
//! the ARM vault paths, parsed into a [`Route`] and dispatched to its handler.

use super::control::{faults_endpoint, token_endpoint};
use super::items::{find_item, item_wire, list_items};
use super::jobs::list_jobs;
use super::operations::{self, Resource};
use super::paging::{page, query_param};
use super::responses::{arm_error, backend_error, insert, json};
use super::{auth, items, jobs, plans, Server};
use crate::backend::azure::wire;
use crate::backend::Backend;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

/// A request on an ASR vault path, by what it asks for.
pub(crate) enum Route {
    Items,
    Item {
        name: String,
    },
    Action {
        name: String,
        action: String,
    },
    Jobs,
    Job {
        id: String,
    },
    /// `cancel`, `restart` or `resume`.
    JobAction {
        id: String,
        action: &'static str,
    },
    Providers,
    Plans,
    Plan {
        name: String,
    },
    PlanAction {
        name: String,
        action: String,
    },
    OperationStatus {
        id: String,
    },
    /// The final GET of an action's operation, under the resource the action was on.
    OperationResult {
        of: Resource,
        id: String,
    },
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
        let item = [
            "replicationfabrics",
            "replicationprotectioncontainers",
            "replicationprotecteditems",
        ];
        let is_item = lower.len() >= 6 && (0..3).all(|i| lower[2 * i] == item[i]);
        let route = match (method, lower.as_slice()) {
            (&Method::GET, ["replicationprotecteditems"]) => Route::Items,
            (&Method::GET, [_, _, _, _, _, _]) if is_item => Route::Item { name: at(5) },
            (&Method::POST, [_, _, _, _, _, _, _]) if is_item => Route::Action {
                name: at(5),
                action: at(6),
            },
            (&Method::GET, [_, _, _, _, _, _, _, "operationresults", _]) if is_item => {
                Route::OperationResult {
                    of: Resource::Item(at(5)),
                    id: at(8),
                }
            }
            (&Method::GET, ["replicationjobs"]) => Route::Jobs,
            (&Method::GET, ["replicationjobs", _]) => Route::Job { id: at(1) },
            (&Method::POST, ["replicationjobs", _, action]) => {
                match ["cancel", "restart", "resume"]
                    .into_iter()
                    .find(|a| a == action)
                {
                    Some(action) => Route::JobAction { id: at(1), action },
                    None => Route::Unknown,
                }
            }
            (&Method::GET, ["replicationjobs", _, _, "operationresults", _]) => {
                Route::OperationResult {
                    of: Resource::Job(at(1)),
                    id: at(4),
                }
            }
            (&Method::GET, ["replicationrecoveryservicesproviders"]) => Route::Providers,
            (&Method::GET, ["replicationrecoveryplans"]) => Route::Plans,
            (&Method::GET, ["replicationrecoveryplans", _]) => Route::Plan { name: at(1) },
            (&Method::POST, ["replicationrecoveryplans", _, _]) => Route::PlanAction {
                name: at(1),
                action: at(2),
            },
            (&Method::GET, ["replicationrecoveryplans", _, _, "operationresults", _]) => {
                Route::OperationResult {
                    of: Resource::Plan(at(1)),
                    id: at(4),
                }
            }
            (&Method::GET, ["replicationoperationstatus", _]) => {
                Route::OperationStatus { id: at(1) }
            }
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
            Route::JobAction { action, .. } => format!("POST {action}"),
            Route::Providers => "GET providers".into(),
            Route::Plans => "GET plans".into(),
            Route::Plan { .. } => "GET plan".into(),
            Route::PlanAction { action, .. } => format!("POST plan {action}"),
            Route::OperationStatus { .. } => "GET operationStatus".into(),
            Route::OperationResult { .. } => "GET operationResult".into(),
            Route::NotVault | Route::Unknown => "404".into(),
        }
    }
}

/// `/{tenant}/oauth2/v2.0/token`.
pub(crate) fn is_token_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), [tenant, oauth2, version, token]
        if !tenant.is_empty()
            && oauth2.eq_ignore_ascii_case("oauth2")
            && version.eq_ignore_ascii_case("v2.0")
            && token.eq_ignore_ascii_case("token"))
}

pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut r = answer(&server, method, uri, headers, body).await;
    // Every answer carries a request id, a GUID as ARM's are (a 202's names its operation).
    if !r.headers().contains_key("x-ms-request-id") {
        insert(
            r.headers_mut(),
            "x-ms-request-id",
            &uuid::Uuid::new_v4().to_string(),
        );
    }
    r
}

async fn answer(
    server: &Arc<Server>,
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
        return faults_endpoint(server, &method, &body);
    }
    let path_and_query = uri.path_and_query().map_or(path.clone(), |p| p.to_string());
    if method == Method::POST && is_token_path(&path) {
        let (s, b) = (server.clone(), body.clone());
        return server
            .answer("POST token", &path_and_query, async move {
                token_endpoint(&s, &b)
            })
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
    let Some(api_version) = query_param(&uri, "api-version").filter(|v| !v.is_empty()) else {
        server.count("400 api-version");
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
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
    let kind = route.kind();
    let caller = Caller {
        client_request_id: client_request_id(&headers),
        origin,
        api_version,
    };
    // Owned, so that a fault can finish it after the client went away.
    let request = {
        let server = server.clone();
        async move { arm_request(&server, &method, &uri, &vault, route, &body, &caller).await }
    };
    let mut r = server.answer(&kind, &path_and_query, request).await;
    insert(r.headers_mut(), header, &left.to_string());
    r
}

pub(crate) fn client_request_id(headers: &HeaderMap) -> Option<String> {
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

/// Who asked: the client's request id, the origin links in answers point to, and the
/// api-version the request used (ARM's links echo it).
pub(crate) struct Caller {
    pub(crate) client_request_id: Option<String>,
    pub(crate) origin: String,
    pub(crate) api_version: String,
}

impl Caller {
    /// The api-version, as it goes into a link's query.
    pub(crate) fn api_version(&self) -> String {
        self.api_version
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            .collect()
    }
}

/// The answer to an authorized ARM request.
pub(crate) async fn arm_request(
    server: &Server,
    method: &Method,
    uri: &Uri,
    vault: &str,
    route: Route,
    body: &[u8],
    caller: &Caller,
) -> Response {
    let origin = caller.origin.as_str();
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
            items::action(server, vault, path, &name, &action, body, caller).await
        }
        Route::Jobs => list_jobs(server, vault, uri, origin).await,
        Route::Job { id } => jobs::get(server, vault, &id).await,
        Route::JobAction { id, action } => {
            jobs::action(server, caller, vault, path, &id, action).await
        }
        Route::Providers => providers(server, vault, uri, origin).await,
        Route::Plans => plans::list(server, vault, uri, origin).await,
        Route::Plan { name } => plans::get(server, vault, &name).await,
        Route::PlanAction { name, action } => {
            plans::action(server, vault, path, &name, &action, body, caller).await
        }
        Route::OperationStatus { id } => operations::status(server, vault, &id).await,
        Route::OperationResult { of, id } => {
            operations::result(server, vault, uri, of, &id, caller).await
        }
    }
}

/// The recovery services providers: each site's VMM server and its connection.
async fn providers(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let providers = match server.sim.providers().await {
        Ok(providers) => providers,
        Err(e) => return backend_error(e),
    };
    let (providers, next_link) = page(&providers, server.page_size, uri, origin);
    json(&wire::Page {
        value: providers
            .iter()
            .map(|p| wire::Provider {
                id: format!(
                    "{vault}/replicationFabrics/{0}/replicationRecoveryServicesProviders/{0}-vmm",
                    p.site.as_str()
                ),
                name: format!("{}-vmm", p.site.as_str()),
                properties: wire::ProviderProperties {
                    friendly_name: p.name.clone(),
                    connection_status: if p.connected {
                        "Connected"
                    } else {
                        "NotConnected"
                    }
                    .into(),
                    fabric_friendly_name: p.site.as_str().into(),
                },
            })
            .collect(),
        next_link,
    })
}
