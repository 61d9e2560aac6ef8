//! Hooks through which a cluster backend shares the engine's counts and blocks with the other nodes, so limits
//! with `scope = "cluster"` hold across nodes (SPEC section 9.5). The engine stays free of I/O: it only calls
//! these traits, whose implementation (`edgeguard-cluster`) keeps the totals in memory and synchronises them in
//! the background. Every method here is called on the request path or under the engine's locks and must not
//! block, wait or do I/O.

use std::sync::Arc;

use edgeguard_store::BlockRecord;

/// What the other nodes add to a key's count, as last synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Others {
    /// The other nodes' count in the window ending now (0 while the backend is down and the node decides on
    /// its own counts: `on_redis_failure = "local"`).
    Count(u64),
    /// The backend is down and `on_redis_failure = "open"`: the limit lets requests pass.
    Open,
    /// The backend is down and `on_redis_failure = "closed"`: the limit refuses what it covers.
    Closed,
}

/// The cluster's share of one counting table (a rule's window, a domain's IP access limit, or a `limit_req`
/// zone as one domain uses it).
pub trait SharedCounter: Send + Sync {
    /// The other nodes' count of `key` over the table's window ending at `now_ms` (Unix ms).
    ///
    /// Hot path: a shard lock and a lookup; no I/O, no allocation for a known key.
    fn others(&self, key: &[u8], now_ms: u64) -> Others;

    /// This node counted `n` more for `key` at `now_ms`; the backend sends it in the background. `limit` is the
    /// limit the count is compared with, when the engine knows it (the IP access limit's qps): the backend
    /// sends sooner the closer counts are to it.
    ///
    /// Hot path: a shard lock; allocates only for a key new to the table.
    fn add(&self, key: &[u8], now_ms: u64, n: u32, limit: Option<u64>);

    /// What the other nodes counted of `key` since the last call for it (as last synchronised), for a limit
    /// that charges them to state of its own (a `limit_req` bucket) rather than comparing a window's count:
    /// each count is handed out once. `Open` / `Closed` as for [`SharedCounter::others`].
    ///
    /// Hot path: a shard lock and a lookup; no I/O, no allocation.
    fn take_others(&self, key: &[u8], now_ms: u64) -> Others;

    /// [`SharedCounter::add`] of 1, then [`SharedCounter::others`] after it: what a rule does for every
    /// request it counts. A backend may do both in one visit of the key.
    fn add_then_others(&self, key: &[u8], now_ms: u64, limit: Option<u64>) -> Others {
        self.add(key, now_ms, 1, limit);
        self.others(key, now_ms)
    }

    /// [`SharedCounter::others`], then an [`SharedCounter::add`] of 1 if `admit` (given the others' count)
    /// says the request counts: what the IP access limit does for every request. A backend may do both in one
    /// visit of the key (with `admit` called under its lock: `admit` must not call back into the counter).
    fn others_then_add(
        &self,
        key: &[u8],
        now_ms: u64,
        limit: Option<u64>,
        admit: &mut dyn FnMut(Others) -> bool,
    ) {
        if admit(self.others(key, now_ms)) {
            self.add(key, now_ms, 1, limit);
        }
    }
}

/// A cluster backend, as the node's protection sees it.
pub trait ClusterHooks: Send + Sync {
    /// The shared counter of `table` (a rule's name, or [`crate::IP_LIMIT_TABLE`]) of `domain` over windows of
    /// `window_ms`. Asked at every build of the domain's guard: the same arguments must give the same counts.
    fn counter(&self, domain: &str, table: &str, window_ms: u64) -> Arc<dyn SharedCounter>;

    /// A block or challenge was put in force on this node (a rule fired, or an operator started it).
    fn block_set(&self, record: &BlockRecord);

    /// A block or challenge was lifted on this node through the admin API.
    fn block_lifted(&self, domain: &str, object_type: &str, object_value: &str);
}

impl std::fmt::Debug for dyn ClusterHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterHooks")
    }
}

impl std::fmt::Debug for dyn SharedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCounter")
    }
}
