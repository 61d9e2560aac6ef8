//! What stands between a request and a new upstream socket: `max_conns` (sockets open at once to one upstream,
//! idle ones included, so the cap is what the origin sees) with a bounded queue of requests waiting for one,
//! and the upstream's name resolved at most once per `resolve_ttl`, every address it resolves to used in turn.
//!
//! Hot path: with `max_conns = 0` and an address literal nothing here locks or allocates; a name is one mutex
//! lock for the cached list (never held across an `.await`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgeguard_config::UpstreamSpec;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::Failure;

/// `max_conns` of one upstream and the requests queued for it.
#[derive(Debug)]
pub(crate) struct ConnGate {
    /// `None`: unlimited.
    slots: Option<Arc<Semaphore>>,
    /// Told when a connection goes back to the pool or closes.
    freed: Arc<Notify>,
    waiting: AtomicU32,
    queue: u32,
    queue_timeout: Duration,
}

/// The right to open one socket, held by the connection's task until the socket closes.
pub(crate) struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

/// What a request may do next when it has no idle connection.
pub(crate) enum Next {
    /// Open a socket (the slot goes with it).
    Open(Slot),
    /// Something came free: look for an idle connection again.
    Retry,
}

impl ConnGate {
    pub(crate) fn new(spec: &UpstreamSpec) -> Self {
        ConnGate {
            slots: (spec.max_conns > 0).then(|| Arc::new(Semaphore::new(spec.max_conns as usize))),
            freed: Arc::new(Notify::new()),
            waiting: AtomicU32::new(0),
            queue: spec.queue,
            queue_timeout: spec.queue_timeout,
        }
    }

    /// A connection went back to the pool: a queued request may take it.
    pub(crate) fn returned(&self) {
        if self.slots.is_some() {
            self.freed.notify_one();
        }
    }

    /// A slot to open a socket now, or a wait in the queue (at most `queue_timeout`) until a connection comes
    /// back or closes.
    pub(crate) async fn next(&self) -> Result<Next, Failure> {
        let Some(slots) = &self.slots else {
            return Ok(Next::Open(self.slot(None)));
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(Next::Open(self.slot(Some(permit))));
        }
        if self.waiting.fetch_add(1, Relaxed) >= self.queue {
            self.waiting.fetch_sub(1, Relaxed);
            return Err(Failure::QueueFull);
        }
        let waited = tokio::time::timeout(self.queue_timeout, self.freed.notified()).await;
        self.waiting.fetch_sub(1, Relaxed);
        match waited {
            Ok(()) => Ok(Next::Retry),
            Err(_) => Err(Failure::QueueTimeout),
        }
    }

    fn slot(&self, permit: Option<OwnedSemaphorePermit>) -> Slot {
        Slot {
            _permit: permit,
            freed: self.freed.clone(),
        }
    }

    /// Sockets open now (for metrics), when capped.
    pub(crate) fn open(&self, max: u32) -> Option<u32> {
        let slots = self.slots.as_ref()?;
        Some(max.saturating_sub(u32::try_from(slots.available_permits()).unwrap_or(max)))
    }
}

/// The addresses of an upstream, resolved at most once per `resolve_ttl`.
#[derive(Debug)]
pub(crate) struct Addresses {
    host: String,
    port: u16,
    ttl: Duration,
    literal: Option<SocketAddr>,
    cached: Mutex<Option<(Instant, Arc<[SocketAddr]>)>>,
    /// Where the next connection starts in the list, so every address gets its share.
    next: AtomicUsize,
}

impl Addresses {
    pub(crate) fn new(host: &str, port: u16, ttl: Duration) -> Self {
        Addresses {
            host: host.to_string(),
            port,
            ttl,
            literal: host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port)),
            cached: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    /// The addresses to try, in the order to try them (rotated by one for each call). A name is looked up
    /// when its list is older than `resolve_ttl`; a failed lookup keeps using the old list, if any.
    pub(crate) async fn resolve(&self, timeout: Duration) -> Result<Vec<SocketAddr>, Failure> {
        if let Some(addr) = self.literal {
            return Ok(vec![addr]);
        }
        let fresh = {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            cached
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, list)| list.clone())
        };
        let list = match fresh {
            Some(list) => list,
            None => match self.lookup(timeout).await {
                Ok(list) => list,
                Err(f) => {
                    let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
                    match cached.as_ref() {
                        Some((_, list)) => list.clone(),
                        None => return Err(f),
                    }
                }
            },
        };
        let start = self.next.fetch_add(1, Relaxed) % list.len().max(1);
        Ok(list[start..]
            .iter()
            .chain(&list[..start])
            .copied()
            .collect())
    }

    async fn lookup(&self, timeout: Duration) -> Result<Arc<[SocketAddr]>, Failure> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let list: Arc<[SocketAddr]> = match tokio::time::timeout(timeout, lookup).await {
            Ok(Ok(addrs)) => {
                let mut v: Vec<SocketAddr> = Vec::new();
                for a in addrs {
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                v.into()
            }
            Ok(Err(_)) => return Err(Failure::Resolve),
            Err(_) => return Err(Failure::ConnectTimeout),
        };
        if list.is_empty() {
            return Err(Failure::Resolve);
        }
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_conns: u32, queue: u32) -> UpstreamSpec {
        UpstreamSpec {
            max_conns,
            queue,
            queue_timeout: Duration::from_millis(50),
            ..UpstreamSpec::default()
        }
    }

    #[tokio::test]
    async fn max_conns_then_queue_then_full() {
        let gate = ConnGate::new(&spec(1, 1));
        let Ok(Next::Open(slot)) = gate.next().await else {
            panic!("first slot")
        };
        assert_eq!(gate.open(1), Some(1));
        // One may wait: it times out with nothing freed.
        assert!(matches!(gate.next().await, Err(Failure::QueueTimeout)));
        // A waiter is woken by the slot's socket closing.
        let waiter = gate.next();
        tokio::pin!(waiter);
        assert!(futures_poll_pending(&mut waiter).await);
        drop(slot);
        assert!(matches!(waiter.await, Ok(Next::Retry)));
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let gate = Arc::new(ConnGate::new(&spec(1, 0)));
        let _slot = gate.next().await;
        assert!(matches!(gate.next().await, Err(Failure::QueueFull)));
    }

    async fn futures_poll_pending<F: std::future::Future + Unpin>(f: &mut F) -> bool {
        tokio::select! {
            biased;
            _ = f => false,
            () = tokio::task::yield_now() => true,
        }
    }

    #[tokio::test]
    async fn names_rotate_over_every_address() {
        let a = Addresses::new("localhost", 80, Duration::from_secs(60));
        let first = a.resolve(Duration::from_secs(1)).await.unwrap();
        let second = a.resolve(Duration::from_secs(1)).await.unwrap();
        assert_eq!(first.len(), second.len());
        if first.len() > 1 {
            assert_ne!(
                first[0], second[0],
                "each connection starts one address further"
            );
        }
        let lit = Addresses::new("127.0.0.1", 81, Duration::ZERO);
        assert_eq!(
            lit.resolve(Duration::from_secs(1)).await.unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], 81))]
        );
    }
}
