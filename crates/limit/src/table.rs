//! A keyed table of per-key states under a hard byte budget, evicted in LRU order the way nginx's zones are.
//!
//! Layout of one shard, all allocated when the table is built and never grown:
//! - `slots`: one [`Slot`] per state: the state, a 16-byte inline key, its hash and a pin count. Keys longer
//!   than 16 bytes keep their first 12 bytes inline and the rest in a chain of further slots, 28 key bytes
//!   each, so long keys are charged to the same budget as states.
//! - `links`: LRU prev/next per slot (also the free list and the chunk chains), 8 bytes, in their own array so
//!   the neighbours a lookup rewrites stay in cache.
//! - `index`: open addressing with linear probing, 3 index words of 4 bytes per 2 slots (load <= 2/3). A word
//!   holds an 8-bit hash tag and the slot number + 1, so a probe rarely touches a slot that does not match.
//!
//! The budget covers the slots, links, index and shard headers; `Table::held_bytes` reports the total.
//! Tables below [`SINGLE_SHARD_BELOW`] have one shard, so LRU order and eviction are exactly nginx's; bigger
//! tables are split into shards by key hash, each with its own lock, LRU list and share of the budget, so
//! eviction is nginx's within a shard (see `docs/limit.md`).

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) mod lock;
pub(crate) mod shard;
pub(crate) mod sketch;

use lock::{SpinGuard, SpinLock};
use shard::{Link, Shard, Slot, index_words, slots_for};

/// Tables smaller than this have one shard (exact nginx LRU order).
pub const SINGLE_SHARD_BELOW: usize = 256 * 1024;
/// Longest key a table stores, as nginx's limit_req (`u_short len`). Longer keys are never limited.
pub const MAX_KEY_LEN: usize = 65_535;
/// Key bytes stored in the slot itself.
pub const INLINE_KEY: usize = 16;

const NIL: u32 = u32::MAX;
const IDX_BITS: u32 = 24;
const IDX_MASK: u32 = (1 << IDX_BITS) - 1;
/// The largest slot count of a shard: the slot number + 1 must fit in the index word's 24 bits.
const MAX_SLOTS_PER_SHARD: usize = IDX_MASK as usize - 1;
/// Key bytes in the inline area of a long key (the other 4 hold the first chunk's slot number).
const LONG_HEAD: usize = 12;
/// Key bytes in one chunk slot.
const CHUNK: usize = 28;

/// A state kept per key. The expiry test lives here so each kind of state says when it may be dropped.
pub trait TableState: Default + Send + 'static {
    /// Table-wide parameters the expiry test needs (limit_req: the zone's rate).
    type Params: Send + Sync + 'static;

    /// Whether this unpinned tail state may be dropped before a new state is inserted at `now_ms`.
    fn expirable(&self, now_ms: u64, params: &Self::Params) -> bool;
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The size does not hold one state per shard.
    #[error("table size {size} bytes is too small: at least {min} bytes are needed")]
    TooSmall { size: usize, min: usize },
    /// A shard count of zero was asked for.
    #[error("a table needs at least one shard")]
    NoShards,
}

/// The table had no room for a new state even after eviction (nginx: "could not allocate node"), or the key
/// is longer than [`MAX_KEY_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no room for a new state in the table")]
pub struct NoRoom;

/// A key's 64-bit hash: the low half places it in a shard's index, the high half picks the shard and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

impl KeyHash {
    #[inline]
    fn lo(self) -> u32 {
        self.0 as u32
    }
    #[inline]
    fn hi(self) -> u32 {
        (self.0 >> 32) as u32
    }
    #[inline]
    fn tag(self) -> u32 {
        self.hi() & 0xff
    }
}

/// Where a state lives. Stays valid while the state is pinned or until it is removed or evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotRef {
    shard: u32,
    slot: u32,
}

impl SlotRef {
    /// The shard holding the state.
    pub fn shard(self) -> usize {
        self.shard as usize
    }
}

/// How a full table makes room for a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eviction {
    /// nginx's: up to 2 expirable tail states, then the least recently used state whatever it counts. For
    /// limit_req and limit_conn zones, which must behave as nginx's.
    #[default]
    Lru,
    /// TinyLFU admission: a small count-min sketch estimates each key's recent accesses; when the table is full
    /// a new key is stored only if its estimate beats the least frequent of a few candidates (here: least
    /// recently used states; in the protection tables' compact table: sampled ways of the key's buckets), which
    /// is then evicted. A refused key is not stored (the caller treats it as fresh). A key that keeps counting
    /// survives a flood of one-shot keys far larger than the table.
    FrequencyAware,
}

