//! Faults armed on the simulator server, for tests: the next N requests of a kind (as counted
//! in the stats, e.g. `"GET job"` or `"POST plannedFailover"`) get a fault instead of, or on
//! top of, their normal answer. Armed at start ([`super::ServerOptions::faults`]) or over HTTP
//! (`POST /_simulator/faults`); and what the server answers when one fires.

use super::responses::{arm_error, drop_connection, insert};
use super::Server;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a fault does to the request it fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 500 with an ARM error body (code `InternalServerError`); the operation is not performed.
    #[serde(rename = "500")]
    ServerError,
    /// 429 with `Retry-After: 1` and an ARM error body (code `TooManyRequests`).
    #[serde(rename = "429")]
    TooManyRequests,
    /// No answer: the connection is held for `delay_ms` (default 60 s) and then dropped.
    #[serde(rename = "drop")]
    Drop,
    /// Waits `delay_ms` (default 5 s), then handles the request normally.
    #[serde(rename = "slow")]
    Slow,
    /// 200 with a body that is not valid JSON; the operation is not performed.
    #[serde(rename = "malformed")]
    Malformed,
    /// Performs the operation (a POST action creates its job), then holds the connection for
    /// `delay_ms` (default 60 s) and drops it without an answer.
    #[serde(rename = "accept-then-hang")]
    AcceptThenHang,
    /// 503 with an ARM error body (code `ServiceUnavailable`); the operation is not performed.
    #[serde(rename = "503")]
    Unavailable,
    /// 404 with an ARM error body (code `ResourceNotFound`), as for a job the service does
    /// not show yet; the operation is not performed.
    #[serde(rename = "404")]
    NotFound,
    /// 409 with an ARM error body (code `Conflict`): the service refuses the request, as it
    /// may for reasons the simulation does not model; not performed.
    #[serde(rename = "409")]
    Conflict,
    /// 302 Found to `to` (the same path and query on that origin); not performed.
    #[serde(rename = "302")]
    Found,
    /// 307 Temporary Redirect to `to` (which a client following it would send the same
    /// request, body and all); not performed.
    #[serde(rename = "307")]
    TemporaryRedirect,
    /// 200 with an HTML page (a proxy's, a captive portal's); not performed.
    #[serde(rename = "html")]
    Html,
    /// Performs the operation, then answers 200 with `{}` and without the headers that name
    /// its job (`Location`, `Azure-AsyncOperation`, `x-ms-request-id`).
    #[serde(rename = "accept-without-job")]
    AcceptWithoutJob,
    /// Holds the request for `delay_ms` (default 5 s), then performs it even if the client
    /// went away meanwhile (as a service does with a request it fully received), and answers.
    #[serde(rename = "accept-late")]
    AcceptLate,
    /// The normal answer without its `Retry-After` header, as the service's job reads are.
    #[serde(rename = "no-retry-after")]
    NoRetryAfter,
}

impl FaultKind {
    /// The name used in requests and in the stats (`"fault 500"`, `"fault drop"`...).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerError => "500",
            FaultKind::TooManyRequests => "429",
            FaultKind::Drop => "drop",
            FaultKind::Slow => "slow",
            FaultKind::Malformed => "malformed",
            FaultKind::AcceptThenHang => "accept-then-hang",
            FaultKind::Unavailable => "503",
            FaultKind::NotFound => "404",
            FaultKind::Conflict => "409",
            FaultKind::Found => "302",
            FaultKind::TemporaryRedirect => "307",
            FaultKind::Html => "html",
            FaultKind::AcceptWithoutJob => "accept-without-job",
            FaultKind::AcceptLate => "accept-late",
            FaultKind::NoRetryAfter => "no-retry-after",
        }
    }

    /// The delay when `delay_ms` is not given.
    pub fn default_delay(self) -> Duration {
        match self {
            FaultKind::Drop | FaultKind::AcceptThenHang => Duration::from_secs(60),
            FaultKind::Slow | FaultKind::AcceptLate => Duration::from_secs(5),
            _ => Duration::ZERO,
        }
    }
}

fn one() -> u32 {
    1
}

