//! `Upgrade` pass-through (WebSocket and other protocols) for domains with `websocket = true`: the request
//! keeps its `Connection: upgrade` and `Upgrade` headers towards the upstream, and when the upstream answers
//! 101 the client's connection and the upstream's are joined byte for byte until either side closes. The
//! request's limit_conn counts are held by the tunnel for its whole life, so a zone's `conn` caps open
//! WebSockets, not only their handshakes.
//!
//! A CONNECT that the domain allows (`allow_methods`) is joined the same way when the upstream answers 2xx.
//!
//! Only HTTP/1.1 upgrades: an HTTP/2 client asks with extended CONNECT (RFC 8441), which is not offered.
//! Domains without `websocket` get the hop-by-hop headers removed, as before: the origin sees a plain request.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::ProxyBody;
use crate::limits::ConnGuard;
use crate::upstream::Pooled;

/// The protocol a client asks to switch to: an HTTP/1.1 request with `Connection: upgrade` and `Upgrade`.
/// Hot path: one header lookup for requests without `Upgrade`.
pub(crate) fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    let proto = req.headers().get(header::UPGRADE)?;
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let says_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    says_upgrade.then(|| proto.clone())
}

/// Puts the upgrade back on a head whose hop-by-hop headers were removed.
pub(crate) fn restore(headers: &mut HeaderMap, proto: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, proto);
}

/// The 101 (or a CONNECT's 2xx) to send the client, and the task that joins the two connections once both have switched.
pub(crate) fn tunnel(
    mut resp: Response<Incoming>,
    pooled: Pooled,
    client: OnUpgrade,
    guard: Option<ConnGuard>,
    via: HeaderValue,
) -> Response<ProxyBody> {
    let upstream = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    let proto = parts.headers.get(header::UPGRADE).cloned();
    crate::forward::strip_hop_by_hop(&mut parts.headers);
    if let Some(proto) = proto {
        restore(&mut parts.headers, proto);
    }
    parts.headers.append(header::VIA, via);
    let label = pooled.pool().label.clone();
    // The upstream connection belongs to the tunnel now; it never goes back to the pool.
    drop(pooled);
    tokio::spawn(async move {
        let _counts = guard;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(upstream = %label, "upgrade failed: {e}");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(upstream = %label, "upgraded connection ended: {e}");
        }
    });
    Response::from_parts(parts, ProxyBody::full(bytes::Bytes::new()))
}
