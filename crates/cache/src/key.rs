//! Cache keys: host + path (+ query), and the scheme when it is HTTPS.

use std::fmt;

use http::Uri;

/// Identifies one cached object within a domain's cache: lower-cased host, path, `?query` unless the
/// domain ignores query strings, and [`HTTPS_SUFFIX`] for requests that came over HTTPS.
///
/// The scheme is part of the key because origins answer the two differently: the classic case is an origin
/// that redirects plain HTTP to HTTPS with a cacheable 301, which, shared with HTTPS clients, would send them
/// round a redirect loop. The marker is a suffix so that a host + path prefix still selects both schemes.
///
/// Built on the request path with one exact-size allocation and no formatting machinery. The path is taken
/// as sent: no percent-decoding or dot-segment removal (that normalisation, if wanted, belongs to the
/// router before the key is built).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Box<str>);

/// Ends the key of an object fetched for an HTTPS request. `#` cannot occur in a request target (a fragment is
/// never sent), so no plain-HTTP key ends with it.
pub const HTTPS_SUFFIX: &str = "#https";

impl CacheKey {
    /// The key of a plain-HTTP request: `host` is the name the request was routed by (without port); `uri`
    /// is the request target.
    pub fn new(host: &str, uri: &Uri, ignore_query: bool) -> Self {
        Self::for_scheme(host, uri, ignore_query, false)
    }

    /// The key of a request that came over HTTPS (`https`) or plain HTTP.
    pub fn for_scheme(host: &str, uri: &Uri, ignore_query: bool, https: bool) -> Self {
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let query = if ignore_query {
            None
        } else {
            uri.query().filter(|q| !q.is_empty())
        };
        let suffix = if https { HTTPS_SUFFIX } else { "" };
        let len = host.len() + path.len() + query.map_or(0, |q| q.len() + 1) + suffix.len();
        let mut s = String::with_capacity(len);
        s.push_str(host);
        s.make_ascii_lowercase();
        s.push_str(path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        s.push_str(suffix);
        CacheKey(s.into_boxed_str())
    }

    /// The key of the same URL under the other scheme (plain HTTP for an HTTPS key and back).
    pub fn other_scheme(&self) -> CacheKey {
        match self.0.strip_suffix(HTTPS_SUFFIX) {
            Some(plain) => CacheKey(plain.into()),
            None => CacheKey(format!("{}{HTTPS_SUFFIX}", self.0).into_boxed_str()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn boxed(&self) -> Box<str> {
        self.0.clone()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str, uri: &str, ignore_query: bool) -> String {
        let uri: Uri = uri.parse().expect("test uri");
        CacheKey::new(host, &uri, ignore_query).as_str().to_owned()
    }

    #[test]
    fn host_path_query() {
        assert_eq!(
            key("Example.COM", "/a/b?x=1&y=2", false),
            "example.com/a/b?x=1&y=2"
        );
        assert_eq!(key("example.com", "/a/b?x=1", true), "example.com/a/b");
        assert_eq!(key("example.com", "/a?", false), "example.com/a");
        assert_eq!(
            key("example.com", "http://other.test/p?q", false),
            "example.com/p?q"
        );
    }

    #[test]
    fn https_keys_differ_and_share_the_prefix() {
        let uri: Uri = "/a?x=1".parse().unwrap();
        let plain = CacheKey::for_scheme("h", &uri, false, false);
        let tls = CacheKey::for_scheme("h", &uri, false, true);
        assert_ne!(plain, tls);
        assert_eq!(tls.as_str(), "h/a?x=1#https");
        assert!(tls.as_str().starts_with("h/a"));
        assert_eq!(tls.other_scheme(), plain);
        assert_eq!(plain.other_scheme(), tls);
    }

    #[test]
    fn path_case_is_kept() {
        assert_ne!(key("h", "/A", false), key("h", "/a", false));
    }
}
