//! `stale-while-revalidate` (RFC 5861): the refresh of an object whose stale copy was already answered, run
//! on its own task so the client does not wait for it. One at a time per object (the fill guard is the
//! cache's flight: other requests meanwhile get the stale copy too).

use std::sync::Arc;

use edgeguard_cache::{ClientConditions, FillGuard};
use http::header;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::forward::{strip_hop_by_hop, upstream_head};
use crate::request_body::RequestBody;
use crate::runtime::DomainRt;
use crate::upstream;

/// Refreshes the object `fill` leads in the background: a bodiless GET with the client's head (without its
/// conditions, with the stored validators), stored or revalidated as a foreground fill would be.
pub(crate) fn spawn(
    ctx: &RequestCtx,
    domain: &Arc<DomainRt>,
    client: &http::request::Parts,
    fill: FillGuard,
) {
    let mut req = Request::new(());
    let (mut parts, ()) = req.into_parts();
    parts.method = Method::GET;
    parts.uri = client.uri.clone();
    parts.headers = client.headers.clone();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    ClientConditions::take(&mut parts.headers);
    fill.add_validators(&mut parts.headers);
    upstream_head(ctx, &mut parts);
    req = Request::from_parts(parts, ());
    let req = req.map(|()| RequestBody::empty());
    let now = ctx.cdn.now;
    let domain = Arc::clone(domain);
    tokio::spawn(async move {
        let answer = upstream::forward(
            &domain.upstreams,
            req,
            domain.connect_timeout,
            domain.read_timeout,
        )
        .await;
        let Ok((resp, pooled)) = answer else {
            tracing::info!(host = %domain.name, "background refresh failed");
            return;
        };
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if fill.is_revalidation() && parts.status == StatusCode::NOT_MODIFIED {
            fill.refresh(&parts, now);
            return;
        }
        if fill.check(&parts, now).is_err() {
            return;
        }
        let limit = fill.max_object_size();
        let body = ProxyBody::upstream(body, pooled, domain.read_timeout);
        if let Ok(collected) = Limited::new(body, limit).collect().await
            && let Err(why) = fill.complete(&parts, collected.to_bytes(), now)
        {
            tracing::debug!(host = %domain.name, "refreshed response not stored: {why}");
        }
    });
}
