//! A domain's top talkers in fixed memory: the heaviest client addresses (an IPv6 client as its /64), networks
//! (/24, /48), paths and user agents of the last minute and the last hour, each with its requests and how many
//! the node refused.
//!
//! Each window is a ring of buckets (10 s for the minute, 5 min for the hour); a bucket holds [`SHARDS`]
//! shards, each with one space-saving sketch (Metwally et al. 2005) of [`SLOTS`] slots per dimension. Reading
//! merges the sketches of the buckets in the window. A key's count is an upper bound: a new key takes the
//! least-counted slot and inherits its count (`error` says by how much it may be over); any key with more than
//! `total / SLOTS` requests in a bucket is certainly held. `refused` counts only while the key is held.
//!
//! Hot path: [`Talkers::record`] hashes the path and user agent once (FNV-1a over at most [`KEY_BYTES`]),
//! then for each window takes a shard's lock with `try_lock`, trying the next shard when it is busy and
//! skipping the sketch update when every shard is (the live counters stay exact); each sketch update is a scan
//! of [`SLOTS`] hashes. No allocation: keys are copied into fixed slots.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Slots of one sketch.
pub const SLOTS: usize = 24;
/// Key bytes a slot keeps; longer paths and user agents are cut (the count goes to the cut key).
pub const KEY_BYTES: usize = 48;
/// Shards of one bucket.
pub const SHARDS: usize = 2;
/// The dimensions, in the order of [`TopTalkers::dims`].
pub const DIMS: [&str; 4] = ["address", "network", "path", "user_agent"];

/// One window: buckets of `bucket_s` seconds, `buckets` of them (the running one included).
struct Window {
    bucket_s: u64,
    ring: Box<[Shards]>,
}

/// Seconds and buckets of the two windows: the last minute (6 closed 10 s buckets and the running one) and
/// the last hour (12 closed five-minute buckets and the running one).
const WINDOWS: [(u64, usize); 2] = [(10, 7), (300, 13)];
/// The windows' names for the API.
pub const WINDOW_NAMES: [&str; 2] = ["minute", "hour"];

type Shards = [Mutex<Bucket>; SHARDS];

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    count: u32,
    error: u32,
    refused: u32,
    len: u8,
    key: [u8; KEY_BYTES],
}

const EMPTY: Slot = Slot {
    hash: 0,
    count: 0,
    error: 0,
    refused: 0,
    len: 0,
    key: [0; KEY_BYTES],
};

struct Bucket {
    /// Bucket number (Unix second / bucket seconds) the sketches count.
    number: u64,
    total: u64,
    sketches: [[Slot; SLOTS]; 4],
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            number: 0,
            total: 0,
            sketches: [[EMPTY; SLOTS]; 4],
        }
    }
}

fn offer(sketch: &mut [Slot; SLOTS], hash: u64, key: &[u8], refused: bool) {
    let mut min = 0;
    for i in 0..SLOTS {
        let s = &mut sketch[i];
        if s.count > 0 && s.hash == hash {
            s.count = s.count.saturating_add(1);
            s.refused += u32::from(refused);
            return;
        }
        if s.count < sketch[min].count {
            min = i;
        }
    }
    let s = &mut sketch[min];
    let key = &key[..key.len().min(KEY_BYTES)];
    s.key[..key.len()].copy_from_slice(key);
    s.len = key.len() as u8;
    s.hash = hash;
    s.error = s.count;
    s.count = s.count.saturating_add(1);
    s.refused = u32::from(refused);
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The keys of one request, copied off it before the request moves on (no allocation).
pub(crate) struct TalkerKeys {
    path: [u8; KEY_BYTES],
    path_len: u8,
    ua: [u8; KEY_BYTES],
    ua_len: u8,
}

impl TalkerKeys {
    pub(crate) fn capture<B>(req: &http::Request<B>) -> Self {
        let mut k = TalkerKeys {
            path: [0; KEY_BYTES],
            path_len: 0,
            ua: [0; KEY_BYTES],
            ua_len: 0,
        };
        let path = req.uri().path().as_bytes();
        let n = path.len().min(KEY_BYTES);
        k.path[..n].copy_from_slice(&path[..n]);
        k.path_len = n as u8;
        if let Some(ua) = req.headers().get(http::header::USER_AGENT) {
            let ua = ua.as_bytes();
            let n = ua.len().min(KEY_BYTES);
            k.ua[..n].copy_from_slice(&ua[..n]);
            k.ua_len = n as u8;
        }
        k
    }
}

/// The address and network keys of a client: IPv4 as 4 and 3 octets, IPv6 as its /64 and /48 (8 and 6).
fn address_keys(ip: IpAddr) -> ([u8; 16], usize, usize) {
    match ip {
        IpAddr::V4(a) => {
            let mut k = [0; 16];
            k[..4].copy_from_slice(&a.octets());
            (k, 4, 3)
        }
        IpAddr::V6(a) => (a.octets(), 8, 6),
    }
}

/// The top talkers of one domain.
pub(crate) struct Talkers {
    windows: [Window; 2],
    next_shard: AtomicUsize,
}

impl std::fmt::Debug for Talkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Talkers").finish_non_exhaustive()
    }
}

