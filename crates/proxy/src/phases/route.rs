//! Route: find the domain by host and the location by the normalised path; reject what cannot be served at
//! all (400 without, with a bad, with several Host headers or one that disagrees with the request line's
//! authority; 404 for an unknown host; 405 for CONNECT and TRACE unless the domain allows them; 413 over
//! `max_body_size`), and take the client address from `X-Forwarded-For` behind a trusted proxy.

use http::{HeaderValue, header};
use http::{Method, Request, StatusCode, Version};
use hyper::body::Incoming;

use crate::client;
use crate::ctx::{Flow, RequestCtx, answer};
use crate::key::{self, KeyBuf};

/// The host a request is for: the request line's authority (HTTP/2 `:authority`, HTTP/1.1 absolute form),
/// else the Host header; port and a trailing dot removed. Not yet lower-cased.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let host = if raw.starts_with('[') {
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        raw.split_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host.strip_suffix('.').unwrap_or(host))
}

/// The host and port of an authority or Host value, lower-cased comparison aside: `[v6]`/name and the port
/// text (empty when absent); userinfo removed.
fn host_and_port(raw: &str) -> (&str, &str) {
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let (host, port) = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => (&raw[..=end], raw[end + 1..].strip_prefix(':').unwrap_or("")),
            None => (raw, ""),
        }
    } else {
        raw.split_once(':').unwrap_or((raw, ""))
    };
    (host.strip_suffix('.').unwrap_or(host), port)
}

/// RFC 9112 3.2: a request with several Host lines, or whose Host names another host than the request line's
/// authority (absolute form, HTTP/2 `:authority`), is refused: a front and a back end could each pick a
/// different one. A missing port matches any: the scheme's default is not known to every client.
fn host_conflict(req: &Request<Incoming>) -> Option<&'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next()?;
    if hosts.next().is_some() {
        return Some("400 Bad Request\nedgeguard: request has more than one Host header\n");
    }
    let authority = req.uri().authority()?;
    let host = first.to_str().ok()?;
    let (ah, ap) = host_and_port(authority.as_str());
    let (hh, hp) = host_and_port(host);
    let same_port = ap.is_empty() || hp.is_empty() || ap == hp;
    if ah.eq_ignore_ascii_case(hh) && same_port {
        None
    } else {
        Some(
            "400 Bad Request\nedgeguard: Host header disagrees with the request target's authority\n",
        )
    }
}

/// Methods forwarded when a domain does not allow CONNECT and TRACE (the `Allow` header of the 405).
static ALLOWED: HeaderValue =
    HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");

/// Route: find the domain by host and the location by path; reject what cannot be served at all.
pub(crate) fn route(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    // As nginx: HTTP/1.1 needs a Host header even when the request line carries an absolute URI.
    let has_host = req.headers().contains_key(header::HOST);
    if req.version() == Version::HTTP_11 && !has_host {
        return Flow::Answer(answer(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\nedgeguard: request has no Host header\n",
        ));
    }
    if has_host && let Some(why) = host_conflict(req) {
        return Flow::Answer(answer(StatusCode::BAD_REQUEST, why));
    }
    let host = match request_host(req) {
        Some(host) => host,
        // HTTP/1.0 without any host: no domain can match, answered below as an unknown (empty) host.
        None if !has_host => "",
        None => {
            return Flow::Answer(answer(
                StatusCode::BAD_REQUEST,
                "400 Bad Request\nedgeguard: Host header is not valid\n",
            ));
        }
    };
    let domain = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        ctx.rt.domains.get(&host.to_ascii_lowercase())
    } else {
        ctx.rt.domains.get(host)
    };
    let Some(domain) = domain.cloned() else {
        return Flow::Answer(answer(
            StatusCode::NOT_FOUND,
            format!(
                "404 Not Found\nedgeguard: no domain is configured for host \"{}\"\n",
                host.escape_debug()
            ),
        ));
    };

    // Locations match the normalised path, so `//api/` or `/x/../api/` cannot step around `/api/`'s limits.
    let mut path = KeyBuf::new();
    if !key::push_normalized_path(req.uri().path().as_bytes(), &mut path) {
        return Flow::Answer(answer(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\nedgeguard: invalid path (bad %-escape, %00, or .. above the root)\n",
        ));
    }
    // CONNECT would open a tunnel through the node, TRACE echoes headers (cookies) back: neither reaches an
    // origin unless the domain lists it in allow_methods.
    let refused = match *req.method() {
        Method::CONNECT => !domain.allow_connect,
        Method::TRACE => !domain.allow_trace,
        _ => false,
    };
    if refused {
        let mut resp = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "405 Method Not Allowed\nedgeguard: {} is not allowed on this domain (allow_methods)\n",
                req.method()
            ),
        );
        resp.headers_mut().insert(header::ALLOW, ALLOWED.clone());
        return Flow::Answer(resp);
    }
    ctx.limits = Some(domain.limits_for(&path).clone());
    ctx.domain = Some(domain);

    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len = len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
        match len {
            Some(len) if len > ctx.rt.max_body_size => {
                return Flow::Answer(answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "413 Payload Too Large\nedgeguard: request body larger than max_body_size\n",
                ));
            }
            Some(_) => {}
            None => {
                return Flow::Answer(answer(
                    StatusCode::BAD_REQUEST,
                    "400 Bad Request\nedgeguard: invalid Content-Length\n",
                ));
            }
        }
    }

    if let Some(ip) =
        client::forwarded_client(ctx.conn.peer_ip, req.headers(), &ctx.rt.trusted_proxies)
    {
        ctx.client_ip = ip;
        ctx.client_text = key::addr_text(ip);
    }
    Flow::Continue
}
