//! Cluster mode (SPEC sections 6 and 9.5): the counters of `scope = "cluster"` limits, the blocks and
//! challenges in force, purges and configuration snapshots shared between nodes through Redis (a single
//! instance or a Redis Cluster).
//!
//! The request path never waits on Redis. The protection engine decides on its own tables plus the other
//! nodes' totals this crate keeps in memory ([`edgeguard_protect::SharedCounter`]); one background task per
//! node sends this node's counts every `sync_interval_ms`, and sooner once a per-key quantum is unsent, as
//! server-side max-merge scripts pipelined on one multiplexed connection, and folds the totals of the replies
//! back. Health comes from our own deadline per exchange with Redis; while Redis is down or slow the node keeps
//! serving as `on_redis_failure` says, reconnects with backoff and sends its counts again, which cannot double
//! count.
//! The design and its error bound are in `docs/cluster.md`.
//!
//! Tiered counting (`via = "parents"`, no Redis): the same sync loop sends an edge's counts to each domain's
//! parent through a [`ParentLink`] the binary implements over the data plane's parent pools, and the parent
//! answers from an [`Aggregator`] of its edges' counts; both stores sit behind one store trait (`store.rs`).
//!
//! Not here: HTTP (the binary wires purges, configuration changes and the parent link to the node), deciding
//! anything (the engine does).

mod aggregate;
mod backend;
mod counters;
mod events;
mod health;
mod redis_store;
mod store;
mod sync;
mod tiered;
mod wake;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeguard_protect::{ClusterHooks, NodeProtection, SharedCounter};
use edgeguard_store::BlockRecord;
use tokio::task::AbortHandle;

pub use aggregate::{Aggregator, MAX_AGG_KEYS, MAX_EDGES};
pub use counters::MAX_KEYS;
pub use events::{Event, PurgeEvent};
pub use health::Health;
pub use tiered::{ParentLink, PostFuture};
pub use wire::WireError;

use counters::Registry;
use wake::Wake;

/// Shortest deadline of one exchange of a sync round: one that takes longer marks Redis as failing.
pub const MIN_DEADLINE: Duration = Duration::from_millis(50);
/// How often the events log is read again from its start (what pub/sub would lose while disconnected).
pub const RESYNC_EVERY: Duration = Duration::from_secs(5);

/// What the node does with events that are not protection state: purges and configuration snapshots. The
/// binary implements it over the running node.
pub trait Listener: Send + Sync {
    /// Another node purged this.
    fn purge(&self, purge: &PurgeEvent);
    /// Another node published configuration snapshot `version`.
    fn config(&self, version: u64, snapshot: &str);
}

/// The cluster settings a node runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    pub via: edgeguard_config::ClusterVia,
    pub redis_urls: Vec<String>,
    /// `redis_ca`: the CA certificates (PEM file) `rediss://` URLs are verified with; `None`: the system's.
    pub redis_ca: Option<std::path::PathBuf>,
    pub sync_interval: Duration,
    pub on_redis_failure: edgeguard_config::RedisFailure,
}

impl Settings {
    pub fn new(node: &str, c: &edgeguard_config::Cluster) -> Self {
        Settings {
            node: node.to_owned(),
            via: c.via,
            redis_urls: c.redis_urls.clone(),
            redis_ca: c.redis_ca.clone(),
            sync_interval: c.sync_interval,
            on_redis_failure: c.on_redis_failure,
        }
    }

    /// Our own deadline of one exchange with the store: half the interval, at least [`MIN_DEADLINE`].
    pub fn deadline(&self) -> Duration {
        (self.sync_interval / 2).max(MIN_DEADLINE)
    }
}

pub(crate) struct Inner {
    settings: Settings,
    health: Arc<Health>,
    registry: Registry,
    wake: Arc<Wake>,
    /// Events not yet confirmed by Redis, oldest first.
    outbox: Mutex<Vec<Event>>,
    /// A configuration snapshot to publish.
    config_out: Mutex<Option<String>>,
    /// The configuration version this node runs (published by it, or applied from the cluster).
    config_version: AtomicU64,
    protection: Arc<NodeProtection>,
    listener: Mutex<Option<Arc<dyn Listener>>>,
    /// `via = "parents"`: the edge's way to its parents (counts only: no events, no configuration).
    link: Option<Arc<dyn ParentLink>>,
    /// The node's runtime: listeners' callbacks run in its context, whatever thread the sync task is on.
    node_runtime: tokio::runtime::Handle,
}

/// Runs the Redis sync task on a thread and single-threaded runtime of its own: a node saturated by a flood
/// queues its request tasks on the worker threads, and a round waiting behind them would miss its deadline
/// and mark a Redis that answered in time as failing (then send every count again). The operating system
/// shares the CPU between this thread and the workers, so a round waits a time slice at most.
fn spawn_on_own_thread(task: impl Future<Output = ()> + Send + 'static) -> AbortHandle {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "cluster sync on the node's runtime: no runtime of its own");
            return tokio::spawn(task).abort_handle();
        }
    };
    let task = rt.spawn(task);
    let abort = task.abort_handle();
    let started = std::thread::Builder::new()
        .name("cluster-sync".into())
        .spawn(move || {
            // Until the task ends or is aborted; dropping the runtime then ends its connections' tasks.
            let _ = rt.block_on(task);
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cluster sync not started: no thread for it");
    }
    abort
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Runs a listener's callback (a purge, a reload) in the node runtime's context, so that what it spawns
    /// lives with the node, not on the sync task's thread.
    fn in_node_runtime<R>(&self, f: impl FnOnce() -> R) -> R {
        let _node = self.node_runtime.enter();
        f()
    }

    fn send(&self, e: Event) {
        if self.link.is_some() {
            return;
        }
        lock(&self.outbox).push(e);
        self.wake.now();
    }
}

