//! The node's side of the shared counters: per table and key, this node's own count in the current and the
//! previous fixed window, what Redis has confirmed of them, and the other nodes' totals from the last reply.
//! The request path reads and bumps these under a shard lock; the sync task collects what to send and folds
//! the replies back.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use edgeguard_protect::{Others, SharedCounter};
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

mod key;
pub use key::Key;

use crate::health::Health;
use crate::wake::Wake;

const SHARDS: usize = 16;
/// Keys one table follows; past that a new key is decided on this node's counts alone (as `scope = "node"`),
/// so a flood of one-shot keys cannot grow memory or the sync batches without bound.
pub const MAX_KEYS: usize = 100_000;
/// The share of what is left of a key's limit a node may hold unsent: `1 / (HEADROOM x N)` of it (and at least
/// the quantum `q`), so what all N nodes hold unsent at once (up to twice their shares while coalescing) stays
/// under a fifth of what is left, while a key far from its limit is sent every few requests instead of every
/// one. The share falls to `q` at `L / 6` from the limit, where the nodes hold at most `L / 30` unsent in all:
/// the bound near the limit does not depend on HEADROOM (docs/cluster.md).
const HEADROOM: u64 = 10;
/// Counts short of their quantum are still sent once per window, so Redis's totals catch up with a quiet key;
/// only in tables whose window is longer than this. The bound holds without these sends (what each node holds
/// back stays under its share), and in a window of a second or less the counts end before a send tells anyone
/// much. Under many clients each far from its limit (a CDN's normal traffic: 10,000 clients at 4 requests a
/// second) the IP access limit's table and normal mode's 10 s window then send a key once per quantum or
/// window, not every second (`bench/cluster.sh`: 0.49 keys sent per request fell to 0.24; 0.03 with a
/// [`HEADROOM`] of 10).
const FLUSH_MS: u64 = 1000;

/// One shard of a table's keys, found by the hash each [`Key`] carries (attacker-chosen bytes: hashed with a
/// seed drawn per table, as the limit tables').
type Shard = Mutex<HashTable<Entry>>;

struct Entry {
    key: Key,
    s: KeyState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One key of one table.
#[derive(Debug, Default, Clone)]
struct KeyState {
    /// Index of the current fixed window (`unix_ms / window_ms`).
    win: u64,
    own: u64,
    /// Own count of `win` Redis has confirmed.
    sent: u64,
    /// The other nodes' total in `win` and in `win - 1`, as of the last reply.
    others: u64,
    others_prev: u64,
    own_prev: u64,
    sent_prev: u64,
    /// Last request (Unix ms) and last reply folded in.
    touched_ms: u64,
    refreshed_ms: u64,
    /// The limit the key is compared with (0: not known).
    limit: u64,
    /// The other nodes' totals grew while the key is near its limit: read it again at once.
    hot: bool,
    /// In the table's queue of keys due.
    queued: bool,
    /// How much of `others` and `others_prev` [`SharedCounter::take_others`] has handed out.
    taken: u64,
    taken_prev: u64,
}

impl KeyState {
    /// All nodes' count as this node knows it over the window ending at `now_ms` (after [`KeyState::roll`]):
    /// the same two-window estimate as [`SharedCounter::others`], own counts included.
    fn seen(&self, now_ms: u64, window_ms: u64) -> u64 {
        let elapsed = now_ms % window_ms;
        let prev = (self.own_prev + self.others_prev) * (window_ms - elapsed) / window_ms;
        self.own + self.others + prev
    }

    /// How many unsent counts make the key due now, and whether the key is far from its limit (see
    /// [`quantum`]). A key no reply has confirmed yet is due at once: until then this node knows nothing of
    /// the others' counts of it (a client hopping over to it).
    fn quantum(&self, now_ms: u64, window_ms: u64, nodes: u64) -> (u64, bool) {
        if self.refreshed_ms == 0 {
            return (1, false);
        }
        quantum(self.limit, self.seen(now_ms, window_ms), nodes)
    }

