//! The HTTP response cache of one domain: a memory-bounded LRU of buffered GET responses, freshness decided
//! by `http-cache-semantics` with the domain's `default_ttl` as fallback, stale copies kept for a grace period
//! so the proxy can serve them when the upstream fails, and request coalescing so a burst of misses for one
//! object makes a single upstream request.
//!
//! Not here: any I/O (the proxy fetches, buffers and sends), a disk tier, conditional revalidation
//! (`If-None-Match`/304), more than one `Vary` variant per key, or range requests. The clock is a `now:
//! SystemTime` argument so tests drive time; the only `.await` is a follower waiting for a fill.

mod entry;
mod fill;
mod key;
mod policy;
mod stats;
mod store;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::RANGE;
use http::{Method, Uri};
use parking_lot::Mutex;
use tokio::sync::watch;

pub use entry::{CacheStatus, CachedResponse, X_CACHE};
pub use fill::{FillGuard, WaitHandle};
pub use key::CacheKey;
pub use stats::CacheStats;

use entry::Entry;
use fill::FlightState;
use policy::RequestHead;
use stats::Stats;
use store::Store;

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
    /// Fresh: answer with [`CachedResponse::into_response`]`(CacheStatus::Hit)`.
    Hit(CachedResponse),
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
            Lookup::Hit(_) => None,
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
    inner: Mutex<Inner>,
    stats: Stats,
}

/// Everything behind the one lock. It is held for map operations only: never across an `.await`, never
/// while building headers or evaluating a policy.
struct Inner {
    store: Store,
    flights: HashMap<Box<str>, Flight, RandomState>,
    next_flight: u64,
}

/// A fill in progress. Followers clone `rx`; the leader's `FillGuard` owns the sender.
struct Flight {
    id: u64,
    rx: watch::Receiver<FlightState>,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Self {
        let budget = usize::try_from(config.max_size).unwrap_or(usize::MAX);
        let object_limit = usize::try_from(config.object_limit()).unwrap_or(usize::MAX);
        Cache {
            shared: Arc::new(Shared {
                config,
                object_limit,
                inner: Mutex::new(Inner {
                    store: Store::new(budget),
                    flights: HashMap::with_hasher(RandomState::new()),
                    next_flight: 0,
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

    /// The key of a request to this domain, honouring `ignore_query`.
    pub fn key(&self, host: &str, uri: &Uri) -> CacheKey {
        CacheKey::new(host, uri, self.shared.config.ignore_query)
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
        let mut stale = None;
        let mut expired = false;
        if let Some(entry) = inner.store.get(key.as_str()) {
            if entry.vary_matches(&req.headers) {
                if now < entry.fresh_until {
                    let entry = Arc::clone(entry);
                    drop(inner);
                    Stats::bump(&stats.hits);
                    return Lookup::Hit(CachedResponse::new(entry, now, head));
                }
                if now < entry.stale_until {
                    stale = Some(Arc::clone(entry));
                }
            }
            expired = now >= entry.stale_until;
        }
        if expired {
            inner.store.remove(key.as_str());
            self.shared.publish_size(&inner);
        }
        let stale = stale.map(|e| CachedResponse::new(e, now, head));

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
        // keep: neither leads a fill.
        if head || req.headers.contains_key(RANGE) {
            drop(inner);
            Stats::bump(&stats.passes);
            return Lookup::Pass { stale };
        }
        let id = inner.next_flight;
        inner.next_flight += 1;
        let (tx, rx) = watch::channel(FlightState::Pending);
        inner.flights.insert(key.boxed(), Flight { id, rx });
        drop(inner);
        Stats::bump(&stats.misses);
        Lookup::Lead {
            fill: FillGuard::new(
                Arc::clone(&self.shared),
                key.boxed(),
                id,
                tx,
                RequestHead::capture(req),
            ),
            stale,
        }
    }

    /// Drops the object stored under `key`, if any.
    pub fn purge(&self, key: &CacheKey) -> bool {
        let mut inner = self.shared.inner.lock();
        let removed = inner.store.remove(key.as_str()).is_some();
        self.shared.publish_size(&inner);
        removed
    }

    /// Drops every stored object (fills in flight still complete).
    pub fn clear(&self) {
        let mut inner = self.shared.inner.lock();
        inner.store.clear();
        self.shared.publish_size(&inner);
    }

    /// The proxy calls this when it answers with a stale copy because the upstream failed.
    pub fn record_stale_served(&self) {
        Stats::bump(&self.shared.stats.stale_served);
    }

    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
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

    /// Stores `entry` under `key` and ends flight `id`, in one critical section.
    fn finish_flight(&self, key: &str, id: u64, entry: Option<Arc<Entry>>) {
        let mut inner = self.inner.lock();
        if let Some(entry) = entry {
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
