//! One shard's storage: slots (state, inline key, hash, pins), LRU links, the open-addressing index, and the
//! nginx-style LRU expiry. Everything is allocated in [`Shard::new`] and never grown.

use std::mem::size_of;

use super::sketch::Sketch;
use super::{
    CHUNK, IDX_BITS, IDX_MASK, INLINE_KEY, KeyHash, LONG_HEAD, MAX_KEY_LEN, NIL, TableState,
};

/// Per-state bookkeeping; in a chunk slot every field carries key bytes instead.
#[derive(Clone, Copy)]
pub(super) struct Meta {
    pub(super) key: [u8; INLINE_KEY],
    pub(super) hash: u32,
    pub(super) pins: u32,
    pub(super) key_len: u32,
}

impl Meta {
    const EMPTY: Meta = Meta {
        key: [0; INLINE_KEY],
        hash: 0,
        pins: 0,
        key_len: 0,
    };

    fn chunk_bytes(&self) -> [u8; CHUNK] {
        let mut b = [0u8; CHUNK];
        b[..16].copy_from_slice(&self.key);
        b[16..20].copy_from_slice(&self.hash.to_le_bytes());
        b[20..24].copy_from_slice(&self.pins.to_le_bytes());
        b[24..28].copy_from_slice(&self.key_len.to_le_bytes());
        b
    }

    fn set_chunk_bytes(&mut self, piece: &[u8]) {
        let mut b = [0u8; CHUNK];
        b[..piece.len()].copy_from_slice(piece);
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        self.key.copy_from_slice(&b[..16]);
        self.hash = word(16);
        self.pins = word(20);
        self.key_len = word(24);
    }

    fn chunk_head(&self) -> u32 {
        u32::from_le_bytes([self.key[12], self.key[13], self.key[14], self.key[15]])
    }
}

pub(super) struct Slot<S> {
    pub(super) meta: Meta,
    pub(super) state: S,
}

/// A slot's links, kept apart from the slots: moving a state to the LRU head writes its two neighbours' links,
/// and this compact array stays in cache far longer than the slots do.
#[derive(Clone, Copy)]
pub(super) struct Link {
    pub(super) prev: u32,
    /// LRU successor (towards the tail), next free slot, or next chunk of a long key.
    pub(super) next: u32,
}

/// A key of up to 16 bytes as the little-endian value of its zero-padded 16 bytes, built from loads only:
/// writing the key into a stack buffer and reading it back wider stalls store forwarding on the hot path.
#[inline(always)]
pub(super) fn padded(key: &[u8]) -> u128 {
    let n = key.len();
    debug_assert!(n <= INLINE_KEY);
    let u32_at = |i: usize| u32::from_le_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]) as u64;
    let u64_at = |i: usize| {
        u64::from_le_bytes([
            key[i],
            key[i + 1],
            key[i + 2],
            key[i + 3],
            key[i + 4],
            key[i + 5],
            key[i + 6],
            key[i + 7],
        ])
    };
    // Overlapping reads put the same byte at the same place twice, so OR-ing them is exact.
    let (lo, hi) = match n {
        0 => (0, 0),
        1..=3 => {
            let b = |i: usize| (key[i] as u64) << (8 * i);
            (b(0) | b(n / 2) | b(n - 1), 0)
        }
        4..=8 => (u32_at(0) | (u32_at(n - 4) << (8 * (n - 4))), 0),
        _ => (u64_at(0), u64_at(n - 8) >> (8 * (16 - n))),
    };
    (hi as u128) << 64 | lo as u128
}

/// Slots a key of `len` bytes takes.
#[inline]
pub(super) fn slots_for(len: usize) -> usize {
    if len <= INLINE_KEY {
        1
    } else {
        1 + (len - LONG_HEAD).div_ceil(CHUNK)
    }
}

/// Asks for transparent huge pages over the 2 MiB pages inside a fresh, untouched allocation: big tables are
/// read at random, and 4 KiB pages make every lookup a TLB miss.
#[cfg(target_os = "linux")]
pub(crate) fn huge_pages(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice only, on whole pages inside an allocation this shard owns; failure is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Elsewhere there is no portable huge-page advice: regular pages, same behaviour, more TLB misses.
#[cfg(not(target_os = "linux"))]
pub(crate) fn huge_pages(_addr: usize, _len: usize) {}

pub(super) struct Shard<S> {
    /// Slots ever used; grows within its reserved capacity (the shard's slot count), never beyond.
    pub(super) slots: Vec<Slot<S>>,
    /// One per slot in `slots`.
    pub(super) links: Vec<Link>,
    pub(super) index: Box<[u32]>,
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) free_head: u32,
    pub(super) free: usize,
    pub(super) len: usize,
    /// Access frequencies, for frequency-aware tables only.
    pub(super) sketch: Option<Box<Sketch>>,
}

pub(super) fn index_words(slots: usize) -> usize {
    slots + slots.div_ceil(2) + 1
}