/// `{"on": "GET job", "fault": "500", "times": 2, "delay_ms": 100}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The request kind as counted in the stats (case-insensitive), or a prefix ending in `*`
    /// (`"POST *"`, `"*"` for any request).
    pub on: String,
    pub fault: FaultKind,
    /// How many matching requests get the fault (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// The wait before answering (500, 429, malformed, slow) or before dropping the connection
    /// (drop, accept-then-hang); see [`FaultKind::default_delay`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The `Retry-After` of a 429 or a 503, in seconds (default: 1 for a 429, none for a 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Where a 302 or 307 points: an origin (`http://127.0.0.1:9999`), to which the request's
    /// path and query are added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Fault {
    pub fn new(on: impl Into<String>, fault: FaultKind, times: u32) -> Fault {
        Fault {
            on: on.into(),
            fault,
            times,
            delay_ms: None,
            retry_after_s: None,
            to: None,
        }
    }

    /// The delay this fault waits (`delay_ms`, or the kind's default).
    pub fn delay(&self) -> Duration {
        self.delay_ms
            .map_or(self.fault.default_delay(), Duration::from_millis)
    }

    /// Whether the fault applies to a request of `kind`.
    pub fn matches(&self, kind: &str) -> bool {
        match self.on.strip_suffix('*') {
            Some(prefix) => kind
                .get(..prefix.len())
                .is_some_and(|k| k.eq_ignore_ascii_case(prefix)),
            None => self.on.eq_ignore_ascii_case(kind),
        }
    }

    /// Why the fault cannot be armed, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.on.trim().is_empty() {
            return Err("\"on\" must name a request kind, e.g. \"GET job\"".into());
        }
        if self.times == 0 {
            return Err("\"times\" must be at least 1".into());
        }
        let redirect = matches!(self.fault, FaultKind::Found | FaultKind::TemporaryRedirect);
        if redirect
            && self
                .to
                .as_deref()
                .is_none_or(|t| url::Url::parse(t).is_err())
        {
            return Err(
                "a redirect needs \"to\": an origin such as \"http://127.0.0.1:9999\"".into(),
            );
        }
        Ok(())
    }
}

/// The body of `POST /_simulator/faults`: one fault or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FaultRequest {
    One(Fault),
    Many(Vec<Fault>),
}

impl FaultRequest {
    pub fn into_vec(self) -> Vec<Fault> {
        match self {
            FaultRequest::One(f) => vec![f],
            FaultRequest::Many(v) => v,
        }
    }
}

/// The armed faults, first armed first.
#[derive(Debug, Default)]
pub struct Faults {
    armed: VecDeque<Fault>,
}

impl Faults {
    pub fn arm(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.armed.push_back(fault);
        }
    }

    /// Consumes one firing of the first armed fault that matches `kind`.
    pub fn take(&mut self, kind: &str) -> Option<Fault> {
        let at = self.armed.iter().position(|f| f.matches(kind))?;
        let fault = &mut self.armed[at];
        fault.times -= 1;
        let fired = Fault {
            times: 1,
            ..fault.clone()
        };
        if fault.times == 0 {
            self.armed.remove(at);
        }
        Some(fired)
    }

    /// Disarms every fault; returns how many firings were left.
    pub fn clear(&mut self) -> u64 {
        let left = self.armed.iter().map(|f| u64::from(f.times)).sum();
        self.armed.clear();
        left
    }

    /// The faults still armed, with the firings they have left.
    pub fn armed(&self) -> Vec<Fault> {
        self.armed.iter().cloned().collect()
    }
}

