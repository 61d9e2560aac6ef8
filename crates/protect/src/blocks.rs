//! Blocks and challenges in force for one domain: which objects (an IP, a header value, a parameter value, the
//! whole domain) get a rule's action until when, and which path prefixes an operator put under challenge.
//!
//! Looked up on every request of the domain, so the common case (nothing in force) is one relaxed atomic load;
//! otherwise a read lock and one hash lookup per object kind in force (rarely more than one). Expiry is checked
//! on lookup; [`DomainBlocks::sweep`] drops expired entries in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use edgeguard_rules::{Action, Object, RequestView};
use edgeguard_store::BlockRecord;

/// An action in force for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub rule: Arc<str>,
    pub action: Action,
    /// Unix milliseconds (of the node's clock) when it ends.
    pub until_ms: u64,
}

type Keys = HashMap<Box<[u8]>, InForce>;

/// Object type under which a timed challenge of a path prefix is listed and stored: `prefix:/shop`, with the
/// domain as the object value.
pub const PREFIX_TYPE: &str = "prefix:";

/// The blocks and challenges of one domain. Shared by every configuration of the node that has the domain, so a
/// reload keeps them.
#[derive(Debug)]
pub struct DomainBlocks {
    domain: String,
    /// Entries held (objects and prefixes), expired or not: zero lets a request skip the locks.
    held: AtomicUsize,
    map: RwLock<HashMap<Object, Keys>>,
    /// Prefix entries held, expired or not: zero lets a request skip normalising its path for them.
    prefix_held: AtomicUsize,
    /// Timed challenges of path prefixes. A prefix is matched against the path rather than looked up by key, and
    /// an operator adds them by hand, so a short list scanned in order.
    prefixes: RwLock<Vec<(Box<str>, InForce)>>,
}

/// Whether an insert put a new action in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Nothing (or only an expired or weaker entry) was in force: the action starts now.
    New,
    /// The same or a stronger action is already in force: nothing changed.
    AlreadyInForce,
}

fn strength(a: Action) -> u8 {
    match a {
        Action::Log => 0,
        Action::BotDetection => 1,
        Action::Block => 2,
    }
}

