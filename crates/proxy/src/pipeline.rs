//! The request pipeline: one [`RequestCtx`] per request, passed through the phases of SPEC section 8 in order.
//! Each phase either lets the request go on ([`Flow::Continue`]) or answers it ([`Flow::Answer`]), which ends
//! the pipeline; [`handle`] then finishes every response the same way (explain headers, limit_conn counts held
//! by the body).
//!
//! Order: route -> blocks and challenges in force -> IP access limit -> rate-limiting rules -> limit_req ->
//! limit_conn -> cache -> upstream. The protection phases (blocks, IP access limit, rules) and the challenge's
//! verify endpoint live in `protect/http.rs`; `finish` hands each response head to it (statuses, statistics).
//!
//! Hot path: everything here runs per request. No `String` formatting unless a response is an error or the
//! domain asked for explain headers; keys go to a stack buffer; the runtime snapshot is one `Arc` clone.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use edgeguard_limit::Clock;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::body::{ProxyBody, RequestBody};
use crate::client::{self, X_FORWARDED_FOR};
use crate::key::{self, KeyBuf, KeyInput};
use crate::limits::{self, ConnGuard, ConnStatus, ReqDecision, ReqStatus};
use crate::runtime::{DomainRt, Limits, Runtime};
use crate::upstream;

/// nginx skips limit_req keys longer than this (and logs them).
const MAX_REQ_KEY: usize = 65_535;
/// nginx skips limit_conn keys longer than this.
const MAX_CONN_KEY: usize = 255;

static X_LIMIT_REQ_STATUS: HeaderName = HeaderName::from_static("x-limit-req-status");
static X_LIMIT_CONN_STATUS: HeaderName = HeaderName::from_static("x-limit-conn-status");
static X_EDGEGUARD_DECISION: HeaderName = HeaderName::from_static("x-edgeguard-decision");

