//! The node's memory budget for blocks and challenges in force (`[node] blocks_size`), shared by every domain's
//! `DomainBlocks`. A rule keyed by a header or parameter value lets an attacker choose the keys, so the entries
//! are charged in bytes (key bytes plus [`ENTRY_OVERHEAD`]) against one fixed budget; when it is full the least
//! valuable entry goes first (see [`Rank`]), in the inserting domain or, if that has nothing weaker, in another.
//!
//! The budget is checked with atomics, so concurrent inserts of different domains may overshoot it by at most
//! one entry each for an instant.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use edgeguard_rules::{Action, Object};

/// The rule named for what an operator put in force through the admin API.
pub const RULE_OPERATOR: &str = "admin-api";

/// A domain's blocks as the budget sees them when another domain needs room.
pub(crate) trait Evictable: Send + Sync + std::fmt::Debug {
    /// The rank of the entry this domain would give up first (expired ones rank lowest), unless it is busy.
    fn weakest(&self, now_ms: u64) -> Option<Rank>;
    /// Evicts that entry if it ranks below `than`; false if busy or nothing does.
    fn evict_weakest(&self, than: Rank, now_ms: u64) -> bool;
}

/// Bytes charged per entry besides its key: the map slot, the two order-set nodes, the shared key's header and
/// the rule name's reference count (measured layouts, rounded up).
pub const ENTRY_OVERHEAD: u64 = 192;

/// How much an entry is worth keeping, least first. Expired entries go before any of these (see
/// `DomainBlocks`); then a log mark before a challenge before a block, the soonest to end first; an
/// operator's timed challenge and entries on the whole domain go last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rank {
    lasting: bool,
    strength: u8,
    until_ms: u64,
}

pub(crate) fn strength(a: Action) -> u8 {
    match a {
        Action::Log => 0,
        Action::BotDetection => 1,
        Action::Block => 2,
    }
}

impl Rank {
    pub(crate) fn of(object: &Object, rule: &str, action: Action, until_ms: u64) -> Rank {
        Rank {
            lasting: *object == Object::Domain || rule == RULE_OPERATOR,
            strength: strength(action),
            until_ms,
        }
    }

    pub(crate) fn until_ms(self) -> u64 {
        self.until_ms
    }
}

/// What `/metrics` shows of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlocksStats {
    /// `blocks_size` in bytes.
    pub capacity_bytes: u64,
    /// Bytes charged now.
    pub bytes: u64,
    /// Entries held (expired ones count until swept).
    pub in_force: u64,
    /// Entries dropped early to make room.
    pub evictions: u64,
    /// New entries not kept because everything held was worth more (the request that triggered is still
    /// refused; the rule's window keeps refusing the key while it stays over the threshold).
    pub refused: u64,
}

/// The budget of all domains' blocks of one node.
#[derive(Debug)]
pub struct BlocksBudget {
    capacity: u64,
    used: AtomicU64,
    entries: AtomicU64,
    evictions: AtomicU64,
    refused: AtomicU64,
    domains: Mutex<Vec<Weak<dyn Evictable>>>,
}

impl BlocksBudget {
    pub fn new(capacity_bytes: u64) -> Arc<BlocksBudget> {
        Arc::new(BlocksBudget {
            capacity: capacity_bytes,
            used: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            domains: Mutex::new(Vec::new()),
        })
    }

    pub fn stats(&self) -> BlocksStats {
        BlocksStats {
            capacity_bytes: self.capacity,
            bytes: self.used.load(Relaxed),
            in_force: self.entries.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
    }

    /// Bytes an entry with a key of `key_len` bytes is charged.
    pub fn cost(key_len: usize) -> u64 {
        u64::try_from(key_len).unwrap_or(u64::MAX) + ENTRY_OVERHEAD
    }

    /// Makes `b` a candidate for eviction when another domain needs room.
    pub(crate) fn register(&self, b: Weak<dyn Evictable>) {
        let mut list = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(b);
    }

    /// Charges `cost` if it fits.
    pub(crate) fn try_reserve(&self, cost: u64) -> bool {
        let mut cur = self.used.load(Relaxed);
        loop {
            if cur.saturating_add(cost) > self.capacity {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + cost, Relaxed, Relaxed)
            {
                Ok(_) => {
                    self.entries.fetch_add(1, Relaxed);
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Charges `cost` whether it fits or not: an operator's prefix challenge, a handful per domain.
    pub(crate) fn force_reserve(&self, cost: u64) {
        self.used.fetch_add(cost, Relaxed);
        self.entries.fetch_add(1, Relaxed);
    }

    pub(crate) fn release(&self, cost: u64, evicted: bool) {
        self.used
            .fetch_sub(cost.min(self.used.load(Relaxed)), Relaxed);
        self.entries.fetch_sub(1, Relaxed);
        if evicted {
            self.evictions.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn count_refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// Frees one entry worth less than `than` in a domain other than `me`, the least valuable such entry that
    /// a domain not busy right now offers. Slow path (the budget is full): allocates the list of domains.
    pub(crate) fn evict_elsewhere(&self, me: *const (), than: Rank, now_ms: u64) -> bool {
        let others: Vec<Arc<dyn Evictable>> = {
            let list = self.domains.lock().unwrap_or_else(|p| p.into_inner());
            list.iter()
                .filter_map(Weak::upgrade)
                .filter(|b| !std::ptr::eq(Arc::as_ptr(b).cast::<()>(), me))
                .collect()
        };
        let best = others
            .iter()
            .filter_map(|b| Some((b.weakest(now_ms)?, b)))
            .min_by_key(|(r, _)| *r);
        match best {
            Some((r, b)) if r < than || r.until_ms() <= now_ms => b.evict_weakest(than, now_ms),
            _ => false,
        }
    }
}
