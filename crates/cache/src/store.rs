//! The LRU map under a byte budget, with up to [`MAX_VARIANTS`] `Vary` variants per key. Plain data
//! structure: the caller holds the lock.

use std::collections::hash_map::RandomState;
use std::sync::Arc;

use hashlink::LinkedHashMap;
use http::HeaderMap;

use crate::entry::Entry;

/// Most variants kept per URL (`Vary`): a client population alternating `Accept-Encoding` or `Accept-Language`
/// values is served from cache, while a header that varies per client (a cookie, a user agent) cannot turn
/// one URL into thousands of entries. Past it, the least recently stored variant goes.
pub const MAX_VARIANTS: usize = 8;

/// The variants of one key, least recently stored first.
type Variants = Vec<Arc<Entry>>;

pub(crate) struct Store {
    /// Front = least recently used. std's `RandomState` (SipHash, random keys) rather than a fast fixed
    /// hasher: keys are chosen by clients, and a flood of colliding paths must not degrade the map.
    map: LinkedHashMap<Box<str>, Variants, RandomState>,
    bytes: usize,
    objects: usize,
    budget: usize,
}

impl Store {
    pub fn new(budget: usize) -> Self {
        Store {
            map: LinkedHashMap::with_hasher(RandomState::new()),
            bytes: 0,
            objects: 0,
            budget,
        }
    }

    /// The variant of `key` that a request with `headers` may be served, marking the key most recently used.
    pub fn get(&mut self, key: &str, headers: &HeaderMap) -> Option<&Arc<Entry>> {
        let variants = self.map.to_back(key)?;
        variants.iter().find(|e| e.vary_matches(headers))
    }

    /// Inserts `entry`, replacing the variant with the same `Vary` values (if any), and evicts least
    /// recently used keys until the total fits the budget. Returns how many objects were evicted; an entry
    /// larger than the whole budget is refused by the caller before it gets here.
    pub fn insert(&mut self, key: Box<str>, entry: Arc<Entry>) -> u64 {
        let mut evicted = 0;
        let mut variants = self.map.remove(&key).unwrap_or_default();
        // The variant this one replaces, and variants past being kept (nothing else visits them).
        let now = entry.stored_at;
        let (gone, kept): (Variants, Variants) = variants
            .into_iter()
            .partition(|e| e.same_variant(&entry) || e.keep_until <= now);
        for old in &gone {
            self.forget(old);
        }
        variants = kept;
        if variants.len() >= MAX_VARIANTS {
            let old = variants.remove(0);
            self.forget(&old);
            evicted += 1;
        }
        while self.bytes + entry.size > self.budget {
            // Other keys first, least recently used first (this key is out of the map meanwhile), then this
            // key's own older variants.
            if let Some((_, old)) = self.map.pop_front() {
                for e in &old {
                    self.forget(e);
                }
                evicted += old.len() as u64;
            } else if !variants.is_empty() {
                let old = variants.remove(0);
                self.forget(&old);
                evicted += 1;
            } else {
                break;
            }
        }
        self.bytes += entry.size;
        self.objects += 1;
        variants.push(entry);
        self.map.insert(key, variants);
        evicted
    }

    fn forget(&mut self, entry: &Entry) {
        self.bytes -= entry.size;
        self.objects -= 1;
    }

    /// Drops every variant of `key`; returns how many there were (`None`: the key was not stored).
    pub fn remove(&mut self, key: &str) -> Option<usize> {
        let old = self.map.remove(key)?;
        for e in &old {
            self.forget(e);
        }
        Some(old.len())
    }

    /// Drops the one variant `entry` of `key` (compared by identity), if it is still stored.
    pub fn remove_variant(&mut self, key: &str, entry: &Arc<Entry>) -> bool {
        let Some(variants) = self.map.get_mut(key) else {
            return false;
        };
        let Some(i) = variants.iter().position(|e| Arc::ptr_eq(e, entry)) else {
            return false;
        };
        let old = variants.remove(i);
        if variants.is_empty() {
            self.map.remove(key);
        }
        self.forget(&old);
        true
    }

    /// Keys with a variant `pick` chooses, least recently used first.
    pub fn keys_where(&self, pick: impl Fn(&str, &Entry) -> bool) -> Vec<Box<str>> {
        self.map
            .iter()
            .filter(|(k, v)| v.iter().any(|e| pick(k, e)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.objects = 0;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Objects stored (every variant counts).
    pub fn len(&self) -> usize {
        self.objects
    }
}
