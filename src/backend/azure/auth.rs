//! Bearer tokens for ARM, from the usual sources in the usual order: a token given directly
//! (`AZURE_ACCESS_TOKEN`), client credentials (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`), managed identity (when the platform announces it with
//! `IDENTITY_ENDPOINT`), and the Azure CLI. Tokens are cached and refreshed five minutes
//! before they expire. Secrets and tokens never appear in `Debug` output or errors, and a
//! token endpoint's redirect is never followed: it would carry the secret elsewhere.

use super::super::BackendError;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// The ARM audience.
pub const RESOURCE: &str = "https://management.azure.com/";
const SCOPE: &str = "https://management.azure.com/.default";
/// Refresh a token this long before it expires (or after four fifths of a shorter life).
const EARLY: Duration = Duration::from_secs(300);

/// When to refresh a token that expires at `expires`, fetched now.
fn refresh_at(expires: Instant) -> Instant {
    let life = expires.saturating_duration_since(Instant::now());
    expires - EARLY.min(life / 5)
}

/// Where tokens come from.
#[derive(Clone)]
pub enum Credential {
    /// A token given as it is; it cannot be refreshed.
    Static(String),
    /// The client-credentials flow against `{authority}/{tenant}/oauth2/v2.0/token`.
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: String,
    },
    /// The platform's managed-identity endpoint (`IDENTITY_ENDPOINT` with `IDENTITY_HEADER`).
    ManagedIdentity { endpoint: String, header: String },
    /// `az account get-access-token`.
    AzureCli,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Static(_) => "Credential::Static(<redacted>)",
            Credential::ClientSecret { .. } => "Credential::ClientSecret(<redacted>)",
            Credential::ManagedIdentity { .. } => "Credential::ManagedIdentity",
            Credential::AzureCli => "Credential::AzureCli",
        })
    }
}

impl Credential {
    /// The first source the environment offers, in the order Azure SDKs try them.
    pub fn from_env(authority: &str) -> Result<Credential, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(token) = var("AZURE_ACCESS_TOKEN") {
            return Ok(Credential::Static(token));
        }
        if let (Some(tenant), Some(client_id), Some(secret)) = (
            var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            var("AZURE_CLIENT_SECRET"),
        ) {
            return Ok(Credential::ClientSecret {
                authority: authority.trim_end_matches('/').to_string(),
                tenant,
                client_id,
                secret,
            });
        }
        if let (Some(endpoint), Some(header)) = (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            return Ok(Credential::ManagedIdentity { endpoint, header });
        }
        if on_path("az") {
            return Ok(Credential::AzureCli);
        }
        Err("no credentials: set AZURE_ACCESS_TOKEN, or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, run on a platform with a managed identity, or sign in with `az login`".into())
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A credential with its cached token.
pub struct Tokens {
    credential: Credential,
    http: reqwest::Client,
    cache: Mutex<Option<(String, Option<Instant>)>>,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliAnswer {
    access_token: String,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
    #[serde(default, rename = "expires_on")]
    expires_on_unix: Option<serde_json::Value>,
}

fn number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// When a token expires, from `expires_in` (seconds from now) or `expires_on` (Unix seconds).
fn expiry(
    expires_in: Option<&serde_json::Value>,
    expires_on: Option<&serde_json::Value>,
) -> Option<Instant> {
    if let Some(secs) = expires_in.and_then(number) {
        return Instant::now().checked_add(Duration::from_secs(secs.min(366 * 86400)));
    }
    let on = expires_on.and_then(number)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Instant::now().checked_add(Duration::from_secs(on.saturating_sub(now).min(366 * 86400)))
}

impl Tokens {
    pub fn new(credential: Credential, http: reqwest::Client) -> Tokens {
        Tokens {
            credential,
            http,
            cache: Mutex::new(None),
        }
    }