impl<S: TableState> Shard<S> {
    /// A shard of `n` slots whose memory is reserved now and touched as it is first used: slots and links are
    /// pushed into their reserved capacity when the free list runs dry (never reallocated), and the index is
    /// zeroed memory, which the allocator takes fresh from the kernel for big tables. A table's budget is thus
    /// a bound, not a resident cost: an idle domain holds a few pages, a flooded one what the flood fills.
    pub(super) fn new(n: usize, frequency_aware: bool) -> Self {
        let slots: Vec<Slot<S>> = Vec::with_capacity(n);
        huge_pages(slots.as_ptr() as usize, n * size_of::<Slot<S>>());
        let links: Vec<Link> = Vec::with_capacity(n);
        huge_pages(links.as_ptr() as usize, n * size_of::<Link>());
        let index: Vec<u32> = vec![0; index_words(n)];
        huge_pages(index.as_ptr() as usize, index_words(n) * 4);
        Self {
            slots,
            links,
            index: index.into_boxed_slice(),
            head: NIL,
            tail: NIL,
            free_head: NIL,
            free: n,
            len: 0,
            sketch: frequency_aware.then(|| Box::new(Sketch::new(n))),
        }
    }

    /// Slots this shard can hold (used, free and not yet touched).
    pub(super) fn capacity(&self) -> usize {
        // `Vec::with_capacity` gives exactly the capacity asked for; kept out of the header, which is budgeted.
        self.slots.capacity()
    }

    #[inline]
    fn home(&self, lo: u32) -> usize {
        ((lo as u64 * self.index.len() as u64) >> 32) as usize
    }

    #[inline]
    fn step(&self, p: usize) -> usize {
        if p + 1 == self.index.len() { 0 } else { p + 1 }
    }

