//! Long-running operations as ARM clients follow them: `replicationOperationStatus/{op}`
//! (the `Azure-AsyncOperation` of a 202: 200 with `status` InProgress, Succeeded, Failed or
//! Canceled) and the action's `operationresults/{op}` (its `Location`: 202 while it runs,
//! then 200 with the resource the action was on). An item's or a plan's action is followed
//! by its job's id; an action on a job (cancel, restart, resume) is an operation of its own.

use super::items::{find_item, item_wire};
use super::jobs::job_wire;
use super::plans::plan_wire;
use super::responses::{arm_error, backend_error, insert, json};
use super::routing::Caller;
use super::{lock, Server};
use crate::backend::{Backend, JobState, ServiceError};
use crate::clock::Timestamp;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// The operations on jobs, by id.
#[derive(Default)]
pub(crate) struct JobOperations {
    ops: HashMap<String, JobOperation>,
}

struct JobOperation {
    started: Timestamp,
    /// The job whose progress is the operation's (a restart's new job); `None` for an
    /// operation done when it was accepted (a cancel).
    follows: Option<String>,
}

impl Server {
    /// Records an operation on a job and returns its new id (a GUID).
    pub(crate) fn job_operation(&self, follows: Option<String>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let started = self.sim.now();
        lock(&self.operations)
            .ops
            .insert(id.clone(), JobOperation { started, follows });
        id
    }
}

/// Where an operation stands.
struct Progress {
    /// ARM's spelling: `InProgress`, `Succeeded`, `Failed`, `Canceled`.
    status: &'static str,
    started: Timestamp,
    ended: Option<Timestamp>,
    error: Option<ServiceError>,
    /// The job the operation's result is about, when it follows one.
    job: Option<String>,
}

/// ARM's status of an operation whose job is in `state`.
fn status_of(state: &JobState) -> &'static str {
    match state {
        JobState::Succeeded => "Succeeded",
        JobState::Failed => "Failed",
        JobState::Cancelled => "Canceled",
        _ => "InProgress",
    }
}

async fn progress(server: &Server, op: &str) -> Option<Progress> {
    let recorded = lock(&server.operations)
        .ops
        .get(op)
        .map(|o| (o.started, o.follows.clone()));
    let job = match recorded {
        Some((started, None)) => {
            return Some(Progress {
                status: "Succeeded",
                started,
                ended: Some(started),
                error: None,
                job: None,
            })
        }
        Some((_, Some(job))) => job,
        // An item's or a plan's action: the operation is its job.
        None => op.to_string(),
    };
    let (state, started, ended, errors) = match server.sim.job(&job).await {
        Ok(j) => (j.state, j.started, j.ended, j.errors),
        Err(_) => {
            let j = server.sim.plan_job(&job)?;
            (j.state, j.started, j.ended, j.errors)
        }
    };
    let status = status_of(&state);
    let error = match status {
        "Failed" => Some(errors.into_iter().next().unwrap_or(ServiceError {
            code: "OperationFailed".into(),
            message: format!("Job {job} failed."),
            possible_causes: String::new(),
            recommended_action: String::new(),
        })),
        "Canceled" => Some(ServiceError {
            code: "OperationCanceled".into(),
            message: format!("Job {job} was cancelled."),
            possible_causes: String::new(),
            recommended_action: String::new(),
        }),
        _ => None,
    };
    Some(Progress {
        status,
        started,
        ended,
        error,
        job: Some(job),
    })
}

fn unknown(op: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The operation '{op}' was not found."),
    )
}

/// `GET replicationOperationStatus/{op}`.
pub(crate) async fn status(server: &Server, vault: &str, op: &str) -> Response {
    let Some(p) = progress(server, op).await else {
        return unknown(op);
    };
    let mut r = json(&serde_json::json!({
        "id": format!("{vault}/replicationOperationStatus/{op}"),
        "name": op,
        "status": p.status,
        "startTime": p.started.rfc3339(),
        "endTime": p.ended.map(|t| t.rfc3339()),
        "error": p.error.map(|e| serde_json::json!({ "code": e.code, "message": e.message })),
        "properties": null,
        "percentComplete": null,
    }));
    if p.status == "InProgress" {
        insert(r.headers_mut(), "retry-after", &server.retry_after());
    }
    r
}

/// What an `operationresults` URL is under: the resource its final GET answers with.
pub(crate) enum Resource {
    Item(String),
    Plan(String),
    Job(String),
}

/// `GET {action path}/operationresults/{op}`: 202 while the operation runs; then the
/// resource (the item, the plan, or the job, for a restart the new one); an ARM error if the
/// operation failed or was cancelled.
pub(crate) async fn result(
    server: &Server,
    vault: &str,
    uri: &Uri,
    resource: Resource,
    op: &str,
    caller: &Caller,
) -> Response {
    let Some(p) = progress(server, op).await else {
        return unknown(op);
    };
    if let Some(e) = p.error {
        return arm_error(StatusCode::BAD_REQUEST, &e.code, e.message);
    }
    if p.status == "InProgress" {
        let mut r = StatusCode::ACCEPTED.into_response();
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("{}{}{query}", caller.origin, uri.path());
        insert(r.headers_mut(), "location", &location);
        insert(r.headers_mut(), "retry-after", &server.retry_after());
        return r;
    }
    match resource {
        Resource::Item(name) => match find_item(server, &name).await {
            Ok(item) => json(&item_wire(server, vault, &item).await),
            Err(r) => r,
        },
        Resource::Plan(name) => match server.sim.plan(&name) {
            Ok(plan) => json(&plan_wire(server, vault, &plan).await),
            Err(e) => backend_error(e),
        },
        Resource::Job(id) => {
            let id = p.job.unwrap_or(id);
            match job_wire(server, vault, &id).await {
                Ok(job) => json(&job),
                Err(e) => backend_error(e),
            }
        }
    }
}
