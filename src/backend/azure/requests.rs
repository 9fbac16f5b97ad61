//! Talking to ARM: request URLs and which hosts may receive the token, sending with a token
//! and a client request id, GETs with retries (backoff, jitter, `Retry-After`), ARM's
//! errors (redirects among them: never followed), and following `nextLink`s.

use super::{wire, Azure};
use crate::backend::{BackendError, ServiceError};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How many failed attempts (429s aside) a GET makes before its error is reported.
const GET_ATTEMPTS: u32 = 6;
/// How many 429s one GET waits out before its error is reported.
const GET_THROTTLES: u32 = 10;
/// How long all the retries of one GET may take.
const RETRY_BUDGET: Duration = Duration::from_secs(600);
/// The longest `Retry-After` a read waits for.
pub(crate) const READ_WAIT_CAP: Duration = Duration::from_secs(300);
/// The longest `Retry-After` a throttled POST waits for.
pub(crate) const POST_WAIT_CAP: Duration = Duration::from_secs(60);

/// Follows `nextLink`s, refusing loops and endless lists.
pub(crate) struct Pages {
    next: Option<String>,
    seen: std::collections::HashSet<String>,
}

/// The most pages one list may have (100,000 items at ARM's page size).
const MAX_PAGES: usize = 1000;

impl Pages {
    pub(crate) fn new(first: &str) -> Pages {
        Pages {
            next: Some(first.to_string()),
            seen: std::collections::HashSet::new(),
        }
    }

    pub(crate) fn next(&mut self) -> Result<Option<String>, BackendError> {
        let Some(next) = self.next.take() else {
            return Ok(None);
        };
        if !self.seen.insert(next.clone()) || self.seen.len() > MAX_PAGES {
            return Err(BackendError::Untrusted(
                "the service's list does not end (a page links back, or more than 1,000 pages)"
                    .into(),
            ));
        }
        Ok(Some(next))
    }

    pub(crate) fn link(&mut self, next: Option<String>) {
        self.next = next.filter(|n| !n.is_empty());
    }
}

/// Whether a failed send may be retried.
pub(crate) enum Failure {
    /// The request may not have reached the service (connection or timeout).
    Ambiguous(BackendError),
    Other(BackendError),
}

