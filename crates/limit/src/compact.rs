//! The protection tables' storage: per-key states under a hard byte budget, found by a keyed 64-bit fingerprint
//! instead of the key, in set-associative buckets, with frequency-aware (TinyLFU) admission.
//!
//! Layout of one shard, allocated zeroed when the table is built and never grown:
//! - `fps`: one 64-bit fingerprint per way, [`WAYS`] ways per bucket, so a bucket's fingerprints are one
//!   cache line. 0 is an empty way. The fingerprint is the keyed hash of the key but its low 4 bits; the key
//!   itself is not stored, so a key of any length costs the same and there is no key length, pin count or chain.
//! - `states`: the state of each way, in a parallel array (a lookup touches the fingerprint line and then only
//!   the matching state).
//! - `sketch`: the count-min frequency sketch of `table/sketch.rs`, 8 bytes per way, for keys not stored; a stored
//!   key counts its accesses in its fingerprint word ([`FREQ`]).
//!
//! A key may live in either of two buckets picked by its fingerprint (two-choice hashing: a new key goes to the
//! bucket with more free ways), which keeps buckets evenly filled: at a load of 1 about 96 % of random keys find
//! a free way, where one choice of 8 ways places 86 %. When both are full, idle states are replaced first; then
//! the least frequent of [`SAMPLE`] ways of each bucket is the victim, evicted only if the new key's estimate is
//! strictly higher, else the key is refused. There are no LRU links: [`Eviction::Lru`] here means the candidate
//! least recently active (by its state's own clock) is replaced, never a refusal.
//!
//! Fingerprints come from SipHash-1-3 keyed per table by the standard library's `RandomState`, whose keys are
//! drawn at random per process: clients cannot compute fingerprints, so they cannot aim collisions. Two keys
//! share a state only if the top 60 bits of their hashes are equal; a key looked up is compared with the at most
//! 16 keys of its two buckets, so it falsely shares with probability at most 16 / 2^60 (under 1.4 x 10^-17) per
//! lookup.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering;

use crate::table::lock::{SpinGuard, SpinLock};
use crate::table::sketch::{self, Sketch};
use crate::table::{Cell, Eviction, NoRoom, Padded, Stats, TableError};

mod zeroed;
pub(crate) use zeroed::Zeroable;
use zeroed::ZeroedSlice;

/// Ways (states) per bucket: 8 fingerprints fill one 64-byte cache line.
pub const WAYS: usize = 8;
/// Ways of each of a key's two buckets compared when both are full.
const SAMPLE: usize = 2;
/// Tables smaller than this have one shard.
const SINGLE_SHARD_BELOW: usize = 256 * 1024;
/// Bytes of a fingerprint.
const FP: usize = size_of::<u64>();
/// The low bits of a way's fingerprint word: in a frequency-aware table, the stored key's recent accesses
/// (0..=15), so a hit counts in the cache line the lookup has already read. Fingerprints keep them clear.
const FREQ: u64 = 0xF;

/// A state kept per fingerprint: plain data (a zeroed way is an empty one) that knows when it counts nothing.
pub(crate) trait CompactState: Zeroable + Send + 'static {
    /// Table-wide parameters the state needs (a window's layout).
    type Params: Send + Sync + 'static;

    /// Whether dropping the state at `now_ms` changes no decision.
    fn idle(&self, now_ms: u64, params: &Self::Params) -> bool;

    /// When the state last counted something (for [`Eviction::Lru`]).
    fn last_ms(&self, params: &Self::Params) -> u64;
}

/// A key's keyed 64-bit hash with its low 4 bits ([`FREQ`]) clear, never 0: all the table keeps of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    /// The 32 bits the frequency sketch is given.
    #[inline]
    fn sketch(self) -> u32 {
        (self.0 ^ (self.0 >> 32)) as u32
    }

    /// The shard, from the top 16 bits (the buckets use other bits, so each shard's buckets fill evenly).
    #[inline]
    fn shard(self, shards: usize) -> usize {
        (((self.0 >> 48) * shards as u64) >> 16) as usize
    }

    /// The key's two buckets among `n` (the same one twice when `n == 1`).
    #[inline]
    fn buckets(self, n: usize) -> (usize, usize) {
        let range = |x: u32| ((u64::from(x) * n as u64) >> 32) as usize;
        let b1 = range(self.0 as u32);
        // A multiply-xorshift of all 64 bits, so the second bucket is independent of the first and the shard.
        let m = (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let b2 = range((m >> 32) as u32);
        if b2 != b1 || n == 1 {
            (b1, b2)
        } else {
            (b1, (b1 + 1) % n)
        }
    }
}

