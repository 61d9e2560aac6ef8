//! Whether a response may be stored, and for how long: `http-cache-semantics` decides, with the domain's
//! `default_ttl` standing in for its Last-Modified heuristic.

use std::time::{Duration, SystemTime};

use http::header::{CACHE_CONTROL, ETAG, EXPIRES, LAST_MODIFIED, PRAGMA, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_cache_semantics::{CacheOptions, CachePolicy, RequestLike, ResponseLike};

use crate::NotStored;

/// What the policy crate needs of the request that led a fill. Request-side cache directives are dropped
/// on purpose (see `RequestHead::capture`).
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl RequestHead {
    /// Copies the request head without `Cache-Control` and `Pragma`: like nginx, the cache ignores what the
    /// client asks for, so a flood of `no-cache`/`no-store` requests can neither force misses nor keep the
    /// object out of the cache (the classic cache-busting HTTP flood).
    pub(crate) fn capture(req: &http::request::Parts) -> Self {
        let mut headers = HeaderMap::with_capacity(req.headers.len());
        for (name, value) in &req.headers {
            if name != CACHE_CONTROL && name != PRAGMA {
                headers.append(name.clone(), value.clone());
            }
        }
        RequestHead {
            method: req.method.clone(),
            uri: req.uri.clone(),
            headers,
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl RequestLike for RequestHead {
    fn uri(&self) -> Uri {
        self.uri.clone()
    }
    fn is_same_uri(&self, other: &Uri) -> bool {
        &self.uri == other
    }
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

struct ResponseHead<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
}

impl ResponseLike for ResponseHead<'_> {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

/// Freshness of a response at the moment it is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness {
    /// Age the response already had (its `Age` header: time spent in a parent's cache).
    pub initial_age: Duration,
    /// Time it stays fresh from now.
    pub ttl: Duration,
    /// `must-revalidate`/`proxy-revalidate`/`no-cache`: never served stale, not even when the origin fails.
    pub no_stale: bool,
    /// `stale-while-revalidate` (RFC 5861): answered stale at once for this long while it is refreshed.
    pub swr: Duration,
    /// `stale-if-error` (RFC 5861): served stale this long when the upstream fails.
    pub sie: Duration,
}

/// RFC 9213: the directives for this cache alone; when present, `Cache-Control` (and `Expires`) are not.
pub(crate) const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The headers freshness is judged on: with `CDN-Cache-Control`, its directives in place of
/// `Cache-Control`, and no `Expires`/`Pragma`.
fn effective(headers: &HeaderMap) -> std::borrow::Cow<'_, HeaderMap> {
    if !headers.contains_key(CDN_CACHE_CONTROL) {
        return std::borrow::Cow::Borrowed(headers);
    }
    let mut out = headers.clone();
    out.remove(CACHE_CONTROL);
    out.remove(EXPIRES);
    out.remove(PRAGMA);
    for v in headers.get_all(CDN_CACHE_CONTROL) {
        out.append(CACHE_CONTROL, v.clone());
    }
    std::borrow::Cow::Owned(out)
}

/// RFC 9111 section 1.2.2: a delta-seconds too large to handle counts as 2^31 seconds. Also keeps
/// `SystemTime` arithmetic on the lifetime from overflowing.
const MAX_LIFETIME: Duration = Duration::from_secs(1 << 31);

fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        // Never used: a response without explicit freshness gets `default_ttl` instead (see `evaluate`).
        cache_heuristic: 0.0,
        immutable_min_time_to_live: Duration::ZERO,
        ignore_cargo_cult: false,
    }
}

/// Decides whether `res`, answering `req`, may be stored, and its freshness.
///
/// Storability is the policy crate's verdict on the response as sent (GET/HEAD, understood status,
/// no `no-store`, no `private`, `Authorization` only with `public`/`s-maxage`/`must-revalidate`, ...).
/// Freshness is also the crate's (`s-maxage` > `max-age` > `Expires`, minus `Age`, zero for `no-cache`),
/// except when the response states none of `s-maxage`, `max-age`, `Expires`: then it is evaluated as if it
/// carried `s-maxage=<default_ttl>`, so `default_ttl` replaces the crate's Last-Modified heuristic, as
/// nginx's `proxy_cache_valid` does. `Set-Cookie` responses are refused whatever they say: storing one would
/// hand one client's cookie to every other client.
pub(crate) fn evaluate(
    req: &RequestHead,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    default_ttl: Duration,
) -> Result<Freshness, NotStored> {
    if headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_star(headers) {
        return Err(NotStored::VaryStar);
    }
    let headers = &*effective(headers);
    let res = ResponseHead { status, headers };
    let policy = CachePolicy::new_options(req, &res, now, options());
    if !policy.is_storable() {
        return Err(NotStored::Policy);
    }
    let directives = Directives::of(headers);
    let policy = if directives.explicit || headers.contains_key(EXPIRES) {
        policy
    } else {
        let mut with_default = headers.clone();
        with_default.append(CACHE_CONTROL, s_maxage(default_ttl));
        let res = ResponseHead {
            status,
            headers: &with_default,
        };
        CachePolicy::new_options(req, &res, now, options())
    };
    let ttl = policy.time_to_live(now).min(MAX_LIFETIME);
    // Stale from the start (`no-cache`, `max-age=0`): worth storing only with a validator, to revalidate
    // on each use (RFC 9111 section 4.3); without one every use is a full fetch anyway.
    if ttl.is_zero() && !headers.contains_key(ETAG) && !headers.contains_key(LAST_MODIFIED) {
        return Err(NotStored::NotFresh);
    }
    Ok(Freshness {
        initial_age: policy.age(now).min(MAX_LIFETIME),
        ttl,
        no_stale: directives.revalidate,
        swr: directives.swr,
        sie: directives.sie,
    })
}

fn s_maxage(ttl: Duration) -> HeaderValue {
    let mut s = String::with_capacity(30);
    s.push_str("s-maxage=");
    s.push_str(&ttl.as_secs().to_string());
    // Only digits and ASCII letters: always a valid header value.
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("s-maxage=0"))
}

fn vary_star(headers: &HeaderMap) -> bool {
    vary_names(headers).any(|n| n == "*")
}

/// The header names a response's `Vary` nominates, trimmed.
pub(crate) fn vary_names(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// Parses a header name from `Vary`.
pub(crate) fn vary_header_name(name: &str) -> Result<HeaderName, NotStored> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| NotStored::BadVary)
}

#[derive(Default)]
struct Directives {
    /// `max-age` or `s-maxage` present.
    explicit: bool,
    revalidate: bool,
    swr: Duration,
    sie: Duration,
}

impl Directives {
    fn of(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let mut kv = part.splitn(2, '=');
                let name = kv.next().unwrap_or("").trim();
                let secs = || {
                    let v = kv.clone().next().unwrap_or("").trim().trim_matches('"');
                    Duration::from_secs(v.parse::<u64>().unwrap_or(0)).min(MAX_LIFETIME)
                };
                if name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage") {
                    d.explicit = true;
                } else if name.eq_ignore_ascii_case("must-revalidate")
                    || name.eq_ignore_ascii_case("proxy-revalidate")
                    || name.eq_ignore_ascii_case("no-cache")
                {
                    d.revalidate = true;
                } else if name.eq_ignore_ascii_case("stale-while-revalidate") {
                    d.swr = secs();
                } else if name.eq_ignore_ascii_case("stale-if-error") {
                    d.sie = secs();
                }
            }
        }
        d
    }
}
