//! The HTTP response cache of one domain: a memory-bounded LRU of buffered GET responses, freshness decided
//! by `http-cache-semantics` with the domain's `default_ttl` as fallback (and `CDN-Cache-Control` over
//! `Cache-Control`), stale copies kept for a grace period so the proxy can serve them when the upstream
//! fails or within `stale-while-revalidate`, revalidation of expired objects with their validators, client
//! conditional and range requests answered from stored objects, request coalescing so a burst of misses for
//! one object makes a single upstream request, a hit-for-pass memo, and purge by key, prefix or tag.
//!
//! Up to [`MAX_VARIANTS`] `Vary` variants are kept per URL. An optional disk tier (`disk` module) writes
//! every stored object to a file on its own thread and answers memory misses from the files, also after a
//! restart; that is the only I/O here (the proxy fetches, buffers and sends). The clock is a
//! `now: SystemTime` argument so tests drive time; the `.await`s are a follower waiting for a fill and a
//! disk read on the blocking pool.

mod conditional;
mod disk;
mod entry;
mod fill;
mod key;
mod policy;
mod stats;
mod store;
mod tiered;
mod vary;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hashlink::LinkedHashMap;
use http::header::RANGE;
use http::{Method, Uri};
use parking_lot::Mutex;
use tokio::sync::watch;

pub use conditional::ClientConditions;
pub use disk::{DiskConfig, DiskStats};
pub use entry::{CacheStatus, CachedResponse, X_CACHE};
pub use fill::{FillGuard, WaitHandle};
pub use key::{CacheKey, HTTPS_SUFFIX};
pub use stats::CacheStats;
pub use store::MAX_VARIANTS;

use entry::Entry;
use fill::FlightState;
use policy::RequestHead;
use stats::Stats;
use store::Store;

/// How long a URL whose response could not be stored is remembered as such (hit-for-pass): its requests then
/// go upstream side by side instead of queueing behind one another's fill.
pub const HIT_FOR_PASS_TTL: Duration = Duration::from_secs(10);
/// Most URLs remembered as uncacheable at once (the oldest is forgotten first).
pub const HIT_FOR_PASS_MAX: usize = 4096;

/// Upper bound of the per-object limit, whatever the budget.
pub const MAX_OBJECT_SIZE: u64 = 8 << 20;

/// One domain's cache settings (the proxy maps its `[domain.cache]` onto this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Memory budget in bytes: headers, bodies and bookkeeping estimates all count.
    pub max_size: u64,
    /// Freshness of a storable response that states none of `s-maxage`, `max-age`, `Expires`.
    pub default_ttl: Duration,
    /// How long past expiry an object is kept to be served if the upstream fails.
    pub stale_grace: Duration,
    /// Leave the query string out of the key.
    pub ignore_query: bool,
    /// Per-object limit; `None`: the smaller of 8 MiB and `max_size / 8`.
    pub max_object_size: Option<u64>,
    /// The disk tier (`disk_path`, `disk_size`); `None`: memory only.
    pub disk: Option<DiskConfig>,
}

impl CacheConfig {
    /// The defaults of `[domain.cache]`: 5 minutes default TTL, 1 hour stale grace, query in the key.
    pub fn new(max_size: u64) -> Self {
        CacheConfig {
            max_size,
            default_ttl: Duration::from_secs(300),
            stale_grace: Duration::from_secs(3600),
            ignore_query: false,
            max_object_size: None,
            disk: None,
        }
    }

    /// The effective per-object limit in bytes.
    pub fn object_limit(&self) -> u64 {
        self.max_object_size
            .unwrap_or_else(|| MAX_OBJECT_SIZE.min(self.max_size / 8))
            .min(self.max_size)
    }
}

/// Why a fill did not store its response. Not a failure of the request: the proxy still sends the response
/// (as `X-Cache: MISS`); these are for logs and counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    #[error("response carries Set-Cookie")]
    SetCookie,
    #[error("response has Vary: *")]
    VaryStar,
    #[error("response's Vary names an invalid header")]
    BadVary,
    #[error("not storable: method, status, no-store, private or Authorization")]
    Policy,
    #[error("response is not fresh (no-cache, max-age=0 or already expired)")]
    NotFresh,
    #[error("object of {size} bytes is over the per-object limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

