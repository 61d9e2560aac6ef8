//! The node-wide state every connection of a node shares ([`Shared`]): the runtime snapshot, the clock, the
//! counters and the access log. Its own module so that the request context, the access log and the counters
//! stay leaves that do not name each other.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use edgeguard_limit::Clock;
use edgeguard_protect::summary::Summaries;

use crate::access_log::AccessLog;
use crate::counts::CountsEndpoint;
use crate::ctx::Epoch;
use crate::runtime::Runtime;
use crate::stats::NodeStats;

/// State shared by every connection of a node.
pub(crate) struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics` that are not per domain.
    pub stats: NodeStats,
    pub access_log: AccessLog,
    /// Refusal tallies (the node protection's): `/metrics` reads them, a background task writes the summaries.
    pub summaries: Arc<Summaries>,
    /// Wall-clock time for cache freshness, read through `clock`.
    pub epoch: Epoch,
    /// A parent's aggregation of its edges' counts, once the binary set it (tiered counting).
    pub edge_counts: OnceLock<CountsEndpoint>,
}