    fn roll(&mut self, win: u64) {
        if win <= self.win {
            return;
        }
        if win == self.win + 1 {
            self.own_prev = self.own;
            self.sent_prev = self.sent;
            self.others_prev = self.others;
            self.taken_prev = self.taken;
        } else {
            self.own_prev = 0;
            self.sent_prev = 0;
            self.others_prev = 0;
            self.taken_prev = 0;
        }
        self.own = 0;
        self.sent = 0;
        self.others = 0;
        self.taken = 0;
        self.win = win;
    }
}

/// The send quantum of a key whose limit is `limit` (0: not known) with `seen` counted of it by all nodes:
/// `q = max(1, floor(5% x L / (3 N)))` (at most `3q` unseen per node keeps the overshoot within 5%), or the
/// node's share of the headroom, `(L - seen) / (HEADROOM x N)`, when that is larger. The flag says the share
/// was larger: the key is far from its limit, and once due it may wait for the next coalesced round
/// ([`Wake::soon`]); a key at `q` is near its limit and wakes the sync task at once.
pub(crate) fn quantum(limit: u64, seen: u64, nodes: u64) -> (u64, bool) {
    if limit == 0 {
        return (1, false);
    }
    let nodes = nodes.max(1);
    let q = (limit * 5 / 100 / (3 * nodes)).max(1);
    let share = limit.saturating_sub(seen) / (HEADROOM * nodes);
    if share > q { (share, true) } else { (q, false) }
}

/// What the sync task sends for one key: this node's counts of two windows (0 for one already confirmed).
#[derive(Clone)]
pub struct Item {
    pub table: Arc<CounterTable>,
    pub key: Key,
    pub win: u64,
    pub own: u64,
    pub own_prev: u64,
}

/// The reply for one [`Item`]: the other nodes' totals of both windows and how many nodes counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub others: u64,
    pub others_prev: u64,
    pub nodes: u64,
}

/// The shared counter of one table (a rule's window, or an IP access limit) of one domain.
pub struct CounterTable {
    /// `domain/table/window_ms`: the part of the Redis key that names the table.
    pub id: String,
    /// The domain (lower case) whose table it is: with `via = "parents"`, whose parents get its counts.
    pub domain: String,
    pub window_ms: u64,
    seed: foldhash::fast::RandomState,
    shards: Box<[Shard]>,
    /// Keys that became due (a quantum unsent, or hot) since the last round: a round woken by them visits
    /// these, not every key.
    due: Mutex<Vec<Key>>,
    /// Since the last visit of every key: a reply said another node counts a key (its totals need
    /// refreshing), or the store may have lost the counts ([`CounterTable::unconfirm`]). Without either, a
    /// periodic round visits every key only once per [`FLUSH_MS`], and the keys due in between.
    visit_all: AtomicBool,
    /// When every key was last visited (Unix ms).
    visited_ms: AtomicU64,
    keys: AtomicU64,
    /// Nodes seen counting in this table (from the replies), for the send quantum.
    nodes: AtomicU64,
    health: Arc<Health>,
    wake: Arc<Wake>,
}

impl CounterTable {
    pub fn new(id: String, window_ms: u64, health: Arc<Health>, wake: Arc<Wake>) -> Self {
        CounterTable {
            domain: id.split('/').next().unwrap_or_default().to_owned(),
            id,
            window_ms: window_ms.max(1),
            seed: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            due: Mutex::new(Vec::new()),
            visit_all: AtomicBool::new(false),
            visited_ms: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            nodes: AtomicU64::new(1),
            health,
            wake,
        }
    }

    /// `key` with its hash under this table's seed.
    #[cfg(test)]
    pub(crate) fn key(&self, key: &[u8]) -> Key {
        Key::new(self.hash(key), key)
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.seed.hash_one(key)
    }

