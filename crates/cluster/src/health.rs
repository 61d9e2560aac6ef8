//! Whether the counter store (Redis, or the parent with `via = "parents"`) answers within our own deadline,
//! what the node does meanwhile (`on_redis_failure`), and the figures `/metrics` and `/healthz` show.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use edgeguard_config::RedisFailure;
use edgeguard_protect::Others;

#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    mode: RedisFailure,
    /// `redis` or `parent`: what logs and `/healthz` name.
    store: &'static str,
    /// Rounds that failed or missed the deadline, since start.
    pub failures: AtomicU64,
    /// Successful connections (the first one included).
    pub connects: AtomicU64,
    /// Script calls and commands sent to Redis; batches of counts posted to parents.
    pub commands: AtomicU64,
    /// Sync rounds completed.
    pub rounds: AtomicU64,
    /// Blocks and lifts received from other nodes, and sent.
    pub blocks_in: AtomicU64,
    pub blocks_out: AtomicU64,
    /// Configuration snapshots applied from the cluster.
    pub configs_in: AtomicU64,
    last_error: Mutex<String>,
}

impl Health {
    pub fn new(mode: RedisFailure, store: &'static str) -> Self {
        Health {
            up: AtomicBool::new(false),
            mode,
            store,
            failures: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            blocks_in: AtomicU64::new(0),
            blocks_out: AtomicU64::new(0),
            configs_in: AtomicU64::new(0),
            last_error: Mutex::new("not connected yet".to_owned()),
        }
    }

    /// Whether the last round reached the store within the deadline.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// What a shared counter answers instead of counting while the store is down (`Open` or `Closed`); `None`
    /// while it is up, and with `local`, where counting goes on with the others' last known totals (they only
    /// grow within a window, so they still bound what the others did from below). Hot path: one atomic load.
    #[inline]
    pub fn overridden(&self) -> Option<Others> {
        if self.up.load(Ordering::Relaxed) {
            return None;
        }
        match self.mode {
            RedisFailure::Local => None,
            RedisFailure::Open => Some(Others::Open),
            RedisFailure::Closed => Some(Others::Closed),
        }
    }

    pub fn mode(&self) -> RedisFailure {
        self.mode
    }

    /// A round succeeded; logs the recovery once.
    pub fn ok(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "{} reachable: cluster-scoped limits decide on cluster-wide counts",
                self.store
            );
        }
    }

    /// A round failed or missed its deadline; logs once per outage.
    pub fn fail(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = why.to_owned();
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::error!(
                error = why,
                on_redis_failure = self.mode.as_str(),
                "{} unreachable: cluster-scoped limits fall back until it answers again",
                self.store
            );
        }
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One line for `/healthz`.
    pub fn summary(&self) -> String {
        if self.is_up() {
            format!("cluster: ok ({} reachable)", self.store)
        } else {
            format!(
                "cluster: degraded ({} unreachable: {}; on_redis_failure = {})",
                self.store,
                self.last_error(),
                self.mode.as_str()
            )
        }
    }

    /// The Prometheus lines of the cluster backend.
    pub fn metrics(&self, keys: u64) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        line(
            "edgeguard_cluster_redis_up",
            "gauge",
            "1 while the last sync round reached Redis (the parent, with via = parents) within its deadline.",
            u64::from(self.is_up()),
        );
        line(
            "edgeguard_cluster_redis_failures_total",
            "counter",
            "Sync rounds that failed or missed their deadline.",
            g(&self.failures),
        );
        line(
            "edgeguard_cluster_redis_connects_total",
            "counter",
            "Connections made to Redis (reconnections to the parent, with via = parents).",
            g(&self.connects),
        );
        line(
            "edgeguard_cluster_redis_commands_total",
            "counter",
            "Commands and script calls sent to Redis (batches posted to parents, with via = parents).",
            g(&self.commands),
        );
        line(
            "edgeguard_cluster_sync_rounds_total",
            "counter",
            "Sync rounds completed.",
            g(&self.rounds),
        );
        line(
            "edgeguard_cluster_shared_keys",
            "gauge",
            "Keys of cluster-scoped limits this node follows.",
            keys,
        );
        line(
            "edgeguard_cluster_blocks_received_total",
            "counter",
            "Blocks and lifts applied from other nodes.",
            g(&self.blocks_in),
        );
        line(
            "edgeguard_cluster_blocks_sent_total",
            "counter",
            "Blocks and lifts sent to the other nodes.",
            g(&self.blocks_out),
        );
        line(
            "edgeguard_cluster_configs_applied_total",
            "counter",
            "Configuration snapshots applied from the cluster.",
            g(&self.configs_in),
        );
        out
    }
}