/// What to do with a request, decided under one lock so that of a burst of concurrent misses exactly one
/// leads.
///
/// Every variant but `Hit` means "go upstream"; `stale`, when present, is the expired copy (within
/// `stale_grace`) to answer with `X-Cache: STALE` if the upstream fails, after calling
/// [`Cache::record_stale_served`].
#[derive(Debug)]
pub enum Lookup {
    /// Fresh: answer with [`CachedResponse::respond`]`(CacheStatus::Hit, ..)`.
    Hit(CachedResponse),
    /// Expired within `stale-while-revalidate`: answer with the copy at once (`CacheStatus::Updating`) and,
    /// when `fill` is given, refresh it in the background (one refresh at a time per object).
    Updating {
        stale: CachedResponse,
        fill: Option<FillGuard>,
    },
    /// Nobody is fetching this object: fetch it, then [`FillGuard::complete`] (or drop the guard on error).
    Lead {
        fill: FillGuard,
        stale: Option<CachedResponse>,
    },
    /// Another request is fetching it: [`WaitHandle::wait`], and on `None` go upstream without storing.
    Follow {
        wait: WaitHandle,
        stale: Option<CachedResponse>,
    },
    /// Not for the cache (a method other than GET/HEAD; a HEAD or Range request with nothing to follow):
    /// go upstream without storing.
    Pass { stale: Option<CachedResponse> },
}

impl Lookup {
    /// The expired copy to fall back on, if any.
    pub fn stale(&self) -> Option<&CachedResponse> {
        match self {
            Lookup::Hit(_) | Lookup::Updating { .. } => None,
            Lookup::Lead { stale, .. } | Lookup::Follow { stale, .. } | Lookup::Pass { stale } => {
                stale.as_ref()
            }
        }
    }
}

/// One domain's cache. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: CacheConfig,
    object_limit: usize,
    disk: Option<disk::DiskTier>,
    /// Why the disk tier could not be opened (the cache then runs in memory only).
    disk_error: Option<String>,
    inner: Mutex<Inner>,
    stats: Stats,
}

/// Everything behind the one lock. It is held for map operations only: never across an `.await`, never
/// while building headers or evaluating a policy.
struct Inner {
    store: Store,
    flights: HashMap<Box<str>, Flight, RandomState>,
    next_flight: u64,
    /// Hit-for-pass: URLs whose last response could not be stored, and until when that is believed.
    uncacheable: LinkedHashMap<Box<str>, SystemTime, RandomState>,
}

/// A fill in progress. Followers clone `rx`; the leader's `FillGuard` owns the sender.
struct Flight {
    id: u64,
    rx: watch::Receiver<FlightState>,
}

