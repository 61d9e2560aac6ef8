//! The LRU map under a byte budget. Plain data structure: the caller holds the lock.

use std::collections::hash_map::RandomState;
use std::sync::Arc;

use hashlink::LinkedHashMap;

use crate::entry::Entry;

pub(crate) struct Store {
    /// Front = least recently used. std's `RandomState` (SipHash, random keys) rather than a fast fixed
    /// hasher: keys are chosen by clients, and a flood of colliding paths must not degrade the map.
    map: LinkedHashMap<Box<str>, Arc<Entry>, RandomState>,
    bytes: usize,
    budget: usize,
}

impl Store {
    pub fn new(budget: usize) -> Self {
        Store {
            map: LinkedHashMap::with_hasher(RandomState::new()),
            bytes: 0,
            budget,
        }
    }

    /// Marks `key` most recently used.
    pub fn get(&mut self, key: &str) -> Option<&Arc<Entry>> {
        self.map.to_back(key).map(|e| &*e)
    }

    /// Inserts (replacing any previous variant) and evicts least recently used entries until the total
    /// fits the budget. Returns how many were evicted; an entry larger than the whole budget is refused
    /// by the caller before it gets here.
    pub fn insert(&mut self, key: Box<str>, entry: Arc<Entry>) -> u64 {
        self.remove(&key);
        let mut evicted = 0;
        while self.bytes + entry.size > self.budget {
            let Some((_, old)) = self.map.pop_front() else {
                break;
            };
            self.bytes -= old.size;
            evicted += 1;
        }
        self.bytes += entry.size;
        self.map.insert(key, entry);
        evicted
    }

    pub fn remove(&mut self, key: &str) -> Option<Arc<Entry>> {
        let old = self.map.remove(key)?;
        self.bytes -= old.size;
        Some(old)
    }

    /// Keys of the entries `pick` chooses, least recently used first.
    pub fn keys_where(&self, pick: impl Fn(&str, &Entry) -> bool) -> Vec<Box<str>> {
        self.map
            .iter()
            .filter(|(k, e)| pick(k, e))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}
