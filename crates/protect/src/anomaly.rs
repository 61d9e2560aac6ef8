//! Normal and emergency mode's detector: clients and paths that depart far from the domain's own history
//! ([`Baseline`]) or from absolute floors, answered with the smallest action that works. Thresholds and their
//! reasons are in `docs/protection.md` ("Learned baselines"); change both together.
//!
//! What it watches, each in a fixed-size `edgeguard-limit` window table:
//! - a client's requests in 10 s and 60 s (a single-address flood: challenge, since a shared NAT may be behind
//!   the address);
//! - a client's 404s in 10 s and 60 s with their share of its responses (a scanner: block);
//! - a path's requests in 10 s from all clients (a distributed flood on one URL, with or without random query
//!   strings): the path is in surge for a while, and each client that keeps requesting it during the surge is
//!   challenged; the surge ends by itself once the path is back under half its threshold for a minute;
//! - 4xx answers on login-like paths per client and per /24 (IPv6: /48) over 5 minutes (credential stuffing:
//!   the client is blocked; a network sharing the failures has its login requests challenged).
//!
//! Detection is pure counting; [`crate::findings`] turns a [`Finding`] into blocks and activity records.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use edgeguard_limit::window::{StatusSel, WindowCounts, WindowError, WindowSpec, WindowTable};
use edgeguard_rules::{Action, Mode};

use crate::baseline::{Baseline, Measure};
use crate::crawlers::CrawlerRanges;

/// Rule names of the detector's decisions (letters, digits and a dot: never a custom rule's name).
pub const RULE_FLOOD: &str = "baseline.flood";
pub const RULE_SCANNER: &str = "baseline.scanner";
pub const RULE_SURGE: &str = "baseline.surge";
pub const RULE_STUFFING: &str = "baseline.stuffing";
pub const RULE_STUFFING_NET: &str = "baseline.stuffing_net";

pub use crate::thresholds::Limits;

/// How long a path stays in surge after it was last seen over its threshold.
pub const SURGE_HOLD_MS: u64 = 60_000;
/// How long a network's login requests stay challenged.
pub const NET_FLAG_MS: u64 = 900_000;
/// Paths in surge and networks flagged at once (the oldest gives way).
const MAX_FLAGS: usize = 32;

/// What the detector decided about one request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub action: Action,
    pub ttl_s: u32,
    /// `true`: the client's address gets the action for `ttl_s`; `false`: this request only (a network or path
    /// flag in force answered it).
    pub on_client: bool,
    /// The learned value, the threshold and the observed value: the activity log's detail.
    pub detail: String,
}

/// What the response hook needs of the request: kept by the caller between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    client: IpAddr,
    login: bool,
}

#[derive(Debug, Clone, Copy)]
struct Flag {
    key: u64,
    until_ms: u64,
}

/// Small list of flags (paths in surge, networks) behind a lock taken only when one is in force or being set.
#[derive(Debug, Default)]
struct Flags {
    live: AtomicUsize,
    list: Mutex<Vec<Flag>>,
}

impl Flags {
    fn active(&self, key: u64, now_ms: u64) -> bool {
        if self.live.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        l.retain(|f| f.until_ms > now_ms);
        self.live.store(l.len(), Ordering::Relaxed);
        l.iter().any(|f| f.key == key)
    }

    /// Sets or extends the flag; `true` when it was not in force.
    fn set(&self, key: u64, until_ms: u64, now_ms: u64) -> bool {
        let mut l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        l.retain(|f| f.until_ms > now_ms);
        let new = match l.iter_mut().find(|f| f.key == key) {
            Some(f) => {
                f.until_ms = f.until_ms.max(until_ms);
                false
            }
            None => {
                if l.len() >= MAX_FLAGS {
                    l.remove(0);
                }
                l.push(Flag { key, until_ms });
                true
            }
        };
        self.live.store(l.len(), Ordering::Relaxed);
        new
    }
}