impl DomainBlocks {
    pub fn new(domain: &str) -> Self {
        DomainBlocks {
            domain: domain.to_owned(),
            held: AtomicUsize::new(0),
            map: RwLock::new(HashMap::new()),
            prefix_held: AtomicUsize::new(0),
            prefixes: RwLock::new(Vec::new()),
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Object, Keys>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Object, Keys>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anything may be in force (cheap; expired entries count until swept).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.load(Ordering::Relaxed) == 0
    }

    /// Whether a prefix challenge may be in force (cheap; expired entries count until swept).
    #[inline]
    pub fn has_prefixes(&self) -> bool {
        self.prefix_held.load(Ordering::Relaxed) > 0
    }

    fn read_prefixes(&self) -> RwLockReadGuard<'_, Vec<(Box<str>, InForce)>> {
        self.prefixes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_prefixes(&self) -> RwLockWriteGuard<'_, Vec<(Box<str>, InForce)>> {
        self.prefixes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The timed prefix challenge in force for the normalised `path`, if any.
    ///
    /// Hot path: nothing when no prefix entry is held; otherwise a read lock and a scan of a few prefixes.
    pub fn lookup_prefix(&self, path: &str, now_ms: u64) -> Option<InForce> {
        if !self.has_prefixes() {
            return None;
        }
        self.read_prefixes()
            .iter()
            .find(|(p, e)| e.until_ms > now_ms && path.starts_with(&**p))
            .map(|(_, e)| e.clone())
    }

    /// Puts a timed challenge on `prefix`, replacing any earlier one of the same prefix (an operator's new TTL
    /// counts from now, longer or shorter).
    pub fn set_prefix(&self, prefix: &str, entry: InForce) {
        let mut list = self.write_prefixes();
        if let Some(slot) = list.iter_mut().find(|(p, _)| &**p == prefix) {
            slot.1 = entry;
            return;
        }
        list.push((prefix.into(), entry));
        self.held.fetch_add(1, Ordering::Relaxed);
        self.prefix_held.fetch_add(1, Ordering::Relaxed);
    }

    /// Lifts the challenge of `prefix`; returns the one there was.
    pub fn remove_prefix(&self, prefix: &str) -> Option<InForce> {
        let mut list = self.write_prefixes();
        let at = list.iter().position(|(p, _)| &**p == prefix)?;
        let (_, entry) = list.remove(at);
        self.held.fetch_sub(1, Ordering::Relaxed);
        self.prefix_held.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Puts `entry` in force for `object`/`key`, replacing whatever is there, unless a stronger action is in
    /// force: then that one is returned and nothing changes. For an operator's timed challenge, whose new TTL
    /// counts from now.
    pub fn replace(
        &self,
        object: &Object,
        key: &[u8],
        entry: InForce,
        now_ms: u64,
    ) -> Result<(), InForce> {
        let mut map = self.write();
        let keys = map.entry(object.clone()).or_default();
        if let Some(old) = keys.get(key)
            && old.until_ms > now_ms
            && strength(old.action) > strength(entry.action)
        {
            return Err(old.clone());
        }
        if keys.insert(key.into(), entry).is_none() {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The strongest action in force for `req` at `now_ms` (a block before a challenge). `buf` is scratch space
    /// for the object keys.
    ///
    /// Hot path: no allocation beyond growing `buf`; nothing at all when the domain has no entries.
    pub fn lookup(
        &self,
        req: &impl RequestView,
        now_ms: u64,
        buf: &mut Vec<u8>,
    ) -> Option<InForce> {
        if self.is_empty() {
            return None;
        }
        let map = self.read();
        let mut best: Option<&InForce> = None;
        for (object, keys) in map.iter() {
            if !object.key_into(req, buf) {
                continue;
            }
            if let Some(e) = keys.get(buf.as_slice())
                && e.until_ms > now_ms
                && best.is_none_or(|b| strength(e.action) > strength(b.action))
            {
                best = Some(e);
            }
        }
        best.cloned()
    }

    /// The entry in force for exactly this object and key, if any.
    pub fn get(&self, object: &Object, key: &[u8], now_ms: u64) -> Option<InForce> {
        let map = self.read();
        map.get(object)
            .and_then(|k| k.get(key))
            .filter(|e| e.until_ms > now_ms)
            .cloned()
    }

    /// Puts `entry` in force for `object`/`key` unless the same or a stronger action already is.
    pub fn insert(&self, object: &Object, key: &[u8], entry: InForce, now_ms: u64) -> Inserted {
        let mut map = self.write();
        let keys = match map.get_mut(object) {
            Some(k) => k,
            None => map.entry(object.clone()).or_default(),
        };
        if let Some(old) = keys.get(key)
            && old.until_ms > now_ms
            && strength(old.action) >= strength(entry.action)
        {
            return Inserted::AlreadyInForce;
        }
        if keys.insert(key.into(), entry).is_none() {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        Inserted::New
    }

    /// Lifts the entry of `object`/`key`; returns the one there was.
    pub fn remove(&self, object: &Object, key: &[u8]) -> Option<InForce> {
        let mut map = self.write();
        let keys = map.get_mut(object)?;
        let found = keys.remove(key);
        if found.is_some() {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        if keys.is_empty() {
            map.remove(object);
        }
        found
    }

    /// Drops entries that ended by `now_ms`; returns how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut dropped = 0;
        {
            let mut map = self.write();
            map.retain(|_, keys| {
                let before = keys.len();
                keys.retain(|_, e| e.until_ms > now_ms);
                dropped += before - keys.len();
                !keys.is_empty()
            });
        }
        let prefixes_dropped = if self.has_prefixes() {
            let mut list = self.write_prefixes();
            let before = list.len();
            list.retain(|(_, e)| e.until_ms > now_ms);
            before - list.len()
        } else {
            0
        };
        self.prefix_held
            .fetch_sub(prefixes_dropped, Ordering::Relaxed);
        dropped += prefixes_dropped;
        self.held.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Entries in force at `now_ms`, as the store persists them.
    pub fn list(&self, now_ms: u64) -> Vec<BlockRecord> {
        let mut out = Vec::new();
        for (object, keys) in self.read().iter() {
            // A `log` rule's mark only keeps the rule from logging the same key again within its TTL.
            for (key, e) in keys
                .iter()
                .filter(|(_, e)| e.until_ms > now_ms && e.action.enforces())
            {
                out.push(record(&self.domain, object, key, e));
            }
        }
        for (prefix, e) in self.read_prefixes().iter() {
            if e.until_ms > now_ms {
                out.push(prefix_record(&self.domain, prefix, e));
            }
        }
        out.sort_by(|a, b| {
            (&a.object_type, &a.object_value).cmp(&(&b.object_type, &b.object_value))
        });
        out
    }
}

/// The persisted form of one entry. A key that is not UTF-8 (a raw header value) is stored lossily and would not
/// match again after a restart; IPs, hosts and decoded parameters are text.
pub fn record(domain: &str, object: &Object, key: &[u8], e: &InForce) -> BlockRecord {
    BlockRecord {
        domain: domain.to_owned(),
        object_type: object.to_string(),
        object_value: String::from_utf8_lossy(key).into_owned(),
        rule: e.rule.to_string(),
        action: e.action.as_str().to_owned(),
        until_ms: i64::try_from(e.until_ms).unwrap_or(i64::MAX),
    }
}

/// The persisted form of a timed prefix challenge: object type `prefix:/path`, object value the domain.
pub fn prefix_record(domain: &str, prefix: &str, e: &InForce) -> BlockRecord {
    BlockRecord {
        domain: domain.to_owned(),
        object_type: format!("{PREFIX_TYPE}{prefix}"),
        object_value: domain.to_owned(),
        rule: e.rule.to_string(),
        action: e.action.as_str().to_owned(),
        until_ms: i64::try_from(e.until_ms).unwrap_or(i64::MAX),
    }
}
