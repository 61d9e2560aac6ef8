//! The cache phase and its half of the upstream phase: one `edgeguard_cache::Cache` per domain with
//! `[domain.cache] enabled`, looked up after limit_conn (so limits count hits too), filled from the upstream's
//! answer, and fallen back on (`X-Cache: STALE`) when the upstream fails.
//!
//! A lookup's outcome travels from the cache phase to the upstream phase in `ctx.cdn.cache`: the fill guard
//! when this request leads the fetch of a missing object, and the expired copy within `stale_grace`, if any.
//! Followers of a fill in flight wait in the cache phase and answer as hits, or go upstream themselves when
//! the leader brought nothing they may share.
//!
//! Filling: a response whose `Content-Length` is within the object limit and that the cache would store is
//! read whole, stored, then sent (small objects: one write to the client, and a body that breaks midway can
//! still fall back on a stale copy). One of unknown length (chunked) that the cache would store is streamed
//! and copied as it goes (`ProxyBody::fill`), stored when it ends within the object limit; followers wait
//! for that end. Anything else — too large or not storable — is streamed and not stored; the guard is
//! dropped at once so followers do not wait for it.
//!
//! Hot path (a hit): one key allocation, one short lock in the cache, a header-map clone; no body copy.

use bytes::Bytes;
use edgeguard_cache::{CacheKey, CacheStatus, CachedResponse, ClientConditions, Lookup, X_CACHE};
use edgeguard_limit::Clock;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::ctx::{Pending, RequestCtx};
use crate::runtime::DomainRt;

/// The cache phase: answers fresh hits (and followers whose leader stored the object); otherwise leaves the
/// lookup in `ctx.cdn.cache` and gives the request back for the upstream phase.
pub(crate) async fn lookup(
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
    clock: &dyn Clock,
) -> Result<Request<Incoming>, Response<ProxyBody>> {
    let Some(domain) = ctx.domain.clone() else {
        return Ok(req);
    };
    let Some(cache) = domain.cache.as_ref() else {
        return Ok(req);
    };
    let (mut parts, body) = req.into_parts();
    let key = cache.key_for(&domain.name, &parts.uri, ctx.conn.https);
    ctx.cdn.now = ctx.cdn.epoch.now(clock);
    // A GET's conditions (and `Range`) are taken off before the lookup: a fill must bring the whole
    // object, and they are answered from the stored one. They go back on a request that only passes.
    let conds = if parts.method == http::Method::GET {
        ClientConditions::take(&mut parts.headers)
    } else {
        ClientConditions::of(&parts.headers)
    };
    let (fill, stale) = match cache.lookup(&key, &parts, ctx.cdn.now).await {
        Lookup::Hit(c) => return Err(cached(ctx, c, CacheStatus::Hit, conds.as_ref())),
        Lookup::Updating { stale, fill } => {
            if let Some(fill) = fill {
                crate::phases::refresh::spawn(ctx, &domain, &parts, fill);
            }
            return Err(cached(ctx, stale, CacheStatus::Updating, conds.as_ref()));
        }
        Lookup::Lead { fill, stale } => (Some(fill), stale),
        Lookup::Pass { stale } => (None, stale),
        Lookup::Follow { wait, stale } => {
            // nginx's proxy_cache_lock_timeout: past it, fetch without storing rather than queue on a slow fill.
            match wait.wait(&parts, domain.lock_timeout).await {
                Some(c) => return Err(cached(ctx, c, CacheStatus::Hit, conds.as_ref())),
                None => (None, stale),
            }
        }
    };
    let conds = match &fill {
        // Revalidating: the stored object's validators instead of the client's.
        Some(fill) => {
            fill.add_validators(&mut parts.headers);
            conds
        }
        None => {
            if parts.method == http::Method::GET
                && let Some(c) = conds
            {
                c.restore(&mut parts.headers);
            }
            None
        }
    };
    let invalidate = is_unsafe(&parts.method).then_some(key);
    ctx.cdn.cache = Some(Pending {
        fill,
        stale,
        conds,
        invalidate,
    });
    Ok(Request::from_parts(parts, body))
}

/// A response from the cache, with our `Via`, answering the client's conditions.
fn cached(
    ctx: &mut RequestCtx,
    c: CachedResponse,
    status: CacheStatus,
    conds: Option<&ClientConditions>,
) -> Response<ProxyBody> {
    ctx.cdn.cache_status = Some(status);
    let (mut parts, body) = c.respond(status, conds).into_parts();
    parts.headers.append(header::VIA, ctx.rt.via.clone());
    Response::from_parts(parts, ProxyBody::full(body))
}

/// Upstream statuses that mean "the upstream failed" for stale fallback (a parent passes these on when the
/// origin behind it fails).
fn is_upstream_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// When the upstream failed and an expired copy is at hand: the copy, as `X-Cache: STALE`.
pub(crate) fn stale_instead(
    ctx: &mut RequestCtx,
    domain: &DomainRt,
    why: &str,
) -> Option<Response<ProxyBody>> {
    let pending = ctx.cdn.cache.take()?;
    // Followers of this request's fill wake now rather than after the stale answer is sent.
    drop(pending.fill);
    let stale = pending.stale?;
    let cache = domain.cache.as_ref()?;
    cache.record_stale_served();
    tracing::warn!(host = %domain.name, client = %ctx.client_ip, "serving stale copy: {why}");
    let conds = pending.conds;
    Some(cached(ctx, stale, CacheStatus::Stale, conds.as_ref()))
}

