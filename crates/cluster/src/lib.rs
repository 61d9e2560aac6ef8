//! Cluster mode (SPEC sections 6 and 9.5): the counters of `scope = "cluster"` limits, the blocks and
//! challenges in force, purges and configuration snapshots shared between nodes through Redis (a single
//! instance or a Redis Cluster).
//!
//! The request path never waits on Redis. The protection engine decides on its own tables plus the other
//! nodes' totals this crate keeps in memory ([`edgeguard_protect::SharedCounter`]); one background task per
//! node sends this node's counts every `sync_interval_ms`, and sooner once a per-key quantum is unsent, as
//! server-side max-merge scripts pipelined on one multiplexed connection, and folds the totals of the replies
//! back. Health comes from our own per-round deadline; while Redis is down or slow the node keeps serving as
//! `on_redis_failure` says, reconnects with backoff and sends its counts again, which cannot double count.
//! The design and its error bound are in `docs/cluster.md`.
//!
//! Not here: HTTP (the binary wires purges and configuration changes to the node), deciding anything (the
//! engine does), tiered counting through a parent without Redis.

mod backend;
mod counters;
mod events;
mod health;
mod sync;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeguard_protect::{ClusterHooks, NodeProtection, SharedCounter};
use edgeguard_store::BlockRecord;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use counters::MAX_KEYS;
pub use events::{Event, PurgeEvent};
pub use health::Health;

use counters::Registry;

/// Shortest deadline of one sync round: a round that takes longer marks Redis as failing.
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
    pub redis_urls: Vec<String>,
    pub sync_interval: Duration,
    pub on_redis_failure: edgeguard_config::RedisFailure,
}

impl Settings {
    pub fn new(node: &str, c: &edgeguard_config::Cluster) -> Self {
        Settings {
            node: node.to_owned(),
            redis_urls: c.redis_urls.clone(),
            sync_interval: c.sync_interval,
            on_redis_failure: c.on_redis_failure,
        }
    }

    /// Our own deadline of one round: half the interval, at least [`MIN_DEADLINE`].
    pub fn deadline(&self) -> Duration {
        (self.sync_interval / 2).max(MIN_DEADLINE)
    }
}

pub(crate) struct Inner {
    settings: Settings,
    health: Arc<Health>,
    registry: Registry,
    wake: Arc<Notify>,
    /// Events not yet confirmed by Redis, oldest first.
    outbox: Mutex<Vec<Event>>,
    /// A configuration snapshot to publish.
    config_out: Mutex<Option<String>>,
    /// The configuration version this node runs (published by it, or applied from the cluster).
    config_version: AtomicU64,
    protection: Arc<NodeProtection>,
    listener: Mutex<Option<Arc<dyn Listener>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn send(&self, e: Event) {
        lock(&self.outbox).push(e);
        self.wake.notify_one();
    }
}

/// The hooks the protection engine calls.
struct Hooks(Arc<Inner>);

impl ClusterHooks for Hooks {
    fn counter(&self, domain: &str, table: &str, window_ms: u64) -> Arc<dyn SharedCounter> {
        let id = format!("{}/{table}/{window_ms}", domain.to_ascii_lowercase());
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
    task: JoinHandle<()>,
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
    /// Joins the cluster: gives `protection` the hooks (rebuild the guards, e.g. with a reload of the same
    /// configuration, for them to apply) and starts the sync task on the current tokio runtime. Redis need not
    /// be up: the task connects in the background and the node decides on its own counts meanwhile.
    pub fn start(settings: Settings, protection: Arc<NodeProtection>) -> Cluster {
        let health = Arc::new(Health::new(settings.on_redis_failure));
        let inner = Arc::new(Inner {
            settings,
            health,
            registry: Registry::default(),
            wake: Arc::new(Notify::new()),
            outbox: Mutex::new(Vec::new()),
            config_out: Mutex::new(None),
            config_version: AtomicU64::new(0),
            protection: protection.clone(),
            listener: Mutex::new(None),
        });
        protection.set_cluster(Arc::new(Hooks(inner.clone())));
        let task = tokio::spawn(sync::run(inner.clone()));
        Cluster { inner, task }
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
    pub fn publish_config(&self, snapshot: String) {
        *lock(&self.inner.config_out) = Some(snapshot);
        self.inner.wake.notify_one();
    }

    /// Runs `purge` on every other node.
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
