//! The per-second limit behind the IP access limit: at most N requests per key in any one second.
//!
//! "Any one second" is sliding, not calendar seconds: a request at `t` is admitted when fewer than N admitted
//! requests of the key lie in `(t - 1000, t]` ms. So 11 requests within one second at N = 10 refuse exactly one,
//! and traffic paced at exactly N per second (one every `1000 / N` ms) is never refused. Refused requests are not
//! counted: a client that keeps hammering is still let through at N per second.
//!
//! Each key keeps a ring of its last admission times as 16-bit offsets from a per-key base, [`RING`] slots in
//! [`SecondState`]'s fixed 44 bytes (60 per key with the compact table's fingerprint and frequency sketch, so a
//! 1 MiB table holds about 17,000 keys). Up to N = [`RING`] a slot is one admission and the decision is exact.
//! Above, a slot holds a group of `g = ceil(N / RING)` admissions stamped with the group's latest time: the count
//! never misses an admission of the last second, so more than N are never admitted in any second, but up to
//! `g - 1` admissions more than a second old may still be counted (a refusal up to `g - 1` requests early: under
//! 1/16 = 6.25 % of N). N is bounded by [`MAX_LIMIT`] (`RING * 65535`); larger limits are treated as that.

use crate::compact::{CompactState, CompactTable, Zeroable};
use crate::table::{Eviction, TableError};

/// Slots per key: the largest N decided exactly.
pub const RING: usize = 16;

/// The largest N honoured; above it a limit acts as this one.
pub const MAX_LIMIT: u32 = RING as u32 * u16::MAX as u32;

const SECOND_MS: u64 = 1000;

