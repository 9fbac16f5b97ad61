//! Protected items: their ARM paths and wire form, the paged list, one item, and the
//! actions (failovers, commit...) that start a job on one.

use super::paging::PAGE;
use super::responses::{accepted, arm_error, backend_error, json};
use super::routing::Caller;
use super::{lock, Server};
use crate::backend::azure::{convert, wire};
use crate::backend::{Backend, Item, Site};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

pub(crate) fn item_path(vault: &str, item: &Item) -> String {
    let fabric = match item.active_location {
        Site::Primary | Site::Recovery => "primary",
    };
    format!(
        "{vault}/replicationFabrics/{fabric}/replicationProtectionContainers/{fabric}-container/replicationProtectedItems/{}",
        item.id
    )
}

pub(crate) async fn item_id_of(server: &Server, vault: &str, name: &str) -> String {
    match server.sim.item(name).await {
        Ok(item) => item_path(vault, &item),
        Err(_) => String::new(),
    }
}

pub(crate) async fn item_wire(server: &Server, vault: &str, item: &Item) -> wire::ProtectedItem {
    let current = match &item.current_job {
        Some(id) => server.sim.job(id).await.ok(),
        None => None,
    };
    convert::item_to_wire(item, &item_path(vault, item), current.as_ref())
}

pub(crate) async fn find_item(server: &Server, arm_name: &str) -> Result<Item, Response> {
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

pub(crate) async fn list_items(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
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

/// Starts the job an action (`plannedFailover`, `commit`...) asks for on an item: 202 with
/// the headers a client finds it by.
pub(crate) async fn action(
    server: &Server,
    vault: &str,
    path: &str,
    name: &str,
    action: &str,
    body: &[u8],
    caller: Caller,
) -> Response {
    let Caller {
        client_request_id,
        origin,
    } = caller;
    let origin = origin.as_str();
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
    let item = match find_item(server, name).await {
        Ok(item) => item,
        Err(r) => return r,
    };
    // What reached the service, per item: how tests prove nothing was sent twice.
    server.count(&format!(
        "issued {} {}",
        item.name,
        request.operation.as_str()
    ));
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
