//! The sync task: connect (with backoff), then rounds every sync interval and whenever a key's quantum is
//! unsent. A round sends the events and configuration waiting, max-merges the counters with something to
//! send (or active and stale), and on the periodic rounds reads the events log and the configuration version.
//! The whole round has our own deadline; missing it marks Redis as failing and drops the connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use redis::AsyncCommands;
use tokio::time::Instant;

use crate::backend::{self, CONFIG_PUT, COUNT, Conn, EVENT_PUT, EVENTS_SINCE};
use crate::counters::{Item, Totals};
use crate::events::{Applied, Event};
use crate::{Inner, RESYNC_EVERY, lock};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Script calls in flight at once within a round.
const BATCH: usize = 256;

pub(crate) async fn run(inner: Arc<Inner>) {
    let interval = inner.settings.sync_interval;
    let deadline = inner.settings.deadline();
    let mut conn: Option<Conn> = None;
    let mut backoff = MIN_BACKOFF;
    let mut next_try = Instant::now();
    let mut next_tick = Instant::now();
    let mut applied = Applied::default();
    let mut last_full: Option<Instant> = None;
    let mut event_seq = 0u64;
    loop {
        let wake_at = if conn.is_some() {
            next_tick
        } else {
            next_tick.min(next_try)
        };
        // Woken by a quantum only while connected: a flood during an outage must not spin this loop.
        let periodic = tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => true,
            _ = inner.wake.notified(), if conn.is_some() => false,
        };
        let now = Instant::now();
        if periodic && now >= next_tick {
            next_tick = now + interval;
        }
        if conn.is_none() {
            if now < next_try {
                continue;
            }
            match backend::connect(&inner.settings.redis_urls, deadline.max(MIN_BACKOFF)).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = MIN_BACKOFF;
                    inner.health.connects.fetch_add(1, Ordering::Relaxed);
                    // Redis may have restarted empty: send every count again, read every event again.
                    for t in inner.registry.all() {
                        t.unconfirm();
                    }
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
        let Some(c) = conn.as_mut() else { continue };
        let full = last_full.is_none_or(|t| t.elapsed() >= RESYNC_EVERY);
        let read = periodic || full;
        let result = tokio::time::timeout(
            deadline,
            round(&inner, c, read, full, &mut applied, &mut event_seq),
        )
        .await;
        match result {
            Ok(Ok(())) => {
                inner.health.ok();
                inner.health.rounds.fetch_add(1, Ordering::Relaxed);
                if full {
                    last_full = Some(now);
                }
            }
            Ok(Err(e)) => {
                inner.health.fail(&e);
                conn = None;
                next_try = Instant::now() + backoff;
            }
            Err(_) => {
                inner.health.fail(&format!(
                    "sync round over its {} ms deadline",
                    deadline.as_millis()
                ));
                conn = None;
                next_try = Instant::now() + backoff;
            }
        }
    }
}

async fn round(
    inner: &Inner,
    conn: &mut Conn,
    read: bool,
    full: bool,
    applied: &mut Applied,
    event_seq: &mut u64,
) -> Result<(), String> {
    let err = |e: redis::RedisError| e.to_string();
    let h = &inner.health;
    let now = inner.protection.now_ms();
    let node = inner.settings.node.as_str();

    // Events decided here: removed from the outbox only once Redis has them.
    let out: Vec<Event> = lock(&inner.outbox).clone();
    for e in &out {
        *event_seq += 1;
        let (name, expires) = e.key_and_expiry(now, *event_seq);
        // A purge is one of many (named by its sender); a block or lift replaces the object's last event.
        let key = match e {
            Event::Purge(_) => backend::event_key(&format!("{name}:{node}")),
            _ => backend::event_key(&name),
        };
        let _: u64 = EVENT_PUT
            .key(key)
            .key(backend::EVENTS_LOG)
            .key(backend::EVENTS_SEQ)
            .arg(e.to_json(node))
            .arg(expires)
            .invoke_async(conn)
            .await
            .map_err(err)?;
        h.commands.fetch_add(1, Ordering::Relaxed);
        h.blocks_out.fetch_add(1, Ordering::Relaxed);
    }
    if !out.is_empty() {
        lock(&inner.outbox).drain(..out.len());
    }
    let snapshot = lock(&inner.config_out).clone();
    if let Some(text) = snapshot {
        let v: u64 = CONFIG_PUT
            .key(backend::CONFIG_VER)
            .key(backend::CONFIG_SNAP)
            .arg(&text)
            .invoke_async(conn)
            .await
            .map_err(err)?;
        h.commands.fetch_add(1, Ordering::Relaxed);
        inner.config_version.fetch_max(v, Ordering::Relaxed);
        let mut pending = lock(&inner.config_out);
        if pending.as_deref() == Some(text.as_str()) {
            *pending = None;
        }
        tracing::info!(version = v, "configuration published to the cluster");
    }

    // Counters.
    let refresh_ms = if read {
        u64::try_from(inner.settings.sync_interval.as_millis()).unwrap_or(u64::MAX)
    } else {
        u64::MAX
    };
    let mut items = Vec::new();
    for t in inner.registry.all() {
        t.collect(now, refresh_ms, &mut items);
    }
    for chunk in items.chunks(BATCH) {
        let calls = chunk.iter().map(|item| count_one(conn.clone(), node, item));
        let replies = join_all(calls).await;
        h.commands.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let now = inner.protection.now_ms();
        for (item, reply) in chunk.iter().zip(replies) {
            item.table.fold(item, reply.map_err(err)?, now);
        }
    }

    if read {
        read_events(inner, conn, full, applied).await?;
        read_config(inner, conn).await?;
    }
    Ok(())
}

