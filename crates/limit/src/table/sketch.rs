//! TinyLFU's frequency estimate: a count-min sketch of key hashes with 4-bit counters, halved periodically.
//!
//! Sized from the shard's slot count when the shard is built (one 64-bit word of 16 counters per slot, in
//! blocks of 8 words) and never grown. A key's 4 counters lie in one 64-byte block, in 4 different words, so an
//! update touches one cache line. Updates are conservative (only the counters at the minimum move), which keeps
//! the estimate of a key that was seen once close to 1 even when the sketch sees many more keys than it has
//! counters. After `10 x slots` updates every counter is halved: frequencies describe the recent past, and a key
//! that was hot long ago loses its advantage.

/// Counters per word (4 bits each).
const PER_WORD: u32 = 16;
/// Words per block (one cache line).
const BLOCK: usize = 8;
/// Largest counter value.
const MAX: u64 = 15;
/// Updates between two halvings, per slot of the shard.
const SAMPLE_PER_SLOT: usize = 10;

pub(crate) struct Sketch {
    words: Box<[u64]>,
    blocks: u64,
    updates: usize,
    sample: usize,
}

/// Words a sketch for `slots` slots allocates.
fn words_for(slots: usize) -> usize {
    slots.div_ceil(BLOCK).max(1) * BLOCK
}

/// Bytes a sketch for `slots` slots holds, its header included.
pub(crate) fn bytes_for(slots: usize) -> usize {
    size_of::<Sketch>() + words_for(slots) * 8
}

impl Sketch {
    pub(crate) fn new(slots: usize) -> Self {
        let words = words_for(slots);
        Self {
            words: vec![0u64; words].into_boxed_slice(),
            blocks: (words / BLOCK) as u64,
            updates: 0,
            sample: (slots * SAMPLE_PER_SLOT).max(64),
        }
    }

    /// Bytes held, header included.
    pub(crate) fn held_bytes(&self) -> usize {
        size_of::<Sketch>() + self.words.len() * 8
    }

    /// The 4 (word, bit shift) places of a key's counters. `hash` is the 32 bits a slot stores.
    #[inline(always)]
    fn places(&self, hash: u32) -> [(usize, u32); 4] {
        // splitmix64's finaliser spreads the 32 stored bits over 64, independent of the shard choice.
        let mut x = u64::from(hash).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let block = (((x >> 32) * self.blocks) >> 32) as usize * BLOCK;
        std::array::from_fn(|i| {
            let word = block + i * 2 + ((x >> i) & 1) as usize;
            let shift = ((x >> (4 + 4 * i)) as u32 % PER_WORD) * 4;
            (word, shift)
        })
    }

    /// The estimated number of recent updates of `hash` (0..=15).
    #[inline]
    pub(crate) fn estimate(&self, hash: u32) -> u32 {
        self.places(hash)
            .iter()
            .map(|&(w, s)| ((self.words[w] >> s) & MAX) as u32)
            .min()
            .unwrap_or(0)
    }

    /// Counts one access of `hash` and returns the estimate including it. Hot path: no allocation; once per
    /// `10 x slots` calls it halves the whole sketch (a pass over 8 bytes per slot).
    #[inline]
    pub(crate) fn increment(&mut self, hash: u32) -> u32 {
        let estimate = self.add(hash);
        self.tick();
        estimate
    }

    /// Counts one access of `hash` and returns the estimate including it, without counting towards the
    /// halving: the caller counts each access once with [`Sketch::tick`] (the compact tables count a stored
    /// key's accesses elsewhere, and halve those with the sketch).
    #[inline]
    pub(crate) fn add(&mut self, hash: u32) -> u32 {
        let places = self.places(hash);
        let min = places
            .iter()
            .map(|&(w, s)| (self.words[w] >> s) & MAX)
            .min()
            .unwrap_or(0);
        if min < MAX {
            for &(w, s) in &places {
                if (self.words[w] >> s) & MAX == min {
                    self.words[w] += 1 << s;
                }
            }
        }
        (min + u64::from(min < MAX)) as u32
    }

    /// Counts one access towards the halving; whether this one halved the sketch (once per `10 x slots`).
    #[inline]
    pub(crate) fn tick(&mut self) -> bool {
        self.updates += 1;
        if self.updates >= self.sample {
            self.halve();
            return true;
        }
        false
    }

    #[cold]
    fn halve(&mut self) {
        self.updates = 0;
        // Zero words are left unwritten: a sketch's pages stay untouched (not resident) until keys reach them.
        for w in self.words.iter_mut().filter(|w| **w != 0) {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_halve() {
        let mut s = Sketch::new(1024);
        for i in 1..=20 {
            assert_eq!(s.increment(7), i.min(15));
        }
        assert_eq!(s.estimate(7), 15);
        s.halve();
        assert_eq!(s.estimate(7), 7);
        assert_eq!(s.estimate(8), 0);
    }

    #[test]
    fn one_shot_keys_stay_near_one() {
        let slots = 4096;
        let mut s = Sketch::new(slots);
        // Five times as many distinct keys as slots, each seen once (halvings included).
        for k in 0..(5 * slots as u32) {
            s.increment(k.wrapping_mul(0x2545_F491));
        }
        let high = (0..1000u32)
            .filter(|k| s.estimate(k.wrapping_mul(0x2545_F491) ^ 0x5555) > 2)
            .count();
        assert!(high < 20, "{high} of 1000 unseen keys estimated above 2");
    }
}