    /// The shard of a key's hash: bits the probe does not use (hashbrown takes the low bits for the bucket
    /// and the top 7 for its tags).
    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// The keys to send in a round: those with a quantum unsent or marked hot; on a periodic round also
    /// those with counts unsent for a window (the previous window's included; in tables whose window is longer
    /// than [`FLUSH_MS`]), or, when another node counts
    /// them too, with counts unsent or active and not refreshed for `refresh_ms`. A key only this node counts
    /// needs no refresh: another node starting on it reads this node's counts, and this node reads theirs with
    /// its next send. A round that is not periodic visits only the keys queued as due; a periodic one visits
    /// every key and drops those idle for two windows with nothing unsent. Marks nothing sent: a key is
    /// confirmed only by [`CounterTable::fold`], so a failed round is simply sent again (max-merge makes that
    /// harmless).
    pub fn collect(
        self: &Arc<Self>,
        now_ms: u64,
        periodic: bool,
        refresh_ms: u64,
        out: &mut Vec<Item>,
    ) {
        let pick = Pick {
            now_ms,
            win: now_ms / self.window_ms,
            window_ms: self.window_ms,
            nodes: self.nodes.load(Ordering::Relaxed).max(1),
            periodic,
            refresh_ms,
            flush_ms: if self.window_ms > FLUSH_MS {
                refresh_ms.max(self.window_ms)
            } else {
                u64::MAX
            },
        };
        let queued = std::mem::take(&mut *lock(&self.due));
        let visit_all = periodic
            && (self.visit_all.swap(false, Ordering::AcqRel)
                || now_ms >= self.visited_ms.load(Ordering::Relaxed) + FLUSH_MS);
        if !visit_all {
            for key in queued {
                let mut map = lock(self.shard(key.hash));
                if let Some(Entry { s, .. }) = map.find_mut(key.hash, |e| e.key.is(key.hash, &key))
                {
                    s.queued = false;
                    if pick.send(s) {
                        out.push(self.item(key, s));
                    }
                }
            }
            return;
        }
        self.visited_ms.store(now_ms, Ordering::Relaxed);
        for shard in self.shards.iter() {
            let mut map = lock(shard);
            let before = map.len();
            map.retain(|Entry { key, s }| {
                s.queued = false;
                if pick.send(s) {
                    out.push(self.item(key.clone(), s));
                }
                s.own > s.sent
                    || s.own_prev > s.sent_prev
                    || s.touched_ms + 2 * self.window_ms > now_ms
            });
            let dropped = before - map.len();
            if dropped > 0 {
                self.keys.fetch_sub(dropped as u64, Ordering::Relaxed);
            }
        }
    }

    /// What to send of `s`: a count already confirmed goes as 0, which the store reads as nothing to merge
    /// (a refresh costs Redis only the reads).
    fn item(self: &Arc<Self>, key: Key, s: &KeyState) -> Item {
        let unsent = |own: u64, sent: u64| if own > sent { own } else { 0 };
        Item {
            table: self.clone(),
            key,
            win: s.win,
            own: unsent(s.own, s.sent),
            own_prev: unsent(s.own_prev, s.sent_prev),
        }
    }

    /// Puts `key` in the queue of keys due (once) and wakes the sync task: at once if `urgent`, else for the
    /// next coalesced round. A key already queued has asked for its round: more counts of it ask again only
    /// to make that round come at once.
    fn queue(&self, key: &Key, s: &mut KeyState, urgent: bool) {
        let new = !s.queued;
        if new {
            s.queued = true;
            lock(&self.due).push(key.clone());
        }
        if urgent {
            self.wake.now();
        } else if new {
            self.wake.soon();
        }
    }

    /// Folds a reply in: the sent counts are confirmed, the other nodes' totals replace the old ones. A key
    /// whose others grew while it is past half its limit is read again on the next round, so a flood spread
    /// over nodes is seen as it grows, not one interval later.
    pub fn fold(&self, item: &Item, t: Totals, now_ms: u64) {
        self.nodes.fetch_max(t.nodes.max(1), Ordering::Relaxed);
        if t.others > 0 || t.others_prev > 0 {
            self.visit_all.store(true, Ordering::Release);
        }
        let (hash, bytes) = (item.key.hash, &*item.key);
        let mut map = lock(self.shard(hash));
        let Some(Entry { key, s }) = map.find_mut(hash, |e| e.key.is(hash, bytes)) else {
            return;
        };
        s.roll(item.win);
        if s.win == item.win {
            let grew = t.others > s.others;
            let near =
                s.limit > 0 && 2 * (s.own + t.others) >= s.limit && s.own + t.others < s.limit;
            if grew && near {
                s.hot = true;
                self.queue(key, s, true);
            }
            s.sent = s.sent.max(item.own);
            s.sent_prev = s.sent_prev.max(item.own_prev);
            s.others = t.others;
            s.others_prev = t.others_prev;
        } else if s.win == item.win + 1 {
            s.sent_prev = s.sent_prev.max(item.own);
            s.others_prev = t.others;
        }
        s.refreshed_ms = now_ms;
    }

