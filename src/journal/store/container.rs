//! Creates the state store's container when it is missing: the one request `object_store`
//! does not make (Create Container, `PUT <endpoint>/<container>?restype=container`), signed
//! with the same credential: a shared key (signed here, as the service documents it), a
//! bearer token or a SAS from `object_store`'s own credential provider.

use super::blob::Client;
use base64::Engine;
use hmac::{Hmac, Mac};
use object_store::azure::AzureCredential;

const VERSION: &str = "2021-08-06";

/// The shared-key signature of a Create Container request to `path` at `date`.
fn signature(account: &str, key: &str, path: &str, date: &str) -> Result<String, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| "AZURE_STORAGE_ACCOUNT_KEY is not base64".to_string())?;
    // VERB, then eleven standard headers (all empty for this request), the x-ms- headers
    // and the resource with its query.
    let text = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{account}{path}\nrestype:container"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(text.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Creates `client`'s container; one that exists already (made meanwhile) is fine.
pub async fn create(client: &Client) -> Result<(), String> {
    let mut url = url::Url::parse(&format!("{}/{}", client.endpoint, client.container))
        .map_err(|e| e.to_string())?;
    url.query_pairs_mut().append_pair("restype", "container");
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = http
        .put(url.clone())
        .header("x-ms-date", &date)
        .header("x-ms-version", VERSION)
        .header("content-length", "0");
    request = match (&client.key, client.credentials().get_credential().await) {
        (Some(key), _) => {
            let sig = signature(&client.account, key, url.path(), &date)?;
            request.header(
                "authorization",
                format!("SharedKey {}:{sig}", client.account),
            )
        }
        (None, Ok(credential)) => match credential.as_ref() {
            AzureCredential::BearerToken(token) => request.bearer_auth(token),
            AzureCredential::SASToken(pairs) => request.query(pairs),
            AzureCredential::AccessKey(_) => request,
        },
        (None, Err(e)) => return Err(format!("no credential for the store: {e}")),
    };
    let answer = request.send().await.map_err(|e| {
        // The URL has no secret in it (a SAS is added as a query only to the request).
        format!("{}: {}", client.endpoint, e.without_url())
    })?;
    match answer.status().as_u16() {
        201 | 409 => Ok(()),
        status => {
            let text = answer.text().await.unwrap_or_default();
            let code = text
                .split("<Code>")
                .nth(1)
                .and_then(|s| s.split("</Code>").next())
                .unwrap_or("");
            Err(format!(
                "the store answered {status} {code}; create container `{}` yourself, or use a credential that may create containers",
                client.container
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_request_and_the_key() {
        let key = base64::engine::general_purpose::STANDARD.encode(b"k");
        let a = signature("acct", &key, "/acct/c", "Mon, 01 Jan 2029 00:00:00 GMT").unwrap();
        let b = signature("acct", &key, "/acct/d", "Mon, 01 Jan 2029 00:00:00 GMT").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 44, "a base64 SHA-256");
        assert!(signature("acct", "not base64!", "/c", "d").is_err());
    }
}
