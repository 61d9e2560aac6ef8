//! The node's request counters ([`DomainStats`] per domain, [`NodeStats`] node-wide): atomics bumped once per
//! request and read by `metrics.rs` at scrape time. A leaf, so the runtime and the shared state can hold them
//! without depending on the exposition code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::client_conns::ClientConns;
use crate::decision::Decision;

/// Status classes counted: 1xx to 5xx, and anything else.
pub(crate) const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub(crate) fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// Upper bounds of the latency histogram, in seconds.
pub(crate) const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters of one domain (or of requests that matched none).
#[derive(Debug, Default)]
pub(crate) struct DomainStats {
    pub(crate) requests: [AtomicU64; 6],
    pub(crate) decisions: [AtomicU64; 8],
}

impl DomainStats {
    pub(crate) fn count(&self, status: u16, decision: Decision) {
        self.requests[class_index(status)].fetch_add(1, Relaxed);
        self.decisions[decision.index()].fetch_add(1, Relaxed);
    }
}

/// Node-wide counters.
#[derive(Debug, Default)]
pub(crate) struct NodeStats {
    /// Requests for no configured domain.
    pub(crate) unknown: DomainStats,
    /// Cumulative per bucket is computed at scrape time; each request bumps one bucket.
    pub(crate) latency: [AtomicU64; 13],
    pub(crate) latency_sum_us: AtomicU64,
    /// Client connections open and refused at accept.
    pub(crate) clients: Arc<ClientConns>,
}

impl NodeStats {
    pub(crate) fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.latency[i].fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}
