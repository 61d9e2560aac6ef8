//! nginx `limit_conn`: per-key concurrent counters, released by a guard on drop.
//!
//! Semantics follow `ngx_http_limit_conn_module.c`: a key's state exists only while its count is above zero (no
//! LRU, nothing to evict: a state is freed by the release that brings it to zero), a new key starts at 1 without a
//! comparison, an existing one is refused when `count >= N`. A zone without room for a new key refuses the request
//! as nginx does when its slab allocation fails. Counts are released by [`ConnGuard`]'s `Drop`, so no path through
//! the proxy can leak one.
//!
//! States live in the crate's [`Table`] with a zero-sized state: a key's count is its pin count. Pinned states are
//! never evicted and every stored state is pinned (the release that unpins to zero removes it), so the table's LRU
//! eviction never fires and a full zone refuses new keys, as nginx's. One state costs one table slot (42 bytes
//! with a key of up to 16 bytes; a longer key takes one more slot per 32 key bytes past the first 12).

use std::sync::Arc;

use crate::table::{NoRoom, SlotRef, Table, TableError, TableState};

/// nginx's `limit_conn_zone` minimum size (8 pages of 4 KiB).
pub const MIN_ZONE_BYTES: usize = 32 * 1024;

/// Keys longer than this are not limited (nginx logs them and skips the limit).
pub const MAX_KEY_LEN: usize = 255;

/// Why a zone could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnZoneError {
    /// nginx refuses zones under 32 KiB; so do we, so a config means the same in both.
    #[error(
        "limit_conn zone {name:?}: size {size} bytes is below the minimum of {MIN_ZONE_BYTES} bytes"
    )]
    TooSmall { name: String, size: usize },
    #[error("limit_conn zone {name:?}: {source}")]
    Table { name: String, source: TableError },
}

/// A key's state: nothing but its presence; the count is the slot's pin count.
#[derive(Debug, Default, Clone, Copy)]
struct Held;

impl TableState for Held {
    type Params = ();

    fn expirable(&self, _now_ms: u64, _: &()) -> bool {
        // Stored states are always pinned; never let eviction take one regardless.
        false
    }
}

/// A `limit_conn_zone`: counts per key, shared by every place that uses the zone. Each place compares the same
/// count with its own N ([`ConnLimit::conn`]).
#[derive(Debug)]
pub struct ConnZone {
    name: String,
    table: Table<Held>,
}

/// One `limit_conn ZONE N` line of a location, with that location's `limit_conn_dry_run`.
#[derive(Debug, Clone)]
pub struct ConnLimit {
    pub zone: Arc<ConnZone>,
    /// N, 1..=65535 after config validation.
    pub conn: u32,
    pub dry_run: bool,
}

/// nginx's `$limit_conn_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnStatus {
    Passed,
    Rejected,
    RejectedDryRun,
}