struct Shard<S> {
    fps: ZeroedSlice<u64>,
    states: ZeroedSlice<S>,
    buckets: usize,
    len: usize,
    /// Frequency-aware tables: the estimates of keys not stored (their attempts to get in); a stored key's
    /// own count is in its fingerprint word ([`FREQ`]).
    sketch: Option<Sketch>,
}

impl<S: CompactState> Shard<S> {
    fn new(buckets: usize, frequency_aware: bool) -> Self {
        Self {
            fps: ZeroedSlice::new(buckets * WAYS),
            states: ZeroedSlice::new(buckets * WAYS),
            buckets,
            len: 0,
            sketch: frequency_aware.then(|| Sketch::new(buckets * WAYS)),
        }
    }

    #[inline(always)]
    fn find_in(&self, b: usize, fp: Fingerprint) -> Option<usize> {
        let ways = &self.fps[b * WAYS..(b + 1) * WAYS];
        ways.iter()
            .position(|&f| f & !FREQ == fp.0)
            .map(|w| b * WAYS + w)
    }

    /// Both buckets are read whatever the first holds, so their two cache misses overlap.
    #[inline(always)]
    fn find(&self, fp: Fingerprint) -> Option<usize> {
        let (b1, b2) = fp.buckets(self.buckets);
        let (in1, in2) = (self.find_in(b1, fp), self.find_in(b2, fp));
        in1.or(in2)
    }

    /// Free ways of bucket `b` and the first of them.
    #[inline]
    fn free_in(&self, b: usize) -> (usize, Option<usize>) {
        let ways = &self.fps[b * WAYS..(b + 1) * WAYS];
        let first = ways.iter().position(|&f| f == 0).map(|w| b * WAYS + w);
        (ways.iter().filter(|&&f| f == 0).count(), first)
    }

    /// Places a new key (not present): a free way of the emptier bucket, else an idle way, else a victim chosen
    /// by `eviction`. Returns the way and whether a live state was evicted, or `None` when the key is refused.
    ///
    /// Hot path: no allocation; at most 2 fingerprint lines and, when both buckets are full, their states and
    /// `2 x SAMPLE` estimates.
    /// `f_new` is the key's estimate with this access counted (frequency-aware tables).
    fn insert(
        &mut self,
        fp: Fingerprint,
        f_new: Option<u32>,
        now_ms: u64,
        state: S,
        params: &S::Params,
    ) -> Option<(usize, bool)> {
        let (b1, b2) = fp.buckets(self.buckets);
        let ((n1, w1), (n2, w2)) = (self.free_in(b1), self.free_in(b2));
        if let Some(i) = if n2 > n1 { w2 } else { w1.or(w2) } {
            self.len += 1;
            return Some((self.place(i, fp, f_new, state), false));
        }
        // Both full. Idle states go first, in the bucket with more of them as free ways do (every way is looked
        // at: the states of a bucket are contiguous).
        let mut oldest: Option<(usize, u64)> = None;
        let mut idle = [(0usize, None); 2];
        for (k, b) in [b1, b2].into_iter().enumerate() {
            for i in b * WAYS..(b + 1) * WAYS {
                let s = &self.states[i];
                if s.idle(now_ms, params) {
                    idle[k].0 += 1;
                    idle[k].1 = idle[k].1.or(Some(i));
                    continue;
                }
                let last = s.last_ms(params);
                if oldest.is_none_or(|(_, v)| last < v) {
                    oldest = Some((i, last));
                }
            }
        }
        let [(n1, i1), (n2, i2)] = idle;
        if let Some(i) = if n2 > n1 { i2 } else { i1.or(i2) } {
            return Some((self.place(i, fp, f_new, state), false));
        }
        if self.sketch.is_none() {
            let (i, _) = oldest?;
            return Some((self.place(i, fp, f_new, state), true));
        }
        // The least frequent of a few sampled ways (positions from the new key's fingerprint), each count read
        // from the fingerprint lines `free_in` has just read.
        let mut victim: Option<(usize, u64)> = None;
        let start = (fp.0 >> 40) as usize;
        for (k, b) in [b1, b2].into_iter().enumerate() {
            for j in 0..SAMPLE {
                let i = b * WAYS + ((start >> (3 * k)) + j * (WAYS / SAMPLE)) % WAYS;
                let score = self.fps[i] & FREQ;
                if victim.is_none_or(|(_, v)| score < v) {
                    victim = Some((i, score));
                }
            }
        }
        let (i, score) = victim?;
        if f_new.is_some_and(|f| u64::from(f) <= score) {
            return None;
        }
        Some((self.place(i, fp, f_new, state), true))
    }

