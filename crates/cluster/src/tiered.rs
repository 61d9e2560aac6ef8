//! Tiered counting, the edge's side: with `via = "parents"` the counts of a domain's cluster-scoped limits go
//! to that domain's parent (the first one up, as its misses do) over the data plane's keep-alive pool, as the
//! batches of `wire.rs`; the parent (`aggregate.rs`) max-merges them per edge and answers with the other
//! edges' totals, which fold into this node's view exactly as Redis's replies do. No events or configuration
//! travel this way.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgeguard_protect::{Others, SharedCounter};
use futures_util::future::join_all;

use crate::Inner;
use crate::counters::{Item, Totals};
use crate::store::Store;
use crate::wire;

/// The answer to one POST of a batch: the body of a 200, or why there is none.
pub type PostFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// How an edge reaches its parents; the binary implements it over the data plane's parent pools.
pub trait ParentLink: Send + Sync {
    /// Whether `domain` (lower case) has parents on this node: a domain without keeps its cluster-scoped limits
    /// on this node's counts.
    fn serves(&self, domain: &str) -> bool;

    /// POSTs `body` to the parents' counts endpoint for `domain`: the first parent up takes it, as a miss;
    /// the answer within `timeout`.
    fn post(&self, domain: &str, body: Vec<u8>, timeout: Duration) -> PostFuture;
}

/// The counter of a table whose domain has no parents: this node's counts alone.
pub(crate) struct LocalOnly;

impl SharedCounter for LocalOnly {
    fn others(&self, _key: &[u8], _now_ms: u64) -> Others {
        Others::Count(0)
    }

    fn add(&self, _key: &[u8], _now_ms: u64, _n: u32, _limit: Option<u64>) {}

    fn take_others(&self, _key: &[u8], _now_ms: u64) -> Others {
        Others::Count(0)
    }
}

pub(crate) struct ParentStore {
    link: Arc<dyn ParentLink>,
    timeout: Duration,
    /// A batch reached a parent since the last full round.
    posted: bool,
    /// The instance of the parent that last answered for each domain.
    instances: HashMap<String, u64>,
    /// An answer came from another instance than the last one for its domain.
    lost: bool,
}

impl ParentStore {
    pub(crate) fn new(link: Arc<dyn ParentLink>, timeout: Duration) -> Self {
        ParentStore {
            link,
            timeout,
            posted: false,
            instances: HashMap::new(),
            lost: false,
        }
    }

    /// Notes the instance that answered for `domain`.
    fn answered(&mut self, domain: &str, instance: Option<u64>) {
        let Some(instance) = instance else { return };
        match self.instances.get_mut(domain) {
            Some(known) if *known == instance => {}
            Some(known) => {
                *known = instance;
                self.lost = true;
            }
            None => {
                self.instances.insert(domain.to_owned(), instance);
            }
        }
    }
}

impl Store for ParentStore {
    /// Keys per call; a call posts one batch per domain among them, concurrently.
    const BATCH: usize = 4096;

    async fn connect(&mut self, _timeout: Duration) -> Result<(), String> {
        // The data plane's pool connects as needed; a parent that restarted (or another one) names another
        // instance in its next answer ([`Store::take_lost`]).
        Ok(())
    }

    fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    fn disconnect(&mut self) {}

    async fn send(&mut self, _inner: &Inner) -> Result<bool, String> {
        Ok(false)
    }

    async fn counts(&mut self, inner: &Inner, items: &[Item]) -> Result<Vec<Totals>, String> {
        let node = inner.settings.node.as_str();
        let mut by_domain: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let d = it.table.domain.as_str();
            match by_domain.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(i),
                None => by_domain.push((d, vec![i])),
            }
        }
        // A domain that lost its parents in a reload: its keys are confirmed as nobody else's.
        let mut out = vec![
            Totals {
                others: 0,
                others_prev: 0,
                nodes: 1,
            };
            items.len()
        ];
        by_domain.retain(|(d, _)| self.link.serves(d));
        let posts = by_domain.iter().map(|(d, idx)| {
            let body = wire::encode_batch(node, idx.iter().map(|&i| &items[i]));
            self.link.post(d, body, self.timeout)
        });
        let answers = join_all(posts).await;
        inner
            .health
            .commands
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        for ((domain, idx), answer) in by_domain.iter().zip(answers) {
            let body = answer.map_err(|e| format!("parent of {domain}: {e}"))?;
            let (instance, totals) = wire::decode_totals(&body, idx.len())
                .map_err(|e| format!("parent of {domain}: {e}"))?;
            self.answered(domain, instance);
            for (&i, t) in idx.iter().zip(totals) {
                out[i] = t;
            }
        }
        self.posted |= !by_domain.is_empty();
        Ok(out)
    }

    async fn read(&mut self, inner: &Inner, full: bool) -> Result<bool, String> {
        // Until a parent has answered (at start, after a failure) every periodic round may ping; then every
        // full round.
        if !full && inner.health.is_up() {
            return Ok(false);
        }
        if std::mem::take(&mut self.posted) {
            return Ok(false);
        }
        // Nothing was exchanged for a while: an empty batch to each parent in use, so `/healthz` and the log
        // tell a parent that went away before traffic needs it, and one that is back.
        let mut domains: Vec<String> = inner
            .registry
            .all()
            .iter()
            .map(|t| t.domain.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|d| self.link.serves(d))
            .collect();
        domains.sort();
        if domains.is_empty() {
            return Ok(false);
        }
        let node = inner.settings.node.as_str();
        let posts = domains.iter().map(|d| {
            self.link
                .post(d, wire::encode_batch(node, [].iter()), self.timeout)
        });
        let answers = join_all(posts).await;
        for (d, a) in domains.iter().zip(answers) {
            let body = a.map_err(|e| format!("parent of {d}: {e}"))?;
            let (instance, _) =
                wire::decode_totals(&body, 0).map_err(|e| format!("parent of {d}: {e}"))?;
            self.answered(d, instance);
        }
        Ok(true)
    }
}