/// Bytes one state costs with a key of up to 16 bytes under LRU eviction: its slot plus its share of the index.
pub const fn bytes_per_state<S>() -> usize {
    // Links, and 3 index words per 2 slots rounded up per state.
    size_of::<Slot<S>>() + size_of::<Link>() + 6
}

/// Bytes one state costs with a key of up to 16 bytes under `eviction` (frequency-aware tables add one
/// 8-byte sketch word per slot).
pub const fn bytes_per_state_with<S>(eviction: Eviction) -> usize {
    match eviction {
        Eviction::Lru => bytes_per_state::<S>(),
        Eviction::FrequencyAware => bytes_per_state::<S>() + 8,
    }
}

#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// One shard (this table's or the compact table's) and its counters, on cache lines of their own.
pub(crate) struct Cell<T> {
    pub(crate) lock: SpinLock<T>,
    pub(crate) stats: Stats,
}

/// Monotonic counters of one shard. Written under the shard's lock (a plain load and store, no locked
/// instruction), read from anywhere.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) evictions: AtomicU64,
    pub(crate) refusals: AtomicU64,
}

impl Stats {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// A table of per-key states; see the module documentation.
pub struct Table<S: TableState> {
    shards: Box<[Padded<Cell<Shard<S>>>]>,
    eviction: Eviction,
    hasher: foldhash::fast::RandomState,
    params: S::Params,
    size: usize,
    capacity: usize,
}

impl<S: TableState> std::fmt::Debug for Table<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("size", &self.size)
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .field("in_use", &self.in_use())
            .field("eviction", &self.eviction)
            .field("evictions", &self.evictions())
            .field("admission_refusals", &self.admission_refusals())
            .finish()
    }
}

/// Shard count chosen for a table of `size` bytes.
fn default_shards(size: usize, per_state: usize) -> usize {
    if size < SINGLE_SHARD_BELOW {
        return 1;
    }
    // Enough shards that a few threads rarely meet on a lock or a shard's LRU head; few enough that each
    // shard's arrays span several huge pages and each LRU stays long.
    let mut n = (size / (512 * 1024)).clamp(2, 32);
    n = 1 << n.ilog2();
    while size / n / per_state > MAX_SLOTS_PER_SHARD {
        n *= 2;
    }
    n
}

impl<S: TableState> Table<S> {
    /// A table holding at most `size_bytes` bytes, sharded by size (one shard below [`SINGLE_SHARD_BELOW`]).
    pub fn new(size_bytes: usize, params: S::Params) -> Result<Self, TableError> {
        let shards = default_shards(size_bytes, bytes_per_state::<S>());
        Self::with_shards(size_bytes, shards, params)
    }

    /// A table of at most `size_bytes` bytes with the given eviction policy, sharded by size.
    pub fn with_eviction(
        size_bytes: usize,
        params: S::Params,
        eviction: Eviction,
    ) -> Result<Self, TableError> {
        let shards = default_shards(size_bytes, bytes_per_state_with::<S>(eviction));
        Self::build(size_bytes, shards, params, eviction)
    }

    /// A table of `size_bytes` split into `shards` shards (1 gives nginx's exact LRU order at any size).
    pub fn with_shards(
        size_bytes: usize,
        shards: usize,
        params: S::Params,
    ) -> Result<Self, TableError> {
        Self::build(size_bytes, shards, params, Eviction::Lru)
    }

    /// A table of `size_bytes` split into `shards` shards, with the given eviction policy.
    pub fn build(
        size_bytes: usize,
        shards: usize,
        params: S::Params,
        eviction: Eviction,
    ) -> Result<Self, TableError> {
        if shards == 0 {
            return Err(TableError::NoShards);
        }
        let frequency = eviction == Eviction::FrequencyAware;
        let header = size_of::<Self>() + shards * size_of::<Padded<Cell<Shard<S>>>>();
        let slot_size = size_of::<Slot<S>>() + size_of::<Link>();
        let sketch_bytes = |n: usize| match frequency {
            true => sketch::bytes_for(n),
            false => 0,
        };
        let min = header + shards * (slot_size + index_words(1) * 4 + sketch_bytes(1));
        if size_bytes < min {
            return Err(TableError::TooSmall {
                size: size_bytes,
                min,
            });
        }
        let per_shard = (size_bytes - header) / shards;
        let mut n = (per_shard / bytes_per_state_with::<S>(eviction)).min(MAX_SLOTS_PER_SHARD);
        while n * slot_size + index_words(n) * 4 + sketch_bytes(n) > per_shard {
            n -= 1;
        }
        let shards: Box<[_]> = (0..shards)
            .map(|_| {
                Padded(Cell {
                    lock: SpinLock::new(Shard::new(n, frequency)),
                    stats: Stats::default(),
                })
            })
            .collect();
        Ok(Self {
            eviction,
            capacity: n * shards.len(),
            shards,
            hasher: foldhash::fast::RandomState::default(),
            params,
            size: size_bytes,
        })
    }

