//! The request pipeline: one [`RequestCtx`] per request, passed through the phases of SPEC section 8 in order.
//! Each phase (a module of `phases/`) either lets the request go on ([`Flow::Continue`]) or answers it
//! ([`Flow::Answer`]), which ends the pipeline; [`finish`] then ends every response the same way, and the
//! request is counted and logged. [`run_phases`] is the whole order on one screen.
//!
//! Hot path: everything here runs per request. No `String` formatting unless a response is an error or the
//! domain asked for explain headers; keys go to a stack buffer; the runtime snapshot is one `Arc` clone.

use std::sync::Arc;

use edgeguard_limit::Clock;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::ctx::{ConnInfo, Flow, RequestCtx};
use crate::phases::{cache, limit_conn, limit_req, protect, redirect, route, upstream};
use crate::shared::Shared;

/// Runs one request through the pipeline.
pub(crate) async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
) -> Response<ProxyBody> {
    // A parent's edges posting their counts: answered before routing and protection, not a domain's request.
    if req.uri().path() == crate::COUNTS_PATH {
        let Some(ep) = shared.edge_counts.get() else {
            return crate::counts::reserved();
        };
        let rt = shared.runtime.load_full();
        return Box::pin(crate::counts::answer_edge(ep, &rt, &conn, req)).await;
    }
    let stream = conn
        .activity
        .stream(req.version() <= http::Version::HTTP_11);
    let mut ctx = RequestCtx::new(shared.runtime.load_full(), conn, shared.epoch);
    let line = shared
        .access_log
        .is_on()
        .then(|| crate::access_log::RequestLine::capture(&req));
    let talker = crate::talkers::TalkerKeys::capture(&req);
    let resp = run_phases(&mut ctx, req, &*shared.clock).await;
    let mut resp = finish(&mut ctx, resp);
    resp.body_mut().hold_stream(stream);
    crate::metrics::observe(&shared, &ctx, &resp, line, &talker);
    tracing::trace!(status = resp.status().as_u16(), elapsed = ?ctx.started.elapsed(), delayed = ?ctx.delayed, "request done");
    resp
}

/// The phases in order. The first answer ends the request; the cache and upstream phases take the request
/// itself (its body goes upstream), the others only read it.
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
    // Host -> domain, path -> location; 400/404/413; the client address behind a trusted proxy.
    phase!(route::route(ctx, &req));
    // `[domain.access_control]`: a denied client gets 403 before anything else; an allowed one skips every
    // protection phase and limit.
    let allowed = match protect::access_control(ctx) {
        Ok(allowed) => allowed,
        Err(denied) => return *denied,
    };
    // The challenge page's answer and scripts (SPEC 9.1): subject to blocks, the IP access limit and limit_conn,
    // never to a challenge, the rules or limit_req.
    let endpoint = protect::challenge_endpoint(&req);
    if !allowed {
        // SPEC sections 3-4: blocks in force (403), IP access limit (514), challenges in force (challenge
        // page), rules.
        phase!(protect::blocks_in_force(ctx, &req, endpoint.is_some()));
        phase!(protect::ip_access_limit(ctx));
        phase!(protect::challenges_in_force(ctx, &req));
        if endpoint.is_none() {
            phase!(protect::rate_limiting_rules(ctx, &req));
            // nginx limits of the location.
            phase!(limit_req::limit_req(ctx, &req, clock).await);
        }
        phase!(limit_conn::limit_conn(ctx, &req));
    }
    match endpoint {
        Some(protect::ChallengeEndpoint::Verify) => {
            return Box::pin(protect::verify(ctx, req)).await;
        }
        Some(protect::ChallengeEndpoint::Asset(a)) => return protect::asset(a),
        None => {}
    }
    // https_redirect: plain HTTP gets 308 to HTTPS, after the challenge and limits had their say.
    phase!(redirect::https_redirect(ctx, &req));
    // A fresh hit answers; a miss leaves its fill or stale copy in `ctx.cdn` for the upstream phase. An
    // upgrade (WebSocket) of a domain that passes them is never a cache matter.
    let upgrade = req.method() == http::Method::CONNECT
        || (ctx.domain.as_ref().is_some_and(|d| d.websocket)
            && crate::upgrade::requested(&req).is_some());
    let req = if upgrade {
        req
    } else {
        match cache::lookup(ctx, req, clock).await {
            Ok(req) => req,
            Err(hit) => return hit,
        }
    };
    // Boxed, as the challenge answer and the parents' counts: hyper copies each request's future whole when it
    // takes it, and a hit or a refusal should not carry the upstream exchange's state (tests below).
    Box::pin(upstream::upstream(ctx, req)).await
}

/// Common end of every response: explain headers, the protection's response hook (statuses into the rules'
/// windows, the outcome into the statistics), and the limit_conn counts handed to the body.
fn finish(ctx: &mut RequestCtx, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    if ctx.domain.as_ref().is_some_and(|d| d.explain) {
        crate::explain::explain(ctx, resp.headers_mut());
    }
    protect::on_response(ctx, &mut resp);
    if let Some(guard) = ctx.conn_guard.take() {
        resp.body_mut().hold(guard);
    }
    resp
}

#[cfg(test)]
mod tests {
    fn future_size<A, B, C, F: Future>(_: fn(A, B, C) -> F) -> usize {
        size_of::<F>()
    }

    /// hyper moves each request's future into its connection's slot, a copy of the whole future: the upstream
    /// exchange, the challenge answer and the parents' counts are boxed, so a hit or a refusal copies 3.6 KiB,
    /// not 8.3.
    #[test]
    fn a_requests_future_stays_small() {
        let size = future_size(super::handle);
        assert!(size <= 4096, "the request future is {size} bytes");
    }
}