/// The upstream answered (head in `parts`, body not read yet): fill the cache or fall back on a stale copy
/// as the lookup asked, and add `X-Cache` and `Via`.
pub(crate) async fn upstream_answered(
    ctx: &mut RequestCtx,
    domain: &DomainRt,
    mut parts: http::response::Parts,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let Some(pending) = ctx.cdn.cache.take() else {
        parts.headers.append(header::VIA, ctx.rt.via.clone());
        return Response::from_parts(parts, body);
    };
    if is_upstream_error(parts.status) && pending.stale.is_some() {
        ctx.cdn.cache = Some(pending);
        let why = format!("upstream answered {}", parts.status.as_u16());
        if let Some(resp) = stale_instead(ctx, domain, &why) {
            return resp;
        }
        parts.headers.append(header::VIA, ctx.rt.via.clone());
        return Response::from_parts(parts, body);
    }
    let Pending {
        fill,
        stale,
        conds,
        invalidate,
    } = pending;
    if let Some(key) = invalidate
        && (parts.status.is_success() || parts.status.is_redirection())
    {
        invalidate_after_unsafe(domain, &key, &parts.headers);
    }
    // The request's time, not the response's: an object's age then errs on the old side (RFC 9111 4.2.3
    // takes the request time as well), and the fake clock of tests reads the same at both ends.
    let now = ctx.cdn.now;
    let fill = match fill {
        Some(fill) if fill.is_revalidation() && parts.status == StatusCode::NOT_MODIFIED => {
            match fill.refresh(&parts, now) {
                Some(c) => return cached(ctx, c, CacheStatus::Revalidated, conds.as_ref()),
                None => None,
            }
        }
        other => other,
    };
    let body = match fill {
        Some(fill) if has_length(&parts) && fill.check(&parts, now).is_ok() => {
            match body.collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    match fill.complete_with(&parts, bytes.clone(), now) {
                        Ok(c) if conds.is_some() => {
                            return cached(ctx, c, CacheStatus::Miss, conds.as_ref());
                        }
                        Ok(_) => {}
                        Err(why) => {
                            tracing::debug!(host = %domain.name, "response not stored: {why}");
                        }
                    }
                    ProxyBody::full(bytes)
                }
                Err(e) => {
                    drop(fill);
                    tracing::warn!(host = %domain.name, "upstream body failed: {e}");
                    ctx.cdn.cache = Some(Pending {
                        fill: None,
                        stale,
                        conds,
                        invalidate: None,
                    });
                    if let Some(resp) = stale_instead(ctx, domain, "upstream body failed") {
                        return resp;
                    }
                    return crate::ctx::answer(StatusCode::BAD_GATEWAY, upstream_body_failed(ctx));
                }
            }
        }
        Some(fill) if !has_length(&parts) && fill.check(&parts, now).is_ok() => {
            let mut body = body;
            body.fill(fill, parts.clone(), now);
            body
        }
        _ => body,
    };
    strip_edge_headers(&mut parts.headers);
    parts
        .headers
        .insert(X_CACHE, CacheStatus::Miss.header_value());
    parts.headers.append(header::VIA, ctx.rt.via.clone());
    ctx.cdn.cache_status = Some(CacheStatus::Miss);
    Response::from_parts(parts, body)
}

fn is_unsafe(method: &http::Method) -> bool {
    use http::Method;
    [Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(method)
}

/// RFC 9111 section 4.4: a successful unsafe request invalidates the stored response of its URL, and of the
/// `Location` and `Content-Location` it names on the same host (others are not this domain's to touch).
fn invalidate_after_unsafe(domain: &DomainRt, key: &CacheKey, headers: &http::HeaderMap) {
    let Some(cache) = domain.cache.as_ref() else {
        return;
    };
    // Both schemes: the other one's copy of the URL is just as outdated.
    let mut keys = vec![key.clone(), key.other_scheme()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(uri) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<http::Uri>().ok())
        else {
            continue;
        };
        let same_host = uri
            .host()
            .is_none_or(|h| h.eq_ignore_ascii_case(&domain.name));
        if same_host && uri.path().starts_with('/') {
            keys.extend(cache.keys_of(&domain.name, &uri));
        }
    }
    let n = cache.purge_keys(&keys);
    if n > 0 {
        tracing::debug!(host = %domain.name, "{n} cached object(s) invalidated by an unsafe request");
    }
}

/// Headers meant for this node only: `CDN-Cache-Control` (RFC 9213; this node is the CDN it targets) and
/// the purge groups `Cache-Tag`/`Surrogate-Key`. Never stored, and taken off what goes downstream.
fn strip_edge_headers(headers: &mut http::HeaderMap) {
    for name in ["cdn-cache-control", "cache-tag", "surrogate-key"] {
        headers.remove(name);
    }
}

fn has_length(parts: &http::response::Parts) -> bool {
    parts.headers.contains_key(header::CONTENT_LENGTH)
        && !parts.headers.contains_key(header::TRANSFER_ENCODING)
}

fn upstream_body_failed(ctx: &RequestCtx) -> Bytes {
    let who = ctx.cdn.upstream.as_ref().map_or("upstream", |p| &p.label);
    Bytes::from(format!(
        "502 Bad Gateway\nedgeguard: {who} broke off the response body\n"
    ))
}

/// `X-Cache: MISS` on an answer the node made itself for a cacheable domain (upstream errors).
pub(crate) fn mark_miss(ctx: &mut RequestCtx, resp: &mut Response<ProxyBody>) {
    if ctx.domain.as_ref().is_some_and(|d| d.cache.is_some()) && ctx.cdn.cache_status.is_none() {
        resp.headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        ctx.cdn.cache_status = Some(CacheStatus::Miss);
    }
}