impl ConnStatus {
    /// The variable's value, as nginx spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Passed => "PASSED",
            ConnStatus::Rejected => "REJECTED",
            ConnStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

/// What [`limit_conn`] decided for one request.
#[derive(Debug)]
#[must_use = "dropping the guard releases the counts at once"]
pub struct ConnDecision {
    /// `None`: no limit had a usable key, `$limit_conn_status` stays unset.
    pub status: Option<ConnStatus>,
    /// Index in `limits` of the limit that refused (also for a dry-run refusal); `None` when nothing refused.
    pub limit: Option<usize>,
    /// The counts this request holds; empty unless the request passed. Keep it until the request ends.
    pub guard: ConnGuard,
}

/// The counts one request holds. Dropping it releases each of them (and frees a state whose count reaches 0).
/// `Send + 'static`, so it can live inside a response body.
#[derive(Debug, Default)]
pub struct ConnGuard {
    /// Each entry pins its slot, so the `SlotRef` stays valid until released.
    held: Vec<(Arc<ConnZone>, SlotRef)>,
}

impl ConnGuard {
    /// A guard holding nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// How many counts the guard holds (one per limit that counted this request).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Releases everything now rather than at drop.
    pub fn release(&mut self) {
        // Reverse order, as nginx runs its pool cleanups.
        while let Some((zone, slot)) = self.held.pop() {
            zone.release(slot);
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether the zone took a count.
enum Acquire {
    Taken(SlotRef),
    AtLimit,
    NoRoom,
}

impl ConnZone {
    /// A zone of `size_bytes` (at least [`MIN_ZONE_BYTES`]); the whole budget is allocated now, as nginx's
    /// shared memory zone is.
    pub fn new(name: impl Into<String>, size_bytes: usize) -> Result<Self, ConnZoneError> {
        let name = name.into();
        if size_bytes < MIN_ZONE_BYTES {
            return Err(ConnZoneError::TooSmall {
                name,
                size: size_bytes,
            });
        }
        match Table::new(size_bytes, ()) {
            Ok(table) => Ok(Self { name, table }),
            Err(source) => Err(ConnZoneError::Table { name, source }),
        }
    }

    /// The zone's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keys with a count above zero (locks each shard in turn: not for the request path).
    pub fn in_use(&self) -> usize {
        self.table.in_use()
    }

    /// Keys of up to 16 bytes the zone holds at once.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Bytes one key of up to 16 bytes costs (a longer key takes one more slot per 32 key bytes past the first 12).
    pub const fn bytes_per_key() -> usize {
        Table::<Held>::bytes_per_state()
    }

    /// Bytes allocated for the zone; never above the size it was built with.
    pub fn held_bytes(&self) -> usize {
        self.table.held_bytes()
    }

    /// The current count of `key` (0 when it has no state).
    pub fn count(&self, key: &[u8]) -> u32 {
        let h = self.table.hash(key);
        let g = self.table.lock(h);
        g.peek(h, key).map_or(0, |r| g.pins(r))
    }

    fn acquire(&self, key: &[u8], limit: u32) -> Acquire {
        let h = self.table.hash(key);
        let mut g = self.table.lock(h);
        let r = match g.find(h, key) {
            Some(r) if g.pins(r) >= limit => return Acquire::AtLimit,
            Some(r) => r,
            // Nothing is evictable (every state is pinned), so NoRoom means the zone is full.
            None => match g.insert(h, key, 0, Held) {
                Ok(r) => r,
                Err(NoRoom) => return Acquire::NoRoom,
            },
        };
        g.pin(r);
        Acquire::Taken(r)
    }

    fn release(&self, r: SlotRef) {
        let mut g = self.table.lock_slot(r);
        g.unpin(r);
        if g.pins(r) == 0 {
            g.remove(r);
        }
    }
}

/// nginx's limit_conn handler for one request: `keys[i]` is limit `i`'s key value for this request.
///
/// For each limit with a usable key (1..=255 bytes): a new key starts at count 1, an existing one is refused when
/// its count is `>= N`, else counted. A refusal (or a full zone) releases what this request already took and stops:
/// later limits are not evaluated. A dry-run refusal reports `RejectedDryRun` and the request goes on holding
/// nothing, exactly as nginx's `cleanup_all` + `NGX_DECLINED`.
///
/// Hot path: one shard lock per limit; allocates only the guard's list (one `Vec` of `limits.len()`).
pub fn limit_conn(limits: &[ConnLimit], keys: &[&[u8]]) -> ConnDecision {
    let mut status = None;
    let mut guard = ConnGuard {
        held: Vec::with_capacity(limits.len()),
    };
    for (i, (limit, key)) in limits.iter().zip(keys).enumerate() {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            continue;
        }
        status = Some(ConnStatus::Passed);
        match limit.zone.acquire(key, limit.conn) {
            Acquire::Taken(r) => guard.held.push((Arc::clone(&limit.zone), r)),
            Acquire::AtLimit | Acquire::NoRoom => {
                guard.release();
                let status = if limit.dry_run {
                    ConnStatus::RejectedDryRun
                } else {
                    ConnStatus::Rejected
                };
                return ConnDecision {
                    status: Some(status),
                    limit: Some(i),
                    guard,
                };
            }
        }
    }
    ConnDecision {
        status,
        limit: None,
        guard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_is_send_and_static() {
        fn assert_send_static<T: Send + 'static>() {}
        assert_send_static::<ConnGuard>();
        assert_send_static::<ConnDecision>();
    }

    #[test]
    fn state_is_42_bytes() {
        assert_eq!(ConnZone::bytes_per_key(), 42);
    }

    #[test]
    fn zone_minimum_size() {
        assert!(ConnZone::new("z", MIN_ZONE_BYTES - 1).is_err());
        assert!(ConnZone::new("z", MIN_ZONE_BYTES).is_ok());
    }
}
