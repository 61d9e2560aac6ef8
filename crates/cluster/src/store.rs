//! What the sync loop (`sync.rs`) needs of a counter store: Redis (`redis_store.rs`) or, for an edge with
//! `via = "parents"`, its parents (`tiered.rs`). Both take the same max-merged cumulative counts per node and
//! answer with the others' totals, so retries cannot double count whichever it is; only Redis carries events
//! and configuration.

use std::future::Future;
use std::time::Duration;

use crate::Inner;
use crate::counters::{Item, Totals};

pub(crate) trait Store: Send {
    /// Items sent per [`Store::counts`] call.
    const BATCH: usize;

    /// Opens what [`Store::counts`] talks over, within `timeout`.
    fn connect(&mut self, timeout: Duration) -> impl Future<Output = Result<(), String>> + Send;

    /// A round failed: drops what [`Store::connect`] opened.
    fn disconnect(&mut self);

    /// Sends the events and the configuration snapshot waiting in `inner`; whether the store was reached.
    fn send(&mut self, inner: &Inner) -> impl Future<Output = Result<bool, String>> + Send;

    /// Max-merges this node's counts of `items`; the others' totals, one per item in order.
    fn counts(
        &mut self,
        inner: &Inner,
        items: &[Item],
    ) -> impl Future<Output = Result<Vec<Totals>, String>> + Send;

    /// Whether the store may have lost counts it confirmed before, since the last call: a Redis reached again
    /// after a restart (or one that cannot tell), an answer from another instance of a parent. Every count
    /// must then be sent again.
    fn take_lost(&mut self) -> bool;

    /// The periodic read (`full`: from the start, every [`crate::RESYNC_EVERY`]) of what other nodes sent:
    /// events and configuration; whether the store was reached.
    fn read(
        &mut self,
        inner: &Inner,
        full: bool,
    ) -> impl Future<Output = Result<bool, String>> + Send;
}
