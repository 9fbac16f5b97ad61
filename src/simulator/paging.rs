//! What the paged lists (protected items, jobs) share: the page size and the query
//! parameters their nextLinks carry.

use super::auth;
use axum::http::Uri;

/// Items per page of the protected-item list (the service pages too).
pub(crate) const PAGE: usize = 100;

/// A query parameter's value, percent-decoded.
pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|q| {
        let (k, v) = q.split_once('=')?;
        let k = auth::percent_decode(k);
        (k == name).then(|| auth::percent_decode(v))
    })
}