impl Azure {
    pub(crate) fn url(&self, path_or_url: &str) -> String {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else if path_or_url.starts_with("/subscriptions")
            || path_or_url.starts_with("/Subscriptions")
        {
            let root = self.base.split("/subscriptions").next().unwrap_or_default();
            format!("{root}{path_or_url}")
        } else if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            format!("{}/{path_or_url}", self.base)
        };
        if url.contains("api-version=") {
            url
        } else if url.contains('?') {
            format!("{url}&api-version={}", self.api_version)
        } else {
            format!("{url}?api-version={}", self.api_version)
        }
    }

    /// Whether a URL the service named may receive the token: the endpoint's own origin, or
    /// https on a host below the endpoint's domain (ARM's regional hosts).
    fn allowed_url(&self, url: &str) -> bool {
        let (Ok(u), Ok(base)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.base)) else {
            return false;
        };
        let same_origin = u.scheme() == base.scheme()
            && u.host_str() == base.host_str()
            && u.port_or_known_default() == base.port_or_known_default();
        if same_origin {
            return true;
        }
        let (Some(host), Some(base_host)) = (u.host_str(), base.host_str()) else {
            return false;
        };
        let domain = base_host.split_once('.').map_or(base_host, |(_, d)| d);
        u.scheme() == "https"
            && domain.contains('.')
            && (host == base_host || host.ends_with(&format!(".{domain}")))
    }

    pub(crate) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.next_request();
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 32) as u32,
            (t >> 16) as u16,
            n & 0xfff,
            std::process::id() & 0xfff,
            t & 0xffff_ffff_ffff
        )
    }

    /// Sends one request (after its token bucket), refreshing an expired token once.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&wire::ActionInput>,
    ) -> Result<(StatusCode, HeaderMap, String), Failure> {
        self.send_as(method, url, body, &self.request_id()).await
    }

    /// Sends with a given `x-ms-client-request-id` (a POST keeps one across its attempts,
    /// so the job it created can be recognised).
    pub(crate) async fn send_as(
        &self,
        method: Method,
        url: &str,
        body: Option<&wire::ActionInput>,
        client_request_id: &str,
    ) -> Result<(StatusCode, HeaderMap, String), Failure> {
        if !self.allowed_url(url) {
            return Err(Failure::Other(BackendError::Untrusted(format!(
                "the service pointed to `{}`, which is not the target's endpoint; the client does not follow it",
                url.split('?').next().unwrap_or_default()
            ))));
        }
        let write = method != Method::GET;
        let mut refresh = false;
        loop {
            if write {
                self.writes.take().await;
            } else {
                self.reads.take().await;
            }
            let token = self.tokens.get(refresh).await.map_err(Failure::Other)?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header("x-ms-client-request-id", client_request_id);
            if let Some(b) = body {
                req = req.json(b);
            }
            tracing::trace!(%method, path = url.split('?').next().unwrap_or_default(), "request");
            let resp = req
                .send()
                .await
                .map_err(|e| Failure::Ambiguous(BackendError::Transport(without_url(e))))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp
                .text()
                .await
                .map_err(|e| Failure::Ambiguous(BackendError::Transport(without_url(e))))?;
            if status == StatusCode::UNAUTHORIZED
                && !refresh
                && text.contains("ExpiredAuthenticationToken")
            {
                // Not processed: safe to send again with a new token.
                refresh = true;
                continue;
            }
            return Ok((status, headers, text));
        }
    }

    /// GET with retries on 5xx, 429, connection errors and unreadable answers. A 429 waits
    /// for `Retry-After` (at most [`READ_WAIT_CAP`]) and does not count as a failed attempt;
    /// all retries of one GET stay within [`RETRY_BUDGET`], and the long ones are told to the
    /// run. A redirect is not followed.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, HeaderMap), BackendError> {
        let url = self.url(path);
        let give_up = std::time::Instant::now() + RETRY_BUDGET;
        let mut delay = Duration::from_millis(200);
        let (mut failures, mut throttles) = (0, 0);
        loop {
            let (last, wait, why) = match self.send(Method::GET, &url, None).await {
                Ok((status, headers, text)) if status.is_success() => {
                    match serde_json::from_str::<serde_json::Value>(&text)
                        .and_then(|v| serde_json::from_value::<T>(without_nulls(v)))
                    {
                        Ok(value) => return Ok((value, headers)),
                        Err(e) => {
                            failures += 1;
                            let err = BackendError::Transport(format!(
                                "the service answered with JSON the client cannot read ({e}){}",
                                request_id(&headers)
                            ));
                            (err, None, "the service's answer was unreadable".to_string())
                        }
                    }
                }
                Ok((status, headers, text)) if status == StatusCode::TOO_MANY_REQUESTS => {
                    throttles += 1;
                    let wait =
                        retry_after(&headers, READ_WAIT_CAP).unwrap_or(Duration::from_secs(1));
                    let why = "throttled by the service".to_string();
                    (arm_error(status, &headers, &text), Some(wait), why)
                }
                Ok((status, headers, text)) if status.is_server_error() => {
                    failures += 1;
                    let why = format!("the service answered {status}");
                    (
                        arm_error(status, &headers, &text),
                        retry_after(&headers, READ_WAIT_CAP),
                        why,
                    )
                }
                Ok((status, headers, text)) => {
                    return Err(arm_error_at(&url, status, &headers, &text))
                }
                Err(Failure::Ambiguous(e)) => {
                    failures += 1;
                    (e, None, "the service did not answer".to_string())
                }
                Err(Failure::Other(e)) => return Err(e),
            };
            let pause = wait.unwrap_or_else(|| self.jitter(delay));
            if failures >= GET_ATTEMPTS
                || throttles > GET_THROTTLES
                || std::time::Instant::now() + pause > give_up
            {
                return Err(last);
            }
            tracing::debug!(failures, throttles, ?pause, "retrying GET");
            self.notice(&why, pause);
            tokio::time::sleep(pause).await;
            if wait.is_none() {
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }

    /// `d` with up to a quarter of it added at random, so clients do not retry in step.
    fn jitter(&self, d: Duration) -> Duration {
        let n = self.next_request().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |x| x.subsec_nanos() as u64);
        let fraction = ((n ^ t) % 1000) as f64 / 4000.0;
        d + d.mul_f64(fraction)
    }
}

/// A transport error's text, without the URL (which names the vault).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    };
    format!("{kind} ({})", e.without_url())
}

/// Checks that `text` is an https URL, or http on a loopback address.
pub(crate) fn secure_url(what: &str, text: &str) -> Result<(), String> {
    let url =
        reqwest::Url::parse(text).map_err(|e| format!("{what} `{text}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => Err(format!(
            "{what} `{text}` uses {other}: https is required (plain http only on a loopback address)"
        )),
    }
}

