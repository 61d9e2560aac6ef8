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
//! - a path's requests in 10 s whose query string was not seen before for it ([`crate::novelty`]): a jump in
//!   them, making most of the path's requests, puts the path in surge under its request threshold, and a
//!   client sending such requests is challenged sooner (a random-query-string flood bypassing the cache);
//! - the domain's clients in 10 s never seen in the recent history: while far over what was learned (a crowd
//!   of fresh addresses, the shape of a botnet), paths surge at half their threshold;
//! - 4xx answers on login-like paths per client and per /24 (IPv6: /48) over 5 minutes (credential stuffing:
//!   the client is blocked; a network sharing the failures has its login requests challenged).
//!
//! Detection is pure counting; [`crate::findings`] turns a [`Finding`] into blocks and activity records. The
//! response-side findings (scanner, stuffing) are in `status.rs`.

mod flags;
mod report;
mod status;
#[cfg(test)]
mod tests;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use edgeguard_limit::window::{StatusSel, WindowError, WindowSpec, WindowTable};
use edgeguard_rules::{Action, Mode};

use crate::baseline::{Baseline, Measure};
use crate::crawlers::CrawlerRanges;
use crate::novelty::{Arrivals, Novelty};
use flags::Flags;
pub use report::DetectorReport;

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
    /// Per path: requests with a query string not seen before for it.
    unseen_paths: WindowTable,
    /// `path?query` seen recently.
    queries: Novelty,
    /// Clients seen recently, and the arrivals of new ones.
    clients_seen: Novelty,
    arrivals: Arrivals,
    surges: Flags,
    nets: Flags,
    /// No learning before this time (Unix ms): set by every finding, so an attack in progress (and the minutes
    /// after it) never teaches the baseline.
    quiet_until_ms: AtomicU64,
    /// Findings made (a new decision, not a flag answering one request), in the order of [`RULES`].
    found: [AtomicU64; 5],
}

/// The detector's rule names, in the order of its finding counters.
pub const RULES: [&str; 5] = [
    RULE_FLOOD,
    RULE_SCANNER,
    RULE_SURGE,
    RULE_STUFFING,
    RULE_STUFFING_NET,
];

