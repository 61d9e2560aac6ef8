//! The seam between the request pipeline and the protection engine (`edgeguard-protect`): the access-control
//! lists, the three phases (blocks and challenges in force, IP access limit, rate-limiting rules), the
//! challenge's verify endpoint, and the response hook that records statuses into the rules' windows and the request's outcome into the
//! statistics. What they learn per request is `ctx.protect` ([`crate::ctx::ProtectState`]).
//!
//! Hot path: every routed request passes here. Nothing is formatted unless the request is refused, challenged, or
//! its domain asked for explain headers.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use edgeguard_challenge::{
    ASSET_CACHE_CONTROL, ASSET_PREFIX, Asset, Difficulty, MAX_VERIFY_BODY, VERIFY_PATH,
    VerifyError, content_security_policy,
};
use edgeguard_rules::{Action, RequestView};
use edgeguard_store::{ActivityRecord, DecisionKind};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::ctx::{Flow, RequestCtx, answer};
use crate::key::{self, KeyBuf};
use crate::limits::{ConnStatus, ReqStatus};
use edgeguard_protect::{
    Access, DomainGuard, InForce, NodeProtection, RULE_CHALLENGE_ENABLED, RULE_CHALLENGE_PATHS,
    RULE_OPERATOR, rfc3339,
};

static X_EDGEGUARD_DECISION: HeaderName = HeaderName::from_static("x-edgeguard-decision");
// Header values of the refusal and challenge answers, checked once: `from_static` outside a `static` checks its
// bytes on every call, and the policy is over 300 of them.
static TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static ASSET_CACHE: HeaderValue = HeaderValue::from_static(ASSET_CACHE_CONTROL);
static PAGE_POLICY: LazyLock<HeaderValue> =
    LazyLock::new(|| HeaderValue::from_static(content_security_policy()));

/// A request as the rules read it.
struct View<'a> {
    ip: IpAddr,
    host: &'a str,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
}

impl RequestView for View<'_> {
    fn client_ip(&self) -> IpAddr {
        self.ip
    }
    fn host(&self) -> &str {
        self.host
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
}

fn node(ctx: &RequestCtx) -> Option<Arc<NodeProtection>> {
    ctx.rt.protect.node().cloned()
}

/// Before every protection phase: `[domain.access_control]`. `Err` is the 403 of a denied client; `Ok(true)`
/// an allowed one, which no protection phase or limit sees. Leaves the domain's guard in `ctx.protect.guard`.
///
/// Hot path: one map lookup; with both lists empty, nothing else.
pub(crate) fn access_control(ctx: &mut RequestCtx) -> Result<bool, Box<Response<ProxyBody>>> {
    let Some(domain) = ctx.domain.as_ref() else {
        return Ok(false);
    };
    let Some(guard) = ctx.rt.protect.get(&domain.name).cloned() else {
        return Ok(false);
    };
    let access = guard.access().check(ctx.client_ip);
    ctx.protect.guard = Some(guard);
    match access {
        Access::Unlisted => Ok(false),
        Access::Allowed => Ok(true),
        Access::Denied => {
            ctx.protect.outcome = Some(DecisionKind::Blocked);
            if ctx.domain.as_ref().is_some_and(|d| d.explain) {
                ctx.protect.decision = Some("access_control deny".to_owned());
            }
            Err(Box::new(answer(
                StatusCode::FORBIDDEN,
                "403 Forbidden\nedgeguard: your address is on this site's deny list (access_control.deny)\n",
            )))
        }
    }
}