async fn count_one(mut conn: Conn, node: &str, item: &Item) -> redis::RedisResult<Totals> {
    let w = item.table.window_ms;
    let cur = backend::window_key(&item.table.id, &item.key, item.win);
    let prev = backend::window_key(&item.table.id, &item.key, item.win.saturating_sub(1));
    // A window's hash is read as the previous one during the next window: it lives until that one ends.
    let expire_cur = (item.win + 2) * w + 1000;
    let expire_prev = (item.win + 1) * w + 1000;
    let r: Vec<u64> = COUNT
        .key(cur)
        .key(prev)
        .arg(node)
        .arg(item.own)
        .arg(item.own_prev)
        .arg(expire_cur)
        .arg(expire_prev)
        .invoke_async(&mut conn)
        .await?;
    let at = |i: usize| r.get(i).copied().unwrap_or(0);
    Ok(Totals {
        others: at(0),
        others_prev: at(1),
        nodes: at(2),
    })
}

async fn read_events(
    inner: &Inner,
    conn: &mut Conn,
    full: bool,
    applied: &mut Applied,
) -> Result<(), String> {
    let node = inner.settings.node.as_str();
    let mut from = if full { 0 } else { applied.last };
    let mut alive = Vec::new();
    loop {
        let r: Vec<String> = EVENTS_SINCE
            .key(backend::EVENTS_LOG)
            .arg(from)
            .invoke_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        inner.health.commands.fetch_add(1, Ordering::Relaxed);
        let n = r.len() / 3;
        for t in r.chunks_exact(3) {
            let (key, seq, value) = (&t[0], t[1].parse::<u64>().unwrap_or(0), &t[2]);
            from = from.max(seq);
            if full {
                alive.push(key.clone());
            }
            if !applied.fresh(key, seq) {
                continue;
            }
            let payload = value.split_once(' ').map_or("", |(_, p)| p);
            match Event::from_json(payload) {
                Some((from_node, _)) if from_node == node => {}
                Some((_, e)) => apply(inner, e),
                None => tracing::warn!(key, "cluster event not understood; ignored"),
            }
        }
        if n < 500 {
            break;
        }
    }
    if full {
        applied.keep_only(&alive);
    }
    Ok(())
}

fn apply(inner: &Inner, e: Event) {
    inner.health.blocks_in.fetch_add(1, Ordering::Relaxed);
    match e {
        Event::Block(b) => {
            if b.until_ms > i64::try_from(inner.protection.now_ms()).unwrap_or(i64::MAX) {
                inner.protection.apply_shared_block(&b);
            }
        }
        Event::Lift {
            domain,
            object_type,
            object_value,
        } => {
            inner
                .protection
                .lift_shared(&domain, &object_type, &object_value);
        }
        Event::Purge(p) => {
            let listener = lock(&inner.listener).clone();
            if let Some(l) = listener {
                l.purge(&p);
            }
        }
    }
}

async fn read_config(inner: &Inner, conn: &mut Conn) -> Result<(), String> {
    let v: Option<u64> = conn
        .get(backend::CONFIG_VER)
        .await
        .map_err(|e| e.to_string())?;
    inner.health.commands.fetch_add(1, Ordering::Relaxed);
    let Some(v) = v else { return Ok(()) };
    if v <= inner.config_version.load(Ordering::Relaxed) {
        return Ok(());
    }
    let Some(listener) = lock(&inner.listener).clone() else {
        return Ok(());
    };
    let snap: Option<String> = conn
        .get(backend::CONFIG_SNAP)
        .await
        .map_err(|e| e.to_string())?;
    inner.health.commands.fetch_add(1, Ordering::Relaxed);
    let Some((ver, text)) = snap.as_deref().and_then(|s| s.split_once('\n')) else {
        return Ok(());
    };
    let ver = ver.parse::<u64>().unwrap_or(0);
    if ver > inner.config_version.load(Ordering::Relaxed) {
        inner.config_version.fetch_max(ver, Ordering::Relaxed);
        inner.health.configs_in.fetch_add(1, Ordering::Relaxed);
        listener.config(ver, text);
    }
    Ok(())
}