/// Milliseconds per unit of a state's base.
const BASE_UNIT_MS: u64 = 1024;

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("per-second table: {0}")]
pub struct PerSecondError(#[from] pub TableError);

/// Per-key per-second limits under a byte budget, so memory never grows. When a key's buckets are full a new key
/// takes an idle key's place first; after that, under [`Eviction::FrequencyAware`] (the default) it replaces a
/// live key only if it is estimated more frequent, so a flood of one-shot (spoofed) addresses cannot push out a
/// client at its limit; under [`Eviction::Lru`] the least recently active candidate goes. An evicted key starts
/// afresh.
#[derive(Debug)]
pub struct PerSecondTable {
    table: CompactTable<SecondState>,
}

impl PerSecondTable {
    /// A frequency-aware table of at most `size_bytes` bytes, reserved now and touched as keys fill it
    /// ([`PerSecondTable::bytes_per_key`] each).
    pub fn new(size_bytes: usize) -> Result<Self, PerSecondError> {
        Self::with_eviction(size_bytes, Eviction::FrequencyAware)
    }

    /// A table of at most `size_bytes` bytes with the given eviction policy.
    pub fn with_eviction(size_bytes: usize, eviction: Eviction) -> Result<Self, PerSecondError> {
        Ok(Self {
            table: CompactTable::new(size_bytes, (), eviction)?,
        })
    }

    /// A `size_bytes` whose capacity is at least `keys` keys (about 96 % of as many distinct random keys are
    /// stored at once; see `compact.rs`).
    pub const fn size_for(keys: usize, eviction: Eviction) -> usize {
        CompactTable::<SecondState>::size_for(keys, eviction)
    }

    /// The eviction policy.
    pub fn eviction(&self) -> Eviction {
        self.table.eviction()
    }

    /// Live keys evicted to make room for new ones since the table was built (lock-free read).
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    /// New keys not stored since the table was built: refused by frequency-aware admission or no room
    /// (lock-free read). Each such request was decided as a fresh key's first and admitted uncounted.
    pub fn admission_refusals(&self) -> u64 {
        self.table.admission_refusals()
    }

    /// Whether a request of `key` at `now_ms` is admitted under `limit` requests in any one second; an admitted
    /// request is counted, a refused one is not. A new key that is not stored (refused by frequency-aware
    /// admission) is decided as a fresh key and admitted
    /// uncounted: a full table must not turn into refusals of everyone, and a one-shot key is never refused.
    ///
    /// Hot path: one shard lock, no allocation.
    pub fn check(&self, key: &[u8], limit: u32, now_ms: u64) -> bool {
        self.check_with(key, limit, 0, now_ms)
    }

    /// As [`PerSecondTable::check`], with `others` admissions made elsewhere (other nodes of a cluster) in the
    /// same second counted against `limit` too; only this table's admissions are stored.
    ///
    /// Hot path: one shard lock, no allocation.
    pub fn check_with(&self, key: &[u8], limit: u32, others: u64, now_ms: u64) -> bool {
        let fp = self.table.fingerprint(key);
        let mut g = self.table.lock(fp);
        if let Some(i) = g.find(fp) {
            return g.state_mut(i).check_with(limit, others, now_ms);
        }
        let mut state = SecondState::new(now_ms);
        if !state.check_with(limit, others, now_ms) {
            return false;
        }
        let _ = g.insert(fp, now_ms, state);
        true
    }

    /// Keys held now (locks each shard in turn: not for the request path).
    pub fn in_use(&self) -> usize {
        self.table.in_use()
    }

    /// Keys the table holds when full (of any length: only a fingerprint is stored).
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Bytes allocated; never above the size the table was built with.
    pub fn held_bytes(&self) -> usize {
        self.table.held_bytes()
    }

    /// Bytes one key costs in a default (frequency-aware) table: its state, fingerprint and sketch share.
    pub const fn bytes_per_key() -> usize {
        Self::bytes_per_state(Eviction::FrequencyAware)
    }

    /// Bytes one key costs under `eviction`.
    pub const fn bytes_per_state(eviction: Eviction) -> usize {
        CompactTable::<SecondState>::bytes_per_state(eviction)
    }

    /// The byte budget given at construction.
    pub fn size_bytes(&self) -> usize {
        self.table.size_bytes()
    }
}

/// The per-second state of one key: a pure value, decided by [`SecondState::check`]. 44 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondState {
    /// The time `ring` offsets count from, in units of [`BASE_UNIT_MS`] (32 bits last until 2109 of Unix
    /// time); moved forward when an offset would pass `u16::MAX`.
    base: u32,
    /// Latest admission time of each group, as milliseconds after the base; oldest at `head`.
    ring: [u16; RING],
    /// Admissions in the newest group (1..=group when `len > 0`).
    newest: u16,
    /// Admissions per full group, `ceil(N / RING)`, for the N the ring was filled with.
    group: u16,
    head: u8,
    len: u8,
}

impl Default for SecondState {
    fn default() -> Self {
        Self::new(0)
    }
}

// SAFETY: integers only; zero is a key with nothing admitted.
unsafe impl Zeroable for SecondState {}

impl CompactState for SecondState {
    type Params = ();

    fn idle(&self, now_ms: u64, _: &()) -> bool {
        self.is_idle(now_ms)
    }

    fn last_ms(&self, _: &()) -> u64 {
        self.latest_ms()
    }
}

impl SecondState {
    /// A key seen for the first time at `now_ms`, nothing admitted yet.
    pub fn new(now_ms: u64) -> Self {
        Self {
            base: (now_ms / BASE_UNIT_MS).min(u64::from(u32::MAX)) as u32,
            ring: [0; RING],
            newest: 0,
            group: 1,
            head: 0,
            len: 0,
        }
    }

    /// Admits (and counts) a request at `now_ms` if fewer than `limit` admissions of this key lie in the second
    /// before it, `(now_ms - 1000, now_ms]`. `limit = 0` refuses everything.
    ///
    /// Hot path: no allocation; the loop pops at most the slots that have aged out.
    pub fn check(&mut self, limit: u32, now_ms: u64) -> bool {
        self.check_with(limit, 0, now_ms)
    }

