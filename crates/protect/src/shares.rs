//! A domain's learned shares: of its requests, how many carried a query string and how many a query string not
//! seen before for their path (a request the cache cannot answer); of its responses, each status class. Counted
//! in eight cache-line stripes (picked by the client) so busy domains do not contend on one counter, and faded
//! like the histograms: every [`DECAY_EVERY_MS`] all counts are halved.
//!
//! Hot path: one relaxed add per request (two with a new query string) and one per response.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Period after which all counts are halved (the histograms' period).
pub const DECAY_EVERY_MS: u64 = 6 * 3_600_000;

const REQUESTS: usize = 0;
const WITH_QUERY: usize = 1;
const UNSEEN_QUERY: usize = 2;
/// Status classes 1xx-5xx at 3..8.
const STATUS: usize = 3;
const FIELDS: usize = 8;
const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe([AtomicU64; FIELDS]);

/// The learned shares of one domain.
#[derive(Debug, Default)]
pub struct Shares {
    stripes: [Stripe; STRIPES],
    /// 1 + the decay period the counts belong to; 0 before the first event.
    epoch: AtomicU64,
}

/// The shares as the admin API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharesSummary {
    pub requests: u64,
    pub with_query: u64,
    pub unseen_query: u64,
    /// Responses of class 1xx..5xx.
    pub status_classes: [u64; 5],
}

impl SharesSummary {
    /// `part` of `whole` in per mille (0 when `whole` is 0).
    pub fn per_mille(part: u64, whole: u64) -> u64 {
        part.saturating_mul(1000).checked_div(whole).unwrap_or(0)
    }

    /// Requests with a query string not seen before for their path, per mille of all requests.
    pub fn unseen_query_per_mille(&self) -> u64 {
        Self::per_mille(self.unseen_query, self.requests)
    }

    /// Each status class per mille of all responses.
    pub fn status_per_mille(&self) -> [u64; 5] {
        let total: u64 = self.status_classes.iter().sum();
        self.status_classes.map(|c| Self::per_mille(c, total))
    }
}

impl Shares {
    fn bump(&self, stripe: usize, field: usize, now_ms: u64) {
        self.decay(now_ms);
        self.stripes[stripe % STRIPES].0[field].fetch_add(1, Relaxed);
    }

    /// Learns one request; `query`: it had a query string, `unseen`: one not seen before for its path.
    #[inline]
    pub fn request(&self, stripe: usize, query: bool, unseen: bool, now_ms: u64) {
        self.bump(stripe, REQUESTS, now_ms);
        if query {
            self.stripes[stripe % STRIPES].0[WITH_QUERY].fetch_add(1, Relaxed);
        }
        if unseen {
            self.stripes[stripe % STRIPES].0[UNSEEN_QUERY].fetch_add(1, Relaxed);
        }
    }

    /// Learns one response status.
    #[inline]
    pub fn status(&self, stripe: usize, status: u16, now_ms: u64) {
        if let 100..=599 = status {
            self.bump(stripe, STATUS + usize::from(status / 100 - 1), now_ms);
        }
    }

    fn decay(&self, now_ms: u64) {
        let epoch = now_ms / DECAY_EVERY_MS + 1;
        let seen = self.epoch.load(Relaxed);
        if epoch <= seen
            || self
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_err()
            || seen == 0
        {
            return;
        }
        let shift = (epoch - seen).min(63);
        for s in &self.stripes {
            for c in &s.0 {
                let v = c.load(Relaxed);
                c.fetch_sub(v - (v >> shift), Relaxed);
            }
        }
    }

    fn totals(&self) -> [u64; FIELDS] {
        std::array::from_fn(|f| self.stripes.iter().map(|s| s.0[f].load(Relaxed)).sum())
    }

    pub fn summary(&self) -> SharesSummary {
        let t = self.totals();
        SharesSummary {
            requests: t[REQUESTS],
            with_query: t[WITH_QUERY],
            unseen_query: t[UNSEEN_QUERY],
            status_classes: std::array::from_fn(|i| t[STATUS + i]),
        }
    }

    /// The counts, for persistence: requests, with a query, with an unseen query, then 1xx..5xx.
    pub fn snapshot(&self) -> [u64; FIELDS] {
        self.totals()
    }

    /// Adds stored counts (from [`Shares::snapshot`]); missing ones are taken as 0.
    pub fn restore(&self, stored: &[u64], now_ms: u64) {
        self.epoch.store(now_ms / DECAY_EVERY_MS + 1, Relaxed);
        for (c, v) in self.stripes[0].0.iter().zip(stored) {
            c.fetch_add(*v, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_count_decay_and_round_trip() {
        let s = Shares::default();
        for i in 0..100u64 {
            s.request(i as usize, i % 2 == 0, i % 10 == 0, 1_000);
            s.status(i as usize, if i < 90 { 200 } else { 404 }, 1_000);
        }
        let sum = s.summary();
        assert_eq!(
            (sum.requests, sum.with_query, sum.unseen_query),
            (100, 50, 10)
        );
        assert_eq!(sum.unseen_query_per_mille(), 100);
        assert_eq!(sum.status_per_mille(), [0, 900, 0, 100, 0]);
        let copy = Shares::default();
        copy.restore(&s.snapshot(), 1_000);
        assert_eq!(copy.summary(), sum);
        s.request(0, false, false, DECAY_EVERY_MS + 1);
        // Each stripe is halved on its own (rounding down), then one request is added.
        assert!((48..=51).contains(&s.summary().requests));
    }
}
