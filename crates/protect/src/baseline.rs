//! What a domain's own traffic looks like, learned online in fixed memory: for each measure (a client's requests
//! in 10 s and in 60 s, a client's 404s in 10 s, a path's requests in 10 s, a client's failed logins in 5 minutes) a
//! histogram of the value seen by each event, on half-power-of-two buckets. Two novelty measures join them: a
//! path's requests in 10 s whose query string was not seen before for it (the cache cannot answer them), and
//! the domain's clients in 10 s never seen in the recent history ([`crate::novelty`]). Beside the histograms,
//! the domain's shares ([`crate::shares`]: unseen query strings, status classes) and its busiest paths
//! ([`crate::toppaths`]).
//!
//! The histograms are event-weighted: each request (or each 404, each failed login) adds the count its client or
//! path had reached with it. So "99.9% of the domain's requests came from clients at or below q" is read off
//! directly, and sliding windows need no "window closed" event. Only events the protection let through are
//! learned, and never a value above the threshold in force, so an attack cannot teach the baseline its own rate.
//! Old traffic fades: every [`DECAY_EVERY_MS`] all buckets are halved.
//!
//! Hot path: [`Histogram::add`] is one relaxed atomic add (and, once per decay period, one compare-and-swap).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::shares::{Shares, SharesSummary};
use crate::toppaths::{PathRate, TopPaths};

/// Buckets per histogram: upper bounds 1, 2, 3, 4, 6, 8, 12, 16, ... up to about 2^23.
pub const BUCKETS: usize = 48;
/// Events a histogram must have seen before its quantile is trusted over the fresh-domain defaults.
pub const MIN_EVENTS: u64 = 2_000;
/// Period after which all buckets are halved.
pub const DECAY_EVERY_MS: u64 = 6 * 3_600_000;

/// Upper bound (inclusive) of bucket `i`: 1, 2, 3, 4, 6, 8, 12, 16, 24, ...
pub const fn bucket_bound(i: usize) -> u64 {
    if i == 0 {
        1
    } else if i % 2 == 1 {
        1 << i.div_ceil(2)
    } else {
        3 << (i / 2 - 1)
    }
}