    /// After a reconnect to a store that may have lost the counts (Redis restarted empty, another parent):
    /// nothing is confirmed any more, and every key with counts sends its whole own count again on the next
    /// periodic round (marked hot: a quiet key far from its limit would otherwise wait for its quantum).
    pub fn unconfirm(&self) {
        self.visit_all.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            for Entry { s, .. } in lock(shard).iter_mut() {
                s.sent = 0;
                s.sent_prev = 0;
                s.hot |= s.own > 0 || s.own_prev > 0;
            }
        }
    }

    /// Keys followed now.
    pub fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }
}

impl SharedCounter for CounterTable {
    fn others(&self, key: &[u8], now_ms: u64) -> Others {
        if let Some(other) = self.health.overridden() {
            return other;
        }
        let hash = self.hash(key);
        let map = lock(self.shard(hash));
        let found = map.find(hash, |e| e.key.is(hash, key));
        Others::Count(found.map_or(0, |e| self.others_of(&e.s, now_ms)))
    }

    fn take_others(&self, key: &[u8], now_ms: u64) -> Others {
        if let Some(other) = self.health.overridden() {
            return other;
        }
        let win = now_ms / self.window_ms;
        let hash = self.hash(key);
        let mut map = lock(self.shard(hash));
        let Some(Entry { s, .. }) = map.find_mut(hash, |e| e.key.is(hash, key)) else {
            return Others::Count(0);
        };
        s.roll(win);
        // The others' totals only grow within a window, except after a Redis restart, until every node has
        // sent its counts again: what was handed out stays handed out (max), so nothing is charged twice.
        let n = s.others.saturating_sub(s.taken) + s.others_prev.saturating_sub(s.taken_prev);
        s.taken = s.taken.max(s.others);
        s.taken_prev = s.taken_prev.max(s.others_prev);
        Others::Count(n)
    }

    fn add(&self, key: &[u8], now_ms: u64, n: u32, limit: Option<u64>) {
        let hash = self.hash(key);
        let mut map = lock(self.shard(hash));
        if let Some(e) = self.entry(&mut map, hash, key, now_ms) {
            self.count(e, now_ms, n, limit);
        }
    }

    fn add_then_others(&self, key: &[u8], now_ms: u64, limit: Option<u64>) -> Others {
        let hash = self.hash(key);
        let mut map = lock(self.shard(hash));
        let n = self.entry(&mut map, hash, key, now_ms).map(|e| {
            self.count(e, now_ms, 1, limit);
            self.others_of(&e.s, now_ms)
        });
        self.health
            .overridden()
            .unwrap_or(Others::Count(n.unwrap_or(0)))
    }

    fn others_then_add(
        &self,
        key: &[u8],
        now_ms: u64,
        limit: Option<u64>,
        admit: &mut dyn FnMut(Others) -> bool,
    ) {
        let hash = self.hash(key);
        let mut map = lock(self.shard(hash));
        // One probe: the key found is counted in place; only a new key is looked up again, to insert it.
        let found = map.find_mut(hash, |e| e.key.is(hash, key));
        let others = match self.health.overridden() {
            Some(other) => other,
            None => Others::Count(found.as_ref().map_or(0, |e| self.others_of(&e.s, now_ms))),
        };
        if !admit(others) {
            return;
        }
        match found {
            Some(e) => self.count(e, now_ms, 1, limit),
            None => {
                if let Some(e) = self.entry(&mut map, hash, key, now_ms) {
                    self.count(e, now_ms, 1, limit);
                }
            }
        }
    }
}