    /// The parameters given at construction.
    pub fn params(&self) -> &S::Params {
        &self.params
    }

    /// States that fit with keys of up to 16 bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// States held now (locks each shard in turn; not for the request path).
    pub fn in_use(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock.lock().len).sum()
    }

    /// The eviction policy given at construction.
    pub fn eviction(&self) -> Eviction {
        self.eviction
    }

    /// Live states dropped to make room for new keys since the table was built: the LRU tail taken whatever
    /// its state, or a frequency-aware victim. Idle states dropped by the expiry test are not counted.
    /// Lock-free read.
    pub fn evictions(&self) -> u64 {
        let s = self.shards.iter();
        s.map(|s| s.0.stats.evictions.load(Ordering::Relaxed)).sum()
    }

    /// New keys not stored since the table was built: refused by frequency-aware admission, or no room
    /// (pinned tail, key too long). Lock-free read.
    pub fn admission_refusals(&self) -> u64 {
        let s = self.shards.iter();
        s.map(|s| s.0.stats.refusals.load(Ordering::Relaxed)).sum()
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The byte budget given at construction.
    pub fn size_bytes(&self) -> usize {
        self.size
    }

    /// Bytes actually allocated: shard headers, slots and index. Never above [`Table::size_bytes`].
    pub fn held_bytes(&self) -> usize {
        let mut total = size_of::<Self>() + self.shards.len() * size_of::<Padded<Cell<Shard<S>>>>();
        for s in self.shards.iter() {
            let s = s.0.lock.lock();
            total += s.sketch.as_ref().map_or(0, |k| k.held_bytes());
            total += s.capacity() * (size_of::<Slot<S>>() + size_of::<Link>()) + s.index.len() * 4;
        }
        total
    }

    /// Bytes per state with a key of up to 16 bytes.
    pub const fn bytes_per_state() -> usize {
        bytes_per_state::<S>()
    }

    /// Bytes per state with a key of up to 16 bytes under this table's eviction policy.
    pub fn state_bytes(&self) -> usize {
        bytes_per_state_with::<S>(self.eviction)
    }

    /// Hashes a key (keyed per table, so clients cannot aim collisions).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> KeyHash {
        use std::hash::BuildHasher;
        KeyHash(self.hasher.hash_one(key))
    }

    #[inline]
    fn shard_of(&self, h: KeyHash) -> usize {
        ((h.hi() as u64 * self.shards.len() as u64) >> 32) as usize
    }

    /// Locks the shard that holds (or would hold) the key with hash `h`.
    #[inline]
    pub fn lock(&self, h: KeyHash) -> ShardGuard<'_, S> {
        self.lock_shard(self.shard_of(h))
    }

    /// Locks the shard that holds `slot`.
    #[inline]
    pub fn lock_slot(&self, slot: SlotRef) -> ShardGuard<'_, S> {
        self.lock_shard(slot.shard as usize)
    }

    fn lock_shard(&self, shard: usize) -> ShardGuard<'_, S> {
        ShardGuard {
            shard: shard as u32,
            inner: self.shards[shard].0.lock.lock(),
            stats: &self.shards[shard].0.stats,
            params: &self.params,
        }
    }

    /// Keys of one shard from the LRU head (most recent) to the tail (for tests and inspection).
    pub fn lru_keys(&self, shard: usize) -> Vec<Vec<u8>> {
        let s = self.shards[shard].0.lock.lock();
        let mut out = Vec::with_capacity(s.len);
        let mut i = s.head;
        while i != NIL {
            out.push(s.key_of(i));
            i = s.links[i as usize].next;
        }
        out
    }
}

/// One locked shard. Hold it only for the few steps of one decision.
pub struct ShardGuard<'a, S: TableState> {
    shard: u32,
    inner: SpinGuard<'a, Shard<S>>,
    params: &'a S::Params,
    stats: &'a Stats,
}

