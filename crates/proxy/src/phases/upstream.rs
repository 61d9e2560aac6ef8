//! The upstream phase: forward to the domain's parents and origins (`upstream.rs`) and stream the answer back
//! through the cache's half of the exchange; on failure, a stale copy or the error naming the upstream.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::ctx::{RequestCtx, answer};
use crate::forward::{self, strip_hop_by_hop};
use crate::phases::cache;
use crate::{upgrade, upstream};

/// Upstream: forward to the domain's parents/origins and stream the answer back.
pub(crate) async fn upstream(
    ctx: &mut RequestCtx,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let Some(domain) = ctx.domain.clone() else {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n",
        );
    };
    // `websocket = true`: the upgrade goes upstream, and the client's half of it is kept for a 101. A CONNECT
    // (only here when `allow_methods` lists it) becomes a tunnel on a 2xx.
    let connect = req.method() == Method::CONNECT;
    let proto = domain.websocket.then(|| upgrade::requested(&req)).flatten();
    let client_upgrade = (connect || proto.is_some()).then(|| hyper::upgrade::on(&mut req));
    let mut req = forward::upstream_request(ctx, req);
    if let Some(proto) = proto {
        upgrade::restore(req.headers_mut(), proto);
    }

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
            let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS
                || (connect && resp.status().is_success());
            if switched && let Some(client) = client_upgrade {
                let guard = ctx.conn_guard.take();
                return upgrade::tunnel(resp, pooled, client, guard, ctx.rt.via.clone());
            }
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = ProxyBody::upstream(body, pooled, domain.read_timeout);
            cache::upstream_answered(ctx, &domain, parts, body).await
        }
        Err(failures) => {
            let status = failures.status();
            ctx.cdn.upstream = failures.0.last().map(|(p, _)| p.clone());
            let client_side = failures.0.last().is_some_and(|(_, f)| f.is_client_side());
            if client_side {
                domain.body_refused.refuse_ip(ctx.client_ip);
            } else {
                let why = failures.body().trim_end().replace('\n', "; ");
                if let Some(stale) = cache::stale_instead(ctx, &domain, &why) {
                    return stale;
                }
                tracing::error!(host = %domain.name, client = %ctx.client_ip, "upstream failed: {why}");
            }
            let mut resp = answer(status, failures.body());
            cache::mark_miss(ctx, &mut resp);
            resp
        }
    }
}
