//! The simulator's own endpoints beside the ASR paths: the faults of `/_simulator/faults`
//! and the client-credentials token endpoint.

use super::responses::{arm_error, insert, json};
use super::{faults, lock, Server};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// `POST /_simulator/faults` arms (one fault or a list), `DELETE` disarms all, `GET` lists
/// those still armed. No authentication: the simulator is a test tool.
pub(crate) fn faults_endpoint(server: &Server, method: &Method, body: &[u8]) -> Response {
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
                        format!("expected {{\"on\": \"GET job\", \"fault\": \"500\" | \"503\" | \"429\" | \"404\" | \"409\" | \"302\" | \"307\" | \"drop\" | \"slow\" | \"malformed\" | \"html\" | \"accept-then-hang\" | \"accept-without-job\" | \"accept-late\" | \"no-retry-after\", \"times\": 1, \"delay_ms\": 0, \"retry_after_s\": 1, \"to\": \"http://HOST:PORT\"}} or a list of them: {e}"),
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
pub(crate) fn token_endpoint(server: &Server, body: &[u8]) -> Response {
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
