//! Cache keys: host + path (+ query).

use std::fmt;

use http::Uri;

/// Identifies one cached object within a domain's cache: lower-cased host, path, and `?query` unless the
/// domain ignores query strings.
///
/// Built on the request path with one exact-size allocation and no formatting machinery. The path is taken
/// as sent: no percent-decoding or dot-segment removal (that normalisation, if wanted, belongs to the
/// router before the key is built).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Box<str>);

impl CacheKey {
    /// `host` is the name the request was routed by (without port); `uri` is the request target.
    pub fn new(host: &str, uri: &Uri, ignore_query: bool) -> Self {
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let query = if ignore_query {
            None
        } else {
            uri.query().filter(|q| !q.is_empty())
        };
        let len = host.len() + path.len() + query.map_or(0, |q| q.len() + 1);
        let mut s = String::with_capacity(len);
        s.push_str(host);
        s.make_ascii_lowercase();
        s.push_str(path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        CacheKey(s.into_boxed_str())
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
    fn path_case_is_kept() {
        assert_ne!(key("h", "/A", false), key("h", "/a", false));
    }
}