    /// Stores `fp` and `state` in way `i`. A frequency-aware table's new key starts with its count in the
    /// sketch (its attempts so far, this one included).
    #[inline]
    fn place(&mut self, i: usize, fp: Fingerprint, f_new: Option<u32>, state: S) -> usize {
        self.fps[i] = fp.0 | f_new.map_or(0, |f| u64::from(f).min(FREQ));
        self.states[i] = state;
        i
    }

    /// A frequency-aware table's count of one access: in the way's word for a stored key (`found`), in the
    /// sketch for a key not stored (returning its estimate, this access included). Every access counts
    /// towards the halving of all counts, the sketch's and the stored keys' alike.
    #[inline(always)]
    fn access(&mut self, fp: Fingerprint, found: Option<usize>) -> Option<u32> {
        let sketch = self.sketch.as_mut()?;
        let estimate = match found {
            Some(i) => {
                let f = &mut self.fps[i];
                if *f & FREQ < FREQ {
                    *f += 1;
                }
                None
            }
            None => Some(sketch.add(fp.sketch())),
        };
        if sketch.tick() {
            self.halve_ways();
        }
        estimate
    }

    /// Halves every stored key's count, with the sketch's: counts describe the recent past.
    #[cold]
    fn halve_ways(&mut self) {
        // Empty ways are left unwritten (their pages stay untouched until keys reach them).
        for f in self.fps.iter_mut().filter(|f| **f != 0) {
            *f = (*f & !FREQ) | ((*f & FREQ) >> 1);
        }
    }
}

/// A compact table of per-key states; see the module documentation.
pub(crate) struct CompactTable<S: CompactState> {
    shards: Box<[Padded<Cell<Shard<S>>>]>,
    hasher: RandomState,
    eviction: Eviction,
    params: S::Params,
    size: usize,
    capacity: usize,
}

impl<S: CompactState> std::fmt::Debug for CompactTable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactTable")
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

/// Shard count for a table of `size` bytes: enough that a few threads rarely meet on a lock.
fn shards_for(size: usize) -> usize {
    if size < SINGLE_SHARD_BELOW {
        return 1;
    }
    1 << (size / (512 * 1024)).clamp(2, 32).ilog2()
}

impl<S: CompactState> CompactTable<S> {
    /// Bytes one way costs: fingerprint, state and, when frequency-aware, its share of the sketch.
    pub(crate) const fn bytes_per_state(eviction: Eviction) -> usize {
        FP + size_of::<S>()
            + match eviction {
                Eviction::FrequencyAware => 8,
                Eviction::Lru => 0,
            }
    }

    /// A `size_bytes` whose capacity is at least `keys` (shard headers and rounding to whole buckets included).
    pub(crate) const fn size_for(keys: usize, eviction: Eviction) -> usize {
        keys * Self::bytes_per_state(eviction) + 64 * 1024
    }

    /// A table of at most `size_bytes` bytes: memory reserved now, touched as keys fill it.
    pub(crate) fn new(
        size_bytes: usize,
        params: S::Params,
        eviction: Eviction,
    ) -> Result<Self, TableError> {
        let frequency = eviction == Eviction::FrequencyAware;
        let shards = shards_for(size_bytes);
        let header = size_of::<Self>() + shards * size_of::<Padded<Cell<Shard<S>>>>();
        let shard_bytes = |buckets: usize| {
            let sketch = if frequency {
                sketch::bytes_for(buckets * WAYS)
            } else {
                0
            };
            buckets * WAYS * (FP + size_of::<S>()) + sketch
        };
        let min = header + shards * shard_bytes(1);
        if size_bytes < min {
            return Err(TableError::TooSmall {
                size: size_bytes,
                min,
            });
        }
        let per_shard = (size_bytes - header) / shards;
        let mut buckets = (per_shard / (WAYS * Self::bytes_per_state(eviction))).max(1);
        while shard_bytes(buckets) > per_shard {
            buckets -= 1;
        }
        let cells: Box<[_]> = (0..shards)
            .map(|_| {
                Padded(Cell {
                    lock: SpinLock::new(Shard::new(buckets, frequency)),
                    stats: Stats::default(),
                })
            })
            .collect();
        Ok(Self {
            shards: cells,
            hasher: RandomState::new(),
            eviction,
            params,
            size: size_bytes,
            capacity: shards * buckets * WAYS,
        })
    }

    /// The parameters given at construction.
    pub(crate) fn params(&self) -> &S::Params {
        &self.params
    }