/// Phase 1: blocks and challenges in force for this request's objects, its path, or the whole domain. A block
/// answers 403 here; a challenge is kept in `ctx.protect.challenge` for [`challenges_in_force`], after the IP
/// access limit, so a client over its per-second limit gets the 514 that SPEC section 3 gives it (a short answer)
/// whether or not it is also challenged. For the challenge's own endpoints (`own`) only blocks count: a
/// challenge in force is what they answer.
pub(crate) fn blocks_in_force(ctx: &mut RequestCtx, req: &Request<Incoming>, own: bool) -> Flow {
    let (Some(domain), Some(node)) = (ctx.domain.as_ref(), ctx.rt.protect.node()) else {
        return Flow::Continue;
    };
    let guard = match ctx.protect.guard.clone() {
        Some(g) => g,
        None => match ctx.rt.protect.get(&domain.name).cloned() {
            Some(g) => g,
            None => return Flow::Continue,
        },
    };
    let now = node.now_ms();
    ctx.protect.now_ms = now;
    let hit = if guard.blocks().is_empty() {
        None
    } else {
        let view = View {
            ip: ctx.client_ip,
            host: &domain.name,
            headers: req.headers(),
            query: req.uri().query(),
        };
        guard.in_force(&view, now, &mut ctx.protect.key)
    };
    if own {
        ctx.protect.guard = Some(guard);
        return match hit {
            Some(f) if f.action == Action::Block => enforce(ctx, req, &f),
            _ => Flow::Continue,
        };
    }
    // A block on an object wins; otherwise any challenge will do, the object's or the path's or the domain's.
    let hit = match hit {
        Some(f) => Some(f),
        None if guard.challenge_needs_path() => {
            // Prefixes see the path as locations and rules do: `/a/../login` is `/login`.
            let raw = req.uri().path();
            let mut norm = KeyBuf::new();
            key::push_normalized_path(raw.as_bytes(), &mut norm);
            let path = std::str::from_utf8(&norm).unwrap_or(raw);
            guard.challenge_in_force(Some(path), now)
        }
        None => guard.challenge_in_force(None, now),
    };
    ctx.protect.guard = Some(guard);
    match hit {
        Some(f) if f.action == Action::Block => enforce(ctx, req, &f),
        Some(f) => {
            ctx.protect.challenge = Some(f);
            Flow::Continue
        }
        None => Flow::Continue,
    }
}

/// Phase 1b: the challenge phase 1 found in force, now that the client is within its IP access limit.
pub(crate) fn challenges_in_force(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    match ctx.protect.challenge.take() {
        Some(f) => enforce(ctx, req, &f),
        None => Flow::Continue,
    }
}

/// Phase 2: the IP access limit (514).
pub(crate) fn ip_access_limit(ctx: &mut RequestCtx) -> Flow {
    let Some(guard) = ctx.protect.guard.as_ref() else {
        return Flow::Continue;
    };
    let Some(qps) = guard.ip_access_limit(ctx.client_ip, ctx.protect.now_ms) else {
        return Flow::Continue;
    };
    ctx.protect.outcome = Some(DecisionKind::Limited);
    if ctx.domain.as_ref().is_some_and(|d| d.explain) {
        ctx.protect.decision = Some(format!("ip_access_limit qps={qps}"));
    }
    // Counted and summarised per domain and period, never a line per refused request.
    if let Some(d) = &ctx.domain {
        d.ip_limited.refuse_ip(ctx.client_ip);
    }
    // The refusal of a flood: its text is put together without the formatting machinery.
    let mut body = BytesMut::with_capacity(112);
    body.put_slice(b"514\nedgeguard: too many requests from your address: this site allows ");
    crate::ctx::put_decimal(&mut body, u64::from(qps));
    body.put_slice(b" per second (IP access limit)\n");
    let mut resp = answer(IP_LIMIT_STATUS, body.freeze());
    // hyper writes "<none>" for a status it has no reason phrase for.
    resp.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"IP Access Limit"));
    Flow::Answer(resp)
}

/// SPEC section 3's status for a request over the IP access limit.
const IP_LIMIT_STATUS: StatusCode = match StatusCode::from_u16(514) {
    Ok(s) => s,
    Err(_) => StatusCode::TOO_MANY_REQUESTS,
};

