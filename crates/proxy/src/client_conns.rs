//! Client connections: how many are open, in all and per client address, against `[node] max_connections`
//! and `max_connections_per_ip` (a connection past either is closed as soon as it is accepted, before a byte
//! is read), and how busy each one is, for `http2_idle_timeout` (an HTTP/2 connection with no open stream
//! for that long is closed with GOAWAY). A leaf: the server takes slots, the pipeline's response bodies hold
//! the stream guards, `metrics.rs` reads the counts.
//!
//! Hot path: accepting is one atomic add, plus one short mutex lock when a per-address limit is set; a stream
//! is an atomic add and, when it ends, a subtraction and a store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Node-wide counts of client connections.
#[derive(Debug, Default)]
pub(crate) struct ClientConns {
    pub(crate) open: AtomicU32,
    /// Closed at accept by `max_connections` or `max_connections_per_ip`.
    pub(crate) refused: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// One admitted connection; dropping it gives the counts back.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    owner: Arc<ClientConns>,
    /// Counted per address (only while a per-address limit is set).
    ip: Option<IpAddr>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.owner.open.fetch_sub(1, Relaxed);
        if let Some(ip) = self.ip {
            let mut per_ip = self.owner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl ClientConns {
    /// A slot for a connection from `ip`, or `None` when `max` (all) or `max_per_ip` is reached (0: no limit).
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max: u32,
        max_per_ip: u32,
    ) -> Option<ClientSlot> {
        let before = self.open.fetch_add(1, Relaxed);
        let mut slot = ClientSlot {
            owner: self.clone(),
            ip: None,
        };
        if max > 0 && before >= max {
            self.refused.fetch_add(1, Relaxed);
            return None;
        }
        if max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= max_per_ip {
                drop(per_ip);
                self.refused.fetch_add(1, Relaxed);
                return None;
            }
            *n += 1;
            slot.ip = Some(ip);
        }
        Some(slot)
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How busy one connection is: open streams (requests whose response body is not finished) and since when it
/// has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    streams: AtomicU32,
    idle_since: AtomicU64,
    /// An HTTP/1.1 request was seen: hyper's own head timer covers its idle time.
    http1: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            streams: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            http1: AtomicBool::new(false),
        }
    }
}

/// One open stream of a connection; dropped with the response body.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.idle_since.store(now_ms(), Relaxed);
        self.0.streams.fetch_sub(1, Relaxed);
    }
}

impl Activity {
    pub(crate) fn stream(self: &Arc<Self>, http1: bool) -> StreamGuard {
        if http1 {
            self.http1.store(true, Relaxed);
        }
        self.streams.fetch_add(1, Relaxed);
        StreamGuard(self.clone())
    }

    /// How long it has been without a stream (`None` while one is open or for an HTTP/1.1 connection).
    pub(crate) fn idle_for_ms(&self) -> Option<u64> {
        if self.http1.load(Relaxed) || self.streams.load(Relaxed) > 0 {
            return None;
        }
        Some(now_ms().saturating_sub(self.idle_since.load(Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_all_and_per_address() {
        let c = Arc::new(ClientConns::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = c.admit(a, 3, 2).unwrap();
        let _a2 = c.admit(a, 3, 2).unwrap();
        assert!(c.admit(a, 3, 2).is_none(), "third from one address");
        let _b1 = c.admit(b, 3, 2).unwrap();
        assert!(c.admit(b, 3, 2).is_none(), "fourth in all");
        assert_eq!(c.open.load(Relaxed), 3);
        drop(a1);
        assert!(c.admit(a, 3, 2).is_some());
        assert_eq!(c.refused.load(Relaxed), 2);
    }

    #[test]
    fn idle_only_without_streams() {
        let a = Arc::new(Activity::default());
        let s = a.stream(false);
        assert_eq!(a.idle_for_ms(), None);
        drop(s);
        assert!(a.idle_for_ms().is_some());
        let _h1 = a.stream(true);
        assert_eq!(a.idle_for_ms(), None);
    }
}
