//! The sync task, the same for every counter store (`store.rs`): connect (with backoff), then rounds every
//! sync interval and whenever a key's quantum is unsent. A round sends the events and configuration waiting,
//! max-merges the counters with something to send (or active and stale), and on the periodic rounds reads
//! what the other nodes sent. Each exchange of a round has our own deadline; missing it marks the store as
//! failing and drops the connection.
//!
//! Keys far from their limit that become due are coalesced: they wait for a round at most a quarter of the
//! sync interval after the last one ([`crate::wake::Wake::soon`]), so a node whose many clients are all well
//! under their limits makes a few rounds a second instead of one every few requests. Keys near their limit,
//! events and configuration wake the task at once ([`crate::wake::Wake::now`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Store;
use crate::{Inner, RESYNC_EVERY};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The shortest gap between rounds that only keys far from their limit asked for.
fn coalesce_gap(interval: Duration) -> Duration {
    interval / 4
}

pub(crate) async fn run<S: Store>(inner: Arc<Inner>, mut store: S) {
    let interval = inner.settings.sync_interval;
    let gap = coalesce_gap(interval);
    let deadline = inner.settings.deadline();
    let mut connected = false;
    let mut backoff = MIN_BACKOFF;
    let mut next_try = Instant::now();
    let mut next_tick = Instant::now();
    let mut last_full: Option<Instant> = None;
    let mut last_round = Instant::now();
    // A coalesced round waiting for its time.
    let mut soon: Option<Instant> = None;
    loop {
        let mut wake_at = if connected {
            next_tick
        } else {
            next_tick.min(next_try)
        };
        if let Some(at) = soon {
            wake_at = wake_at.min(at);
        }
        // Woken by a quantum only while connected: a flood during an outage must not spin this loop.
        let timer = tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => true,
            _ = inner.wake.notified(), if connected => false,
        };
        let now = Instant::now();
        let mut periodic = timer;
        if timer {
            if now >= next_tick {
                next_tick = now + interval;
            } else if connected && soon.is_some_and(|at| now >= at) {
                // The coalesced round: keys due, no read.
                periodic = false;
            }
        } else if !inner.wake.is_urgent() && now < last_round + gap {
            soon = Some(soon.map_or(last_round + gap, |at| at.min(last_round + gap)));
            continue;
        }
        soon = None;
        if !connected {
            if now < next_try {
                continue;
            }
            match store.connect(deadline.max(MIN_BACKOFF)).await {
                Ok(()) => {
                    connected = true;
                    inner.health.connects.fetch_add(1, Ordering::Relaxed);
                    // Every event is read again (what was missed while away); the counts only if the store
                    // may have lost them.
                    resend_if_lost(&inner, &mut store);
                    last_full = None;
                }
                Err(e) => {
                    inner.health.fail(&e);
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let full = last_full.is_none_or(|t| t.elapsed() >= RESYNC_EVERY);
        let read = periodic || full;
        last_round = now;
        inner.wake.round_starts();
        let failure = match round(&inner, &mut store, deadline, read, full).await {
            Ok(reached) => {
                // A round with nothing to exchange says nothing about the store.
                if reached {
                    inner.health.ok();
                    backoff = MIN_BACKOFF;
                }
                inner.health.rounds.fetch_add(1, Ordering::Relaxed);
                if full {
                    last_full = Some(now);
                }
                continue;
            }
            Err(e) => e,
        };
        inner.health.fail(&failure);
        store.disconnect();
        connected = false;
        // Backoff grows until a round succeeds: a store whose connect cannot fail (the parents' pool) is not
        // hammered either.
        next_try = Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Each exchange with the store within our own deadline: one that takes longer fails the round.
async fn within<T>(
    deadline: Duration,
    what: &str,
    exchange: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| format!("{what} over its {} ms deadline", deadline.as_millis()))?
}

/// One round; whether the store was reached. The deadline holds for each exchange (events, a batch of
/// counts, the read), not for the round: a round after many clients' first requests carries many batches,
/// each answered in time by a store that is neither down nor slow.
async fn round<S: Store>(
    inner: &Inner,
    store: &mut S,
    deadline: Duration,
    read: bool,
    full: bool,
) -> Result<bool, String> {
    let mut reached = within(deadline, "sending events", store.send(inner)).await?;
    let now = inner.protection.now_ms();
    let refresh_ms = u64::try_from(inner.settings.sync_interval.as_millis()).unwrap_or(u64::MAX);
    let mut items = Vec::new();
    for t in inner.registry.all() {
        t.collect(now, read, refresh_ms, &mut items);
    }
    for chunk in items.chunks(S::BATCH) {
        let totals = within(deadline, "a batch of counts", store.counts(inner, chunk)).await?;
        reached = true;
        let now = inner.protection.now_ms();
        for (item, t) in chunk.iter().zip(totals) {
            item.table.fold(item, t, now);
        }
    }
    if read {
        reached |= within(deadline, "reading events", store.read(inner, full)).await?;
    }
    resend_if_lost(inner, store);
    Ok(reached)
}

/// After the store said it may have lost what it confirmed: every key sends its whole count again.
fn resend_if_lost<S: Store>(inner: &Inner, store: &mut S) {
    if store.take_lost() {
        for t in inner.registry.all() {
            t.unconfirm();
        }
    }
}