    /// The eviction policy given at construction.
    pub(crate) fn eviction(&self) -> Eviction {
        self.eviction
    }

    /// States the table holds when full.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// States held now (locks each shard in turn; not for the request path).
    pub(crate) fn in_use(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock.lock().len).sum()
    }

    /// Live states replaced by new keys since the table was built (idle ones are not counted). Lock-free.
    pub(crate) fn evictions(&self) -> u64 {
        let s = self.shards.iter();
        s.map(|s| s.0.stats.evictions.load(Ordering::Relaxed)).sum()
    }

    /// New keys not stored since the table was built. Lock-free.
    pub(crate) fn admission_refusals(&self) -> u64 {
        let s = self.shards.iter();
        s.map(|s| s.0.stats.refusals.load(Ordering::Relaxed)).sum()
    }

    /// The byte budget given at construction.
    pub(crate) fn size_bytes(&self) -> usize {
        self.size
    }

    /// Bytes allocated: shard headers, fingerprints, states and sketches. Never above the budget.
    pub(crate) fn held_bytes(&self) -> usize {
        let mut total = size_of::<Self>() + self.shards.len() * size_of::<Padded<Cell<Shard<S>>>>();
        for s in self.shards.iter() {
            let s = s.0.lock.lock();
            total += s.fps.bytes() + s.states.bytes();
            total += s.sketch.as_ref().map_or(0, Sketch::held_bytes);
        }
        total
    }

    /// The fingerprint of `key`.
    #[inline]
    pub(crate) fn fingerprint(&self, key: &[u8]) -> Fingerprint {
        Fingerprint((self.hasher.hash_one(key) & !FREQ).max(FREQ + 1))
    }

    /// Locks the shard of `fp`. Hold the guard only for the few steps of one decision.
    #[inline]
    pub(crate) fn lock(&self, fp: Fingerprint) -> CompactGuard<'_, S> {
        let cell = &self.shards[fp.shard(self.shards.len())].0;
        CompactGuard {
            inner: cell.lock.lock(),
            stats: &cell.stats,
            params: &self.params,
            counted: None,
        }
    }
}

/// One locked shard.
pub(crate) struct CompactGuard<'a, S: CompactState> {
    inner: SpinGuard<'a, Shard<S>>,
    stats: &'a Stats,
    params: &'a S::Params,
    /// The key [`CompactGuard::find`] counted and its estimate, for an insert that follows a miss.
    counted: Option<(Fingerprint, u32)>,
}

impl<S: CompactState> CompactGuard<'_, S> {
    /// The way holding `fp`. In a frequency-aware table the lookup counts as an access of the key, found or not
    /// (a miss is followed by the insert attempt, which is the same access): a hit in the way's word, with no
    /// cache line beyond the lookup's; a miss in the sketch.
    #[inline(always)]
    pub(crate) fn find(&mut self, fp: Fingerprint) -> Option<usize> {
        let found = self.inner.find(fp);
        if let Some(f) = self.inner.access(fp, found) {
            self.counted = Some((fp, f));
        }
        found
    }

    /// The way holding `fp`, without counting an access.
    #[inline]
    pub(crate) fn peek(&self, fp: Fingerprint) -> Option<usize> {
        self.inner.find(fp)
    }

    #[inline]
    pub(crate) fn state(&self, way: usize) -> &S {
        &self.inner.states[way]
    }

    #[inline]
    pub(crate) fn state_mut(&mut self, way: usize) -> &mut S {
        &mut self.inner.states[way]
    }

    /// Stores `state` for `fp` (which must not be present); see [`Shard::insert`]. `NoRoom`: refused, nothing
    /// stored, counted in `admission_refusals`.
    pub(crate) fn insert(
        &mut self,
        fp: Fingerprint,
        now_ms: u64,
        state: S,
    ) -> Result<usize, NoRoom> {
        debug_assert!(self.inner.find(fp).is_none(), "key already present");
        // The attempt counts as an access of the key, stored or not (once, if `find` just counted it).
        let f_new = match self.counted.take() {
            Some((counted, f)) if counted == fp => Some(f),
            _ => self.inner.access(fp, None),
        };
        match self.inner.insert(fp, f_new, now_ms, state, self.params) {
            Some((i, evicted)) => {
                if evicted {
                    Stats::add(&self.stats.evictions, 1);
                }
                Ok(i)
            }
            None => {
                Stats::add(&self.stats.refusals, 1);
                Err(NoRoom)
            }
        }
    }
}

#[cfg(test)]
mod tests;