impl CounterTable {
    /// The other nodes' count of `s` over the window ending at `now_ms`: a sliding estimate over two fixed
    /// windows, the previous one weighted by the part of it still inside the window that ends now.
    fn others_of(&self, s: &KeyState, now_ms: u64) -> u64 {
        let win = now_ms / self.window_ms;
        let (cur, prev) = match win.checked_sub(s.win) {
            Some(0) => (s.others, s.others_prev),
            Some(1) => (0, s.others),
            _ => (0, 0),
        };
        let elapsed = now_ms % self.window_ms;
        cur + prev * (self.window_ms - elapsed) / self.window_ms
    }

    /// The entry of `key` (hash `hash`) in its shard's `map`, made if new; `None` when the table is full
    /// ([`MAX_KEYS`]) and the key new.
    fn entry<'m>(
        &self,
        map: &'m mut HashTable<Entry>,
        hash: u64,
        key: &[u8],
        now_ms: u64,
    ) -> Option<&'m mut Entry> {
        match map.entry(hash, |e| e.key.is(hash, key), |e| e.key.hash) {
            Slot::Occupied(o) => Some(o.into_mut()),
            Slot::Vacant(v) => {
                if self.keys.load(Ordering::Relaxed) >= MAX_KEYS as u64 {
                    return None;
                }
                self.keys.fetch_add(1, Ordering::Relaxed);
                let s = KeyState {
                    win: now_ms / self.window_ms,
                    ..KeyState::default()
                };
                let key = Key::new(hash, key);
                Some(v.insert(Entry { key, s }).into_mut())
            }
        }
    }

    /// Counts `n` more in `e` and queues its key when due.
    fn count(&self, e: &mut Entry, now_ms: u64, n: u32, limit: Option<u64>) {
        let Entry { key, s } = e;
        s.roll(now_ms / self.window_ms);
        s.own += u64::from(n);
        s.touched_ms = now_ms;
        s.limit = limit.unwrap_or(0);
        let nodes = self.nodes.load(Ordering::Relaxed);
        // A key far from its limit waits for the next coalesced round, unless it has counted twice its
        // quantum meanwhile: what a node holds unsent stays under twice its headroom share.
        let (quantum, far) = s.quantum(now_ms, self.window_ms, nodes);
        let unsent = s.own - s.sent;
        if unsent >= quantum {
            self.queue(key, s, !far || unsent >= 2 * quantum);
        }
    }
}

/// Which keys a round sends (see [`CounterTable::collect`]).
struct Pick {
    now_ms: u64,
    win: u64,
    window_ms: u64,
    nodes: u64,
    periodic: bool,
    refresh_ms: u64,
    flush_ms: u64,
}

impl Pick {
    /// Whether to send `s` in this round; clears its hot mark if so.
    fn send(&self, s: &mut KeyState) -> bool {
        s.roll(self.win);
        let unsent = s.own - s.sent;
        let dirty = unsent > 0 || s.own_prev > s.sent_prev;
        let due = unsent > 0 && unsent >= s.quantum(self.now_ms, self.window_ms, self.nodes).0;
        let send = due
            || s.hot
            || self.periodic && {
                let since = self.now_ms.saturating_sub(s.refreshed_ms);
                let shared = s.others > 0 || s.others_prev > 0;
                let active = s.touched_ms + self.window_ms > self.now_ms;
                dirty && (shared || since >= self.flush_ms)
                    || shared && active && since >= self.refresh_ms
            };
        if send {
            s.hot = false;
        }
        send
    }
}

/// Every shared counter of the node, by table id, so a reload gets back the counts it had.
#[derive(Default)]
pub struct Registry {
    tables: Mutex<HashMap<String, Arc<CounterTable>>>,
}

impl Registry {
    pub fn get_or_make(
        &self,
        id: String,
        window_ms: u64,
        health: &Arc<Health>,
        wake: &Arc<Wake>,
    ) -> Arc<CounterTable> {
        lock(&self.tables)
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(CounterTable::new(
                    id,
                    window_ms,
                    health.clone(),
                    wake.clone(),
                ))
            })
            .clone()
    }

    pub fn all(&self) -> Vec<Arc<CounterTable>> {
        lock(&self.tables).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
