//! Blocks and challenges in force for one domain: which objects (an IP, a header value, a parameter value, the
//! whole domain) get a rule's action until when, and which path prefixes an operator put under challenge.
//!
//! Looked up on every request of the domain, so the common case (nothing in force) is one relaxed atomic load;
//! otherwise a read lock and one hash lookup per object kind in force (rarely more than one). Expiry is checked
//! on lookup; [`DomainBlocks::sweep`] drops expired entries in the background, walking only those. Every entry
//! is charged to the node's [`BlocksBudget`] (`blocks_size`); two ordered sets per domain find the entry to
//! evict first when it is full (expired, else the least valuable [`crate::budget::Rank`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use edgeguard_rules::{Action, Object, RequestView};
use edgeguard_store::BlockRecord;

use crate::budget::{BlocksBudget, Evictable, Rank, strength};

/// An action in force for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub rule: Arc<str>,
    pub action: Action,
    /// Unix milliseconds (of the node's clock) when it ends.
    pub until_ms: u64,
}

/// Keys are shared with the order sets; an `Arc<[u8]>` is looked up by `&[u8]`.
type Keys = HashMap<Arc<[u8]>, InForce>;

/// Object type under which a timed challenge of a path prefix is listed and stored: `prefix:/shop`, with the
/// domain as the object value.
pub const PREFIX_TYPE: &str = "prefix:";

/// The entries of one domain with their eviction orders. An object's index in `objects` never changes (the
/// list only grows, by the few object kinds the domain's rules and stored blocks name).
#[derive(Debug, Default)]
struct Table {
    objects: Vec<(Object, Keys)>,
    /// Least valuable first.
    by_value: BTreeSet<(Rank, u16, Arc<[u8]>)>,
    /// Soonest to end first: expired entries are found here.
    by_expiry: BTreeSet<(u64, u16, Arc<[u8]>)>,
}

impl Table {
    fn index(&self, object: &Object) -> Option<u16> {
        let i = self.objects.iter().position(|(o, _)| o == object)?;
        u16::try_from(i).ok()
    }

    fn index_or_add(&mut self, object: &Object) -> Option<u16> {
        if let Some(i) = self.index(object) {
            return Some(i);
        }
        let i = u16::try_from(self.objects.len()).ok()?;
        self.objects.push((object.clone(), Keys::new()));
        Some(i)
    }

    fn unlink(&mut self, i: u16, key: &Arc<[u8]>, e: &InForce) {
        let object = &self.objects[usize::from(i)].0;
        self.by_value.remove(&(
            Rank::of(object, &e.rule, e.action, e.until_ms),
            i,
            key.clone(),
        ));
        self.by_expiry.remove(&(e.until_ms, i, key.clone()));
    }

    fn link(&mut self, i: u16, key: Arc<[u8]>, e: &InForce) {
        let object = &self.objects[usize::from(i)].0;
        self.by_value.insert((
            Rank::of(object, &e.rule, e.action, e.until_ms),
            i,
            key.clone(),
        ));
        self.by_expiry.insert((e.until_ms, i, key));
    }

    /// The entry to evict first and its rank: an expired one (ranked lowest of all), else the least valuable.
    fn weakest(&self, now_ms: u64) -> Option<(Rank, u16, Arc<[u8]>)> {
        if let Some((until, i, k)) = self.by_expiry.first()
            && *until <= now_ms
        {
            return Some((Rank::default(), *i, k.clone()));
        }
        self.by_value.first().cloned()
    }

    /// Drops `objects[i]`'s `key`; returns the entry.
    fn take(&mut self, i: u16, key: &[u8]) -> Option<(Arc<[u8]>, InForce)> {
        let (k, e) = self.objects.get_mut(usize::from(i))?.1.remove_entry(key)?;
        self.unlink(i, &k, &e);
        Some((k, e))
    }
}

/// The blocks and challenges of one domain. Shared by every configuration of the node that has the domain, so a
/// reload keeps them.
#[derive(Debug)]
pub struct DomainBlocks {
    domain: String,
    /// Entries held (objects and prefixes), expired or not: zero lets a request skip the locks.
    held: AtomicUsize,
    map: RwLock<Table>,
    budget: Arc<BlocksBudget>,
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
    /// The blocks budget is full of entries worth more than this one: it is not kept.
    NoRoom,
}