impl Server {
    /// The answer to a request a fault fired on: instead of `answer`, or around it.
    pub(super) async fn faulted(
        self: &Arc<Self>,
        fault: Fault,
        path_and_query: &str,
        answer: impl Future<Output = Response> + Send + 'static,
    ) -> Response {
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
                let after = fault.retry_after_s.unwrap_or(1).to_string();
                insert(r.headers_mut(), "retry-after", &after);
                r
            }
            FaultKind::Unavailable => {
                self.hold(delay).await;
                let mut r = arm_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please retry the request. (fault injected by the simulator)",
                );
                if let Some(after) = fault.retry_after_s {
                    insert(r.headers_mut(), "retry-after", &after.to_string());
                }
                r
            }
            FaultKind::NotFound => {
                self.hold(delay).await;
                arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    "The resource was not found. (fault injected by the simulator)",
                )
            }
            FaultKind::Conflict => {
                self.hold(delay).await;
                arm_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "The request conflicts with the state of the protected item. (fault injected by the simulator)",
                )
            }
            FaultKind::Found | FaultKind::TemporaryRedirect => {
                self.hold(delay).await;
                let status = if fault.fault == FaultKind::Found {
                    StatusCode::FOUND
                } else {
                    StatusCode::TEMPORARY_REDIRECT
                };
                let to = fault
                    .to
                    .as_deref()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let mut r = status.into_response();
                insert(
                    r.headers_mut(),
                    "location",
                    &format!("{to}{path_and_query}"),
                );
                r
            }
            FaultKind::Html => {
                self.hold(delay).await;
                (
                    StatusCode::OK,
                    [("content-type", "text/html; charset=utf-8")],
                    "<!doctype html><html><body><h1>Sign in to continue</h1></body></html>",
                )
                    .into_response()
            }
            FaultKind::AcceptWithoutJob => {
                self.hold(delay).await;
                let done = answer.await;
                if !done.status().is_success() {
                    return done;
                }
                (
                    StatusCode::OK,
                    [("content-type", "application/json; charset=utf-8")],
                    "{}",
                )
                    .into_response()
            }
            FaultKind::AcceptLate => {
                // Performed whatever the client does meanwhile: a task of its own, which
                // counts `"accept-late performed"` when it is done.
                let server = self.clone();
                let late = tokio::spawn(async move {
                    server.hold(delay).await;
                    let r = answer.await;
                    server.count("accept-late performed");
                    r
                });
                late.await.unwrap_or_else(|_| drop_connection())
            }
            FaultKind::NoRetryAfter => {
                self.hold(delay).await;
                let mut r = answer.await;
                r.headers_mut().remove("retry-after");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_parses_with_defaults_and_every_kind() {
        let f: Fault = serde_json::from_str(r#"{"on":"GET job","fault":"500"}"#).unwrap();
        assert_eq!(f, Fault::new("GET job", FaultKind::ServerError, 1));
        assert_eq!(f.delay(), Duration::ZERO);
        for (name, kind) in [
            ("500", FaultKind::ServerError),
            ("429", FaultKind::TooManyRequests),
            ("drop", FaultKind::Drop),
            ("slow", FaultKind::Slow),
            ("malformed", FaultKind::Malformed),
            ("accept-then-hang", FaultKind::AcceptThenHang),
            ("503", FaultKind::Unavailable),
            ("404", FaultKind::NotFound),
            ("409", FaultKind::Conflict),
            ("302", FaultKind::Found),
            ("307", FaultKind::TemporaryRedirect),
            ("html", FaultKind::Html),
            ("accept-without-job", FaultKind::AcceptWithoutJob),
            ("accept-late", FaultKind::AcceptLate),
            ("no-retry-after", FaultKind::NoRetryAfter),
        ] {
            let body = format!(r#"{{"on":"x","fault":"{name}","times":3,"delay_ms":7}}"#);
            let f: Fault = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (f.fault, f.times, f.delay()),
                (kind, 3, Duration::from_millis(7))
            );
            assert_eq!(kind.name(), name);
        }
        assert_eq!(
            Fault::new("x", FaultKind::Drop, 1).delay(),
            Duration::from_secs(60)
        );
        assert!(serde_json::from_str::<Fault>(r#"{"on":"x","fault":"501"}"#).is_err());
        let redirect: Fault =
            serde_json::from_str(r#"{"on":"x","fault":"307","to":"http://127.0.0.1:9"}"#).unwrap();
        assert!(redirect.validate().is_ok());
        assert!(
            Fault::new("x", FaultKind::Found, 1).validate().is_err(),
            "no `to`"
        );
        let storm: Fault =
            serde_json::from_str(r#"{"on":"x","fault":"429","retry_after_s":100000}"#).unwrap();
        assert_eq!(storm.retry_after_s, Some(100_000));
        assert!(serde_json::from_str::<Fault>(r#"{"on":"x","fault":"500","tims":2}"#).is_err());
        let many: FaultRequest =
            serde_json::from_str(r#"[{"on":"a","fault":"drop"},{"on":"b","fault":"slow"}]"#)
                .unwrap();
        assert_eq!(many.into_vec().len(), 2);
        assert!(Fault::new("", FaultKind::Drop, 1).validate().is_err());
        assert!(Fault::new("GET job", FaultKind::Drop, 0)
            .validate()
            .is_err());
    }

    #[test]
    fn matching_is_by_kind_case_insensitive_with_a_trailing_star() {
        let f = Fault::new("POST plannedFailover", FaultKind::Drop, 1);
        assert!(f.matches("POST plannedFailover"));
        assert!(f.matches("post PLANNEDFAILOVER"));
        assert!(!f.matches("POST plannedFailoverX"));
        assert!(!f.matches("GET job"));
        let f = Fault::new("POST *", FaultKind::Drop, 1);
        assert!(f.matches("POST failoverCommit"));
        assert!(!f.matches("GET jobs"));
        assert!(Fault::new("*", FaultKind::Drop, 1).matches("GET jobs"));
        // A multi-byte kind never panics the prefix match.
        assert!(!Fault::new("GE*", FaultKind::Drop, 1).matches("Gé"));
    }

    #[test]
    fn firings_are_consumed_first_armed_first() {
        let mut faults = Faults::default();
        faults.arm(Fault::new("GET job", FaultKind::ServerError, 2));
        faults.arm(Fault::new("GET *", FaultKind::Malformed, 1));
        faults.arm(Fault::new("POST cancel", FaultKind::Drop, 1));
        faults.arm(Fault::new("GET job", FaultKind::Slow, 0));
        assert_eq!(faults.armed().len(), 3, "times 0 arms nothing");
        assert_eq!(
            faults.take("GET items").unwrap().fault,
            FaultKind::Malformed
        );
        assert_eq!(faults.take("GET items"), None);
        let fired = faults.take("GET job").unwrap();
        assert_eq!((fired.fault, fired.times), (FaultKind::ServerError, 1));
        assert_eq!(faults.armed()[0].times, 1);
        assert_eq!(
            faults.take("GET job").unwrap().fault,
            FaultKind::ServerError
        );
        assert_eq!(faults.take("GET job"), None);
        assert_eq!(faults.clear(), 1);
        assert_eq!(faults.take("POST cancel"), None);
    }
}
