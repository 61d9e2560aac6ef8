//! "Seen before?" in fixed memory, for the detector's novelty signals: a client address never seen in the
//! recent history (the new-client arrival rate) and a query string never seen for its path (a request the cache
//! cannot answer, the mark of a random-query-string flood).
//!
//! [`Novelty`] is a rotating pair of Bloom filters (two bits per key): a key is new when neither generation holds
//! it, and is then added to the current one. The older generation is cleared and becomes current every rotation
//! period, or as soon as the current one took a tenth of its bits in keys (so a flood of random keys cannot fill
//! the filter until everything looks seen: past that point history is shortened, never lost to saturation).
//! The history is thus one to two periods long; a false "seen" is under 4%.
//!
//! [`Arrivals`] counts events over the last 10 s in ten one-second slots, each one `AtomicU64`.
//!
//! Hot path: a lookup is two relaxed loads; a new key adds two relaxed `fetch_or` and one add. No allocation.

use std::alloc::{Layout, alloc_zeroed, handle_alloc_error};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `n` atomics from zeroed memory, which the allocator takes fresh from the kernel for big filters: the budget
/// is a bound, not a resident cost, until keys set bits.
fn zeroed(n: usize) -> Box<[AtomicU64]> {
    let n = n.max(1);
    let layout = match Layout::array::<AtomicU64>(n) {
        Ok(l) => l,
        Err(_) => handle_alloc_error(Layout::new::<AtomicU64>()),
    };
    // SAFETY: the layout is that of `[AtomicU64; n]` with `n > 0`; a null pointer is handled; an `AtomicU64`
    // has the size, alignment and bit validity of a `u64`, so all-zero bytes are `n` times `AtomicU64::new(0)`,
    // and the box frees them with the same layout.
    unsafe {
        let p = alloc_zeroed(layout).cast::<AtomicU64>();
        if p.is_null() {
            handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
    }
}

/// A rotating pair of Bloom filters; see the module comment.
#[derive(Debug)]
pub struct Novelty {
    /// Both generations: generation `g` is `words[g * per_gen .. (g + 1) * per_gen]`.
    words: Box<[AtomicU64]>,
    /// Words per generation (a power of two).
    per_gen: usize,
    /// Rotations so far; the current generation is `epoch & 1`.
    epoch: AtomicU64,
    /// Keys added to the current generation.
    added: AtomicU64,
    /// Unix ms of the next timed rotation; 0 before the first key.
    next_ms: AtomicU64,
    /// Unix ms of the first key; 0 before.
    started_ms: AtomicU64,
    rotate_ms: u64,
}

/// Time a filter must have been running before its answers are used: until then every key looks new.
pub const WARM_MS: u64 = 5 * 60_000;

impl Novelty {
    /// A filter of at most `bytes` (both generations; at least 1 KiB), rotated every `rotate_ms`.
    pub fn new(bytes: u64, rotate_ms: u64) -> Novelty {
        let words = usize::try_from(bytes / 16).unwrap_or(usize::MAX).max(64);
        // Round down to a power of two so a bit index is a mask.
        let per_gen = 1usize << (usize::BITS - 1 - words.leading_zeros());
        Novelty {
            words: zeroed(per_gen * 2),
            per_gen,
            epoch: AtomicU64::new(0),
            added: AtomicU64::new(0),
            next_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(0),
            rotate_ms: rotate_ms.max(1),
        }
    }

    /// Bytes held (both generations).
    pub fn bytes(&self) -> u64 {
        (self.words.len() * 8) as u64
    }

    fn bits(&self, h: u64) -> [(usize, u64); 2] {
        let mask = self.per_gen * 64 - 1;
        let a = (h as usize) & mask;
        let b = ((h >> 32) as usize ^ (h as usize).rotate_left(17)) & mask;
        [(a / 64, 1 << (a % 64)), (b / 64, 1 << (b % 64))]
    }

    fn holds(&self, generation: usize, bits: &[(usize, u64); 2]) -> bool {
        let base = generation * self.per_gen;
        bits.iter()
            .all(|&(w, m)| self.words[base + w].load(Relaxed) & m != 0)
    }

    /// Whether the filter has run long enough for "new" to mean new (see [`WARM_MS`]).
    pub fn warm(&self, now_ms: u64) -> bool {
        let s = self.started_ms.load(Relaxed);
        s != 0 && now_ms >= s + WARM_MS
    }

    /// `true` when `h` (a 64-bit hash of the key) is in neither generation. With `remember`, a new key is added
    /// to the current generation.
    ///
    /// Hot path: see the module comment; a rotation (at most once per period or per tenth of the bits) clears
    /// one generation.
    #[inline]
    pub fn is_new(&self, h: u64, remember: bool, now_ms: u64) -> bool {
        self.rotate_if_due(now_ms);
        let bits = self.bits(h);
        let cur = (self.epoch.load(Relaxed) & 1) as usize;
        if self.holds(cur, &bits) || self.holds(cur ^ 1, &bits) {
            return false;
        }
        if remember {
            let base = cur * self.per_gen;
            for (w, m) in bits {
                self.words[base + w].fetch_or(m, Relaxed);
            }
            self.added.fetch_add(1, Relaxed);
        }
        true
    }

    /// Keeps time without a key: starts the warm-up on the first call and rotates when due, so a filter fed
    /// rarely (query strings on a site that has few) is warm when its first keys come.
    #[inline]
    pub fn touch(&self, now_ms: u64) {
        self.rotate_if_due(now_ms);
    }

    fn rotate_if_due(&self, now_ms: u64) {
        let next = self.next_ms.load(Relaxed);
        if next == 0 {
            if self
                .next_ms
                .compare_exchange(0, now_ms + self.rotate_ms, Relaxed, Relaxed)
                .is_ok()
            {
                self.started_ms.store(now_ms.max(1), Relaxed);
            }
            return;
        }
        // A tenth of the bits in keys: two bits each keeps a false "seen" under 4%.
        let full = self.added.load(Relaxed) >= (self.per_gen * 64 / 10) as u64;
        if now_ms < next && !full {
            return;
        }
        if self
            .next_ms
            .compare_exchange(next, now_ms + self.rotate_ms, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        // The older generation is emptied, then becomes the current one.
        let old = ((self.epoch.load(Relaxed) & 1) ^ 1) as usize;
        for w in &self.words[old * self.per_gen..(old + 1) * self.per_gen] {
            // Pages never written stay untouched (and not resident).
            if w.load(Relaxed) != 0 {
                w.store(0, Relaxed);
            }
        }
        self.added.store(0, Relaxed);
        self.epoch.fetch_add(1, Relaxed);
    }
}

/// Events in the last 10 s, in ten one-second slots (`second << 32 | count` each).
#[derive(Debug, Default)]
pub struct Arrivals {
    slots: [AtomicU64; 10],
}

impl Arrivals {
    /// Counts one event. Hot path: one compare-and-swap loop on one slot.
    #[inline]
    pub fn add(&self, now_ms: u64) {
        let sec = now_ms / 1000;
        let slot = &self.slots[(sec % 10) as usize];
        let stamp = sec & 0xFFFF_FFFF;
        let mut cur = slot.load(Relaxed);
        loop {
            let next = if cur >> 32 == stamp {
                cur + 1
            } else {
                (stamp << 32) | 1
            };
            match slot.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }

    /// Events in the ten seconds ending with the current one.
    pub fn last_10s(&self, now_ms: u64) -> u64 {
        let sec = now_ms / 1000;
        self.slots
            .iter()
            .map(|s| s.load(Relaxed))
            .filter(|v| {
                let stamp = v >> 32;
                stamp <= (sec & 0xFFFF_FFFF) && (sec & 0xFFFF_FFFF) - stamp < 10
            })
            .map(|v| v & 0xFFFF_FFFF)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_new_once_and_warms_up() {
        let n = Novelty::new(4096, 60_000);
        assert!(n.is_new(42, true, 1_000));
        assert!(!n.is_new(42, true, 2_000));
        assert!(n.is_new(43, false, 2_000));
        assert!(n.is_new(43, true, 2_000));
        assert!(!n.warm(2_000));
        assert!(n.warm(1_000 + WARM_MS));
    }

    #[test]
    fn history_spans_one_to_two_periods() {
        let n = Novelty::new(4096, 60_000);
        n.is_new(7, true, 1_000);
        // One rotation later it is in the older generation: still seen.
        assert!(!n.is_new(7, false, 62_000));
        // Two rotations later it is gone.
        assert!(n.is_new(7, false, 123_000));
    }

    #[test]
    fn a_flood_of_new_keys_rotates_instead_of_saturating() {
        let n = Novelty::new(4096, 3_600_000);
        let mut h = 0x9E37_79B9_7F4A_7C15u64;
        let mut new = 0;
        for _ in 0..100_000 {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            new += u64::from(n.is_new(h, true, 1_000));
        }
        // A saturated filter would call almost every key seen.
        assert!(new > 90_000, "{new}");
    }

    #[test]
    fn arrivals_cover_ten_seconds() {
        let a = Arrivals::default();
        for i in 0..20u64 {
            a.add(1_000_000 + i * 1000);
        }
        assert_eq!(a.last_10s(1_019_000), 10);
        assert_eq!(a.last_10s(1_040_000), 0);
    }
}