/// State shared by every connection of a node.
pub(crate) struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics` that are not per domain.
    pub stats: crate::metrics::NodeStats,
    pub access_log: crate::access_log::AccessLog,
    /// Wall-clock time for cache freshness, read through `clock`.
    pub epoch: crate::cache_phase::Epoch,
}

/// Facts about one client connection, computed once at accept.
pub(crate) struct ConnInfo {
    /// The peer address, IPv4-mapped IPv6 folded to IPv4.
    pub peer_ip: IpAddr,
    /// `peer_ip` as text, for `$remote_addr` and `X-Forwarded-For` without formatting per request.
    pub peer_text: Bytes,
}

/// What a phase decided.
// An answer is moved once, at the end of the pipeline; boxing it would cost an allocation per answer.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Flow {
    Continue,
    Answer(Response<ProxyBody>),
}

/// Everything the phases learn about one request.
pub(crate) struct RequestCtx {
    pub rt: Arc<Runtime>,
    pub conn: Arc<ConnInfo>,
    pub started: Instant,
    /// The address limits see (peer, or from `X-Forwarded-For` behind a trusted proxy).
    pub client_ip: IpAddr,
    pub client_text: Bytes,
    pub domain: Option<Arc<DomainRt>>,
    /// The limit lists of the matched location.
    pub limits: Option<Arc<Limits>>,
    /// Evaluated keys, back to back; `key_ends[i]` ends key `i` of the phase that filled it.
    pub keys: KeyBuf,
    pub key_ends: SmallVec<[usize; 4]>,
    pub req_decision: Option<ReqDecision>,
    /// The limit_req entry the explain header names: the deciding one, else the last that counted.
    pub req_shown: Option<usize>,
    pub conn_status: Option<ConnStatus>,
    pub conn_limit: Option<usize>,
    /// limit_conn counts; moved into the response body so they last as long as the response.
    pub conn_guard: Option<ConnGuard>,
    pub delayed: Duration,
    /// Blocks, IP access limit and rules: what they decided, and the key a rule counted the request under.
    pub protect: crate::protect::ReqState,
    /// Cache lookup, upstream and decision, for the upstream phase, the access log and metrics.
    pub cdn: crate::cache_phase::CdnCtx,
}

/// Runs one request through the pipeline.
pub(crate) async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) -> Response<ProxyBody> {
    let rt = shared.runtime.load_full();
    let mut ctx = RequestCtx {
        client_ip: conn.peer_ip,
        client_text: conn.peer_text.clone(),
        rt,
        conn,
        started: Instant::now(),
        domain: None,
        limits: None,
        keys: KeyBuf::new(),
        key_ends: SmallVec::new(),
        req_decision: None,
        req_shown: None,
        conn_status: None,
        conn_limit: None,
        conn_guard: None,
        delayed: Duration::ZERO,
        protect: Default::default(),
        cdn: crate::cache_phase::CdnCtx::new(shared.epoch),
    };
    let line = shared
        .access_log
        .is_on()
        .then(|| crate::access_log::RequestLine::capture(&req));
    let resp = run_phases(&mut ctx, req, &*shared.clock).await;
    let resp = finish(&mut ctx, resp);
    crate::metrics::observe(&shared, &ctx, &resp, line);
    tracing::trace!(status = resp.status().as_u16(), elapsed = ?ctx.started.elapsed(), delayed = ?ctx.delayed, "request done");
    resp
}

async fn run_phases(
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
    clock: &dyn Clock,
) -> Response<ProxyBody> {
    macro_rules! phase {
        ($flow:expr) => {
            if let Flow::Answer(resp) = $flow {
                return resp;
            }
        };
    }
    phase!(route(ctx, &req));
    if crate::protect::is_verify(&req) {
        return crate::protect::verify(ctx, req).await;
    }
    phase!(blocks_in_force(ctx, &req));
    phase!(ip_access_limit(ctx, &req));
    phase!(rate_limiting_rules(ctx, &req));
    phase!(limit_req(ctx, &req, clock).await);
    phase!(limit_conn(ctx, &req));
    let req = match crate::cache_phase::lookup(ctx, req, clock).await {
        Ok(req) => req,
        Err(hit) => return hit,
    };
    upstream(ctx, req).await
}

/// A short local answer.
pub(crate) fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

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

/// Route: find the domain by host and the location by path; reject what cannot be served at all.
fn route(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    // As nginx: HTTP/1.1 needs a Host header even when the request line carries an absolute URI.
    let has_host = req.headers().contains_key(header::HOST);
    if req.version() == Version::HTTP_11 && !has_host {
        return Flow::Answer(answer(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\nedgeguard: request has no Host header\n",
        ));
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

/// Blocks and challenges in force (rules' `block` / `bot_detection` actions): 403 or the challenge page.
fn blocks_in_force(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    crate::protect::blocks_in_force(ctx, req)
}

/// IP access limit (SPEC section 3, status 514).
fn ip_access_limit(ctx: &mut RequestCtx, _req: &Request<Incoming>) -> Flow {
    crate::protect::ip_access_limit(ctx)
}

/// Rate-limiting rules (SPEC section 4): count the request, fire actions.
fn rate_limiting_rules(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    crate::protect::rate_limiting_rules(ctx, req)
}

/// Evaluates `keys` into `ctx.keys`; a key over `max` bytes is made empty (not limited).
fn eval_keys(
    ctx: &mut RequestCtx,
    req: &Request<Incoming>,
    keys: &[Arc<key::CompiledKey>],
    max: usize,
) {
    let mut buf = std::mem::take(&mut ctx.keys);
    buf.clear();
    ctx.key_ends.clear();
    let host = ctx.domain.as_ref().map_or("", |d| d.name.as_str());
    let input = KeyInput {
        client_ip: ctx.client_ip,
        client_text: &ctx.client_text,
        host,
        uri: req.uri(),
        headers: req.headers(),
    };
    for k in keys {
        let start = buf.len();
        k.append(&input, &mut buf);
        if buf.len() - start > max {
            tracing::info!(
                len = buf.len() - start,
                "limit key too long, request not limited by it"
            );
            buf.truncate(start);
        }
        ctx.key_ends.push(buf.len());
    }
    ctx.keys = buf;
}

fn key_slices<'a>(keys: &'a KeyBuf, ends: &[usize]) -> SmallVec<[&'a [u8]; 4]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let k = &keys[start..end];
            start = end;
            k
        })
        .collect()
}

/// nginx `limit_req`: decide, log, wait if delayed, answer `limit_req_status` if rejected.
async fn limit_req(ctx: &mut RequestCtx, req: &Request<Incoming>, clock: &dyn Clock) -> Flow {
    let Some(lim) = ctx.limits.clone() else {
        return Flow::Continue;
    };
    if lim.req.is_empty() {
        return Flow::Continue;
    }
    eval_keys(ctx, req, &lim.req_keys, MAX_REQ_KEY);
    let decision = {
        let keys = key_slices(&ctx.keys, &ctx.key_ends);
        limits::limit_req(clock.now_ms(), &lim.req, &keys)
    };
    ctx.req_decision = Some(decision);
    ctx.req_shown = decision.limit.or_else(|| {
        let mut start = 0;
        let mut shown = None;
        for (i, &end) in ctx.key_ends.iter().enumerate() {
            if end > start {
                shown = Some(i);
            }
            start = end;
        }
        shown
    });
    let Some(status) = decision.status else {
        return Flow::Continue;
    };
    let zone = || decision.limit.map_or("", |i| lim.req[i].zone.name());
    let (whole, frac) = (decision.excess_milli / 1000, decision.excess_milli % 1000);
    match status {
        ReqStatus::Passed => Flow::Continue,
        ReqStatus::Rejected | ReqStatus::RejectedDryRun => {
            let dry = if status == ReqStatus::RejectedDryRun {
                ", dry run"
            } else {
                ""
            };
            if decision.no_room {
                // nginx logs this at alert: the zone is too small for the keys it sees.
                tracing::error!("could not allocate node in limit_req zone \"{}\"", zone());
            }
            tracing::error!(
                "limiting requests{dry}, excess: {whole}.{frac:03} by zone \"{}\", client: {}, host: \"{}\"",
                zone(),
                ctx.client_ip,
                ctx.domain.as_ref().map_or("", |d| d.name.as_str()),
            );
            if status == ReqStatus::RejectedDryRun {
                return Flow::Continue;
            }
            let code = ctx
                .domain
                .as_ref()
                .map_or(StatusCode::SERVICE_UNAVAILABLE, |d| d.limit_req_status);
            Flow::Answer(limit_answer(code, "request rate limited (limit_req)"))
        }
        ReqStatus::Delayed | ReqStatus::DelayedDryRun => {
            let dry = if status == ReqStatus::DelayedDryRun {
                ", dry run"
            } else {
                ""
            };
            tracing::warn!(
                "delaying request{dry}, excess: {whole}.{frac:03}, by zone \"{}\", client: {}",
                zone(),
                ctx.client_ip
            );
            if status == ReqStatus::Delayed {
                // The excess is already charged: a client that leaves during the wait has still spent it.
                let wait = Duration::from_millis(decision.delay_ms);
                tokio::time::sleep(wait).await;
                ctx.delayed = wait;
            }
            Flow::Continue
        }
    }
}

fn limit_answer(code: StatusCode, why: &str) -> Response<ProxyBody> {
    let mut body = BytesMut::with_capacity(64);
    body.put_slice(code.as_str().as_bytes());
    body.put_u8(b' ');
    body.put_slice(code.canonical_reason().unwrap_or("").as_bytes());
    body.put_slice(b"\nedgeguard: ");
    body.put_slice(why.as_bytes());
    body.put_u8(b'\n');
    answer(code, body.freeze())
}

/// nginx `limit_conn`: take a count per limit or answer `limit_conn_status`.
fn limit_conn(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    let Some(lim) = ctx.limits.clone() else {
        return Flow::Continue;
    };
    if lim.conn.is_empty() {
        return Flow::Continue;
    }
    eval_keys(ctx, req, &lim.conn_keys, MAX_CONN_KEY);
    let decision = {
        let keys = key_slices(&ctx.keys, &ctx.key_ends);
        limits::limit_conn(&lim.conn, &keys)
    };
    ctx.conn_status = decision.status;
    ctx.conn_limit = decision.limit;
    ctx.conn_guard = Some(decision.guard);
    match decision.status {
        Some(s @ (ConnStatus::Rejected | ConnStatus::RejectedDryRun)) => {
            let dry = if s == ConnStatus::RejectedDryRun {
                ", dry run,"
            } else {
                ""
            };
            tracing::error!(
                "limiting connections{dry} by zone \"{}\", client: {}, host: \"{}\"",
                decision.limit.map_or("", |i| lim.conn[i].zone.name()),
                ctx.client_ip,
                ctx.domain.as_ref().map_or("", |d| d.name.as_str()),
            );
            if s == ConnStatus::RejectedDryRun {
                return Flow::Continue;
            }
            let code = ctx
                .domain
                .as_ref()
                .map_or(StatusCode::SERVICE_UNAVAILABLE, |d| d.limit_conn_status);
            Flow::Answer(limit_answer(
                code,
                "too many concurrent requests (limit_conn)",
            ))
        }
        _ => Flow::Continue,
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) plus those a `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: SmallVec<[HeaderName; 4]> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
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

