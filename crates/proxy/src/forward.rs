//! Forwarding: the request as it goes upstream (Host from the request line, framing, hop-by-hop headers, the
//! clearance cookie removed, nginx's `X-Forwarded-For`, `X-Forwarded-Proto`, our `Via`, origin-form URI, HTTP/1.1) and the
//! hop-by-hop headers of the answer.
//!
//! Hot path: header edits in place; `X-Forwarded-For` is built in one buffer only when the request had one.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Uri, Version};
use hyper::body::Incoming;
use smallvec::SmallVec;

use crate::client::X_FORWARDED_FOR;
use crate::ctx::RequestCtx;
use crate::request_body::RequestBody;

/// `X-Forwarded-Proto`: `https` or `http`, how the client reached this node.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request to send upstream, rewritten from the client's.
pub(crate) fn upstream_request(ctx: &RequestCtx, req: Request<Incoming>) -> Request<RequestBody> {
    let (mut parts, body) = req.into_parts();
    upstream_head(ctx, &mut parts);
    let body = RequestBody::new(body, ctx.rt.max_body_size, ctx.rt.body_timeout);
    Request::from_parts(parts, body)
}

/// The head of [`upstream_request`], rewritten in place (also for requests the node makes itself).
pub(crate) fn upstream_head(ctx: &RequestCtx, parts: &mut http::request::Parts) {
    // HTTP/2's `:authority` or an HTTP/1.1 absolute URI names the host; the upstream gets it as Host
    // (RFC 9112 3.2.2: a received Host is replaced by the request line's).
    if let Some(authority) = parts.uri.authority()
        && parts.headers.get(header::HOST).map(|h| h.as_bytes())
            != Some(authority.as_str().as_bytes())
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, v);
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        // RFC 9112 6.3: with both, the chunked framing was used; a stale length must not reach the upstream.
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(&mut parts.headers);
    crate::cookie::strip_clearance(&mut parts.headers);
    add_forwarded_for(&mut parts.headers, &ctx.conn.peer_text);
    // A trusted proxy in front (an edge before this parent) said how the client came; anyone else is told.
    if !(parts.headers.contains_key(&X_FORWARDED_PROTO)
        && crate::client::is_trusted(ctx.conn.peer_ip, &ctx.rt.trusted_proxies))
    {
        let proto = if ctx.conn.https { "https" } else { "http" };
        parts
            .headers
            .insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    parts.headers.append(header::VIA, ctx.rt.via.clone());
    // CONNECT's target is the authority itself (RFC 9112 3.2.3); every other absolute target goes as origin form.
    if parts.method != http::Method::CONNECT
        && (parts.uri.scheme().is_some() || parts.uri.authority().is_some())
    {
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
    }
    parts.version = Version::HTTP_11;
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 section 7.6.1 and the two legacy ones.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ]
    .iter()
    .any(|h| h == name)
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) plus those a `Connection` header names.
///
/// Hot path, twice per forwarded request: one pass over the names present (a standard name compares as a
/// number), and nothing removed, hashed or parsed when none of them is hop-by-hop, the usual case.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Those a `Connection` header names, then every hop-by-hop name present: removed once each.
    let mut remove: SmallVec<[HeaderName; 8]> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    remove.extend(headers.keys().filter(|n| is_hop_by_hop(n)).cloned());
    for name in remove {
        headers.remove(name);
    }
}

/// nginx's `$proxy_add_x_forwarded_for`: the received list (all headers, joined) plus the peer.
fn add_forwarded_for(headers: &mut HeaderMap, peer_text: &Bytes) {
    let mut existing = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    let value = if existing.peek().is_none() {
        HeaderValue::from_maybe_shared(peer_text.clone())
    } else {
        let mut buf = BytesMut::with_capacity(64);
        for v in existing {
            buf.put_slice(v.as_bytes());
            buf.put_slice(b", ");
        }
        buf.put_slice(peer_text);
        HeaderValue::from_maybe_shared(buf.freeze())
    };
    match value {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        Err(_) => {
            headers.remove(&X_FORWARDED_FOR);
        }
    }
}
