//! Bearer tokens for the simulator server: the static token, and tokens issued by its
//! client-credentials endpoint (`POST /{tenant}/oauth2/v2.0/token`) with their expiry. Secrets
//! and tokens are never logged, echoed in an answer, or shown by `Debug`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expired token is still remembered (and answered with
/// `ExpiredAuthenticationToken` rather than as unknown).
const REMEMBER_EXPIRED: Duration = Duration::from_secs(24 * 3600);

/// A bearer token's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    Valid,
    Expired,
    /// Missing, malformed, or not a token this server knows.
    Invalid,
}

/// Why the token endpoint refused: AAD's `error` code, its HTTP status and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error: &'static str,
    pub description: &'static str,
}

fn refuse(status: u16, error: &'static str, description: &'static str) -> Refusal {
    Refusal {
        status,
        error,
        description,
    }
}

/// A token the endpoint issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The static token, the client credentials, and the tokens issued.
pub struct Auth {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    lifetime: Duration,
    issued: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("client_id", &self.client_id)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// An empty `token` accepts no static token (only issued ones).
    pub fn new(
        token: String,
        client_id: Option<String>,
        client_secret: Option<String>,
        lifetime: Duration,
    ) -> Auth {
        Auth {
            token,
            client_id,
            client_secret,
            lifetime,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// The standing of an `Authorization` header's value at `now`.
    pub fn check(&self, authorization: Option<&str>, now: Instant) -> Bearer {
        let Some(token) = authorization.and_then(bearer_token) else {
            return Bearer::Invalid;
        };
        if !self.token.is_empty() && same(token, &self.token) {
            return Bearer::Valid;
        }
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        match issued.get(token) {
            Some(expiry) if now < *expiry => Bearer::Valid,
            Some(_) => Bearer::Expired,
            None => Bearer::Invalid,
        }
    }

    /// The client-credentials flow: the form body of a token request, answered at `now`.
    pub fn issue(&self, form: &str, now: Instant) -> Result<Issued, Refusal> {
        let fields = parse_form(form);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let Some(grant) = field("grant_type") else {
            return Err(refuse(
                400,
                "invalid_request",
                "The request body must contain the 'grant_type' parameter.",
            ));
        };
        if grant != "client_credentials" {
            return Err(refuse(
                400,
                "unsupported_grant_type",
                "The simulator supports only the client_credentials grant type.",
            ));
        }
        let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
            return Err(refuse(
                400,
                "invalid_request",
                "The request body must contain the 'client_id' and 'client_secret' parameters.",
            ));
        };
        match field("scope") {
            None => {
                return Err(refuse(
                    400,
                    "invalid_request",
                    "The request body must contain the 'scope' parameter.",
                ))
            }
            Some(scope) if !scope.ends_with("/.default") => {
                return Err(refuse(
                    400,
                    "invalid_scope",
                    "The client-credentials flow needs a scope ending in '/.default', e.g. https://management.azure.com/.default.",
                ))
            }
            Some(_) => {}
        }
        let (Some(want_id), Some(want_secret)) = (&self.client_id, &self.client_secret) else {
            return Err(refuse(
                401,
                "invalid_client",
                "The simulator has no client credentials configured (client_id and client_secret).",
            ));
        };
        // Both compared, whichever is wrong, so the answer's timing tells nothing.
        let right_id = same(id, want_id);
        let right_secret = same(secret, want_secret);
        if !right_id {
            return Err(refuse(
                401,
                "invalid_client",
                "Application with the given client_id was not found in the tenant.",
            ));
        }
        if !right_secret {
            return Err(refuse(
                401,
                "invalid_client",
                "Invalid client secret provided for the given client_id.",
            ));
        }
        let access_token = random_token();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, expiry| now.saturating_duration_since(*expiry) < REMEMBER_EXPIRED);
        issued.insert(access_token.clone(), now + self.lifetime);
        Ok(Issued {
            access_token,
            expires_in: self.lifetime.as_secs(),
        })
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// 256 unpredictable bits, hex: SipHash keyed with the process's random keys over a counter
/// and the time (no random-number crate needed for a simulator's tokens).
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = String::from("rbsim.");
    for part in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(part);
        h.write_u128(nanos);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// An `application/x-www-form-urlencoded` body: its fields in order, names and values
/// percent-decoded (`+` is a space).
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decodes form or query text; `+` is a space, and a `%` not followed by two hex
/// digits is kept as it is. Invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(bytes.get(i + 2).copied().and_then(hex));
                if let Some((hi, lo)) = pair {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "grant_type=client_credentials&client_id=app-1&client_secret=s%2Bc%26r%3Dt+x&scope=https%3A%2F%2Fmanagement.azure.com%2F.default";

    fn auth() -> Auth {
        Auth::new(
            "static-tok".into(),
            Some("app-1".into()),
            Some("s+c&r=t x".into()),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn percent_decoding_handles_plus_hex_and_broken_escapes() {
        assert_eq!(percent_decode("a+b%20c"), "a b c");
        assert_eq!(percent_decode("%2B%2b%26%3D"), "++&=");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%4g"), "%zz%4g");
        // A sign is not a hex digit; a multi-byte character after % does not panic.
        assert_eq!(percent_decode("%+1"), "% 1");
        assert_eq!(percent_decode("%aé%é"), "%aé%é");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        assert_eq!(percent_decode("%27startTime%27"), "'startTime'");
    }

    #[test]
    fn a_form_body_parses_into_decoded_fields_in_order() {
        let fields = parse_form(FORM);
        assert_eq!(
            fields,
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "app-1".into()),
                ("client_secret".into(), "s+c&r=t x".into()),
                (
                    "scope".into(),
                    "https://management.azure.com/.default".into()
                ),
            ]
        );
        assert_eq!(
            parse_form("a&&b=&c=1=2&d%3D=x"),
            vec![
                ("a".into(), "".into()),
                ("b".into(), "".into()),
                ("c".into(), "1=2".into()),
                ("d=".into(), "x".into()),
            ]
        );
        assert!(parse_form("").is_empty());
    }

    #[test]
    fn the_right_credentials_get_a_token_that_expires() {
        let auth = auth();
        let t0 = Instant::now();
        let issued = auth.issue(FORM, t0).unwrap();
        assert_eq!(issued.expires_in, 60);
        assert!(issued.access_token.len() > 64);
        assert!(!format!("{issued:?}").contains(&issued.access_token));
        let other = auth.issue(FORM, t0).unwrap();
        assert_ne!(issued.access_token, other.access_token);
        let header = format!("Bearer {}", issued.access_token);
        assert_eq!(auth.check(Some(&header), t0), Bearer::Valid);
        assert_eq!(
            auth.check(Some(&header), t0 + Duration::from_secs(59)),
            Bearer::Valid
        );
        assert_eq!(
            auth.check(Some(&header), t0 + Duration::from_secs(60)),
            Bearer::Expired
        );
        assert_eq!(auth.check(Some("Bearer static-tok"), t0), Bearer::Valid);
        assert_eq!(auth.check(Some("bearer static-tok"), t0), Bearer::Valid);
        assert_eq!(auth.check(Some("Bearer static-to"), t0), Bearer::Invalid);
        assert_eq!(auth.check(Some("Basic static-tok"), t0), Bearer::Invalid);
        assert_eq!(auth.check(Some("Bearer "), t0), Bearer::Invalid);
        assert_eq!(auth.check(None, t0), Bearer::Invalid);
        let no_static = Auth::new(String::new(), None, None, Duration::from_secs(1));
        assert_eq!(no_static.check(Some("Bearer "), t0), Bearer::Invalid);
    }

    #[test]
    fn wrong_or_missing_credentials_are_refused_like_aad() {
        let auth = auth();
        let t0 = Instant::now();
        let refused = |form: &str| auth.issue(form, t0).unwrap_err();
        let wrong_secret = refused(&FORM.replace("s%2Bc", "s%2Bd"));
        assert_eq!(
            (wrong_secret.status, wrong_secret.error),
            (401, "invalid_client")
        );
        let wrong_id = refused(&FORM.replace("app-1", "app-2"));
        assert_eq!((wrong_id.status, wrong_id.error), (401, "invalid_client"));
        assert!(!wrong_id.description.contains("app-2"));
        let r = refused(&FORM.replace("client_credentials", "password"));
        assert_eq!((r.status, r.error), (400, "unsupported_grant_type"));
        let r = refused("client_id=app-1");
        assert_eq!((r.status, r.error), (400, "invalid_request"));
        let r = refused(&FORM.replace("%2F.default", "%2Fuser_impersonation"));
        assert_eq!((r.status, r.error), (400, "invalid_scope"));
        let unconfigured = Auth::new("t".into(), None, None, Duration::from_secs(1));
        let r = unconfigured.issue(FORM, t0).unwrap_err();
        assert_eq!((r.status, r.error), (401, "invalid_client"));
        assert!(!format!("{auth:?}").contains("s+c&r=t x"));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same("abc", "abc"));
        assert!(same("", ""));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("ab", "abc"));
        assert!(!same("", "a"));
    }
}
