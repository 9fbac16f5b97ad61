//! What the paged lists (protected items, jobs, recovery plans, providers) share: the page
//! a request's `$skiptoken` asks for, and the nextLink to the rest, which keeps the
//! request's own query (api-version, `$filter`) as the caller sent it.

use super::auth;
use axum::http::Uri;

/// Entries per page by default (the service pages too).
pub(crate) const PAGE: usize = 100;

/// A query parameter's value, percent-decoded.
pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|q| {
        let (k, v) = q.split_once('=')?;
        let k = auth::percent_decode(k);
        (k == name).then(|| auth::percent_decode(v))
    })
}

/// The page of `all` that the request asks for (`size` entries from `$skiptoken`), and the
/// absolute nextLink when more follow.
pub(crate) fn page<'a, T>(
    all: &'a [T],
    size: usize,
    uri: &Uri,
    origin: &str,
) -> (&'a [T], Option<String>) {
    let skip = query_param(uri, "$skiptoken")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0)
        .min(all.len());
    let end = (skip + size).min(all.len());
    let next = (end < all.len()).then(|| {
        let mut query: Vec<&str> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|q| !q.is_empty())
            .filter(|q| {
                auth::percent_decode(q.split('=').next().unwrap_or_default()) != "$skiptoken"
            })
            .collect();
        let token = format!("$skiptoken={end}");
        query.push(&token);
        format!("{origin}{}?{}", uri.path(), query.join("&"))
    });
    (&all[skip..end], next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_keep_the_callers_query_and_end_without_a_link() {
        let all: Vec<u32> = (0..5).collect();
        let uri: Uri = "/v/replicationJobs?api-version=2025-08-01&$filter=startTime%20eq%20%27x%27"
            .parse()
            .unwrap();
        let (first, next) = page(&all, 2, &uri, "http://h");
        assert_eq!(first, &[0, 1]);
        let next = next.unwrap();
        assert_eq!(
            next,
            "http://h/v/replicationJobs?api-version=2025-08-01&$filter=startTime%20eq%20%27x%27&$skiptoken=2"
        );
        let uri: Uri = next.trim_start_matches("http://h").parse().unwrap();
        let (second, next) = page(&all, 2, &uri, "http://h");
        assert_eq!(second, &[2, 3]);
        assert!(next.unwrap().ends_with("%27x%27&$skiptoken=4"), "one token");
        let uri: Uri = "/v/x?api-version=1&%24skiptoken=4".parse().unwrap();
        assert_eq!(page(&all, 2, &uri, "http://h"), (&all[4..], None));
        let uri: Uri = "/v/x?api-version=1&$skiptoken=99".parse().unwrap();
        assert_eq!(page(&all, 2, &uri, "http://h"), (&all[5..], None));
    }
}