/// The counting tables of a detector, all allocated up front; taken over by the next configuration while its
/// budget is the same.
#[derive(Debug)]
struct Tables {
    bytes: u64,
    clients10: WindowTable,
    clients60: WindowTable,
    paths: WindowTable,
    client_paths: WindowTable,
    login_clients: WindowTable,
    login_nets: WindowTable,
    surges: Flags,
    nets: Flags,
    /// No learning before this time (Unix ms): set by every finding, so an attack in progress (and the minutes
    /// after it) never teaches the baseline.
    quiet_until_ms: AtomicU64,
}

/// How long after a finding the baseline does not learn.
pub const QUIET_AFTER_FINDING_MS: u64 = 10 * 60_000;

/// The detector of one domain in normal or emergency mode.
#[derive(Debug)]
pub struct Detector {
    limits: Limits,
    baseline: Arc<Baseline>,
    crawlers: Arc<CrawlerRanges>,
    t: Arc<Tables>,
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Login-like paths: where credential stuffing aims. Case-insensitive, no allocation.
pub fn is_login_path(path: &str) -> bool {
    const WORDS: [&[u8]; 9] = [
        b"login", b"logon", b"signin", b"sign-in", b"sign_in", b"auth", b"session", b"passw",
        b"xmlrpc",
    ];
    let p = path.as_bytes();
    WORDS
        .iter()
        .any(|w| p.windows(w.len()).any(|s| s.eq_ignore_ascii_case(w)))
}

fn client_bytes(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
    }
}

/// The client's /24 (IPv6: /48), as a key.
fn net_bytes(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            buf[..3].copy_from_slice(&v4.octets()[..3]);
            &buf[..3]
        }
        IpAddr::V6(v6) => {
            buf[..6].copy_from_slice(&v6.octets()[..6]);
            &buf[..6]
        }
    }
}

fn share_at_least(part: u64, whole: u64, pct: u64) -> bool {
    whole > 0 && part * 100 >= pct * whole
}

fn table(interval_s: u32, tracked: &[StatusSel], bytes: u64) -> Result<WindowTable, WindowError> {
    let spec = WindowSpec {
        interval_s,
        tracked: tracked.to_vec(),
    };
    WindowTable::new(
        &spec,
        usize::try_from(bytes).unwrap_or(usize::MAX).max(64 * 1024),
    )
}

impl Detector {
    /// A detector with tables sharing `bytes` (a fixed budget, all allocated now), or those of `previous` when
    /// it had the same budget; the baseline of `previous` too (else a fresh one), and no crawler list.
    pub fn new(
        mode: Mode,
        bytes: u64,
        previous: Option<&Detector>,
    ) -> Result<Detector, WindowError> {
        let s404 = [StatusSel::Code(404)];
        let s4xx = [StatusSel::Class(4)];
        let t = match previous {
            Some(p) if p.t.bytes == bytes => p.t.clone(),
            _ => Arc::new(Tables {
                bytes,
                clients10: table(10, &s404, bytes / 10 * 3)?,
                clients60: table(60, &s404, bytes / 10 * 3)?,
                paths: table(10, &[], bytes / 10)?,
                client_paths: table(10, &[], bytes / 10)?,
                login_clients: table(300, &s4xx, bytes / 20)?,
                login_nets: table(300, &s4xx, bytes / 20)?,
                surges: Flags::default(),
                nets: Flags::default(),
                quiet_until_ms: AtomicU64::new(0),
            }),
        };
        Ok(Detector {
            limits: Limits::of(mode),
            baseline: previous.map(|p| p.baseline.clone()).unwrap_or_default(),
            crawlers: previous.map(|p| p.crawlers.clone()).unwrap_or_default(),
            t,
        })
    }

    /// Learns into (and reads thresholds from) `baseline`: the node's, which outlives reloads.
    pub fn set_baseline(&mut self, baseline: Arc<Baseline>) {
        self.baseline = baseline;
    }