/// Phase 3: the rate-limiting rules count the request; the one that makes a criteria true gets the action.
pub(crate) fn rate_limiting_rules(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    let Some(guard) = ctx.protect.guard.clone() else {
        return Flow::Continue;
    };
    if !guard.has_rules() {
        return Flow::Continue;
    }
    let Some(domain) = ctx.domain.as_ref() else {
        return Flow::Continue;
    };
    // Rules see the path as locations do: dot segments and escapes resolved, so `/a/../login` is `/login`.
    let raw = req.uri().path();
    let mut norm = KeyBuf::new();
    key::push_normalized_path(raw.as_bytes(), &mut norm);
    let path = std::str::from_utf8(&norm).unwrap_or(raw);
    let view = View {
        ip: ctx.client_ip,
        host: &domain.name,
        headers: req.headers(),
        query: req.uri().query(),
    };
    let Some(counted) = guard.count(
        &view,
        path,
        view.query,
        ctx.protect.now_ms,
        &mut ctx.protect.key,
    ) else {
        return Flow::Continue;
    };
    ctx.protect.counted = Some(counted.rule);
    ctx.protect.seen = counted.seen;
    match counted.triggered {
        Some(f) => enforce(ctx, req, &f),
        None => Flow::Continue,
    }
}

/// The answer to a request whose object has `f` in force.
fn enforce(ctx: &mut RequestCtx, req: &Request<Incoming>, f: &InForce) -> Flow {
    let explain = ctx.domain.as_ref().is_some_and(|d| d.explain);
    let Some(domain) = ctx.domain.clone() else {
        return Flow::Continue;
    };
    let now = ctx.protect.now_ms;
    match f.action {
        // Logged, not refused.
        Action::Log => Flow::Continue,
        Action::Block => {
            ctx.protect.outcome = Some(DecisionKind::Blocked);
            if explain {
                ctx.protect.decision =
                    Some(format!("block rule={} until_ms={}", f.rule, f.until_ms));
            }
            Flow::Answer(answer(
                StatusCode::FORBIDDEN,
                format!(
                    "403 Forbidden\nedgeguard: blocked by rate-limiting rule \"{}\" until {} ({} s from now)\n",
                    f.rule,
                    rfc3339(f.until_ms),
                    f.until_ms.saturating_sub(now).div_ceil(1000)
                ),
            ))
        }
        Action::BotDetection => {
            let Some(node) = node(ctx) else {
                return Flow::Continue;
            };
            let guard = ctx.protect.guard.clone();
            let challenger = guard
                .as_deref()
                .and_then(DomainGuard::challenger)
                .unwrap_or_else(|| node.challenger());
            let difficulty = guard
                .as_deref()
                .map_or(Difficulty::DEFAULT, |g| g.challenge().difficulty);
            let cookies = req
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            if challenger
                .check_clearance_headers(cookies, ctx.client_ip, &domain.name, now)
                .is_ok()
            {
                if explain {
                    ctx.protect.decision = Some(format!("bot_detection rule={} passed", f.rule));
                }
                return Flow::Continue;
            }
            ctx.protect.outcome = Some(DecisionKind::Challenged);
            if explain {
                ctx.protect.decision = Some(format!("bot_detection rule={} challenged", f.rule));
            }
            if req.method() != Method::GET && req.method() != Method::HEAD {
                // A browser cannot repeat a POST through the challenge page: refuse with a reason instead.
                return Flow::Answer(answer(
                    StatusCode::FORBIDDEN,
                    format!(
                        "403 Forbidden\nedgeguard: bot detection ({}) is in force for your requests; \
                         load a page of this site in a browser to pass it, then retry\n",
                        why(&f.rule)
                    ),
                ));
            }
            let token = challenger.issue(ctx.client_ip, &domain.name, now, difficulty);
            let return_to = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            // The page's fixed pieces are shared buffers: only the visit's values are made per request.
            let page = match guard.as_deref() {
                Some(g) => g.page().render_chunks(&token, return_to),
                None => edgeguard_challenge::ChallengePage::new(&domain.name)
                    .render_chunks(&token, return_to),
            };
            Flow::Answer(challenge_page(ProxyBody::pieces(page)))
        }
    }
}

