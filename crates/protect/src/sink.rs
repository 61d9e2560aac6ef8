//! Where a domain's protection reports what it did: the node's name, the activity log's writer and the refusal
//! tallies.

use std::sync::Arc;

use edgeguard_store::ActivityWriter;

use crate::shared::ClusterHooks;
use crate::summary::Summaries;

/// Where triggers are reported: the node's name for the records and the store's asynchronous writer (absent in
/// replays and in tests that do not look).
#[derive(Clone, Default)]
pub struct Sink {
    pub node: String,
    pub writer: Option<ActivityWriter>,
    /// Triggers are counted here; at most a few per rule and period get a line of their own.
    pub summaries: Arc<Summaries>,
    /// The cluster backend when the node is in one: `scope = "cluster"` counts and blocks go through it.
    pub cluster: Option<Arc<dyn ClusterHooks>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("node", &self.node)
            .field("writer", &self.writer.is_some())
            .finish()
    }
}