impl DomainBlocks {
    /// Blocks under a budget of their own ([`edgeguard_config`]'s default `blocks_size`): replay and tests.
    pub fn new(domain: &str) -> Self {
        Self::with_budget(
            domain,
            BlocksBudget::new(edgeguard_config::defaults::BLOCKS_SIZE),
        )
    }

    /// Blocks charged to `budget`, shared with the node's other domains. Register the `Arc` made of it with
    /// [`DomainBlocks::shared`] so that other domains can evict from it.
    pub fn with_budget(domain: &str, budget: Arc<BlocksBudget>) -> Self {
        DomainBlocks {
            domain: domain.to_owned(),
            held: AtomicUsize::new(0),
            map: RwLock::new(Table::default()),
            budget,
            prefix_held: AtomicUsize::new(0),
            prefixes: RwLock::new(Vec::new()),
        }
    }

    /// `blocks` made shared and known to its budget.
    pub fn shared(blocks: DomainBlocks) -> Arc<DomainBlocks> {
        let b = Arc::new(blocks);
        let weak: std::sync::Weak<dyn Evictable> = Arc::downgrade(&b) as _;
        b.budget.register(weak);
        b
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn budget(&self) -> &Arc<BlocksBudget> {
        &self.budget
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
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
    /// counts from now, longer or shorter). Charged to the budget but never evicted: an operator sets a few.
    pub fn set_prefix(&self, prefix: &str, entry: InForce) {
        let mut list = self.write_prefixes();
        if let Some(slot) = list.iter_mut().find(|(p, _)| &**p == prefix) {
            slot.1 = entry;
            return;
        }
        self.budget.force_reserve(BlocksBudget::cost(prefix.len()));
        list.push((prefix.into(), entry));
        self.held.fetch_add(1, Ordering::Relaxed);
        self.prefix_held.fetch_add(1, Ordering::Relaxed);
    }

    /// Lifts the challenge of `prefix`; returns the one there was.
    pub fn remove_prefix(&self, prefix: &str) -> Option<InForce> {
        let mut list = self.write_prefixes();
        let at = list.iter().position(|(p, _)| &**p == prefix)?;
        let (p, entry) = list.remove(at);
        self.budget.release(BlocksBudget::cost(p.len()), false);
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
        let mut t = self.write();
        if let Some(old) = t
            .index(object)
            .and_then(|i| t.objects[usize::from(i)].1.get(key))
            && old.until_ms > now_ms
            && strength(old.action) > strength(entry.action)
        {
            return Err(old.clone());
        }
        // An operator's entry ranks last, so it finds room unless the budget is full of them.
        self.put(&mut t, object, key, entry, now_ms);
        Ok(())
    }

    /// Stores `entry`, making room in the budget first; false when nothing held is worth less.
    fn put(&self, t: &mut Table, object: &Object, key: &[u8], entry: InForce, now_ms: u64) -> bool {
        let Some(i) = t.index_or_add(object) else {
            return false;
        };
        if let Some((k, old)) = t.objects[usize::from(i)].1.remove_entry(key) {
            // Same key, same charge: only the orders change.
            t.unlink(i, &k, &old);
            t.link(i, k.clone(), &entry);
            t.objects[usize::from(i)].1.insert(k, entry);
            return true;
        }
        let cost = BlocksBudget::cost(key.len());
        let rank = Rank::of(object, &entry.rule, entry.action, entry.until_ms);
        while !self.budget.try_reserve(cost) {
            let local = t.weakest(now_ms).filter(|(r, _, _)| *r < rank);
            if let Some((_, vi, vk)) = local {
                self.drop_entry(t, vi, &vk, true);
            } else if !self
                .budget
                .evict_elsewhere(std::ptr::from_ref(self).cast(), rank, now_ms)
            {
                self.budget.count_refused();
                return false;
            }
        }
        let k: Arc<[u8]> = Arc::from(key);
        t.link(i, k.clone(), &entry);
        t.objects[usize::from(i)].1.insert(k, entry);
        self.held.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn drop_entry(&self, t: &mut Table, i: u16, key: &[u8], evicted: bool) -> Option<InForce> {
        let (k, e) = t.take(i, key)?;
        self.budget.release(BlocksBudget::cost(k.len()), evicted);
        self.held.fetch_sub(1, Ordering::Relaxed);
        Some(e)
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
        let t = self.read();
        let mut best: Option<&InForce> = None;
        for (object, keys) in t.objects.iter() {
            if keys.is_empty() || !object.key_into(req, buf) {
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
        let t = self.read();
        t.index(object)
            .and_then(|i| t.objects[usize::from(i)].1.get(key))
            .filter(|e| e.until_ms > now_ms)
            .cloned()
    }

    /// Puts `entry` in force for `object`/`key` unless the same or a stronger action already is, or the budget
    /// holds only entries worth more.
    pub fn insert(&self, object: &Object, key: &[u8], entry: InForce, now_ms: u64) -> Inserted {
        let mut t = self.write();
        if let Some(old) = t
            .index(object)
            .and_then(|i| t.objects[usize::from(i)].1.get(key))
            && old.until_ms > now_ms
            && strength(old.action) >= strength(entry.action)
        {
            return Inserted::AlreadyInForce;
        }
        if self.put(&mut t, object, key, entry, now_ms) {
            Inserted::New
        } else {
            Inserted::NoRoom
        }
    }

    /// Lifts the entry of `object`/`key`; returns the one there was.
    pub fn remove(&self, object: &Object, key: &[u8]) -> Option<InForce> {
        let mut t = self.write();
        let i = t.index(object)?;
        self.drop_entry(&mut t, i, key, false)
    }

    /// Drops entries that ended by `now_ms`; returns how many. Walks only the expired ones.
    pub fn sweep(&self, now_ms: u64) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut dropped = 0;
        {
            let mut t = self.write();
            while let Some((until, i, k)) = t.by_expiry.first().cloned() {
                if until > now_ms {
                    break;
                }
                self.drop_entry(&mut t, i, &k, false);
                dropped += 1;
            }
        }
        let prefixes_dropped = if self.has_prefixes() {
            let mut list = self.write_prefixes();
            let before = list.len();
            list.retain(|(p, e)| {
                let keep = e.until_ms > now_ms;
                if !keep {
                    self.budget.release(BlocksBudget::cost(p.len()), false);
                }
                keep
            });
            before - list.len()
        } else {
            0
        };
        self.prefix_held
            .fetch_sub(prefixes_dropped, Ordering::Relaxed);
        self.held.fetch_sub(prefixes_dropped, Ordering::Relaxed);
        dropped + prefixes_dropped
    }

    /// Entries in force at `now_ms` whose rule name starts with `prefix`, counted per rule (for /metrics). One
    /// walk under the read lock; allocates per rule, never per entry.
    pub fn count_in_force(&self, prefix: &str, now_ms: u64) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for (_, keys) in self.read().objects.iter() {
            for (_, e) in keys.iter().filter(|(_, e)| {
                e.until_ms > now_ms && e.action.enforces() && e.rule.starts_with(prefix)
            }) {
                match out.iter_mut().find(|(r, _)| *r == *e.rule) {
                    Some(c) => c.1 += 1,
                    None => out.push((e.rule.to_string(), 1)),
                }
            }
        }
        out.sort();
        out
    }

    /// Entries in force at `now_ms`, as the store persists them.
    pub fn list(&self, now_ms: u64) -> Vec<BlockRecord> {
        let mut out = Vec::new();
        for (object, keys) in self.read().objects.iter() {
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

impl Evictable for DomainBlocks {
    /// The rank of the entry this domain would give up first (expired ones rank lowest), unless it is busy.
    fn weakest(&self, now_ms: u64) -> Option<Rank> {
        let t = match self.map.try_read() {
            Ok(t) => t,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        t.weakest(now_ms).map(|(r, _, _)| r)
    }

    /// Evicts the entry this domain gives up first if it ranks below `than`; false if busy or nothing does.
    fn evict_weakest(&self, than: Rank, now_ms: u64) -> bool {
        let mut t = match self.map.try_write() {
            Ok(t) => t,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        match t.weakest(now_ms).filter(|(r, _, _)| *r < than) {
            Some((_, i, k)) => self.drop_entry(&mut t, i, &k, true).is_some(),
            None => false,
        }
    }
}

impl Drop for DomainBlocks {
    /// A domain's blocks leave the node (tests, replay): give their bytes back.
    fn drop(&mut self) {
        let t = self.map.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, keys) in &t.objects {
            for k in keys.keys() {
                self.budget.release(BlocksBudget::cost(k.len()), false);
            }
        }
        for (p, _) in self
            .prefixes
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            self.budget.release(BlocksBudget::cost(p.len()), false);
        }
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
