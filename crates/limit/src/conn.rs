//! nginx `limit_conn`: per-key concurrent counters, released by a guard on drop.
//!
//! Semantics follow `ngx_http_limit_conn_module.c`: a key's state exists only while its count is above zero (no
//! LRU, nothing to evict: a state is freed by the release that brings it to zero), a new key starts at 1 without a
//! comparison, an existing one is refused when `count >= N`. A zone without room for a new key refuses the request
//! as nginx does when its slab allocation fails. Counts are released by [`ConnGuard`]'s `Drop`, so no path through
//! the proxy can leak one.
//!
//! The zone is its own small sharded map rather than the crate's LRU table: limit_conn states must never be
//! evicted (a live count would be forgotten and the limit escaped), and they leave the map at count zero.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// nginx's `limit_conn_zone` minimum size (8 pages of 4 KiB).
pub const MIN_ZONE_BYTES: usize = 32 * 1024;

/// Keys longer than this are not limited (nginx logs them and skips the limit).
pub const MAX_KEY_LEN: usize = 255;

/// Bytes charged to the zone for one state besides its key: the map slot (`Arc<[u8]>` pointer pair and count,
/// padded), its control byte, and the key allocation's reference counts. Chosen so that `in_use()` is an upper
/// bound of the heap the states really take.
pub const STATE_OVERHEAD: usize = 64;

const SHARDS: usize = 16;

/// Live keys of one shard and their counts; the key is shared with the guards that hold it.
type Shard = Mutex<HashMap<Arc<[u8]>, u32>>;

/// Why a zone could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnZoneError {
    /// nginx refuses zones under 32 KiB; so do we, so a config means the same in both.
    #[error(
        "limit_conn zone {name:?}: size {size} bytes is below the minimum of {MIN_ZONE_BYTES} bytes"
    )]
    TooSmall { name: String, size: usize },
}

/// A `limit_conn_zone`: counts per key, shared by every place that uses the zone. Each place compares the same
/// count with its own N ([`ConnLimit::conn`]).
#[derive(Debug)]
pub struct ConnZone {
    name: String,
    capacity: usize,
    used: AtomicUsize,
    hasher: RandomState,
    shards: Box<[Shard]>,
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
    held: Vec<(Arc<ConnZone>, Arc<[u8]>)>,
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
        while let Some((zone, key)) = self.held.pop() {
            zone.release(&key);
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
    Taken(Arc<[u8]>),
    AtLimit,
    NoRoom,
}

impl ConnZone {
    /// A zone of `size_bytes` (at least [`MIN_ZONE_BYTES`]).
    pub fn new(name: impl Into<String>, size_bytes: usize) -> Result<Self, ConnZoneError> {
        let name = name.into();
        if size_bytes < MIN_ZONE_BYTES {
            return Err(ConnZoneError::TooSmall {
                name,
                size: size_bytes,
            });
        }
        Ok(Self {
            name,
            capacity: size_bytes,
            used: AtomicUsize::new(0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// The zone's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes the live states are charged ([`STATE_OVERHEAD`] + key length each); never above `capacity()`.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The zone's byte budget.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of keys with a count above zero.
    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// The current count of `key` (0 when it has no state).
    pub fn count(&self, key: &[u8]) -> u32 {
        lock(self.shard(key)).get(key).copied().unwrap_or(0)
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        let h = self.hasher.hash_one(key);
        // The map hashes with the same keys; the top bits pick the shard so the low bits the map uses stay spread.
        &self.shards[(h >> 60) as usize % SHARDS]
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&n| n <= self.capacity)
            })
            .is_ok()
    }

    fn acquire(&self, key: &[u8], limit: u32) -> Acquire {
        let mut map = lock(self.shard(key));
        if let Some((k, count)) = map.get_key_value(key) {
            if *count >= limit {
                return Acquire::AtLimit;
            }
            let k = Arc::clone(k);
            if let Some(c) = map.get_mut(key) {
                *c += 1;
            }
            return Acquire::Taken(k);
        }
        if !self.reserve(STATE_OVERHEAD + key.len()) {
            return Acquire::NoRoom;
        }
        let k: Arc<[u8]> = Arc::from(key);
        map.insert(Arc::clone(&k), 1);
        Acquire::Taken(k)
    }

    fn release(&self, key: &[u8]) {
        let mut map = lock(self.shard(key));
        let Some(c) = map.get_mut(key) else {
            return;
        };
        *c = c.saturating_sub(1);
        if *c == 0 {
            map.remove(key);
            self.used
                .fetch_sub(STATE_OVERHEAD + key.len(), Ordering::AcqRel);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding a shard cannot leave a count half-updated (each update is one store), so a
    // poisoned shard is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// nginx's limit_conn handler for one request: `keys[i]` is limit `i`'s key value for this request.
///
/// For each limit with a usable key (1..=255 bytes): a new key starts at count 1, an existing one is refused when
/// its count is `>= N`, else counted. A refusal (or a full zone) releases what this request already took and stops:
/// later limits are not evaluated. A dry-run refusal reports `RejectedDryRun` and the request goes on holding
/// nothing, exactly as nginx's `cleanup_all` + `NGX_DECLINED`.
///
/// Hot path: one shard lock per limit; allocates only the guard's list and, for a new key, the key's copy.
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
            Acquire::Taken(k) => guard.held.push((Arc::clone(&limit.zone), k)),
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
    fn zone_minimum_size() {
        assert!(ConnZone::new("z", MIN_ZONE_BYTES - 1).is_err());
        assert!(ConnZone::new("z", MIN_ZONE_BYTES).is_ok());
    }
}
