//! Protected items: their ARM paths and wire form, the paged list, one item, and the
//! actions (failovers, commit...) that start a job on one.

use super::paging::page;
use super::responses::{accepted, arm_error, backend_error, json};
use super::routing::Caller;
use super::Server;
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
        Some(id) => server.sim.job(id).await.ok().filter(|j| !j.plan),
        None => None,
    };
    let mut wire = convert::item_to_wire(item, &item_path(vault, item), current.as_ref());
    if let Some(id) = &item.current_job {
        // A recovery plan's job holds its members.
        let plan_job = current.is_none().then(|| server.sim.plan_job(id)).flatten();
        if let Some(job) = plan_job {
            wire.properties.current_scenario = Some(wire::CurrentScenario {
                scenario_name: job.action.scenario().into(),
                job_id: String::new(),
                start_time: Some(job.started.rfc3339()),
            });
        }
        // The job's ARM id, as the service gives it.
        if let Some(scenario) = &mut wire.properties.current_scenario {
            scenario.job_id = format!("{vault}/replicationJobs/{id}");
        }
    }
    wire
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
    let (items, next_link) = page(&items, server.page_size, uri, origin);
    let mut value = Vec::new();
    for item in items {
        value.push(item_wire(server, vault, item).await);
    }
    json(&wire::Page { value, next_link })
}

/// An action's body: `{}` when empty, else JSON whose `providerSpecificDetails` is an object
/// (`list: true`: a list, as recovery plans take); else why not, for a 400.
pub(crate) fn action_input(body: &[u8], list: bool) -> Result<wire::ActionInput, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(wire::ActionInput::default());
    }
    let input: wire::ActionInput = serde_json::from_slice(body)
        .map_err(|e| format!("The request content is not valid JSON: {e}"))?;
    match &input.properties.provider_specific_details {
        Some(details) if details.is_array() != list => Err(if list {
            "providerSpecificDetails of a recovery plan action is a list of provider inputs, e.g. [{\"instanceType\": \"HyperVReplicaAzure\"}]"
        } else {
            "providerSpecificDetails of a protected item action is one object, e.g. {\"instanceType\": \"ProviderSpecificFailoverInput\"}"
        }
        .to_string()),
        _ => Ok(input),
    }
}

/// A 400 for a request body that is not what the action takes.
pub(crate) fn invalid_content(message: String) -> Response {
    arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
}

/// Starts the job an action (`plannedFailover`, `commit`...) asks for on an item: 202 with
/// the headers a client follows it by.
pub(crate) async fn action(
    server: &Server,
    vault: &str,
    path: &str,
    name: &str,
    action: &str,
    body: &[u8],
    caller: &Caller,
) -> Response {
    let request = match action_input(body, false)
        .and_then(|input| convert::request_of(&action.to_ascii_lowercase(), &input))
    {
        Ok(r) => r,
        Err(m) => return invalid_content(m),
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
            server.created(&job.id, caller);
            accepted(server, caller, vault, path, &job.id)
        }
        Err(e) => backend_error(e),
    }
}