    #[inline(always)]
    pub(super) fn find(&self, h: KeyHash, key: &[u8]) -> Option<u32> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        // Short keys are compared as one zero-padded 16-byte word (stored keys are padded the same way).
        let short = if key.len() <= INLINE_KEY {
            padded(key)
        } else {
            0
        };
        let tag = h.tag();
        let mut p = self.home(h.lo());
        loop {
            let w = self.index[p];
            if w == 0 {
                return None;
            }
            if w >> IDX_BITS == tag {
                let i = (w & IDX_MASK) - 1;
                let m = &self.slots[i as usize].meta;
                if m.hash == h.lo()
                    && m.key_len as usize == key.len()
                    && if key.len() <= INLINE_KEY {
                        u128::from_le_bytes(m.key) == short
                    } else {
                        self.key_eq_long(m, key)
                    }
                {
                    return Some(i);
                }
            }
            p = self.step(p);
        }
    }

    fn key_eq_long(&self, m: &Meta, key: &[u8]) -> bool {
        if m.key[..LONG_HEAD] != key[..LONG_HEAD] {
            return false;
        }
        let mut c = m.chunk_head();
        for piece in key[LONG_HEAD..].chunks(CHUNK) {
            let cm = &self.slots[c as usize].meta;
            if cm.chunk_bytes()[..piece.len()] != *piece {
                return false;
            }
            c = self.links[c as usize].next;
        }
        true
    }

    pub(super) fn key_of(&self, i: u32) -> Vec<u8> {
        let m = &self.slots[i as usize].meta;
        let len = m.key_len as usize;
        if len <= INLINE_KEY {
            return m.key[..len].to_vec();
        }
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&m.key[..LONG_HEAD]);
        let mut c = m.chunk_head();
        while out.len() < len {
            let cm = &self.slots[c as usize].meta;
            let take = (len - out.len()).min(CHUNK);
            out.extend_from_slice(&cm.chunk_bytes()[..take]);
            c = self.links[c as usize].next;
        }
        out
    }

    /// A free slot: the most recently freed one, else the first never used (the order a prelinked free list
    /// 0, 1, 2... would give, so LRU behaviour is unchanged).
    fn take_free(&mut self) -> u32 {
        debug_assert!(self.free > 0);
        self.free -= 1;
        let i = self.free_head;
        if i != NIL {
            self.free_head = self.links[i as usize].next;
            return i;
        }
        let i = self.slots.len();
        debug_assert!(i < self.slots.capacity());
        self.slots.push(Slot {
            meta: Meta::EMPTY,
            state: S::default(),
        });
        self.links.push(Link {
            prev: NIL,
            next: NIL,
        });
        i as u32
    }

    fn put_free(&mut self, i: u32) {
        self.slots[i as usize].meta = Meta::EMPTY;
        self.links[i as usize] = Link {
            prev: NIL,
            next: self.free_head,
        };
        self.free_head = i;
        self.free += 1;
    }

    /// Places a new state; the caller has checked there are enough free slots.
    pub(super) fn alloc(&mut self, h: KeyHash, key: &[u8], state: S) -> u32 {
        let i = self.take_free();
        let mut m = Meta {
            hash: h.lo(),
            key_len: key.len() as u32,
            ..Meta::EMPTY
        };
        if key.len() <= INLINE_KEY {
            m.key[..key.len()].copy_from_slice(key);
        } else {
            m.key[..LONG_HEAD].copy_from_slice(&key[..LONG_HEAD]);
            // Chunks are linked back to front so each knows its successor when written.
            let mut next = NIL;
            for piece in key[LONG_HEAD..].chunks(CHUNK).rev() {
                let c = self.take_free();
                self.slots[c as usize].meta.set_chunk_bytes(piece);
                self.links[c as usize] = Link { prev: NIL, next };
                next = c;
            }
            m.key[LONG_HEAD..].copy_from_slice(&next.to_le_bytes());
        }
        self.slots[i as usize] = Slot { meta: m, state };
        // Index word.
        let mut p = self.home(h.lo());
        while self.index[p] != 0 {
            p = self.step(p);
        }
        self.index[p] = (h.tag() << IDX_BITS) | (i + 1);
        self.len += 1;
        self.link_head(i);
        i
    }

    pub(super) fn remove(&mut self, i: u32) {
        let m = self.slots[i as usize].meta;
        // Index: find the word, then shift later words of the cluster back (no tombstones).
        let mut p = self.home(m.hash);
        while self.index[p] & IDX_MASK != i + 1 {
            p = self.step(p);
        }
        let mut hole = p;
        let mut j = p;
        loop {
            j = self.step(j);
            let w = self.index[j];
            if w == 0 {
                break;
            }
            let k = self.home(self.slots[((w & IDX_MASK) - 1) as usize].meta.hash);
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.index[hole] = w;
                hole = j;
            }
        }
        self.index[hole] = 0;
        self.unlink(i);
        if m.key_len as usize > INLINE_KEY {
            let mut c = m.chunk_head();
            while c != NIL {
                let next = self.links[c as usize].next;
                self.put_free(c);
                c = next;
            }
        }
        self.put_free(i);
        self.len -= 1;
    }

    fn link_head(&mut self, i: u32) {
        let old = self.head;
        self.links[i as usize] = Link {
            prev: NIL,
            next: old,
        };
        if old != NIL {
            self.links[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn unlink(&mut self, i: u32) {
        let Link { prev, next } = self.links[i as usize];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    #[inline]
    pub(super) fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_head(i);
        }
    }

    /// nginx's `ngx_http_limit_req_expire`: with `n == 1` drops up to 2 expirable tail states; with `n == 0`
    /// drops the tail state unconditionally, then up to 2 expirable ones. A pinned tail stops it: states are
    /// bumped on lookup, so looking further is pointless.
    /// Returns how many states it dropped without the expiry test (0 or 1).
    pub(super) fn expire(&mut self, now_ms: u64, mut n: u32, params: &S::Params) -> u32 {
        let mut forced = 0;
        while n < 3 {
            let t = self.tail;
            if t == NIL {
                break;
            }
            let slot = &self.slots[t as usize];
            if slot.meta.pins > 0 {
                break;
            }
            let test = n != 0;
            n += 1;
            if test && !slot.state.expirable(now_ms, params) {
                break;
            }
            forced += u32::from(!test);
            self.remove(t);
        }
        forced
    }

    /// Frequency-aware room for `need` slots (TinyLFU admission). The attempt counts as an access of the new
    /// key; idle tail states go first (they count nothing); then, while there is no room, the least frequent
    /// of up to [`CANDIDATES`] unpinned states from the LRU tail is evicted only if the new key's estimated
    /// frequency is strictly higher. Returns the live states evicted, or `None` when the new key is refused
    /// (nothing is removed in that case beyond idle states and earlier victims of this same call).
    ///
    /// Hot path: no allocation; looks at most at `CANDIDATES` tail slots per victim.
    pub(super) fn admit(
        &mut self,
        h: KeyHash,
        need: usize,
        now_ms: u64,
        params: &S::Params,
    ) -> Option<u32> {
        let sketch = self.sketch.as_mut()?;
        let f_new = sketch.increment(h.lo());
        self.expire(now_ms, 1, params);
        let mut evicted = 0;
        while self.free < need {
            let sketch = self.sketch.as_ref()?;
            let (mut victim, mut f_victim, mut live) = (NIL, u32::MAX, false);
            let (mut i, mut seen) = (self.tail, 0);
            while i != NIL && seen < CANDIDATES {
                let slot = &self.slots[i as usize];
                if slot.meta.pins == 0 {
                    seen += 1;
                    let idle = slot.state.expirable(now_ms, params);
                    let f = if idle {
                        0
                    } else {
                        sketch.estimate(slot.meta.hash)
                    };
                    if f < f_victim {
                        (victim, f_victim, live) = (i, f, !idle);
                    }
                }
                i = self.links[i as usize].prev;
            }
            if victim == NIL || f_new <= f_victim {
                return None;
            }
            evicted += u32::from(live);
            self.remove(victim);
        }
        Some(evicted)
    }
}

/// Tail states a frequency-aware shard compares before evicting one.
pub(super) const CANDIDATES: usize = 4;