    /// As [`SecondState::check`], with `others` admissions made elsewhere counted against `limit` too.
    pub fn check_with(&mut self, limit: u32, others: u64, now_ms: u64) -> bool {
        if limit == 0 {
            return false;
        }
        let limit = limit.min(MAX_LIMIT);
        let group = limit.div_ceil(RING as u32) as u16;
        if group != self.group {
            // Groups of another size cannot be recounted; after a change of N across a group boundary the key
            // starts afresh (a live limit change, so at most once per change).
            *self = Self::new(now_ms);
            self.group = group;
        }
        // Threads may hand in a time a few ms older than one already stored; time never runs back for a key.
        let now = now_ms.max(self.latest_ms());
        self.rebase(now);
        let now_off = (now - self.base_ms()) as u16;
        while self.len > 0 && u64::from(now_off - self.ring[self.head as usize]) >= SECOND_MS {
            self.head = ((self.head as usize + 1) % RING) as u8;
            self.len -= 1;
        }
        if self.len == 0 {
            self.newest = 0;
        }
        if self.count() + others >= u64::from(limit) {
            return false;
        }
        if self.len > 0 && self.newest < group {
            let last = (self.head as usize + self.len as usize - 1) % RING;
            self.ring[last] = now_off;
            self.newest += 1;
        } else {
            // The ring has room: a full ring of full groups counts RING * group >= limit and was refused above.
            let slot = (self.head as usize + self.len as usize) % RING;
            self.ring[slot] = now_off;
            self.len += 1;
            self.newest = 1;
        }
        true
    }

    /// Admissions counted against the limit (as of the last call).
    fn count(&self) -> u64 {
        match self.len {
            0 => 0,
            n => u64::from(n - 1) * u64::from(self.group) + u64::from(self.newest),
        }
    }

    #[inline]
    fn base_ms(&self) -> u64 {
        u64::from(self.base) * BASE_UNIT_MS
    }

    fn latest_ms(&self) -> u64 {
        match self.len {
            0 => self.base_ms(),
            n => {
                let last = (self.head as usize + n as usize - 1) % RING;
                self.base_ms() + u64::from(self.ring[last])
            }
        }
    }

    fn rebase(&mut self, now: u64) {
        let base_ms = self.base_ms();
        if now - base_ms <= u64::from(u16::MAX) {
            return;
        }
        // Offsets below the new base are more than a second old (the base is at most `now - 1000`); saturating
        // them to 0 keeps them out of the count, which is all that matters about them.
        let new_base = ((now - SECOND_MS) / BASE_UNIT_MS).min(u64::from(u32::MAX));
        let delta = new_base * BASE_UNIT_MS - base_ms;
        for off in &mut self.ring {
            *off = u64::from(*off).saturating_sub(delta) as u16;
        }
        self.base = new_base as u32;
    }

    /// Whether dropping this state changes no future decision: nothing admitted in the last second.
    pub fn is_idle(&self, now_ms: u64) -> bool {
        self.len == 0 || now_ms.saturating_sub(self.latest_ms()) >= SECOND_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_44_bytes() {
        assert_eq!(size_of::<SecondState>(), 44);
        assert_eq!(PerSecondTable::bytes_per_state(Eviction::Lru), 52);
        assert_eq!(PerSecondTable::bytes_per_key(), 60);
    }

    #[test]
    fn eleven_in_one_second_refuse_one() {
        let mut s = SecondState::new(5_000);
        let refused = (0..11).filter(|i| !s.check(10, 5_000 + i * 90)).count();
        assert_eq!(refused, 1);
    }

    #[test]
    fn paced_at_the_limit_never_refused() {
        let mut s = SecondState::new(0);
        for i in 0..10_000u64 {
            assert!(s.check(10, i * 100), "request {i}");
        }
    }

    #[test]
    fn rebase_keeps_recent_offsets() {
        let mut s = SecondState::new(0);
        // Paced for over 65.5 s so the base must move several times.
        for i in 0..2_000u64 {
            assert!(s.check(2, i * 500));
        }
        assert!(!s.check(2, 1_999 * 500 + 1));
        assert!(s.check(2, 2_000 * 500));
    }
}
