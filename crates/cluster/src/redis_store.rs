//! Redis as the counter store: the counts as max-merge script calls on one multiplexed connection (a batch of
//! keys per call on a single instance; in a Redis Cluster one call per key, to its slot, issued concurrently
//! and pipelined on the wire), events written to and read from the events log, configuration snapshots
//! published and fetched.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use redis::AsyncCommands;

use crate::backend::{self, CONFIG_PUT, COUNT, Conn, EVENT_PUT, EVENTS_SINCE};
use crate::counters::{Item, Totals};
use crate::events::{Applied, Event};
use crate::store::Store;
use crate::{Inner, lock};

fn err(e: redis::RedisError) -> String {
    e.to_string()
}

pub(crate) struct RedisStore {
    urls: Vec<String>,
    ca: Option<std::path::PathBuf>,
    conn: Option<Conn>,
    applied: Applied,
    event_seq: u64,
    /// The single instance's `run_id` at the last connection: the same one after a reconnect has lost nothing.
    run_id: Option<String>,
    /// The last connection reached a Redis that may not hold what was confirmed before.
    lost: bool,
}

impl RedisStore {
    pub(crate) fn new(urls: Vec<String>, ca: Option<std::path::PathBuf>) -> Self {
        RedisStore {
            urls,
            ca,
            conn: None,
            applied: Applied::default(),
            event_seq: 0,
            run_id: None,
            lost: false,
        }
    }

    fn conn(&mut self) -> Result<&mut Conn, String> {
        self.conn.as_mut().ok_or_else(|| "not connected".to_owned())
    }
}

impl Store for RedisStore {
    /// Keys per script call on a single instance; calls in flight at once in a Redis Cluster.
    const BATCH: usize = 256;

    async fn connect(&mut self, timeout: Duration) -> Result<(), String> {
        // Read at every connection, so a CA file replaced on disk applies at the next reconnect.
        let ca = match &self.ca {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("redis_ca {}: {e}", path.display()))?)
            }
            None => None,
        };
        let mut conn = backend::connect(&self.urls, ca, timeout).await?;
        // A round that missed its deadline (a node busy with a flood) drops a connection to a Redis that lost
        // nothing: its counts need not all be sent again. A restarted instance has another run_id; a Redis
        // Cluster may have failed over: everything is sent again.
        let run_id = match &mut conn {
            Conn::One(c) => {
                let mut cmd = redis::cmd("INFO");
                cmd.arg("server");
                let info = cmd.query_async::<String>(c);
                match tokio::time::timeout(timeout, info).await {
                    Ok(Ok(info)) => backend::run_id(&info),
                    _ => None,
                }
            }
            Conn::Cluster(_) => None,
        };
        self.lost |= run_id.is_none() || run_id != self.run_id;
        self.run_id = run_id;
        self.conn = Some(conn);
        Ok(())
    }

    fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    async fn send(&mut self, inner: &Inner) -> Result<bool, String> {
        let h = &inner.health;
        let now = inner.protection.now_ms();
        let node = inner.settings.node.as_str();
        // Events decided here: removed from the outbox only once Redis has them.
        let out: Vec<Event> = lock(&inner.outbox).clone();
        for e in &out {
            self.event_seq += 1;
            let (name, expires) = e.key_and_expiry(now, self.event_seq);
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
                .invoke_async(self.conn()?)
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
                .invoke_async(self.conn()?)
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
        Ok(true)
    }

    async fn counts(&mut self, inner: &Inner, items: &[Item]) -> Result<Vec<Totals>, String> {
        let node = inner.settings.node.as_str();
        let conn = self.conn()?.clone();
        let h = &inner.health;
        if let Conn::One(_) = conn {
            // A single instance takes the whole batch in one script call.
            h.commands.fetch_add(1, Ordering::Relaxed);
            return count_many(conn, node, items).await.map_err(err);
        }
        // A Redis Cluster: one call per key (its slot), issued concurrently.
        let calls = items
            .iter()
            .map(|item| count_many(conn.clone(), node, std::slice::from_ref(item)));
        let replies = join_all(calls).await;
        h.commands.fetch_add(items.len() as u64, Ordering::Relaxed);
        let mut out = Vec::with_capacity(items.len());
        for r in replies {
            out.extend(r.map_err(err)?);
        }
        Ok(out)
    }

    async fn read(&mut self, inner: &Inner, full: bool) -> Result<bool, String> {
        let mut applied = std::mem::take(&mut self.applied);
        let r = read_events(inner, self.conn()?, full, &mut applied).await;
        self.applied = applied;
        r?;
        read_config(inner, self.conn()?).await?;
        Ok(true)
    }
}

/// The [`COUNT`] script over `items`: the others' totals, one per item in order.
async fn count_many(mut conn: Conn, node: &str, items: &[Item]) -> redis::RedisResult<Vec<Totals>> {
    let mut call = COUNT.prepare_invoke();
    call.arg(node);
    for item in items {
        let w = item.table.window_ms;
        call.key(backend::counter_key(&item.table.id, &item.key));
        // The hash is read during the next window as the previous one: it lives until that one ends.
        call.arg(item.win)
            .arg(item.own)
            .arg(item.own_prev)
            .arg((item.win + 2) * w + 1000);
    }
    let reply: String = call.invoke_async(&mut conn).await?;
    let mut numbers = reply
        .split_ascii_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let mut next = || numbers.next().unwrap_or(0);
    Ok(items
        .iter()
        .map(|_| Totals {
            others: next(),
            others_prev: next(),
            nodes: next(),
        })
        .collect())
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
            .map_err(err)?;
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
                inner.in_node_runtime(|| l.purge(&p));
            }
        }
    }
}

async fn read_config(inner: &Inner, conn: &mut Conn) -> Result<(), String> {
    let v: Option<u64> = conn.get(backend::CONFIG_VER).await.map_err(err)?;
    inner.health.commands.fetch_add(1, Ordering::Relaxed);
    let Some(v) = v else { return Ok(()) };
    if v <= inner.config_version.load(Ordering::Relaxed) {
        return Ok(());
    }
    let Some(listener) = lock(&inner.listener).clone() else {
        return Ok(());
    };
    let snap: Option<String> = conn.get(backend::CONFIG_SNAP).await.map_err(err)?;
    inner.health.commands.fetch_add(1, Ordering::Relaxed);
    let Some((ver, text)) = snap.as_deref().and_then(|s| s.split_once('\n')) else {
        return Ok(());
    };
    let ver = ver.parse::<u64>().unwrap_or(0);
    if ver > inner.config_version.load(Ordering::Relaxed) {
        inner.config_version.fetch_max(ver, Ordering::Relaxed);
        inner.health.configs_in.fetch_add(1, Ordering::Relaxed);
        inner.in_node_runtime(|| listener.config(ver, text));
    }
    Ok(())
}