impl Cache {
    /// A cache for `config`. With a disk tier, its folder is opened and its index rebuilt from the files
    /// there (blocking: call it at start or reload, not per request); if that fails the cache runs in memory
    /// only and [`disk_error`](Self::disk_error) says why.
    pub fn new(config: CacheConfig) -> Self {
        let budget = usize::try_from(config.max_size).unwrap_or(usize::MAX);
        let object_limit = usize::try_from(config.object_limit()).unwrap_or(usize::MAX);
        let (disk, disk_error) = match &config.disk {
            None => (None, None),
            Some(d) => match disk::DiskTier::open(d, SystemTime::now()) {
                Ok(tier) => (Some(tier), None),
                Err(e) => (None, Some(format!("{}: {e}", d.path.display()))),
            },
        };
        Cache {
            shared: Arc::new(Shared {
                config,
                object_limit,
                disk,
                disk_error,
                inner: Mutex::new(Inner {
                    store: Store::new(budget),
                    flights: HashMap::with_hasher(RandomState::new()),
                    next_flight: 0,
                    uncacheable: LinkedHashMap::with_hasher(RandomState::new()),
                }),
                stats: Stats::default(),
            }),
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// Largest object (headers and body) that can be stored: a response whose `Content-Length` is above
    /// this should be streamed, not buffered.
    pub fn max_object_size(&self) -> usize {
        self.shared.object_limit
    }

    /// The key of a plain-HTTP request to this domain, honouring `ignore_query`.
    pub fn key(&self, host: &str, uri: &Uri) -> CacheKey {
        CacheKey::new(host, uri, self.shared.config.ignore_query)
    }

    /// The key of a request to this domain that came over HTTPS (`https`) or plain HTTP.
    pub fn key_for(&self, host: &str, uri: &Uri, https: bool) -> CacheKey {
        CacheKey::for_scheme(host, uri, self.shared.config.ignore_query, https)
    }

    /// Both keys of a URL (plain HTTP and HTTPS): what a purge or an invalidation of it removes.
    pub fn keys_of(&self, host: &str, uri: &Uri) -> [CacheKey; 2] {
        [
            self.key_for(host, uri, false),
            self.key_for(host, uri, true),
        ]
    }

    /// Looks `key` up for `req` (whose method, `Range` and `Vary`-nominated headers matter) at `now`.
    ///
    /// Hot path: one short lock (hash lookup, LRU touch, `Arc` clones); no allocation on a hit. A HEAD is
    /// answered from a stored GET. Request `Cache-Control`/`Pragma` are ignored (see `docs/cache.md`).
    pub fn lookup_or_lead(
        &self,
        key: &CacheKey,
        req: &http::request::Parts,
        now: SystemTime,
    ) -> Lookup {
        let stats = &self.shared.stats;
        let head = if req.method == Method::GET {
            false
        } else if req.method == Method::HEAD {
            true
        } else {
            Stats::bump(&stats.passes);
            return Lookup::Pass { stale: None };
        };

        let mut inner = self.shared.inner.lock();
        let mut kept = None;
        let mut expired = None;
        if let Some(entry) = inner.store.get(key.as_str(), &req.headers) {
            if now < entry.fresh_until {
                let entry = Arc::clone(entry);
                drop(inner);
                Stats::bump(&stats.hits);
                return Lookup::Hit(CachedResponse::new(entry, now, head));
            }
            if now < entry.keep_until {
                kept = Some(Arc::clone(entry));
            } else {
                expired = Some(Arc::clone(entry));
            }
        }
        if let Some(entry) = expired {
            inner.store.remove_variant(key.as_str(), &entry);
            self.shared.publish_size(&inner);
        }
        let stale = kept
            .as_ref()
            .filter(|e| now < e.stale_until)
            .map(|e| CachedResponse::new(Arc::clone(e), now, head));
        let updating = kept.as_ref().is_some_and(|e| now < e.swr_until);
        if updating && (head || inner.flights.contains_key(key.as_str())) {
            // A refresh is under way (or a HEAD cannot lead one): the stale copy, at once.
            drop(inner);
            Stats::bump(&stats.hits);
            let stale = CachedResponse::new(kept.unwrap_or_else(|| unreachable!()), now, head);
            return Lookup::Updating { stale, fill: None };
        }

        if let Some(flight) = inner.flights.get(key.as_str()) {
            let rx = flight.rx.clone();
            drop(inner);
            Stats::bump(&stats.coalesced);
            return Lookup::Follow {
                wait: WaitHandle::new(Arc::clone(&self.shared), rx, head),
                stale,
            };
        }
        // A HEAD response has no body to store, and a Range request would bring a 206 the cache does not
        // keep: neither leads a fill. (The proxy takes `Range` off a GET before the lookup, fills the whole
        // object and answers the range from it: see `ClientConditions`.)
        if head || req.headers.contains_key(RANGE) {
            drop(inner);
            Stats::bump(&stats.passes);
            return Lookup::Pass { stale };
        }
        let id = inner.next_flight;
        inner.next_flight += 1;
        let (tx, rx) = watch::channel(FlightState::Pending);
        // Hit-for-pass: a URL known not to cache leads without a flight, so nobody waits on it.
        let memo = inner.uncacheable.get(key.as_str()).copied();
        if memo.is_some_and(|until| now < until) {
            Stats::bump(&stats.passes);
        } else {
            if memo.is_some() {
                inner.uncacheable.remove(key.as_str());
            }
            inner.flights.insert(key.boxed(), Flight { id, rx });
            Stats::bump(&stats.misses);
        }
        drop(inner);
        let revalidating = kept.filter(|e| e.has_validator());
        let fill = FillGuard::new(
            Arc::clone(&self.shared),
            key.boxed(),
            id,
            tx,
            RequestHead::capture(req),
            revalidating,
        );
        if updating {
            let stale = stale.unwrap_or_else(|| unreachable!("swr_until <= stale_until"));
            return Lookup::Updating {
                stale,
                fill: Some(fill),
            };
        }
        Lookup::Lead { fill, stale }
    }

    /// Drops the object stored under `key`, if any.
    pub fn purge(&self, key: &CacheKey) -> bool {
        if let Some(d) = &self.shared.disk {
            d.purge_keys(vec![key.boxed()]);
        }
        self.shared.remove(key.as_str())
    }

    /// Drops the objects stored under `keys` (every `Vary` variant); returns how many there were.
    pub fn purge_keys(&self, keys: &[CacheKey]) -> usize {
        if let Some(d) = &self.shared.disk {
            d.purge_keys(keys.iter().map(CacheKey::boxed).collect());
        }
        let mut inner = self.shared.inner.lock();
        let n = keys
            .iter()
            .filter_map(|k| inner.store.remove(k.as_str()))
            .sum();
        self.shared.publish_size(&inner);
        n
    }

    /// Drops every object whose key starts with `prefix` (a host and path prefix, as [`CacheKey`] spells
    /// it); returns how many. Walks the whole store under the lock: an admin operation, not a hot path.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        if let Some(d) = &self.shared.disk {
            d.purge_prefix(prefix);
        }
        self.purge_where(|key, _| key.starts_with(prefix))
    }