    /// A valid token: the cached one until it is due for refresh (or `refresh` asks).
    pub async fn get(&self, refresh: bool) -> Result<String, BackendError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, expires)) = cache.as_ref() {
            let fresh = expires.is_none_or(|at| Instant::now() < at);
            if fresh && !(refresh && expires.is_some()) {
                return Ok(token.clone());
            }
        }
        let (token, expires) = self.fetch().await?;
        *cache = Some((token.clone(), expires.map(refresh_at)));
        Ok(token)
    }

    async fn fetch(&self) -> Result<(String, Option<Instant>), BackendError> {
        let failed = |what: &str, detail: String| {
            BackendError::Transport(format!("cannot get a token from {what}: {detail}"))
        };
        let unreadable = |what: &str| {
            BackendError::Untrusted(format!(
                "{what} answered without an access token; no token was taken from it"
            ))
        };
        match &self.credential {
            Credential::Static(token) => Ok((token.clone(), None)),
            Credential::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => {
                let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", SCOPE),
                ];
                let what = "the client-credentials flow";
                let resp = self
                    .http
                    .post(&url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| failed(what, e.without_url().to_string()))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(refused(
                        what,
                        &url,
                        status,
                        &headers,
                        &text,
                        "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                    ));
                }
                let answer: TokenAnswer =
                    serde_json::from_str(&text).map_err(|_| unreadable(what))?;
                let expires = expiry(answer.expires_in.as_ref(), answer.expires_on.as_ref());
                Ok((answer.access_token, expires))
            }
            Credential::ManagedIdentity { endpoint, header } => {
                let resp = self
                    .http
                    .get(endpoint)
                    .query(&[("api-version", "2019-08-01"), ("resource", RESOURCE)])
                    .header("X-IDENTITY-HEADER", header)
                    .send()
                    .await
                    .map_err(|e| failed("the managed identity", e.without_url().to_string()))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(refused(
                        "the managed identity",
                        endpoint,
                        status,
                        &headers,
                        &text,
                        "check the identity assigned to this machine (IDENTITY_ENDPOINT, IDENTITY_HEADER)",
                    ));
                }
                let answer: TokenAnswer =
                    serde_json::from_str(&text).map_err(|_| unreadable("the managed identity"))?;
                let expires = expiry(answer.expires_in.as_ref(), answer.expires_on.as_ref());
                Ok((answer.access_token, expires))
            }
            Credential::AzureCli => {
                let out = tokio::process::Command::new("az")
                    .args([
                        "account",
                        "get-access-token",
                        "--resource",
                        RESOURCE,
                        "--output",
                        "json",
                    ])
                    .output()
                    .await
                    .map_err(|e| failed("the Azure CLI", e.to_string()))?;
                if !out.status.success() {
                    return Err(BackendError::Credentials(
                        "`az account get-access-token` failed; run `az login`".into(),
                    ));
                }
                let answer: CliAnswer =
                    serde_json::from_slice(&out.stdout).map_err(|_| unreadable("the Azure CLI"))?;
                let expires = expiry(None, answer.expires_on_unix.as_ref()).or_else(|| {
                    answer
                        .expires_on
                        .as_ref()
                        .and_then(|v| v.as_str())
                        .and_then(|s| humantime::parse_rfc3339_weak(&s.replace(' ', "T")).ok())
                        .and_then(|t| t.duration_since(SystemTime::now()).ok())
                        .map(|d| Instant::now() + d)
                });
                Ok((answer.access_token, expires))
            }
        }
    }
}

/// A token endpoint's answer that is not a token: a redirect (not followed: the secret
/// stays here), a refusal of the credentials, or the endpoint unable to answer now.
fn refused(
    what: &str,
    url: &str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    text: &str,
    check: &str,
) -> BackendError {
    if status.is_redirection() {
        let who = format!("the token endpoint of {what}");
        return super::requests::redirected(&who, "no credential", url, status, headers);
    }
    // AAD's error code only: its description may quote the request.
    let code = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.to_string());
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return BackendError::Transport(format!(
            "cannot get a token from {what}: it answered {code}"
        ));
    }
    BackendError::Credentials(format!("{what} answered {code} ({check})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_secrets() {
        let c = Credential::ClientSecret {
            authority: "https://login".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            secret: "s3cr3t-value".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", Credential::Static("tok-123".into())).contains("tok-123"));
    }

    #[test]
    fn expiry_from_seconds_or_unix_time() {
        let e = expiry(Some(&serde_json::json!(3600)), None).unwrap();
        assert!(e > Instant::now() + Duration::from_secs(3500));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let e = expiry(None, Some(&serde_json::json!((now + 600).to_string()))).unwrap();
        assert!(e > Instant::now() + Duration::from_secs(500));
        assert!(expiry(None, None).is_none());
    }
}
