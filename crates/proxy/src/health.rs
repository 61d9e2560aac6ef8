//! Upstream health: one atomic per upstream address, read by the forwarding loop to skip upstreams that are
//! down, written by the forwarding loop when a connection attempt fails (passive) and by a background task
//! that connects to every upstream every few seconds (active), which is what brings a down upstream back.
//!
//! The active check is a TCP connect with a short timeout: it says whether something accepts connections at
//! the address, which is the failure a CDN fails over on (refused, unreachable, silent). It does not judge
//! HTTP answers; an origin that accepts and answers 500 stays up and its 500 goes to the client.
//!
//! Hot path: [`Health::is_up`] is one relaxed load; marking down is one store (and a log line on the change).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::pipeline::Shared;
use crate::upstream::{Failure, UpstreamPool};

/// How often the background task checks every upstream.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Longest a check waits for a connection (the domain's `connect_timeout` when that is shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The health of one upstream address. Starts up: a node that has just started tries its upstreams.
#[derive(Debug)]
pub(crate) struct Health {
    up: AtomicBool,
    /// The failure that marked it down, as a `Failure` index, for the 503 body.
    cause: AtomicU8,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            up: AtomicBool::new(true),
            cause: AtomicU8::new(0),
        }
    }
}

impl Health {
    /// Hot path: one load.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// The failure that marked the upstream down (meaningful while it is down).
    pub(crate) fn cause(&self) -> Failure {
        Failure::from_index(self.cause.load(Relaxed))
    }

    /// Marks the upstream down because of `why`; logs when that changes its state.
    pub(crate) fn mark_down(&self, label: &str, why: Failure) {
        self.cause.store(why.index(), Relaxed);
        if self.up.swap(false, Relaxed) {
            tracing::error!(upstream = %label, cause = why.describe(), "upstream marked down");
        }
    }

    /// Marks the upstream up; logs when that changes its state.
    pub(crate) fn mark_up(&self, label: &str) {
        if !self.up.swap(true, Relaxed) {
            tracing::warn!(upstream = %label, "upstream back up (health check passed)");
        }
    }
}

/// One active check of `pool`: a TCP connect within `timeout`.
pub(crate) async fn check(pool: &UpstreamPool, timeout: Duration) {
    let result = match pool.resolve(timeout).await {
        Ok(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(Failure::Refused)
            }
            Ok(Err(_)) => Err(Failure::ConnectError),
            Err(_) => Err(Failure::ConnectTimeout),
        },
        Err(f) => Err(f),
    };
    match result {
        Ok(()) => pool.health.mark_up(&pool.label),
        Err(f) => pool.health.mark_down(&pool.label, f),
    }
}

/// Checks every upstream of the current configuration once, all at the same time.
pub(crate) async fn check_all(shared: &Shared) {
    let rt = shared.runtime.load_full();
    let mut set = tokio::task::JoinSet::new();
    for (pool, timeout) in rt.pools_with_timeouts() {
        let timeout = timeout.min(CHECK_TIMEOUT);
        set.spawn(async move { check(&pool, timeout).await });
    }
    while set.join_next().await.is_some() {}
}

/// The background task: checks every [`CHECK_INTERVAL`] until aborted.
pub(crate) fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; upstreams start up, so skip it.
        tick.tick().await;
        loop {
            tick.tick().await;
            check_all(&shared).await;
        }
    })
}