/// Upstream: forward to the domain's parents/origins and stream the answer back.
async fn upstream(ctx: &mut RequestCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let Some(domain) = ctx.domain.clone() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n",
        );
    };
    let (mut parts, body) = req.into_parts();
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
    parts.headers.append(header::VIA, ctx.rt.via.clone());
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
    }
    parts.version = Version::HTTP_11;
    let body = RequestBody::new(body, ctx.rt.max_body_size, ctx.rt.body_timeout);
    let req = Request::from_parts(parts, body);

    let sent = Instant::now();
    match upstream::forward(
        &domain.upstreams,
        req,
        domain.connect_timeout,
        domain.read_timeout,
    )
    .await
    {
        Ok((resp, pooled)) => {
            ctx.cdn.upstream_time = Some(sent.elapsed());
            ctx.cdn.upstream = Some(pooled.pool().clone());
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = ProxyBody::upstream(body, pooled, domain.read_timeout);
            crate::cache_phase::upstream_answered(ctx, &domain, parts, body).await
        }
        Err(failures) => {
            let status = failures.status();
            ctx.cdn.upstream = failures.0.last().map(|(p, _)| p.clone());
            let client_side = failures.0.last().is_some_and(|(_, f)| f.is_client_side());
            if client_side {
                tracing::info!(host = %domain.name, client = %ctx.client_ip, "request body refused: {status}");
            } else {
                let why = failures.body().trim_end().replace('\n', "; ");
                if let Some(stale) = crate::cache_phase::stale_instead(ctx, &domain, &why) {
                    return stale;
                }
                tracing::error!(host = %domain.name, client = %ctx.client_ip, "upstream failed: {why}");
            }
            let mut resp = answer(status, failures.body());
            crate::cache_phase::mark_miss(ctx, &mut resp);
            resp
        }
    }
}