    /// Drops every object tagged (`Cache-Tag`/`Surrogate-Key`) with one of `tags`; returns how many.
    pub fn purge_tags(&self, tags: &[&str]) -> usize {
        if let Some(d) = &self.shared.disk {
            d.purge_tags(tags.iter().map(|t| (*t).into()).collect());
        }
        self.purge_where(|_, entry| entry.tags.iter().any(|t| tags.contains(&&**t)))
    }

    fn purge_where(&self, doomed: impl Fn(&str, &Entry) -> bool) -> usize {
        let mut inner = self.shared.inner.lock();
        let keys = inner.store.keys_where(doomed);
        let n = keys.iter().filter_map(|key| inner.store.remove(key)).sum();
        self.shared.publish_size(&inner);
        n
    }

    /// Drops every stored object (fills in flight still complete).
    pub fn clear(&self) {
        if let Some(d) = &self.shared.disk {
            d.clear();
        }
        let mut inner = self.shared.inner.lock();
        inner.store.clear();
        self.shared.publish_size(&inner);
    }

    /// The proxy calls this when it answers with a stale copy because the upstream failed.
    pub fn record_stale_served(&self) {
        Stats::bump(&self.shared.stats.stale_served);
    }

    pub fn stats(&self) -> CacheStats {
        let mut s = self.shared.stats.snapshot();
        if let Some(d) = self.disk_stats() {
            s.disk_hits = d.hits;
            s.disk_writes = d.writes;
            s.disk_dropped = d.dropped;
            s.disk_bytes = d.bytes;
            s.disk_objects = d.objects;
        }
        s
    }

    /// The disk tier's counters, when it has one.
    pub fn disk_stats(&self) -> Option<DiskStats> {
        self.shared.disk.as_ref().map(disk::DiskTier::stats)
    }

    /// Why the configured disk tier is not in use, if it is not.
    pub fn disk_error(&self) -> Option<&str> {
        self.shared.disk_error.as_deref()
    }

    /// Waits until every write and purge queued for the disk tier so far is done (shutdown, tests).
    pub fn flush_disk(&self) {
        if let Some(d) = &self.shared.disk {
            d.flush();
        }
    }
}

impl Shared {
    /// Mirrors the store's gauges into the atomics `/metrics` reads; called with the lock held so the two
    /// never disagree for long.
    fn publish_size(&self, inner: &Inner) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.bytes.store(inner.store.bytes() as u64, Relaxed);
        self.stats.objects.store(inner.store.len() as u64, Relaxed);
    }

    fn remove(&self, key: &str) -> bool {
        let mut inner = self.inner.lock();
        let removed = inner.store.remove(key).is_some();
        self.publish_size(&inner);
        removed
    }

    fn remove_variant(&self, key: &str, entry: &Arc<Entry>) -> bool {
        if let Some(d) = &self.disk {
            d.remove_variant(key, entry);
        }
        let mut inner = self.inner.lock();
        let removed = inner.store.remove_variant(key, entry);
        self.publish_size(&inner);
        removed
    }

    /// Remembers `key` as not cacheable until `now + HIT_FOR_PASS_TTL`.
    fn memo_uncacheable(&self, key: &str, now: SystemTime) {
        let until = now.checked_add(HIT_FOR_PASS_TTL).unwrap_or(now);
        let mut inner = self.inner.lock();
        inner.uncacheable.replace(key.into(), until);
        while inner.uncacheable.len() > HIT_FOR_PASS_MAX {
            inner.uncacheable.pop_front();
        }
    }

    /// Stores `entry` under `key` and ends flight `id`, in one critical section; `persist`: queue it for the
    /// disk tier too (not for an object just read from there).
    fn finish_flight(&self, key: &str, id: u64, entry: Option<Arc<Entry>>, persist: bool) {
        if let (Some(d), Some(e), true) = (&self.disk, &entry, persist) {
            d.write(key, Arc::clone(e));
        }
        let mut inner = self.inner.lock();
        if let Some(entry) = entry {
            inner.uncacheable.remove(key);
            let evicted = inner.store.insert(key.into(), entry);
            self.publish_size(&inner);
            if evicted > 0 {
                self.stats
                    .evictions
                    .fetch_add(evicted, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if inner.flights.get(key).is_some_and(|f| f.id == id) {
            inner.flights.remove(key);
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}