impl Default for Talkers {
    fn default() -> Self {
        let window = |(bucket_s, n): (u64, usize)| Window {
            bucket_s,
            ring: (0..n)
                .map(|_| std::array::from_fn(|_| Mutex::new(Bucket::new())))
                .collect(),
        };
        Talkers {
            windows: [window(WINDOWS[0]), window(WINDOWS[1])],
            next_shard: AtomicUsize::new(0),
        }
    }
}

thread_local! {
    /// The shard this thread tries first, handed out round robin so the runtime's workers spread out.
    static SHARD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// One merged key of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Talker {
    /// The address (`192.0.2.7`, `2001:db8:1:2::/64`), network (`192.0.2.0/24`, `2001:db8:1::/48`), path or
    /// user agent (cut at [`KEY_BYTES`]; `-` for none).
    pub key: String,
    /// Requests, an upper bound.
    pub requests: u64,
    /// By how much `requests` may be over.
    pub error: u64,
    /// Requests the node refused (limited, blocked, challenged, or refused otherwise) while the key was held.
    pub refused: u64,
}

/// The top talkers of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopTalkers {
    /// `minute` or `hour`.
    pub window: &'static str,
    /// Seconds the window covers now (the closed buckets and the running one).
    pub seconds: u64,
    /// Requests counted by the sketches in the window.
    pub total: u64,
    /// Per dimension of [`DIMS`], heaviest first.
    pub dims: [Vec<Talker>; 4],
}

impl Talkers {
    /// Counts one finished request. Hot path: see the module comment.
    pub(crate) fn record(&self, unix_s: u64, ip: IpAddr, keys: &TalkerKeys, refused: bool) {
        let (addr, alen, nlen) = address_keys(ip);
        let path = &keys.path[..usize::from(keys.path_len)];
        let ua = &keys.ua[..usize::from(keys.ua_len)];
        let hashes = [fnv(&addr[..alen]), fnv(&addr[..nlen]), fnv(path), fnv(ua)];
        let first = SHARD.with(|s| {
            s.get().unwrap_or_else(|| {
                let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
                s.set(Some(n));
                n
            })
        });
        for w in &self.windows {
            let number = unix_s / w.bucket_s;
            let shards = &w.ring[(number % w.ring.len() as u64) as usize];
            let Some(mut b) =
                (0..SHARDS).find_map(|i| shards[(first + i) % SHARDS].try_lock().ok())
            else {
                continue;
            };
            if b.number != number {
                if b.number > number {
                    continue;
                }
                b.number = number;
                b.total = 0;
                b.sketches = [[EMPTY; SLOTS]; 4];
            }
            b.total += 1;
            let keys: [&[u8]; 4] = [&addr[..alen], &addr[..nlen], path, ua];
            for d in 0..4 {
                offer(&mut b.sketches[d], hashes[d], keys[d], refused);
            }
        }
    }

