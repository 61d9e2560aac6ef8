//! Single use of solved challenges: a fixed-size set of the tokens already redeemed, each kept until the token
//! itself expires.
//!
//! Memory is allocated once, when the cache is made: 8 bytes per slot, slots in buckets of 8 (one cache line),
//! buckets in up to 64 shards behind one mutex each. An entry packs a 40-bit fingerprint of the token's MAC (hashed with
//! a per-process SipHash key, so nobody can aim tokens at one bucket) and the token's expiry in seconds (24 bits,
//! compared modulo 2^24 within a window of [`LIVE_WINDOW_S`]). A token may sit in either of two buckets of its
//! shard and goes to the emptier one; a slot whose entry has expired is free. A live entry is never dropped: when
//! both buckets are full of live entries the redemption is refused as busy (the visitor retries; the token stays
//! unredeemed), never let through as if it were fresh.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Slots allocated unless [`crate::Challenger::with_replay_capacity`] says otherwise: 2^20 slots, 8 MiB.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 20;

/// Most shards; a small cache has fewer, so that each holds at least [`MIN_SLOTS`] and a shard's share of the
/// tokens does not vary much more than the whole's.
const SHARDS: usize = 64;
const BUCKET: usize = 8;
/// Cache line alignment of a bucket, in slots.
const ALIGN: usize = 64 / size_of::<u64>();
const TIME_BITS: u32 = 24;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// An entry is live while its expiry lies 1..=LIVE_WINDOW_S seconds ahead of now (modulo 2^24). Tokens make
/// entries at most 332 s ahead (5 minutes of life, 30 s of clock skew, rounding), so the window holds them all and
/// survives the clock stepping back by 11 minutes; an entry left untouched for 194 days can look live again for
/// at most this long, which costs a slot and nothing else (its token is long refused as expired).
const LIVE_WINDOW_S: u64 = 1024;
/// Bounds of the slot count (and the least per shard): 128 buckets, and 2^30 slots (8 GiB).
const MIN_SLOTS: usize = 1024;
const MAX_SLOTS: usize = 1 << 30;

/// What one redemption found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redeem {
    /// First use: recorded now.
    Fresh,
    /// Redeemed before, and the record is still live.
    Replayed,
    /// Both buckets the token may use hold live entries: not recorded, so not redeemed.
    Busy,
}

/// Counters and occupancy of the replay cache, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Slots allocated: the most tokens the cache can hold live at once.
    pub capacity: usize,
    /// Slots holding a live entry now.
    pub in_use: usize,
    /// Redemptions recorded since start.
    pub redeemed: u64,
    /// Answers refused because their token was redeemed before.
    pub replayed: u64,
    /// Answers refused because the cache had no free slot for their token.
    pub busy: u64,
}

pub(crate) struct ReplayCache {
    /// A power of two, at most [`SHARDS`].
    shards: Box<[Shard]>,
    buckets_per_shard: usize,
    hasher: RandomState,
    redeemed: AtomicU64,
    replayed: AtomicU64,
    busy: AtomicU64,
}

struct Shard {
    slots: Mutex<Box<[u64]>>,
    /// Index of the first slot on a cache line boundary.
    start: usize,
}

impl Shard {
    fn new(len: usize) -> Shard {
        // Zeroed (calloc'd) memory: the pages come from the OS as they are first written.
        let slots = vec![0u64; len + ALIGN].into_boxed_slice();
        let misalign = (slots.as_ptr() as usize % 64) / size_of::<u64>();
        Shard {
            start: (ALIGN - misalign) % ALIGN,
            slots: Mutex::new(slots),
        }
    }
}

fn live(entry: u64, now_s: u64) -> bool {
    let ahead = entry.wrapping_sub(now_s) & TIME_MASK;
    entry != 0 && (1..=LIVE_WINDOW_S).contains(&ahead)
}

/// Spreads the hash over the bucket bits (a bijection, so it adds no collisions): murmur3's finalizer.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl ReplayCache {
    /// A cache of at least `capacity` slots (rounded up to a power of two, clamped to 1,024 ..= 2^30).
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        let slots = capacity.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        let shards = (slots / MIN_SLOTS).min(SHARDS);
        let buckets_per_shard = slots / shards / BUCKET;
        ReplayCache {
            shards: (0..shards)
                .map(|_| Shard::new(buckets_per_shard * BUCKET))
                .collect(),
            buckets_per_shard,
            hasher: RandomState::new(),
            redeemed: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.shards.len() * self.buckets_per_shard * BUCKET
    }

    /// Records the token `id` (its MAC) as redeemed until `expires_unix_s` (it is live while now is earlier),
    /// unless it already is.
    ///
    /// Hot path of the verify endpoint: one SipHash, one shard lock held while reading at most 16 slots (two cache
    /// lines), no allocation.
    pub(crate) fn redeem(&self, id: &[u8], expires_unix_s: u64, now_unix_ms: u64) -> Redeem {
        let h = self.hasher.hash_one(id);
        let fingerprint = (h >> TIME_BITS).max(1);
        let spread = mix(h);
        let mask = self.buckets_per_shard - 1;
        let shard = &self.shards[spread as usize & (self.shards.len() - 1)];
        let first = (spread >> 8) as usize & mask;
        let mut second = (spread >> 36) as usize & mask;
        if second == first {
            second ^= 1;
        }
        let now_s = now_unix_ms / 1000;
        let entry = fingerprint << TIME_BITS | (expires_unix_s & TIME_MASK);

        // The guarded data is plain numbers with no invariant a panic could break.
        let mut slots = shard.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pick = [(0usize, None::<usize>); 2];
        for (choice, bucket) in [first, second].into_iter().enumerate() {
            let base = shard.start + bucket * BUCKET;
            for i in base..base + BUCKET {
                let e = slots[i];
                if !live(e, now_s) {
                    pick[choice].0 += 1;
                    pick[choice].1.get_or_insert(i);
                } else if e >> TIME_BITS == fingerprint {
                    drop(slots);
                    self.replayed.fetch_add(1, Ordering::Relaxed);
                    return Redeem::Replayed;
                }
            }
        }
        let free = if pick[1].0 > pick[0].0 {
            pick[1].1
        } else {
            pick[0].1
        };
        match free {
            Some(i) => {
                slots[i] = entry;
                drop(slots);
                self.redeemed.fetch_add(1, Ordering::Relaxed);
                Redeem::Fresh
            }
            None => {
                drop(slots);
                self.busy.fetch_add(1, Ordering::Relaxed);
                Redeem::Busy
            }
        }
    }

    /// Counters and the live slots at `now_unix_ms`. Walks every slot (about a millisecond for 2^20), one shard
    /// lock at a time: for a metrics scrape, not for the request path.
    pub(crate) fn stats(&self, now_unix_ms: u64) -> ReplayStats {
        let now_s = now_unix_ms / 1000;
        let in_use = self
            .shards
            .iter()
            .map(|shard| {
                let slots = shard.slots.lock().unwrap_or_else(PoisonError::into_inner);
                slots[shard.start..shard.start + self.buckets_per_shard * BUCKET]
                    .iter()
                    .filter(|&&e| live(e, now_s))
                    .count()
            })
            .sum();
        ReplayStats {
            capacity: self.capacity(),
            in_use,
            redeemed: self.redeemed.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests;
