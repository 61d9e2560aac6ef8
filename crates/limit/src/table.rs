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

mod lock;

use lock::{SpinGuard, SpinLock};

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

/// Per-state bookkeeping; in a chunk slot every field carries key bytes instead.
#[derive(Clone, Copy)]
struct Meta {
    key: [u8; INLINE_KEY],
    hash: u32,
    pins: u32,
    key_len: u32,
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

struct Slot<S> {
    meta: Meta,
    state: S,
}

/// A slot's links, kept apart from the slots: moving a state to the LRU head writes its two neighbours' links,
/// and this compact array stays in cache far longer than the slots do.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    /// LRU successor (towards the tail), next free slot, or next chunk of a long key.
    next: u32,
}

/// Bytes one state costs with a key of up to 16 bytes: its slot plus its share of the index.
pub const fn bytes_per_state<S>() -> usize {
    // Links, and 3 index words per 2 slots rounded up per state.
    size_of::<Slot<S>>() + size_of::<Link>() + 6
}

/// A key of up to 16 bytes as the little-endian value of its zero-padded 16 bytes, built from loads only:
/// writing the key into a stack buffer and reading it back wider stalls store forwarding on the hot path.
#[inline(always)]
fn padded(key: &[u8]) -> u128 {
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
fn slots_for(len: usize) -> usize {
    if len <= INLINE_KEY {
        1
    } else {
        1 + (len - LONG_HEAD).div_ceil(CHUNK)
    }
}

/// Asks for transparent huge pages over the 2 MiB pages inside a fresh, untouched allocation: big tables are
/// read at random, and 4 KiB pages make every lookup a TLB miss.
fn huge_pages(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice only, on whole pages inside an allocation this shard owns; failure is harmless.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

struct Shard<S> {
    slots: Box<[Slot<S>]>,
    links: Box<[Link]>,
    index: Box<[u32]>,
    head: u32,
    tail: u32,
    free_head: u32,
    free: usize,
    len: usize,
}

#[repr(align(128))]
struct Padded<T>(T);

/// A table of per-key states; see the module documentation.
pub struct Table<S: TableState> {
    shards: Box<[Padded<SpinLock<Shard<S>>>]>,
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

fn index_words(slots: usize) -> usize {
    slots + slots.div_ceil(2) + 1
}

impl<S: TableState> Table<S> {
    /// A table holding at most `size_bytes` bytes, sharded by size (one shard below [`SINGLE_SHARD_BELOW`]).
    pub fn new(size_bytes: usize, params: S::Params) -> Result<Self, TableError> {
        let shards = default_shards(size_bytes, bytes_per_state::<S>());
        Self::with_shards(size_bytes, shards, params)
    }

    /// A table of `size_bytes` split into `shards` shards (1 gives nginx's exact LRU order at any size).
    pub fn with_shards(
        size_bytes: usize,
        shards: usize,
        params: S::Params,
    ) -> Result<Self, TableError> {
        if shards == 0 {
            return Err(TableError::NoShards);
        }
        let header = size_of::<Self>() + shards * size_of::<Padded<SpinLock<Shard<S>>>>();
        let slot_size = size_of::<Slot<S>>() + size_of::<Link>();
        let min = header + shards * (slot_size + index_words(1) * 4);
        if size_bytes < min {
            return Err(TableError::TooSmall {
                size: size_bytes,
                min,
            });
        }
        let per_shard = (size_bytes - header) / shards;
        let mut n = (per_shard / bytes_per_state::<S>()).min(MAX_SLOTS_PER_SHARD);
        while n * slot_size + index_words(n) * 4 > per_shard {
            n -= 1;
        }
        let shards: Box<[_]> = (0..shards)
            .map(|_| Padded(SpinLock::new(Shard::new(n))))
            .collect();
        Ok(Self {
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
        self.shards.iter().map(|s| s.0.lock().len).sum()
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
        let mut total =
            size_of::<Self>() + self.shards.len() * size_of::<Padded<SpinLock<Shard<S>>>>();
        for s in self.shards.iter() {
            let s = s.0.lock();
            total += s.slots.len() * size_of::<Slot<S>>()
                + s.links.len() * size_of::<Link>()
                + s.index.len() * 4;
        }
        total
    }

    /// Bytes per state with a key of up to 16 bytes.
    pub const fn bytes_per_state() -> usize {
        bytes_per_state::<S>()
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
            inner: self.shards[shard].0.lock(),
            params: &self.params,
        }
    }

    /// Keys of one shard from the LRU head (most recent) to the tail (for tests and inspection).
    pub fn lru_keys(&self, shard: usize) -> Vec<Vec<u8>> {
        let s = self.shards[shard].0.lock();
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

    /// Finds `key` and moves its state to the LRU head, as every nginx lookup does.
    #[inline(always)]
    pub fn find(&mut self, h: KeyHash, key: &[u8]) -> Option<SlotRef> {
        let i = self.inner.find(h, key)?;
        self.inner.move_to_head(i);
        Some(self.r(i))
    }

    /// Finds `key` without touching the LRU order.
    pub fn peek(&self, h: KeyHash, key: &[u8]) -> Option<SlotRef> {
        self.inner.find(h, key).map(|i| self.r(i))
    }

    /// Inserts `state` for `key` (which must not be present) at the LRU head, first evicting as nginx does:
    /// up to 2 expirable tail states; if there is still no room, 1 tail state whatever its age and up to 2 more
    /// expirable ones. Pinned states stop eviction.
    pub fn insert(
        &mut self,
        h: KeyHash,
        key: &[u8],
        now_ms: u64,
        state: S,
    ) -> Result<SlotRef, NoRoom> {
        debug_assert!(self.inner.find(h, key).is_none(), "key already present");
        if key.len() > MAX_KEY_LEN {
            return Err(NoRoom);
        }
        let need = slots_for(key.len());
        self.inner.expire(now_ms, 1, self.params);
        if self.inner.free < need {
            self.inner.expire(now_ms, 0, self.params);
            if self.inner.free < need {
                return Err(NoRoom);
            }
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

impl<S: TableState> Shard<S> {
    fn new(n: usize) -> Self {
        let mut slots: Vec<Slot<S>> = Vec::with_capacity(n);
        huge_pages(slots.as_ptr() as usize, n * size_of::<Slot<S>>());
        slots.extend((0..n).map(|_| Slot {
            meta: Meta::EMPTY,
            state: S::default(),
        }));
        let mut links: Vec<Link> = Vec::with_capacity(n);
        huge_pages(links.as_ptr() as usize, n * size_of::<Link>());
        links.extend((0..n).map(|i| Link {
            prev: NIL,
            next: if i + 1 < n { i as u32 + 1 } else { NIL },
        }));
        let mut index: Vec<u32> = Vec::with_capacity(index_words(n));
        huge_pages(index.as_ptr() as usize, index_words(n) * 4);
        index.resize(index_words(n), 0);
        Self {
            slots: slots.into_boxed_slice(),
            links: links.into_boxed_slice(),
            index: index.into_boxed_slice(),
            head: NIL,
            tail: NIL,
            free_head: if n > 0 { 0 } else { NIL },
            free: n,
            len: 0,
        }
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
    fn find(&self, h: KeyHash, key: &[u8]) -> Option<u32> {
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

    fn key_of(&self, i: u32) -> Vec<u8> {
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

    fn take_free(&mut self) -> u32 {
        let i = self.free_head;
        debug_assert_ne!(i, NIL);
        self.free_head = self.links[i as usize].next;
        self.free -= 1;
        i
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
    fn alloc(&mut self, h: KeyHash, key: &[u8], state: S) -> u32 {
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

    fn remove(&mut self, i: u32) {
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
    fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_head(i);
        }
    }

    /// nginx's `ngx_http_limit_req_expire`: with `n == 1` drops up to 2 expirable tail states; with `n == 0`
    /// drops the tail state unconditionally, then up to 2 expirable ones. A pinned tail stops it: states are
    /// bumped on lookup, so looking further is pointless.
    fn expire(&mut self, now_ms: u64, mut n: u32, params: &S::Params) {
        while n < 3 {
            let t = self.tail;
            if t == NIL {
                return;
            }
            let slot = &self.slots[t as usize];
            if slot.meta.pins > 0 {
                return;
            }
            let test = n != 0;
            n += 1;
            if test && !slot.state.expirable(now_ms, params) {
                return;
            }
            self.remove(t);
        }
    }
}

#[cfg(test)]
mod tests;