    /// The `limit` heaviest keys of each dimension in window `w` (0 minute, 1 hour) at `now_s`.
    pub(crate) fn top(&self, w: usize, now_s: u64, limit: usize) -> TopTalkers {
        let window = &self.windows[w.min(1)];
        let now_b = now_s / window.bucket_s;
        let oldest = now_b.saturating_sub(window.ring.len() as u64 - 1);
        let mut merged: [std::collections::HashMap<u64, Talker>; 4] = Default::default();
        let mut total = 0;
        for shards in window.ring.iter() {
            for shard in shards {
                let b = shard.lock().unwrap_or_else(PoisonError::into_inner);
                if b.number < oldest || b.number > now_b || b.total == 0 {
                    continue;
                }
                total += b.total;
                for (d, sketch) in b.sketches.iter().enumerate() {
                    for s in sketch.iter().filter(|s| s.count > 0) {
                        let t = merged[d].entry(s.hash).or_insert_with(|| Talker {
                            key: key_text(d, &s.key[..usize::from(s.len)]),
                            requests: 0,
                            error: 0,
                            refused: 0,
                        });
                        t.requests += u64::from(s.count);
                        t.error += u64::from(s.error);
                        t.refused += u64::from(s.refused);
                    }
                }
            }
        }
        let dims = merged.map(|m| {
            let mut v: Vec<Talker> = m.into_values().collect();
            v.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
            v.truncate(limit);
            v
        });
        TopTalkers {
            window: WINDOW_NAMES[w.min(1)],
            seconds: (now_s - oldest * window.bucket_s) + 1,
            total,
            dims,
        }
    }
}

fn key_text(dim: usize, key: &[u8]) -> String {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let v6 = |n: usize| {
        let mut o = [0u8; 16];
        o[..n].copy_from_slice(&key[..n]);
        Ipv6Addr::from(o)
    };
    match (dim, key.len()) {
        (0, 4) => Ipv4Addr::new(key[0], key[1], key[2], key[3]).to_string(),
        (0, 8) => format!("{}/64", v6(8)),
        (1, 3) => format!("{}/24", Ipv4Addr::new(key[0], key[1], key[2], 0)),
        (1, 6) => format!("{}/48", v6(6)),
        (_, 0) => "-".to_owned(),
        _ => String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str, ua: &str) -> TalkerKeys {
        let req = http::Request::builder()
            .uri(path)
            .header("user-agent", ua)
            .body(())
            .unwrap();
        TalkerKeys::capture(&req)
    }

    #[test]
    fn the_heaviest_keys_come_first_in_both_windows() {
        let t = Talkers::default();
        let now = 1_700_000_005;
        let flood: IpAddr = "198.51.100.7".parse().unwrap();
        let k = keys("/login?x=1", "curl/8");
        for i in 0..200 {
            t.record(now, flood, &k, i % 2 == 0);
        }
        for i in 0..100u8 {
            let ip = IpAddr::from([203, 0, 113, i]);
            t.record(now - 20, ip, &keys(&format!("/p{i}"), "browser"), false);
        }
        let v6: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        let six = Talkers::default();
        six.record(now, v6, &k, false);
        let top = six.top(0, now, 1);
        assert_eq!(top.dims[0][0].key, "2001:db8:1:2::/64");
        assert_eq!(top.dims[1][0].key, "2001:db8:1::/48");

        let m = t.top(0, now, 3);
        assert_eq!(m.window, "minute");
        assert_eq!(m.total, 300);
        assert_eq!(m.dims[0][0].key, "198.51.100.7");
        assert_eq!(m.dims[0][0].refused, 100);
        assert!(m.dims[0][0].requests >= 200);
        assert_eq!(m.dims[1][0].key, "198.51.100.0/24");
        assert_eq!(m.dims[1][1].key, "203.0.113.0/24");
        assert_eq!(m.dims[1][1].requests, 100);
        assert_eq!(m.dims[2][0].key, "/login");
        assert_eq!(m.dims[3][0].key, "curl/8");
        // Out of the minute, still in the hour.
        let later = t.top(0, now + 120, 3);
        assert_eq!(later.total, 0);
        let h = t.top(1, now + 120, 3);
        assert_eq!(h.total, 300);
        assert_eq!(h.dims[0][0].key, "198.51.100.7");
        assert_eq!(t.top(1, now + 4000, 3).total, 0);
    }
}