/// The bucket holding `v` (0 and 1 share the first).
pub fn bucket_of(v: u64) -> usize {
    // Few buckets and a monotone bound: a binary search over the bounds.
    let (mut lo, mut hi) = (0usize, BUCKETS - 1);
    if v >= bucket_bound(hi) {
        return hi;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if bucket_bound(mid) >= v {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// One event-weighted histogram.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    /// 1 + the decay period the buckets belong to; 0 before the first event.
    epoch: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Learns one event at value `v`.
    #[inline]
    pub fn add(&self, v: u64, now_ms: u64) {
        self.decay(now_ms);
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
    }

    fn decay(&self, now_ms: u64) {
        let epoch = now_ms / DECAY_EVERY_MS + 1;
        let seen = self.epoch.load(Ordering::Relaxed);
        if epoch <= seen
            || self
                .epoch
                .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if seen == 0 {
            return;
        }
        let shift = (epoch - seen).min(63);
        for b in &self.buckets {
            let v = b.load(Ordering::Relaxed);
            b.fetch_sub(v - (v >> shift), Ordering::Relaxed);
        }
    }

    /// Events learned (after decay).
    pub fn events(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound of the bucket where the share `per_mille / 1000` of events is reached; `None` while fewer
    /// than [`MIN_EVENTS`] events were learned. No allocation.
    pub fn quantile(&self, per_mille: u64) -> Option<u64> {
        let total = self.events();
        if total < MIN_EVENTS {
            return None;
        }
        let want = total.saturating_mul(per_mille).div_ceil(1000);
        let mut acc = 0u64;
        for (i, c) in self.buckets.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            if acc >= want {
                return Some(bucket_bound(i));
            }
        }
        Some(bucket_bound(BUCKETS - 1))
    }

    /// The buckets, for persistence.
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// Adds stored buckets (from [`Histogram::snapshot`]); extra or missing buckets are ignored.
    pub fn restore(&self, stored: &[u64], now_ms: u64) {
        self.epoch
            .store(now_ms / DECAY_EVERY_MS + 1, Ordering::Relaxed);
        for (b, v) in self.buckets.iter().zip(stored) {
            b.fetch_add(*v, Ordering::Relaxed);
        }
    }
}

/// The measures learned for one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// A client's requests in 10 s.
    ClientRequests10s,
    /// A client's requests in 60 s.
    ClientRequests60s,
    /// A client's 404 responses in 10 s.
    Client404s10s,
    /// One path's requests in 10 s (all clients).
    PathRequests10s,
    /// A client's 4xx answers on login-like paths in 5 minutes.
    LoginFailures300s,
    /// One path's requests in 10 s with a query string not seen before for it.
    PathUnseenQueries10s,
    /// Clients in 10 s (whole domain) not seen in the recent history.
    NewClients10s,
}

/// Number of [`Measure`]s.
pub const MEASURES: usize = 7;

impl Measure {
    pub const ALL: [Measure; MEASURES] = [
        Measure::ClientRequests10s,
        Measure::ClientRequests60s,
        Measure::Client404s10s,
        Measure::PathRequests10s,
        Measure::LoginFailures300s,
        Measure::PathUnseenQueries10s,
        Measure::NewClients10s,
    ];

    /// The name in the admin API, the activity log and the stored baseline.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::ClientRequests10s => "client_requests_10s",
            Measure::ClientRequests60s => "client_requests_60s",
            Measure::Client404s10s => "client_404s_10s",
            Measure::PathRequests10s => "path_requests_10s",
            Measure::LoginFailures300s => "login_failures_300s",
            Measure::PathUnseenQueries10s => "path_unseen_queries_10s",
            Measure::NewClients10s => "new_clients_10s",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A domain's learned baseline: one histogram per [`Measure`], sampled in time (at most one event per
/// [`SAMPLE_EVERY_MS`] each), so the histogram weighs periods of traffic rather than requests: a flood's volume
/// does not outweigh an hour of ordinary traffic, and a busy domain costs no more than a quiet one.
#[derive(Debug, Default)]
pub struct Baseline {
    hist: [Histogram; MEASURES],
    /// Unix ms before which the measure takes no sample.
    next_ms: [AtomicU64; MEASURES],
    /// The 99.9th percentile of each measure as of its last sample; 0 while not learned. Read on the hot path.
    p999: [AtomicU64; MEASURES],
    shares: Shares,
    paths: TopPaths,
    /// The decay period [`Baseline::paths`] was last faded in.
    paths_epoch: AtomicU64,
}

/// Shortest time between two learned events of one measure.
pub const SAMPLE_EVERY_MS: u64 = 100;

/// One measure as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureSummary {
    pub measure: &'static str,
    pub events: u64,
    /// 99th and 99.9th event-weighted percentiles, once enough events were learned.
    pub p99: Option<u64>,
    pub p999: Option<u64>,
    /// The threshold a detector applies (0 from [`Baseline::summary`], which knows no mode).
    pub threshold: u64,
}

impl Baseline {
    pub fn histogram(&self, m: Measure) -> &Histogram {
        &self.hist[m.index()]
    }

    /// The domain's learned shares (query strings, status classes).
    pub fn shares(&self) -> &Shares {
        &self.shares
    }

    pub fn shares_summary(&self) -> SharesSummary {
        self.shares.summary()
    }

    /// The busiest paths with their learned requests in 10 s.
    pub fn top_paths(&self) -> Vec<PathRate> {
        self.paths.summary()
    }

    /// Learns one sample of `path`'s requests in 10 s into the busiest paths. Called only when
    /// [`Measure::PathRequests10s`] took the sample (at most ten times a second).
    pub fn learn_path(&self, path: &str, requests_10s: u64, now_ms: u64) {
        let epoch = now_ms / DECAY_EVERY_MS + 1;
        let seen = self.paths_epoch.load(Ordering::Relaxed);
        if epoch > seen
            && self
                .paths_epoch
                .compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && seen != 0
        {
            self.paths.fade();
        }
        self.paths.learn(path, requests_10s);
    }

    /// Whether the histogram of `m` is trusted yet (at least [`MIN_EVENTS`] samples).
    pub fn learned(&self, m: Measure) -> bool {
        self.hist[m.index()].events() >= MIN_EVENTS
    }

    /// Learns `v` unless the measure took a sample less than [`SAMPLE_EVERY_MS`] ago; `true` when it took it.
    ///
    /// Hot path: one relaxed load when not sampling; a sample costs a compare-and-swap and a pass over the
    /// buckets (at most ten times a second).
    #[inline]
    pub fn learn(&self, m: Measure, v: u64, now_ms: u64) -> bool {
        let i = m.index();
        let next = self.next_ms[i].load(Ordering::Relaxed);
        if now_ms < next
            || self.next_ms[i]
                .compare_exchange(
                    next,
                    now_ms + SAMPLE_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        self.hist[i].add(v, now_ms);
        self.refresh(m);
        true
    }

    fn refresh(&self, m: Measure) {
        let q = self.hist[m.index()].quantile(999).unwrap_or(0);
        self.p999[m.index()].store(q, Ordering::Relaxed);
    }

    /// The 99.9th percentile of `m`, once learned. Hot path: one relaxed load.
    #[inline]
    pub fn p999(&self, m: Measure) -> Option<u64> {
        match self.p999[m.index()].load(Ordering::Relaxed) {
            0 => None,
            q => Some(q),
        }
    }

    pub fn summary(&self) -> Vec<MeasureSummary> {
        Measure::ALL
            .iter()
            .map(|&m| {
                let h = self.histogram(m);
                MeasureSummary {
                    measure: m.as_str(),
                    events: h.events(),
                    p99: h.quantile(990),
                    p999: h.quantile(999),
                    threshold: 0,
                }
            })
            .collect()
    }

    /// The baseline as text, one line per measure: `name b0 b1 ...`, then `shares n1 n2 ...` and one
    /// `path ...` line per busy path (the file format of the stored baseline).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, values: &[u64]| {
            out.push_str(name);
            for v in values {
                out.push(' ');
                out.push_str(&v.to_string());
            }
            out.push('\n');
        };
        for m in Measure::ALL {
            line(m.as_str(), &self.histogram(m).snapshot());
        }
        line("shares", &self.shares.snapshot());
        self.paths.to_text(&mut out);
        out
    }

    /// Adds a baseline written by [`Baseline::to_text`]; unknown lines and unreadable numbers are skipped (a
    /// damaged file costs history, never the node's start).
    pub fn restore_text(&self, text: &str, now_ms: u64) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("path ") {
                self.paths.restore_line(rest);
                continue;
            }
            let mut parts = line.split_ascii_whitespace();
            let Some(name) = parts.next() else { continue };
            if name == "shares" {
                let values: Vec<u64> = parts.map_while(|p| p.parse().ok()).collect();
                self.shares.restore(&values, now_ms);
                continue;
            }
            let Some(m) = Measure::ALL.iter().find(|m| m.as_str() == name) else {
                continue;
            };
            let values: Vec<u64> = parts.map_while(|p| p.parse().ok()).collect();
            self.histogram(*m).restore(&values, now_ms);
            self.refresh(*m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_cover_values() {
        for i in 1..BUCKETS {
            assert!(bucket_bound(i) > bucket_bound(i - 1), "bucket {i}");
        }
        for v in 0..5000u64 {
            let b = bucket_of(v);
            assert!(v <= bucket_bound(b));
            assert!(b == 0 || v > bucket_bound(b - 1), "value {v} bucket {b}");
        }
    }

    #[test]
    fn quantile_needs_history_then_reads_the_tail() {
        let h = Histogram::default();
        for i in 0..MIN_EVENTS - 1 {
            h.add(1 + i % 5, 1_000);
        }
        assert_eq!(h.quantile(999), None);
        for _ in 0..10_000 {
            h.add(3, 1_000);
        }
        h.add(400, 1_000);
        // 12,000 events: 400 each at 1, 2, 4 and 5 (bucket 6), 10,400 at 3, one at 400.
        assert_eq!(h.quantile(999), Some(6));
        assert_eq!(h.quantile(960), Some(4));
        assert_eq!(h.quantile(500), Some(3));
    }

    #[test]
    fn decay_halves_old_history() {
        let h = Histogram::default();
        for _ in 0..4_000 {
            h.add(10, 1);
        }
        h.add(10, DECAY_EVERY_MS + 1);
        assert_eq!(h.events(), 2_001);
    }

    #[test]
    fn a_burst_is_one_sample() {
        let b = Baseline::default();
        for _ in 0..10_000 {
            b.learn(Measure::PathRequests10s, 7, 1_000);
        }
        assert_eq!(b.histogram(Measure::PathRequests10s).events(), 1);
    }

    #[test]
    fn text_round_trip() {
        let b = Baseline::default();
        for i in 0..3_000u64 {
            b.learn(Measure::ClientRequests10s, i % 40, 5 + i * SAMPLE_EVERY_MS);
        }
        assert!(b.p999(Measure::ClientRequests10s).is_some());
        let copy = Baseline::default();
        copy.restore_text(&b.to_text(), 5);
        copy.restore_text("garbage\nclient_404s_10s x y\n", 5);
        assert_eq!(copy.summary(), b.summary());
        // A file of an older node (five measures, no shares, no paths) is read too.
        let old: String = b
            .to_text()
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        let older = Baseline::default();
        older.restore_text(&old, 5);
        assert_eq!(older.summary(), b.summary());
    }

    #[test]
    fn shares_and_paths_round_trip() {
        let b = Baseline::default();
        b.shares().request(1, true, true, 10);
        b.shares().status(1, 404, 10);
        b.learn_path("/a b", 7, 10);
        let copy = Baseline::default();
        copy.restore_text(&b.to_text(), 10);
        assert_eq!(copy.shares_summary(), b.shares_summary());
        assert_eq!(copy.top_paths(), b.top_paths());
    }
}