/// How long after a finding the baseline does not learn.
pub const QUIET_AFTER_FINDING_MS: u64 = 10 * 60_000;
/// Rotation period of the query strings seen (so their history is 10 to 20 minutes, the order of a cache TTL).
pub const QUERY_HISTORY_MS: u64 = 10 * 60_000;
/// Rotation period of the clients seen (a history of one to two hours).
pub const CLIENT_HISTORY_MS: u64 = 3_600_000;

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
                unseen_paths: table(10, &[], bytes / 20)?,
                queries: Novelty::new(bytes / 40, QUERY_HISTORY_MS),
                clients_seen: Novelty::new(bytes / 40, CLIENT_HISTORY_MS),
                arrivals: Arrivals::default(),
                surges: Flags::default(),
                nets: Flags::default(),
                quiet_until_ms: AtomicU64::new(0),
                found: Default::default(),
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
    fn learn(&self, m: Measure, v: u64, now_ms: u64) -> bool {
        if !self.learning(now_ms) {
            return false;
        }
        let floor = self.floor(m);
        let basis = self
            .baseline
            .p999(m)
            .unwrap_or(0)
            .max(floor * 100 / self.limits.factor_pct);
        v <= basis * 2 && self.baseline.learn(m, v, now_ms)
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
            Measure::PathUnseenQueries10s => l.path_unseen_10s_floor,
            Measure::NewClients10s => l.new_clients_10s_floor,
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

    /// Counts one request of `client` (as the access limit sees it) for the normalised `path` with its raw
    /// `query`. Verified crawlers are not counted at all.
    ///
    /// Hot path: up to six window updates (one shard lock each) and two filter lookups, no allocation unless
    /// something is found.
    pub fn on_request(
        &self,
        client: IpAddr,
        ipv6_prefix: u8,
        path: &str,
        query: Option<&str>,
        now_ms: u64,
    ) -> (Option<Seen>, Option<Finding>) {
        let (seen, found) = self.request(client, ipv6_prefix, path, query, now_ms);
        self.count_finding(found.as_ref());
        (seen, found)
    }

    fn count_finding(&self, f: Option<&Finding>) {
        if let Some(f) = f.filter(|f| f.ttl_s > 0)
            && let Some(i) = RULES.iter().position(|r| *r == f.rule)
        {
            self.t.found[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the baseline learns now (no finding in the last [`QUIET_AFTER_FINDING_MS`]).
    fn learning(&self, now_ms: u64) -> bool {
        now_ms >= self.t.quiet_until_ms.load(Ordering::Relaxed)
    }

    /// Clients in the last 10 s never seen in the recent history, once the filter is warm; learns it while it
    /// is not over its threshold. `Some((observed, threshold, learned))` when it is.
    fn arrivals(&self, ckey: &[u8], now_ms: u64) -> Option<(u64, u64, Option<u64>)> {
        let seen = &self.t.clients_seen;
        let new = seen.is_new(hash64(&[ckey]), true, now_ms);
        if !seen.warm(now_ms) {
            return None;
        }
        if new {
            self.t.arrivals.add(now_ms);
        }
        let n = self.t.arrivals.last_10s(now_ms);
        let (t, learned) =
            self.threshold(Measure::NewClients10s, self.limits.new_clients_10s_floor);
        if n > t {
            return Some((n, t, learned));
        }
        self.learn(Measure::NewClients10s, n, now_ms);
        None
    }

    fn request(
        &self,
        client: IpAddr,
        ipv6_prefix: u8,
        path: &str,
        query: Option<&str>,
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
        let crowd = self.arrivals(ckey, now_ms);

        let pk = hash64(&[path.as_bytes()]);
        let p10 = self
            .t
            .paths
            .record_request(&pk.to_le_bytes(), now_ms)
            .requests;
        let (tp, plearned) = self.threshold(Measure::PathRequests10s, l.path_10s_floor);
        // A crowd of new clients: paths surge at half their threshold.
        let tp_now = if crowd.is_some() { tp / 2 } else { tp };
        let active = self.t.surges.active(pk, now_ms);
        let query = query.filter(|q| !q.is_empty());
        // A query string not seen before for the path: what the cache cannot answer. Not remembered while the
        // path is in surge, so a flood of random strings does not crowd out the path's real history.
        let unseen = match query {
            Some(q) => {
                let qh = hash64(&[path.as_bytes(), q.as_bytes()]);
                let new = self.t.queries.is_new(qh, !active, now_ms);
                new && self.t.queries.warm(now_ms)
            }
            None => {
                self.t.queries.touch(now_ms);
                false
            }
        };
        let u10 = if unseen {
            self.t
                .unseen_paths
                .record_request(&pk.to_le_bytes(), now_ms)
                .requests
        } else {
            0
        };
        let (tu, ulearned) = self.threshold(Measure::PathUnseenQueries10s, l.path_unseen_10s_floor);
        let query_surge = unseen && u10 > tu && share_at_least(u10, p10, l.unseen_share_pct);
        if self.learning(now_ms) {
            self.baseline.shares().request(
                usize::from(ckey[ckey.len() - 1]),
                query.is_some(),
                unseen,
                now_ms,
            );
        }
        let surging = p10 > tp_now || query_surge;
        if surging {
            self.t.surges.set(pk, now_ms + SURGE_HOLD_MS, now_ms);
            self.quiet_if(true, now_ms);
        } else {
            if p10 * 2 > tp_now && active {
                // Still busy: the surge holds.
                self.t.surges.set(pk, now_ms + SURGE_HOLD_MS, now_ms);
            }
            if self.learn(Measure::PathRequests10s, p10, now_ms) {
                self.baseline.learn_path(path, p10, now_ms);
            }
            if unseen {
                self.learn(Measure::PathUnseenQueries10s, u10, now_ms);
            }
        }
        if surging || active {
            let cp = hash64(&[ckey, path.as_bytes()]);
            let n = self
                .t
                .client_paths
                .record_request(&cp.to_le_bytes(), now_ms)
                .requests;
            // During a query-string surge, a client sending unseen query strings is challenged sooner.
            let by_query = unseen && u10 > tu;
            let limit = if by_query {
                l.query_repeats
            } else {
                l.surge_repeats
            };
            if n >= limit {
                let mut detail = format!(
                    "path {path}: {} (in surge)",
                    Self::explain(Measure::PathRequests10s, plearned, tp_now, p10)
                );
                if u10 > 0 {
                    detail.push_str(&format!(
                        "; {}, unseen-query share {}% of the path's requests",
                        Self::explain(Measure::PathUnseenQueries10s, ulearned, tu, u10),
                        u10 * 100 / p10.max(1)
                    ));
                }
                if let Some((a, ta, alearned)) = crowd {
                    detail.push_str(&format!(
                        "; {} (paths surge at half their threshold)",
                        Self::explain(Measure::NewClients10s, alearned, ta, a)
                    ));
                }
                detail.push_str(&format!(
                    "; this client requested it {n} times in 10 s (limit {limit} during a {}surge)",
                    if by_query { "query-string " } else { "" }
                ));
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
        let found = self.status(seen, status, now_ms);
        self.count_finding(found.as_ref());
        found
    }

    fn status(&self, seen: &Seen, status: u16, now_ms: u64) -> Option<Finding> {
        let mut cb = [0u8; 16];
        let ckey = client_bytes(seen.client, &mut cb);
        let w10 = self.t.clients10.record_status(ckey, now_ms, status);
        let w60 = self.t.clients60.record_status(ckey, now_ms, status);
        if self.learning(now_ms) {
            self.baseline
                .shares()
                .status(usize::from(ckey[ckey.len() - 1]), status, now_ms);
        }
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