/// Common end of every response: explain headers, and the limit_conn counts handed to the body.
fn finish(ctx: &mut RequestCtx, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    if ctx.domain.as_ref().is_some_and(|d| d.explain) {
        explain(ctx, resp.headers_mut());
    }
    crate::protect::on_response(ctx, &mut resp);
    if let Some(guard) = ctx.conn_guard.take() {
        resp.body_mut().hold(guard);
    }
    resp
}

/// `X-Limit-Req-Status`, `X-Limit-Conn-Status` (only when nginx's variable would be set) and
/// `X-Edgeguard-Decision`. Formats strings: only for domains with `explain = true`.
fn explain(ctx: &RequestCtx, headers: &mut HeaderMap) {
    let req = ctx.req_decision.and_then(|d| d.status.map(|s| (d, s)));
    if let Some((_, s)) = req {
        headers.insert(
            X_LIMIT_REQ_STATUS.clone(),
            HeaderValue::from_static(s.as_str()),
        );
    }
    if let Some(s) = ctx.conn_status {
        headers.insert(
            X_LIMIT_CONN_STATUS.clone(),
            HeaderValue::from_static(s.as_str()),
        );
    }
    let limits = ctx.limits.as_deref();
    let conn_refused = matches!(
        ctx.conn_status,
        Some(ConnStatus::Rejected | ConnStatus::RejectedDryRun)
    );
    let text = match (limits, req, ctx.conn_limit) {
        (Some(l), _, Some(i)) if conn_refused => {
            let c = &l.conn[i];
            format!("limit_conn zone={} conn={}", c.zone.name(), c.conn)
        }
        (Some(l), Some((d, _)), _) => match ctx.req_shown {
            Some(i) => {
                let r = &l.req[i];
                format!(
                    "limit_req zone={} excess={}.{:03} burst={} delay={}ms",
                    r.zone.name(),
                    d.excess_milli / 1000,
                    d.excess_milli % 1000,
                    r.burst,
                    d.delay_ms
                )
            }
            None => "limit_req".to_string(),
        },
        (Some(l), None, _) if ctx.conn_status.is_some() => {
            let names: Vec<&str> = l.conn.iter().map(|c| c.zone.name()).collect();
            format!("limit_conn zone={} passed", names.join(","))
        }
        _ => "none".to_string(),
    };
    if let Ok(v) = HeaderValue::try_from(text) {
        headers.insert(X_EDGEGUARD_DECISION.clone(), v);
    }
}
