//! Builders shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edgeguard_cache::{Cache, CacheConfig, CacheKey, Lookup, NotStored};
use http::{Method, Request, Response, StatusCode};

/// A fixed start instant: tests move time by adding to it, never by sleeping.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

pub fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).expect("test request").into_parts().0
}

pub fn get(uri: &str) -> http::request::Parts {
    req(Method::GET, uri, &[])
}

pub fn res(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = Response::builder().status(StatusCode::from_u16(status).expect("status"));
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).expect("test response").into_parts().0
}

pub fn config() -> CacheConfig {
    CacheConfig {
        max_size: 1 << 20,
        default_ttl: Duration::from_secs(300),
        stale_grace: Duration::from_secs(3600),
        ignore_query: false,
        max_object_size: None,
        disk: None,
    }
}

pub fn cache() -> Cache {
    Cache::new(config())
}

pub fn key(cache: &Cache, req: &http::request::Parts) -> CacheKey {
    cache.key("example.com", &req.uri)
}

/// Leads a miss for `req` and completes it with the response; panics if the lookup does not lead.
pub fn fill(
    cache: &Cache,
    req: &http::request::Parts,
    res: &http::response::Parts,
    body: &'static [u8],
    now: SystemTime,
) -> Result<(), NotStored> {
    let key = key(cache, req);
    match cache.lookup_or_lead(&key, req, now) {
        Lookup::Lead { fill, .. } => fill.complete(res, Bytes::from_static(body), now),
        other => panic!("expected to lead, got {other:?}"),
    }
}

/// Short name of a lookup's variant, and whether it carries a stale copy.
pub fn kind(lookup: &Lookup) -> (&'static str, bool) {
    let stale = lookup.stale().is_some();
    let name = match lookup {
        Lookup::Hit(_) => "hit",
        Lookup::Lead { .. } => "lead",
        Lookup::Follow { .. } => "follow",
        Lookup::Pass { .. } => "pass",
        Lookup::Updating { .. } => "updating",
    };
    (name, stale)
}

/// Looks `req` up at `now` and returns the variant name; a leading guard is dropped (fill abandoned).
pub fn probe(cache: &Cache, req: &http::request::Parts, now: SystemTime) -> (&'static str, bool) {
    let key = key(cache, req);
    kind(&cache.lookup_or_lead(&key, req, now))
}