/// What put a challenge in force, for the 403 text.
fn why(rule: &str) -> String {
    match rule {
        RULE_CHALLENGE_ENABLED => "set for the whole site".to_owned(),
        RULE_CHALLENGE_PATHS => "set for this part of the site".to_owned(),
        RULE_OPERATOR => "started by the site's operator".to_owned(),
        rule => format!("rule \"{rule}\""),
    }
}

fn challenge_page(page: ProxyBody) -> Response<ProxyBody> {
    let mut resp = Response::new(page);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, TEXT_HTML.clone());
    h.insert(header::CACHE_CONTROL, NO_STORE.clone());
    h.insert(header::CONTENT_SECURITY_POLICY, PAGE_POLICY.clone());
    resp
}

/// The challenge's own endpoints, which only deny, blocks, the IP access limit and limit_conn may stop: never a
/// challenge (they are how one is passed), the rules or limit_req.
#[derive(Clone, Copy)]
pub(crate) enum ChallengeEndpoint {
    /// `POST` of the page's answer.
    Verify,
    /// `GET` or `HEAD` of one of the page's scripts.
    Asset(&'static Asset),
}

/// Which of the challenge's endpoints the request is for, if any. Hot path: one prefix compare for any other
/// request.
pub(crate) fn challenge_endpoint(req: &Request<Incoming>) -> Option<ChallengeEndpoint> {
    let path = req.uri().path();
    if !path.starts_with(ASSET_PREFIX) {
        return None;
    }
    let m = req.method();
    if m == Method::POST && path == VERIFY_PATH {
        Some(ChallengeEndpoint::Verify)
    } else if m == Method::GET || m == Method::HEAD {
        edgeguard_challenge::asset(path).map(ChallengeEndpoint::Asset)
    } else {
        None
    }
}

/// One of the challenge page's scripts: shared bytes, kept by browsers for a year (the name changes with them).
pub(crate) fn asset(a: &'static Asset) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(a.body.clone()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, ASSET_CACHE.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
    resp
}

/// `POST /.edgeguard/challenge/verify`: checks the answer and hands out the clearance cookie.
pub(crate) async fn verify(ctx: &mut RequestCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let (Some(domain), Some(node)) = (ctx.domain.clone(), node(ctx)) else {
        return answer(StatusCode::NOT_FOUND, "404 Not Found\n");
    };
    let now = node.now_ms();
    ctx.protect.now_ms = now;
    let body = match read_capped(req.into_body(), MAX_VERIFY_BODY, ctx.rt.body_timeout).await {
        Ok(b) => b,
        Err(code) => {
            return answer(
                code,
                format!("{code}\nedgeguard: challenge answer not readable\n"),
            );
        }
    };
    let guard = ctx.rt.protect.get(&domain.name).cloned();
    let challenger = guard
        .as_deref()
        .and_then(DomainGuard::challenger)
        .unwrap_or_else(|| node.challenger());
    let v = challenger.handle_verify(&body, ctx.client_ip, &domain.name, now, ctx.conn.https);
    // Counted, not logged: a replayed or forged answer can come at line rate. A pass is one solved token
    // (single use), so its activity record costs the client a proof of work.
    node.verify_counts().record(&v.result);
    if v.result.is_ok() {
        let ttl = challenger.clearance_ttl();
        record_pass(ctx, &node, &domain.name, v.claimed_solve_ms, ttl);
    } else {
        domain.verify_refused.refuse_ip(ctx.client_ip);
    }
    let mut resp = Response::new(ProxyBody::full(v.body));
    *resp.status_mut() = StatusCode::from_u16(v.status).unwrap_or(StatusCode::FORBIDDEN);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    h.insert(header::CACHE_CONTROL, NO_STORE.clone());
    if v.result == Err(VerifyError::Busy) {
        // The page posts the same answer again after a pause; the token stays unredeemed.
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(cookie) = v.set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        h.insert(header::SET_COOKIE, cookie);
    }
    resp
}

/// One `challenge_pass` activity record, naming what put this client under challenge: an object's entry (a
/// rule's or the operator's), else the domain's configured challenge, else an operator's prefix challenge
/// (the answer does not say which path the client came from).
fn record_pass(
    ctx: &RequestCtx,
    node: &NodeProtection,
    domain: &str,
    solve_ms: Option<u64>,
    ttl: Duration,
) {
    let rule = ctx
        .rt
        .protect
        .get(domain)
        .and_then(|g| {
            let view = View {
                ip: ctx.client_ip,
                host: domain,
                headers: &HeaderMap::new(),
                query: None,
            };
            g.in_force(&view, ctx.protect.now_ms, &mut Vec::new())
                .or_else(|| g.challenge_in_force(Some("/"), ctx.protect.now_ms))
                .map(|f| f.rule.to_string())
                .or_else(|| {
                    g.challenge_needs_path()
                        .then(|| RULE_CHALLENGE_PATHS.to_owned())
                })
        })
        .unwrap_or_else(|| "-".to_owned());
    let detail = match solve_ms {
        Some(ms) => format!("solve_ms={ms} (reported by the page)"),
        None => "solve_ms unknown".to_owned(),
    };
    node.activity_log().writer().submit(ActivityRecord {
        time_ms: i64::try_from(ctx.protect.now_ms).unwrap_or(i64::MAX),
        node: node.node_name().to_owned(),
        domain: domain.to_owned(),
        rule,
        object_type: "ip".to_owned(),
        object_value: ctx.client_ip.to_string(),
        action: "challenge_pass".to_owned(),
        ttl_s: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
        detail,
    });
}

/// The whole body, at most `cap` bytes, within `timeout`; else the status to answer.
async fn read_capped(body: Incoming, cap: usize, timeout: Duration) -> Result<Bytes, StatusCode> {
    let read = async move {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > cap {
                    return Err(StatusCode::PAYLOAD_TOO_LARGE);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| StatusCode::REQUEST_TIMEOUT)?
}

/// After the response head is known: the status goes into the counting rule's window, the outcome into the
/// statistics, the decision into the explain header.
pub(crate) fn on_response(ctx: &mut RequestCtx, resp: &mut Response<ProxyBody>) {
    let Some(domain) = ctx.domain.as_ref() else {
        return;
    };
    let Some(node) = ctx.rt.protect.node() else {
        return;
    };
    let now = if ctx.protect.now_ms == 0 {
        node.now_ms()
    } else {
        ctx.protect.now_ms
    };
    if let (Some(g), Some(rule)) = (ctx.protect.guard.as_ref(), ctx.protect.counted) {
        g.record_status(rule, &ctx.protect.key, resp.status().as_u16(), now);
    }
    if let (Some(g), Some(seen)) = (ctx.protect.guard.as_ref(), ctx.protect.seen.as_ref()) {
        g.observe_status(seen, resp.status().as_u16(), now);
    }
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    let limited = matches!(
        ctx.req_decision.and_then(|d| d.status),
        Some(ReqStatus::Rejected)
    ) || ctx.conn_status == Some(ConnStatus::Rejected);
    let kind = ctx.protect.outcome.unwrap_or(if limited {
        DecisionKind::Limited
    } else {
        DecisionKind::Passed
    });
    node.traffic_stats()
        .record_outcome(&domain.name, ctx.client_ip, kind, now_i);
    // A later phase's explanation (limit_req after a passed challenge) is kept unless protection answered.
    let later_phase_said = ctx.protect.outcome.is_none()
        && resp
            .headers()
            .get(&X_EDGEGUARD_DECISION)
            .is_some_and(|v| v.as_bytes() != b"none");
    if domain.explain
        && !later_phase_said
        && let Some(text) = ctx.protect.decision.take()
        && let Ok(v) = HeaderValue::try_from(text)
    {
        resp.headers_mut().insert(X_EDGEGUARD_DECISION.clone(), v);
    }
}
