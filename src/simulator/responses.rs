//! The answers every handler shares: ARM error bodies, JSON, the 202 a client finds its job
//! by, headers, and the dropped connection of a fault.

use super::routing::Caller;
use super::Server;
use crate::backend::azure::wire;
use crate::backend::BackendError;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Drops the connection without an answer: unwinds the connection's task (tokio ends it and
/// closes the socket) without running the panic hook, so nothing is printed. This needs
/// unwinding panics (the default; the crate does not set `panic = "abort"`).
pub(crate) fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("runbook simulator: connection dropped by a fault"))
}

pub(crate) fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = wire::ArmError {
        error: wire::ArmErrorBody {
            code: code.into(),
            message: message.into(),
        },
    };
    (status, axum::Json(body)).into_response()
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

pub(crate) fn backend_error(e: BackendError) -> Response {
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
        BackendError::Transport(m) | BackendError::Untrusted(m) => {
            arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", m)
        }
        BackendError::Credentials(m) => {
            arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", m)
        }
    }
}

pub(crate) fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// 202 Accepted, empty body, with the headers a client follows operation `op` by: its
/// status (`Azure-AsyncOperation`), its result (`Location`, under the action's path), both
/// with the caller's api-version, when to ask again, and the operation's id as the request's.
pub(crate) fn accepted(
    server: &Server,
    caller: &Caller,
    vault: &str,
    action_path: &str,
    op: &str,
) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    let (origin, version) = (&caller.origin, caller.api_version());
    let h = r.headers_mut();
    insert(
        h,
        "location",
        &format!("{origin}{action_path}/operationresults/{op}?api-version={version}"),
    );
    insert(
        h,
        "azure-asyncoperation",
        &format!("{origin}{vault}/replicationOperationStatus/{op}?api-version={version}"),
    );
    insert(h, "retry-after", &server.retry_after());
    // A GUID, as ARM's are: the operation's (and so its job's) name, which clients that
    // read the job from this header (the service sends the job's path) find as its last
    // segment.
    insert(h, "x-ms-request-id", op);
    r
}