/// The hooks the protection engine calls.
struct Hooks(Arc<Inner>);

impl ClusterHooks for Hooks {
    fn counter(&self, domain: &str, table: &str, window_ms: u64) -> Arc<dyn SharedCounter> {
        let domain = domain.to_ascii_lowercase();
        if let Some(link) = &self.0.link
            && !link.serves(&domain)
        {
            return Arc::new(tiered::LocalOnly);
        }
        let id = format!("{domain}/{table}/{window_ms}");
        self.0
            .registry
            .get_or_make(id, window_ms, &self.0.health, &self.0.wake)
    }

    fn block_set(&self, record: &BlockRecord) {
        self.0.send(Event::Block(record.clone()));
    }

    fn block_lifted(&self, domain: &str, object_type: &str, object_value: &str) {
        self.0.send(Event::Lift {
            domain: domain.to_owned(),
            object_type: object_type.to_owned(),
            object_value: object_value.to_owned(),
        });
    }
}

/// A node's membership of the cluster: its background sync task and what the admin API and `/metrics` need.
pub struct Cluster {
    inner: Arc<Inner>,
    task: AbortHandle,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.settings.node)
            .field("up", &self.inner.health.is_up())
            .finish()
    }
}

impl Cluster {
    /// Joins the cluster through Redis: gives `protection` the hooks (rebuild the guards, e.g. with a reload
    /// of the same configuration, for them to apply) and starts the sync task on a thread of its own; listeners
    /// are called in the context of the current tokio runtime. Redis need not be up: the task connects in the
    /// background and the node decides on its own counts meanwhile.
    pub fn start(settings: Settings, protection: Arc<NodeProtection>) -> Cluster {
        let store =
            redis_store::RedisStore::new(settings.redis_urls.clone(), settings.redis_ca.clone());
        let inner = Self::inner(settings, protection, None);
        let task = spawn_on_own_thread(sync::run(inner.clone(), store));
        Cluster { inner, task }
    }

    /// Joins as an edge counting through its parents (`via = "parents"`), as [`Cluster::start`] otherwise.
    /// Only counts are shared: blocks, purges and configuration stay on the node.
    pub fn start_tiered(
        settings: Settings,
        protection: Arc<NodeProtection>,
        link: Arc<dyn ParentLink>,
    ) -> Cluster {
        let store = tiered::ParentStore::new(link.clone(), settings.deadline());
        let inner = Self::inner(settings, protection, Some(link));
        // The parents are reached through the node's own upstream pool, whose connections live on its runtime.
        let task = tokio::spawn(sync::run(inner.clone(), store)).abort_handle();
        Cluster { inner, task }
    }

    fn inner(
        settings: Settings,
        protection: Arc<NodeProtection>,
        link: Option<Arc<dyn ParentLink>>,
    ) -> Arc<Inner> {
        let store = if link.is_some() { "parent" } else { "redis" };
        let health = Arc::new(Health::new(settings.on_redis_failure, store));
        let inner = Arc::new(Inner {
            settings,
            health,
            registry: Registry::default(),
            wake: Arc::new(Wake::default()),
            outbox: Mutex::new(Vec::new()),
            config_out: Mutex::new(None),
            config_version: AtomicU64::new(0),
            protection: protection.clone(),
            listener: Mutex::new(None),
            link,
            node_runtime: tokio::runtime::Handle::current(),
        });
        protection.set_cluster(Arc::new(Hooks(inner.clone())));
        inner
    }

    /// Where purges and configuration snapshots from other nodes go.
    pub fn set_listener(&self, listener: Arc<dyn Listener>) {
        *lock(&self.inner.listener) = Some(listener);
    }

    /// The configuration version the node runs (a snapshot it loaded from disk at start, say): snapshots up
    /// to it are not applied again.
    pub fn set_config_version(&self, version: u64) {
        self.inner
            .config_version
            .fetch_max(version, Ordering::Relaxed);
    }

    pub fn config_version(&self) -> u64 {
        self.inner.config_version.load(Ordering::Relaxed)
    }

    /// Publishes a configuration snapshot (sent by the sync task; the next version is Redis's to number).
    /// Through parents, configuration is not shared: nothing happens.
    pub fn publish_config(&self, snapshot: String) {
        if self.inner.link.is_some() {
            return;
        }
        *lock(&self.inner.config_out) = Some(snapshot);
        self.inner.wake.now();
    }

    /// Runs `purge` on every other node (through Redis only).
    pub fn publish_purge(&self, purge: PurgeEvent) {
        self.inner.send(Event::Purge(purge));
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The cluster's lines for `/metrics`.
    pub fn metrics_text(&self) -> String {
        let keys = self.inner.registry.all().iter().map(|t| t.keys()).sum();
        self.inner.health.metrics(keys)
    }

    /// Stops the sync task (what is unsent stays unsent: the other nodes' windows end without it).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}
