//! Counters for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub passes: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale_served: AtomicU64,
    pub revalidated: AtomicU64,
    pub stored: AtomicU64,
    pub not_stored: AtomicU64,
    pub evictions: AtomicU64,
    pub bytes: AtomicU64,
    pub objects: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            passes: self.passes.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            revalidated: self.revalidated.load(Relaxed),
            stored: self.stored.load(Relaxed),
            not_stored: self.not_stored.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            objects: self.objects.load(Relaxed),
            ..CacheStats::default()
        }
    }
}

/// A point-in-time copy of a cache's counters. Counters only grow; `bytes` and `objects` are gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fresh hits, including requests that waited for another request's fill and got its object.
    pub hits: u64,
    /// Lookups that led a fill (went upstream to fill the cache).
    pub misses: u64,
    /// Lookups that went upstream without filling: methods other than GET/HEAD, a HEAD or Range request
    /// that found nothing, or a follower whose leader brought nothing storable.
    pub passes: u64,
    /// Lookups that waited for a fill already in flight instead of going upstream.
    pub coalesced: u64,
    /// Expired objects served because the upstream failed (reported by the proxy).
    pub stale_served: u64,
    /// Expired objects the upstream confirmed with a 304 (stored body served again).
    pub revalidated: u64,
    /// Fills that stored an object.
    pub stored: u64,
    /// Fills that ended without storing: response not storable or too large, or guard dropped (upstream
    /// error, client gone, response streamed).
    pub not_stored: u64,
    /// Objects evicted to stay within the memory budget.
    pub evictions: u64,
    /// Bytes charged against the budget right now.
    pub bytes: u64,
    /// Objects held right now.
    pub objects: u64,
    /// Memory misses answered from the disk tier.
    pub disk_hits: u64,
    /// Objects written to the disk tier.
    pub disk_writes: u64,
    /// Writes the disk tier dropped because its writer was behind.
    pub disk_dropped: u64,
    /// Bytes of the disk tier's files right now.
    pub disk_bytes: u64,
    /// Objects in the disk tier right now.
    pub disk_objects: u64,
}
