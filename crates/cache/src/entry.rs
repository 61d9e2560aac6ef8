//! Stored objects and the responses built from them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AGE, CONNECTION, CONTENT_LENGTH, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// `X-Cache`, set on every response the proxy sends for a cacheable domain.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Headers that describe one connection, not the object: never stored (RFC 9110 section 7.6.1). `Age` is
/// dropped too because it is recomputed on every hit.
/// `CDN-Cache-Control` is for this node alone (RFC 9213: the CDN it targets), and `Cache-Tag`/`Surrogate-Key`
/// name purge groups: none of them is stored or sent downstream.
const NOT_STORED: [&str; 12] = [
    "cdn-cache-control",
    "cache-tag",
    "surrogate-key",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Rough bytes a `HeaderMap` spends per field beyond the name and value text (index slot, entry, the two
/// `Bytes` handles); what matters is that a response with many small headers is not counted as free.
const PER_HEADER_OVERHEAD: usize = 64;
/// The `Entry` itself, its `Arc`, the LRU map node and the boxed key header.
pub(crate) const PER_ENTRY_OVERHEAD: usize = 256;

pub(crate) use crate::vary::VarySnapshot;

/// One cached response. Immutable once stored; shared by `Arc` between the LRU map and responses in flight,
/// so a hit copies no body bytes.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stored_at: SystemTime,
    pub initial_age: Duration,
    pub fresh_until: SystemTime,
    /// Until when it may be served stale because the upstream failed.
    pub stale_until: SystemTime,
    /// Until when it is kept at all: past `stale_until` when it has a validator to be revalidated with.
    pub keep_until: SystemTime,
    /// `stale-while-revalidate`: until when a stale copy is answered at once while one refresh runs.
    pub swr_until: SystemTime,
    pub vary: VarySnapshot,
    /// Purge groups from `Cache-Tag`/`Surrogate-Key`.
    pub tags: Box<[Box<str>]>,
    /// Bytes charged against the budget.
    pub size: usize,
}

impl Entry {
    /// Whether a request with `headers` may be served this variant.
    pub fn vary_matches(&self, headers: &HeaderMap) -> bool {
        crate::vary::matches(&self.vary, headers)
    }

    /// Whether `other` is the same variant of its URL (a fill of it replaces this one).
    pub fn same_variant(&self, other: &Entry) -> bool {
        crate::vary::same_variant(&self.vary, &other.vary)
    }

    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(ETAG)
    }

    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }

    /// Whether a conditional request can revalidate it (RFC 9111 section 4.3.1).
    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }

    pub fn age_at(&self, now: SystemTime) -> Duration {
        self.initial_age
            .saturating_add(now.duration_since(self.stored_at).unwrap_or_default())
    }
}

/// The headers to store: hop-by-hop fields and `Age` removed, `Content-Length` set to the buffered body so
/// a HEAD answered from the entry reports the GET's length. Values are copied out of the buffers they were
/// parsed in, so the byte budget charges what the entry really holds.
pub(crate) fn stored_headers(headers: &HeaderMap, body_len: usize) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        let n = name.as_str();
        if name == AGE || NOT_STORED.contains(&n) || named_by_connection(headers, n) {
            continue;
        }
        out.append(name.clone(), crate::vary::owned_value(value));
    }
    out.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    out
}

/// Purge groups of a response: `Cache-Tag` and `Surrogate-Key` values split on commas and spaces.
pub(crate) fn tags_of(headers: &HeaderMap) -> Box<[Box<str>]> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for name in ["cache-tag", "surrogate-key"] {
        for v in headers.get_all(name) {
            let Ok(v) = v.to_str() else { continue };
            for t in v.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
                if !t.is_empty() && !tags.iter().any(|have| &**have == t) {
                    tags.push(t.into());
                }
            }
        }
    }
    tags.into_boxed_slice()
}

fn named_by_connection(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name))
}

/// Bytes an entry costs: key, header text, vary snapshot and body, plus fixed overheads.
pub(crate) fn entry_size(
    key: &str,
    headers: &HeaderMap,
    vary: &[(HeaderName, Option<HeaderValue>)],
    body_len: usize,
) -> usize {
    let header_bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + PER_HEADER_OVERHEAD)
        .sum();
    let vary_bytes: usize = vary
        .iter()
        .map(|(n, v)| {
            n.as_str().len() + v.as_ref().map_or(0, HeaderValue::len) + PER_HEADER_OVERHEAD
        })
        .sum();
    PER_ENTRY_OVERHEAD + key.len() + header_bytes + vary_bytes + body_len
}

/// What the proxy puts in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache without contacting an upstream.
    Hit,
    /// Fetched from an upstream.
    Miss,
    /// Served expired from the cache because the upstream failed.
    Stale,
    /// Expired, revalidated with the upstream (which answered 304), served from the cache.
    Revalidated,
    /// Expired within `stale-while-revalidate`: served at once while a refresh runs in the background.
    Updating,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Updating => "UPDATING",
        }
    }

    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// A response found in the cache, with its age fixed at lookup time.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    entry: Arc<Entry>,
    age: Duration,
    head: bool,
}

impl CachedResponse {
    pub(crate) fn new(entry: Arc<Entry>, now: SystemTime, head: bool) -> Self {
        let age = entry.age_at(now);
        CachedResponse { entry, age, head }
    }

    pub fn status(&self) -> StatusCode {
        self.entry.status
    }

    /// Stored headers: without hop-by-hop fields, `Age` or `X-Cache`.
    pub fn headers(&self) -> &HeaderMap {
        &self.entry.headers
    }

    /// The stored body (also for a HEAD request: `into_response` is what drops it).
    pub fn body(&self) -> &Bytes {
        &self.entry.body
    }

    /// Age as of the lookup: the `Age` the response arrived with plus the time it spent here.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Whether the lookup was a HEAD request (the response then has an empty body).
    pub fn is_head(&self) -> bool {
        self.head
    }

    /// Builds the response to send: stored status and headers plus `Age` and `X-Cache`; an empty body for
    /// HEAD (its `Content-Length` still gives the GET's length).
    ///
    /// Hot path: clones the header map (the values are reference-counted) and nothing else.
    pub fn into_response(self, status: CacheStatus) -> Response<Bytes> {
        let body = if self.head {
            Bytes::new()
        } else {
            self.entry.body.clone()
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.entry.status;
        let headers = response.headers_mut();
        *headers = self.entry.headers.clone();
        headers.insert(AGE, HeaderValue::from(self.age.as_secs()));
        headers.insert(X_CACHE, status.header_value());
        response
    }

    pub(crate) fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_age_are_not_stored() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("age", HeaderValue::from_static("7"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("content-length", HeaderValue::from_static("999"));
        let out = stored_headers(&h, 5);
        assert_eq!(out.len(), 2);
        assert_eq!(out["content-type"], "text/plain");
        assert_eq!(out["content-length"], "5");
    }

    #[test]
    fn size_counts_everything() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let size = entry_size("k", &h, &[], 1000);
        assert_eq!(
            size,
            PER_ENTRY_OVERHEAD + 1 + 12 + 10 + PER_HEADER_OVERHEAD + 1000
        );
    }
}
