//! Tiered counting over the data plane (`[cluster] via = "parents"`, docs/cluster.md): an edge posts the
//! counts of its cluster-scoped limits to a domain's parent over the parent pool its misses use
//! ([`crate::ParentClient`], `server/parents.rs`), and a parent answers them at [`COUNTS_PATH`] before routing and protection, from
//! trusted peers only ([`EdgeCounts`], implemented by the cluster's aggregator). What a batch says is the
//! cluster crate's business; here it is bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::ctx::{ConnInfo, answer};
use crate::runtime::Runtime;

/// The reserved path a parent answers its edges' counts at, on its data-plane listeners.
pub const COUNTS_PATH: &str = "/.well-known/edgeguard/counts";
/// Largest batch taken, or answer read (about 40,000 keys).
pub(crate) const MAX_BATCH: usize = 4 << 20;

/// A parent's aggregation of its edges' counts.
pub trait EdgeCounts: Send + Sync {
    /// Merges a batch (the body an edge posted) and returns the answer's body; `Err` for a batch that does not
    /// read (400). Called on the request path of the POST: memory work only, no I/O.
    fn exchange(&self, body: &[u8]) -> Result<Vec<u8>, String>;

    /// Keys followed now, for `/metrics`.
    fn keys(&self) -> usize;
}

/// The parent's endpoint: the aggregation and what `/metrics` says of it.
pub(crate) struct CountsEndpoint {
    counts: Arc<dyn EdgeCounts>,
    merged: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
}

impl CountsEndpoint {
    pub(crate) fn new(counts: Arc<dyn EdgeCounts>) -> Self {
        CountsEndpoint {
            counts,
            merged: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        }
    }

    /// The Prometheus lines of the endpoint.
    pub(crate) fn metrics(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP edgeguard_tiered_batches_total Batches of counts posted by edges, by outcome.\n\
             # TYPE edgeguard_tiered_batches_total counter\n\
             edgeguard_tiered_batches_total{{outcome=\"merged\"}} {}\n\
             edgeguard_tiered_batches_total{{outcome=\"refused\"}} {}\n\
             edgeguard_tiered_batches_total{{outcome=\"malformed\"}} {}\n\
             # HELP edgeguard_tiered_keys Keys of the edges' counts this parent follows.\n\
             # TYPE edgeguard_tiered_keys gauge\n\
             edgeguard_tiered_keys {}\n",
            g(&self.merged),
            g(&self.refused),
            g(&self.malformed),
            self.counts.keys()
        )
    }
}

/// Answers a request for [`COUNTS_PATH`]: 403 to a peer that is not a trusted proxy and to a request an edge
/// forwarded for a client (it carries `X-Forwarded-For` or `Via`; an edge's own batches carry neither), with
/// nothing read or counted; 405 to anything but POST, 413 over [`MAX_BATCH`], 400 to a batch that does not
/// read.
pub(crate) async fn answer_edge(
    ep: &CountsEndpoint,
    rt: &Runtime,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let forwarded = req.headers().contains_key(&crate::client::X_FORWARDED_FOR)
        || req.headers().contains_key(header::VIA);
    if forwarded || !crate::client::is_trusted(conn.peer_ip, &rt.trusted_proxies) {
        ep.refused.fetch_add(1, Ordering::Relaxed);
        return answer(
            StatusCode::FORBIDDEN,
            "403 Forbidden\nedgeguard: counts are taken from trusted edges only (node.trusted_proxies), not \
             through them\n",
        );
    }
    if req.method() != Method::POST {
        let mut resp = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\nedgeguard: counts are posted\n",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let read = Limited::new(req.into_body(), MAX_BATCH).collect();
    let body = match tokio::time::timeout(rt.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            ep.malformed.fetch_add(1, Ordering::Relaxed);
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Payload Too Large\nedgeguard: counts batch too large\n",
            );
        }
        _ => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                "408 Request Timeout\nedgeguard: counts batch not received\n",
            );
        }
    };
    match ep.counts.exchange(&body) {
        Ok(reply) => {
            ep.merged.fetch_add(1, Ordering::Relaxed);
            answer(StatusCode::OK, reply)
        }
        Err(why) => {
            ep.malformed.fetch_add(1, Ordering::Relaxed);
            answer(
                StatusCode::BAD_REQUEST,
                format!("400 Bad Request\nedgeguard: {why}\n"),
            )
        }
    }
}

/// The answer of a node that does not aggregate (an edge) to a request for [`COUNTS_PATH`]: the path is
/// reserved, so a client cannot have an edge carry a batch of its own to the parent.
pub(crate) fn reserved() -> Response<ProxyBody> {
    answer(
        StatusCode::FORBIDDEN,
        "403 Forbidden\nedgeguard: reserved path (a parent's counts endpoint)\n",
    )
}