impl<S: TableState> ShardGuard<'_, S> {
    #[inline]
    fn slot(&self, r: SlotRef) -> u32 {
        debug_assert_eq!(r.shard, self.shard, "slot of another shard");
        r.slot
    }

    #[inline]
    fn r(&self, slot: u32) -> SlotRef {
        SlotRef {
            shard: self.shard,
            slot,
        }
    }

    /// Finds `key` and moves its state to the LRU head, as every nginx lookup does. In a frequency-aware
    /// table a hit also counts as an access of the key.
    #[inline(always)]
    pub fn find(&mut self, h: KeyHash, key: &[u8]) -> Option<SlotRef> {
        let i = self.inner.find(h, key)?;
        self.inner.move_to_head(i);
        if let Some(sketch) = &mut self.inner.sketch {
            sketch.increment(h.lo());
        }
        Some(self.r(i))
    }

    /// Finds `key` without touching the LRU order.
    pub fn peek(&self, h: KeyHash, key: &[u8]) -> Option<SlotRef> {
        self.inner.find(h, key).map(|i| self.r(i))
    }

    /// Inserts `state` for `key` (which must not be present) at the LRU head. Under [`Eviction::Lru`] it first
    /// evicts as nginx does: up to 2 expirable tail states; if there is still no room, 1 tail state whatever its
    /// age and up to 2 more expirable ones. Pinned states stop eviction. Under [`Eviction::FrequencyAware`] the
    /// attempt counts as an access of the key, idle tail states go first, and a live state is evicted only for a
    /// key estimated more frequent than it; otherwise the key is refused (`NoRoom`) and nothing is stored.
    pub fn insert(
        &mut self,
        h: KeyHash,
        key: &[u8],
        now_ms: u64,
        state: S,
    ) -> Result<SlotRef, NoRoom> {
        debug_assert!(self.inner.find(h, key).is_none(), "key already present");
        if key.len() > MAX_KEY_LEN {
            Stats::add(&self.stats.refusals, 1);
            return Err(NoRoom);
        }
        let need = slots_for(key.len());
        let evicted = if self.inner.sketch.is_some() {
            self.inner.admit(h, need, now_ms, self.params)
        } else {
            self.inner.expire(now_ms, 1, self.params);
            let mut forced = 0;
            if self.inner.free < need {
                forced = self.inner.expire(now_ms, 0, self.params);
            }
            (self.inner.free >= need).then_some(forced)
        };
        let Some(evicted) = evicted else {
            Stats::add(&self.stats.refusals, 1);
            return Err(NoRoom);
        };
        if evicted > 0 {
            Stats::add(&self.stats.evictions, u64::from(evicted));
        }
        let i = self.inner.alloc(h, key, state);
        Ok(self.r(i))
    }

    /// The state at `r`.
    #[inline]
    pub fn state(&self, r: SlotRef) -> &S {
        &self.inner.slots[self.slot(r) as usize].state
    }

    /// The state at `r`, to change.
    #[inline]
    pub fn state_mut(&mut self, r: SlotRef) -> &mut S {
        let i = self.slot(r) as usize;
        &mut self.inner.slots[i].state
    }

    /// Keeps the state from being evicted or removed until a matching [`ShardGuard::unpin`].
    #[inline]
    pub fn pin(&mut self, r: SlotRef) {
        let i = self.slot(r) as usize;
        let m = &mut self.inner.slots[i].meta;
        m.pins = m.pins.checked_add(1).expect("pin count overflow");
    }

    /// Undoes one [`ShardGuard::pin`].
    #[inline]
    pub fn unpin(&mut self, r: SlotRef) {
        let i = self.slot(r) as usize;
        let m = &mut self.inner.slots[i].meta;
        debug_assert!(m.pins > 0, "unpin of an unpinned state");
        m.pins = m.pins.saturating_sub(1);
    }

    /// Current pin count of the state at `r`.
    pub fn pins(&self, r: SlotRef) -> u32 {
        self.inner.slots[self.slot(r) as usize].meta.pins
    }

    /// Removes the state at `r`; refused (false) while it is pinned.
    pub fn remove(&mut self, r: SlotRef) -> bool {
        let i = self.slot(r);
        if self.inner.slots[i as usize].meta.pins > 0 {
            return false;
        }
        self.inner.remove(i);
        true
    }

    /// States held by this shard.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether this shard holds no state.
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The key stored at `r`.
    pub fn key(&self, r: SlotRef) -> Vec<u8> {
        self.inner.key_of(self.slot(r))
    }
}

#[cfg(test)]
mod tests;