    /// Never counts, challenges or blocks the clients in `crawlers`.
    pub fn set_crawlers(&mut self, crawlers: Arc<CrawlerRanges>) {
        self.crawlers = crawlers;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn baseline(&self) -> &Arc<Baseline> {
        &self.baseline
    }

    /// Learns one value unless a finding was made in the last [`QUIET_AFTER_FINDING_MS`].
    /// A value more than twice the learned 99.9th percentile (or, before one is learned, more than twice the
    /// floor's share) is not learned either: the baseline moves by small steps, never towards an attack.
    #[inline]
    fn learn(&self, m: Measure, v: u64, now_ms: u64) {
        if now_ms < self.t.quiet_until_ms.load(Ordering::Relaxed) {
            return;
        }
        let floor = self.floor(m);
        let basis = self
            .baseline
            .p999(m)
            .unwrap_or(0)
            .max(floor * 100 / self.limits.factor_pct);
        if v <= basis * 2 {
            self.baseline.learn(m, v, now_ms);
        }
    }

    /// Stops learning for a while when a path surges: a distributed attack moves every measure a little.
    fn quiet_if(&self, found: bool, now_ms: u64) {
        if found {
            self.t
                .quiet_until_ms
                .fetch_max(now_ms + QUIET_AFTER_FINDING_MS, Ordering::Relaxed);
        }
    }

    /// The baseline with the thresholds in force, for the admin API.
    pub fn summary(&self) -> Vec<crate::MeasureSummary> {
        let mut v = self.baseline.summary();
        for s in &mut v {
            if let Some(m) = Measure::ALL.iter().find(|m| m.as_str() == s.measure) {
                s.threshold = self.threshold(*m, self.floor(*m)).0;
            }
        }
        v
    }

    fn floor(&self, m: Measure) -> u64 {
        let l = &self.limits;
        match m {
            Measure::ClientRequests10s => l.client_10s_floor,
            Measure::ClientRequests60s => l.client_60s_floor,
            Measure::Client404s10s => l.scanner_404_10s_floor,
            Measure::PathRequests10s => l.path_10s_floor,
            Measure::LoginFailures300s => l.login_fail_floor,
        }
    }

    /// `max(floor, factor × learned p99.9)` and the learned value, for the record.
    fn threshold(&self, m: Measure, floor: u64) -> (u64, Option<u64>) {
        let learned = self.baseline.p999(m);
        let t = learned.map_or(floor, |l| {
            floor.max(l.saturating_mul(self.limits.factor_pct) / 100)
        });
        (t, learned)
    }

    fn explain(m: Measure, learned: Option<u64>, threshold: u64, observed: u64) -> String {
        let learned = learned.map_or_else(|| "not yet learned".to_owned(), |v| v.to_string());
        format!(
            "{}: observed {observed}, threshold {threshold} (learned p99.9 {learned})",
            m.as_str()
        )
    }

    /// Counts one request of `client` (as the access limit sees it) for the normalised `path`. Verified crawlers
    /// are not counted at all.
    ///
    /// Hot path: up to five window updates (one shard lock each), no allocation unless something is found.
    pub fn on_request(
        &self,
        client: IpAddr,
        ipv6_prefix: u8,
        path: &str,
        now_ms: u64,
    ) -> (Option<Seen>, Option<Finding>) {
        self.request(client, ipv6_prefix, path, now_ms)
    }

    fn request(
        &self,
        client: IpAddr,
        ipv6_prefix: u8,
        path: &str,
        now_ms: u64,
    ) -> (Option<Seen>, Option<Finding>) {
        if self.crawlers.contains(client) {
            return (None, None);
        }
        let client = edgeguard_rules::client_of(client, ipv6_prefix);
        let login = is_login_path(path);
        let seen = Some(Seen { client, login });
        let mut cb = [0u8; 16];
        let ckey = client_bytes(client, &mut cb);
        let l = self.limits;

        if login && self.t.nets.live.load(Ordering::Relaxed) > 0 {
            let mut nb = [0u8; 16];
            let nk = hash64(&[net_bytes(client, &mut nb)]);
            if self.t.nets.active(nk, now_ms) {
                return (
                    seen,
                    Some(Finding {
                        rule: RULE_STUFFING_NET,
                        action: Action::BotDetection,
                        ttl_s: 0,
                        on_client: false,
                        detail: "login request from a network flagged for failed logins".to_owned(),
                    }),
                );
            }
        }

        let c10 = self.t.clients10.record_request(ckey, now_ms).requests;
        let c60 = self.t.clients60.record_request(ckey, now_ms).requests;
        let (t10, learned10) = self.threshold(Measure::ClientRequests10s, l.client_10s_floor);
        // The minute catches a steady flood that stays under the 10 s threshold, bursts of page loads never.
        let (t60, learned60) = self.threshold(Measure::ClientRequests60s, l.client_60s_floor);
        if c10 > t10 || c60 > t60 {
            let detail = if c10 > t10 {
                Self::explain(Measure::ClientRequests10s, learned10, t10, c10)
            } else {
                Self::explain(Measure::ClientRequests60s, learned60, t60, c60)
            };
            return (
                seen,
                Some(Finding {
                    rule: RULE_FLOOD,
                    action: Action::BotDetection,
                    ttl_s: l.challenge_ttl_s,
                    on_client: true,
                    detail,
                }),
            );
        }
        self.learn(Measure::ClientRequests10s, c10, now_ms);
        self.learn(Measure::ClientRequests60s, c60, now_ms);

        let pk = hash64(&[path.as_bytes()]);
        let p10 = self
            .t
            .paths
            .record_request(&pk.to_le_bytes(), now_ms)
            .requests;
        let (tp, plearned) = self.threshold(Measure::PathRequests10s, l.path_10s_floor);
        let mut surging = false;
        if p10 > tp {
            surging = true;
            self.t.surges.set(pk, now_ms + SURGE_HOLD_MS, now_ms);
            self.quiet_if(true, now_ms);
        } else {
            if p10 * 2 > tp && self.t.surges.active(pk, now_ms) {
                // Still busy: the surge holds.
                self.t.surges.set(pk, now_ms + SURGE_HOLD_MS, now_ms);
            }
            self.learn(Measure::PathRequests10s, p10, now_ms);
        }
        if surging || self.t.surges.active(pk, now_ms) {
            let cp = hash64(&[ckey, path.as_bytes()]);
            let n = self
                .t
                .client_paths
                .record_request(&cp.to_le_bytes(), now_ms)
                .requests;
            if n >= l.surge_repeats {
                let detail = format!(
                    "path {path}: {} (in surge); this client requested it {n} times in 10 s (limit {} during a surge)",
                    Self::explain(Measure::PathRequests10s, plearned, tp, p10),
                    l.surge_repeats
                );
                return (
                    seen,
                    Some(Finding {
                        rule: RULE_SURGE,
                        action: Action::BotDetection,
                        ttl_s: l.challenge_ttl_s.min(300),
                        on_client: true,
                        detail,
                    }),
                );
            }
        }
        if login {
            self.t.login_clients.record_request(ckey, now_ms);
            let mut nb = [0u8; 16];
            self.t
                .login_nets
                .record_request(net_bytes(client, &mut nb), now_ms);
        }
        (seen, None)
    }

    /// Records the response status of a request [`Detector::on_request`] saw.
    ///
    /// Hot path: one or two window updates, three more on login paths.
    pub fn on_status(&self, seen: &Seen, status: u16, now_ms: u64) -> Option<Finding> {
        self.status(seen, status, now_ms)
    }

    fn status(&self, seen: &Seen, status: u16, now_ms: u64) -> Option<Finding> {
        let mut cb = [0u8; 16];
        let ckey = client_bytes(seen.client, &mut cb);
        let w10 = self.t.clients10.record_status(ckey, now_ms, status);
        let w60 = self.t.clients60.record_status(ckey, now_ms, status);
        if status == 404
            && let Some(f) = self.scanner(w10, w60, now_ms)
        {
            return Some(f);
        }
        if seen.login {
            return self.login(seen, ckey, status, now_ms);
        }
        None
    }

    fn scanner(
        &self,
        w10: Option<WindowCounts>,
        w60: Option<WindowCounts>,
        now_ms: u64,
    ) -> Option<Finding> {
        let l = self.limits;
        let (t, learned) = self.threshold(Measure::Client404s10s, l.scanner_404_10s_floor);
        let t60 = t * 10 / 3;
        let over = |w: Option<WindowCounts>, t: u64| {
            w.filter(|w| {
                let n = w.status()[0];
                n > t && share_at_least(n, w.responses, l.scanner_share_pct)
            })
        };
        let hit = over(w10, t)
            .map(|w| (w, t, "10 s"))
            .or_else(|| over(w60, t60).map(|w| (w, t60, "60 s")));
        match hit {
            Some((w, t, span)) => {
                let n = w.status()[0];
                Some(Finding {
                    rule: RULE_SCANNER,
                    action: Action::Block,
                    ttl_s: l.block_ttl_s,
                    on_client: true,
                    detail: format!(
                        "{} over {span}; 404 share {}% of {} responses (at least {}%)",
                        Self::explain(Measure::Client404s10s, learned, t, n),
                        n * 100 / w.responses.max(1),
                        w.responses,
                        l.scanner_share_pct
                    ),
                })
            }
            None => {
                if let Some(w) = w10 {
                    self.learn(Measure::Client404s10s, w.status()[0], now_ms);
                }
                None
            }
        }
    }

    fn login(&self, seen: &Seen, ckey: &[u8], status: u16, now_ms: u64) -> Option<Finding> {
        let l = self.limits;
        let mut nb = [0u8; 16];
        let nkey = net_bytes(seen.client, &mut nb);
        let wc = self.t.login_clients.record_status(ckey, now_ms, status);
        let wn = self.t.login_nets.record_status(nkey, now_ms, status);
        if status / 100 != 4 {
            return None;
        }
        let (t, learned) = self.threshold(Measure::LoginFailures300s, l.login_fail_floor);
        if let Some(w) = wc {
            let n = w.status()[0];
            if n > t && share_at_least(n, w.responses, l.login_share_pct) {
                return Some(Finding {
                    rule: RULE_STUFFING,
                    action: l.stuffing_action,
                    ttl_s: l.block_ttl_s.max(1800),
                    on_client: true,
                    detail: format!(
                        "{} on login paths; 4xx share {}% of {} responses",
                        Self::explain(Measure::LoginFailures300s, learned, t, n),
                        n * 100 / w.responses.max(1),
                        w.responses
                    ),
                });
            }
            self.learn(Measure::LoginFailures300s, n, now_ms);
        }
        let tn = l.login_net_fail_floor.max(t * 3 / 2);
        let w = wn?;
        let n = w.status()[0];
        if n > tn
            && share_at_least(n, w.responses, l.login_share_pct)
            && self
                .t
                .nets
                .set(hash64(&[nkey]), now_ms + NET_FLAG_MS, now_ms)
        {
            return Some(Finding {
                rule: RULE_STUFFING_NET,
                action: Action::BotDetection,
                ttl_s: (NET_FLAG_MS / 1000) as u32,
                on_client: false,
                detail: format!(
                    "4xx answers on login paths from the client's network ({}): observed {n} in 300 s, \
                     threshold {tn}; its login requests are challenged for {} s",
                    match seen.client {
                        IpAddr::V4(_) => "/24",
                        IpAddr::V6(_) => "/48",
                    },
                    NET_FLAG_MS / 1000
                ),
            });
        }
        None
    }
}

impl Seen {
    /// The client as counted (IPv6 cut to the node's prefix).
    pub fn client(&self) -> IpAddr {
        self.client
    }
}

/// The detector a domain's `rate_limiting` asks for: one in normal and emergency mode, none otherwise. Half of
/// `table_size` is its budget.
pub fn for_domain(
    d: &edgeguard_config::Domain,
    previous: Option<&Detector>,
) -> Result<Option<Detector>, WindowError> {
    let rl = &d.rate_limiting;
    let mode = match (rl.enabled, rl.mode) {
        (true, edgeguard_config::Mode::Normal) => Mode::Normal,
        (true, edgeguard_config::Mode::Emergency) => Mode::Emergency,
        _ => return Ok(None),
    };
    Detector::new(mode, rl.table_size / 2, previous).map(Some)
}
