//! Active upstream health checks. The health of an upstream address is one atomic in its pool
//! ([`crate::upstream::Health`]), read by the forwarding loop to skip upstreams that are down and written by it
//! when a connection attempt fails (passive); this background task connects to every upstream every few seconds
//! (active), which is what brings a down upstream back.
//!
//! The active check is a TCP connect with a short timeout: it says whether something accepts connections at
//! the address, which is the failure a CDN fails over on (refused, unreachable, silent). It does not judge
//! HTTP answers; an origin that accepts and answers 500 stays up and its 500 goes to the client.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::shared::Shared;
use crate::upstream::{Failure, UpstreamPool};

/// How often the background task checks every upstream.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Longest a check waits for a connection (the domain's `connect_timeout` when that is shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

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