/// The service sends `null` for fields it has no value for yet (a job that has not started):
/// dropped, they take their defaults.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(without_nulls).collect())
        }
        other => other,
    }
}

/// `Retry-After` in seconds, at most `cap` (a service that asks for hours is not waited on
/// for hours).
pub(crate) fn retry_after(headers: &HeaderMap, cap: Duration) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(cap))
}

pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-ms-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (request id {v})"))
        .unwrap_or_default()
}

/// What an answer that is not a success means: a redirect is not followed
/// ([`BackendError::Untrusted`]), a 401 rejects the credentials, a 429 or 5xx says the
/// service could not take the request now ([`BackendError::Transport`]), and any other
/// status is the service's refusal with ARM's error code and message and the request id.
pub(crate) fn arm_error(status: StatusCode, headers: &HeaderMap, text: &str) -> BackendError {
    arm_error_at("", status, headers, text)
}

/// [`arm_error`] for a request to `url` (where a relative redirect points).
pub(crate) fn arm_error_at(
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> BackendError {
    if status.is_redirection() {
        return redirected(
            "the service",
            "the token or the request",
            url,
            status,
            headers,
        );
    }
    let body: Option<wire::ArmError> = serde_json::from_str(text).ok();
    let (code, message) = body.map_or_else(
        || (status.as_u16().to_string(), format!("HTTP {status}")),
        |b| (b.error.code, b.error.message),
    );
    let rid = request_id(headers);
    if status == StatusCode::UNAUTHORIZED {
        return BackendError::Credentials(format!(
            "the service answered {status} ({code}: {message}){rid}; check the token or the principal the credentials name"
        ));
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return BackendError::Transport(format!(
            "the service answered {status} ({code}: {message}){rid}"
        ));
    }
    BackendError::Service(ServiceError {
        code,
        message: format!("{message}{rid}"),
        possible_causes: String::new(),
        recommended_action: String::new(),
    })
}

/// A 3xx from `who`: where it points (the host only) and that it was not followed, since
/// following it would carry `carried` there.
pub(crate) fn redirected(
    who: &str,
    carried: &str,
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> BackendError {
    let location = headers.get(LOCATION).and_then(|v| v.to_str().ok());
    let host = location
        .and_then(|l| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|base| base.join(l).ok())
                .or_else(|| reqwest::Url::parse(l).ok())
        })
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        });
    let to = host.map_or("with no usable Location".to_string(), |h| {
        format!("to `{h}`")
    });
    BackendError::Untrusted(format!(
        "{who} answered {status}, a redirect {to}; it was not followed, so {carried} never went there. Check the target's endpoint and authority"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{auth, convert, TargetConfig};
    use super::*;
    use crate::backend::JobInfo;
    use crate::clock::Timestamp;

    #[test]
    fn null_fields_and_idle_markers_read_as_absent() {
        // Shaped after recorded answers: a job that has not started has null fields, an
        // idle item names the scenario "None", a cleaned-up drill is MarkedForDeletion.
        let job = serde_json::json!({
            "id": "/Subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/j1",
            "name": "j1",
            "properties": {"activityId": null, "scenarioName": null, "state": "NotStarted", "tasks": null,
                           "errors": [{"providerErrorDetails": {"errorMessage": null}}], "startTime": null,
                           "targetObjectName": null}
        });
        let job: wire::Job = serde_json::from_value(without_nulls(job)).unwrap();
        let known = JobInfo {
            id: "j1".into(),
            operation: crate::backend::Operation::PlannedFailover,
            vm: "web-01".into(),
            state: crate::backend::JobState::NotStarted,
            errors: Vec::new(),
            warnings: Vec::new(),
            started: Timestamp(5),
            ended: None,
            retry_after: None,
            expected_end: None,
            skipped: None,
            plan: false,
            tasks: Vec::new(),
            waiting: None,
        };
        let info = convert::job_from_wire(&job, Some(&known)).unwrap();
        assert_eq!((info.vm.as_str(), info.started), ("web-01", Timestamp(5)));
        assert!(
            convert::job_from_wire(&job, None).is_none(),
            "no scenario and nothing known"
        );

        let item = serde_json::json!({
            "id": "/x/replicationProtectedItems/i1", "name": "i1",
            "properties": {"friendlyName": "vm1", "protectionState": "Protected", "activeLocation": "Primary",
                           "testFailoverState": "MarkedForDeletion",
                           "currentScenario": {"scenarioName": "None", "jobId": "/x/replicationJobs/None"}}
        });
        let item: wire::ProtectedItem = serde_json::from_value(without_nulls(item)).unwrap();
        let item = convert::item_from_wire(&item);
        assert!(
            item.current_job.is_none() && item.test_failover_state.is_none(),
            "{item:?}"
        );
    }

    #[test]
    fn answers_that_are_not_successes_say_what_they_are() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-request-id", "req-7".parse().unwrap());
        let body =
            r#"{"error": {"code": "OperationNotAllowed", "message": "No failover to commit."}}"#;
        let BackendError::Service(refused) = arm_error(StatusCode::BAD_REQUEST, &headers, body)
        else {
            panic!("a 400 is the service's refusal")
        };
        assert_eq!(refused.code, "OperationNotAllowed");
        assert_eq!(refused.message, "No failover to commit. (request id req-7)");
        assert!(matches!(
            arm_error(StatusCode::UNAUTHORIZED, &headers, body),
            BackendError::Credentials(m) if m.contains("401") && m.contains("req-7")
        ));
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            let e = arm_error(status, &headers, "<html>busy</html>");
            assert!(e.is_transient() && !e.is_answer(), "{status}: {e:?}");
        }
        headers.insert(
            LOCATION,
            "https://evil.example:8443/steal?x=1".parse().unwrap(),
        );
        let e = arm_error_at(
            "https://management.azure.com/x",
            StatusCode::TEMPORARY_REDIRECT,
            &headers,
            "",
        );
        let BackendError::Untrusted(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("307 Temporary Redirect") && m.contains("`evil.example:8443`"),
            "{m}"
        );
        assert!(!m.contains("steal"), "only the host: {m}");
        assert!(!e.is_transient() && !e.is_answer());
        // A relative Location points at the request's own host.
        headers.insert(LOCATION, "/elsewhere".parse().unwrap());
        let e = arm_error_at("http://127.0.0.1:9/x", StatusCode::FOUND, &headers, "");
        assert!(e.to_string().contains("`127.0.0.1:9`"), "{e}");
    }

    #[test]
    fn retry_after_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(retry_after(&headers, POST_WAIT_CAP), Some(POST_WAIT_CAP));
        assert_eq!(
            retry_after(&headers, READ_WAIT_CAP),
            Some(Duration::from_secs(300))
        );
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            retry_after(&headers, POST_WAIT_CAP),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn links_to_other_hosts_do_not_get_the_token() {
        let local = Azure::new(
            &TargetConfig::new("s", "g", "v", "http://127.0.0.1:9"),
            auth::Credential::Static("t".into()),
        )
        .unwrap();
        assert!(local.allowed_url("http://127.0.0.1:9/subscriptions/s/x?$skiptoken=1"));
        assert!(!local.allowed_url("http://127.0.0.1:10/subscriptions/s/x"));
        let arm = Azure::new(
            &TargetConfig::new("s", "g", "v", "https://management.azure.com"),
            auth::Credential::Static("t".into()),
        )
        .unwrap();
        assert!(arm.allowed_url("https://westus.management.azure.com/subscriptions/s/x"));
        assert!(!arm.allowed_url("http://westus.management.azure.com/subscriptions/s/x"));
        assert!(!arm.allowed_url("https://evil.example/subscriptions/s/x"));
        let insecure = TargetConfig {
            authority: "http://login.example".into(),
            ..TargetConfig::new("s", "g", "v", "https://management.azure.com")
        };
        assert!(insecure.check().unwrap_err().contains("authority"));
    }

    #[test]
    fn urls_carry_the_api_version_and_follow_links_as_given() {
        let target = TargetConfig::new("s", "g", "v", "https://management.azure.com/");
        let azure = Azure::new(&target, auth::Credential::Static("t".into())).unwrap();
        assert_eq!(
            azure.url("replicationJobs/j"),
            "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/j?api-version=2024-04-01"
        );
        assert_eq!(
            azure.url("https://regional.example/next?api-version=2024-04-01&$skiptoken=2"),
            "https://regional.example/next?api-version=2024-04-01&$skiptoken=2"
        );
        assert!(azure
            .url("/subscriptions/s/x")
            .starts_with("https://management.azure.com/subscriptions/s/x?api-version="));
    }
}
