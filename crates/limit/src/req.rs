//! nginx `limit_req`: the leaky bucket in milli-requests, decision for decision.
//!
//! [`limit_req`] takes one request's whole list of limits (one location's `limit_req` lines, in order) and its
//! keys, and returns what nginx's `ngx_http_limit_req_handler` would decide: the status for
//! `$limit_req_status`, the delay, the deciding limit and its excess. The caller answers, waits or logs.

use std::sync::Arc;

use crate::rate::Rate;
use crate::store::Store;
use crate::table::{MAX_KEY_LEN, Table, TableError, TableState};

/// When a limit_req delays: nginx's `nodelay` / `delay=N` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayMode {
    /// Neither written: every request above zero excess is delayed (nginx's `delay = 0`).
    #[default]
    Default,
    /// `nodelay`: never delay.
    NoDelay,
    /// `delay = N`, N >= 1: the first N excess requests pass at once.
    Delay(u32),
}

impl DelayMode {
    /// The excess (milli-requests) up to which a request is not delayed: nginx's `limit->delay`.
    #[inline]
    pub fn threshold_milli(self) -> u64 {
        match self {
            DelayMode::Default => 0,
            DelayMode::NoDelay => u64::MAX,
            DelayMode::Delay(n) => n as u64 * 1000,
        }
    }
}

/// Smallest zone nginx accepts.
pub const MIN_ZONE_SIZE: usize = 32 * 1024;

/// One key's bucket: nginx's `ngx_http_limit_req_node_t` less the tree and queue links.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReqState {
    /// Milli-requests above the rate, after the last charge.
    pub excess: u64,
    /// Milliseconds of the clock at the last charge that moved it (0 for a state created as a non-last limit).
    pub last: u64,
}

impl TableState for ReqState {
    type Params = Rate;

    /// nginx's `ngx_http_limit_req_expire` test: idle 60 s or more either way, and fully drained.
    #[inline]
    fn expirable(&self, now_ms: u64, rate: &Rate) -> bool {
        let ms = (now_ms.wrapping_sub(self.last) as i64).unsigned_abs();
        ms >= 60_000 && self.excess <= mul_div(rate.milli_per_sec(), ms, 1000)
    }
}

/// `ms = now - last` as nginx clamps it: far in the past (clock went back > 60 s) counts as 1, slightly as 0.
#[inline]
fn elapsed(now_ms: u64, last: u64) -> u64 {
    let ms = now_ms.wrapping_sub(last) as i64;
    if ms < -60_000 {
        1
    } else if ms < 0 {
        0
    } else {
        ms as u64
    }
}

/// `a * b / c` in full precision. Hot path: u64 when the product fits (always, for real rates and times),
/// because a u128 division is a slow library call.
#[inline]
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    match a.checked_mul(b) {
        Some(p) => p / c,
        None => (a as u128 * b as u128 / c as u128).min(u64::MAX as u128) as u64,
    }
}

/// The excess including this request: `max(0, excess - rate*ms/1000 + 1000)`, floor division.
#[inline]
fn leak(excess: u64, ms: u64, rate: u64) -> u64 {
    excess
        .saturating_add(1000)
        .saturating_sub(mul_div(rate, ms, 1000))
}

/// Delay in ms for an excess above a limit's threshold: `(e - DELAY) * 1000 / RATE`.
#[inline]
fn delay_for(excess: u64, threshold: u64, rate: u64) -> u64 {
    if excess <= threshold {
        0
    } else {
        mul_div(excess - threshold, 1000, rate)
    }
}

/// Why a zone could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqZoneError {
    /// nginx refuses zones under 32 KiB.
    #[error("zone \"{name}\" is too small: {size} bytes, at least 32k are needed")]
    TooSmall { name: String, size: usize },
    /// The table could not be laid out.
    #[error("zone \"{name}\": {source}")]
    Table { name: String, source: TableError },
}

/// A `limit_req_zone`: a name, a rate and the keyed states.
#[derive(Debug)]
pub struct ReqZone<St = Table<ReqState>> {
    name: String,
    rate: Rate,
    store: St,
}

impl ReqZone {
    /// A zone of `size_bytes` (at least [`MIN_ZONE_SIZE`]) in local memory.
    pub fn new(
        name: impl Into<String>,
        rate: Rate,
        size_bytes: usize,
    ) -> Result<Self, ReqZoneError> {
        let name = name.into();
        if size_bytes < MIN_ZONE_SIZE {
            return Err(ReqZoneError::TooSmall {
                name,
                size: size_bytes,
            });
        }
        match Table::new(size_bytes, rate) {
            Ok(store) => Ok(Self { name, rate, store }),
            Err(source) => Err(ReqZoneError::Table { name, source }),
        }
    }

    /// As [`ReqZone::new`] with a chosen shard count (1 = nginx's exact LRU order at any size).
    pub fn with_shards(
        name: impl Into<String>,
        rate: Rate,
        size_bytes: usize,
        shards: usize,
    ) -> Result<Self, ReqZoneError> {
        let name = name.into();
        if size_bytes < MIN_ZONE_SIZE {
            return Err(ReqZoneError::TooSmall {
                name,
                size: size_bytes,
            });
        }
        match Table::with_shards(size_bytes, shards, rate) {
            Ok(store) => Ok(Self { name, rate, store }),
            Err(source) => Err(ReqZoneError::Table { name, source }),
        }
    }

    /// Bytes one state takes with a key of up to 16 bytes.
    pub const fn bytes_per_state() -> usize {
        Table::<ReqState>::bytes_per_state()
    }
}

impl<St: Store<ReqState>> ReqZone<St> {
    /// A zone over another store.
    pub fn with_store(name: impl Into<String>, rate: Rate, store: St) -> Self {
        Self {
            name: name.into(),
            rate,
            store,
        }
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The store holding the states.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// States that fit with keys of up to 16 bytes.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// States held now (not for the request path).
    pub fn in_use(&self) -> usize {
        self.store.in_use()
    }

    /// Charges `n` requests admitted elsewhere (the other nodes of a cluster, for a zone of
    /// `scope = "cluster"`) to the bucket of `key` at `now_ms`: the excess leaks up to now, then grows by `n`
    /// requests, as if they had come here, so every node's bucket follows the cluster's traffic. The excess
    /// stops at `full_milli` (the burst of the limit line, a full bucket) unless it was above already: a
    /// shared bucket never holds more, and counts that arrive late (a key this node had not seen for a while)
    /// cannot refuse it for longer than a full bucket takes to drain. A key with no room is not charged.
    ///
    /// Hot path: one shard lock, no allocation for short keys.
    pub fn charge(&self, key: &[u8], now_ms: u64, n: u64, full_milli: u64) {
        if n == 0 || key.is_empty() || key.len() > MAX_KEY_LEN {
            return;
        }
        let rate = self.rate.milli_per_sec();
        let fresh = || ReqState {
            excess: 0,
            last: now_ms,
        };
        let _ = self.store.access(key, now_ms, fresh, |st, _| {
            let ms = elapsed(now_ms, st.last);
            let leaked = st.excess.saturating_sub(mul_div(rate, ms, 1000));
            st.excess = leaked
                .saturating_add(n.saturating_mul(1000))
                .min(full_milli.max(leaked));
            st.last = now_ms;
            ((), false)
        });
    }
}

/// One `limit_req zone=Z [burst=B] [nodelay | delay=D]` line, with the location's `limit_req_dry_run`.
#[derive(Debug)]
pub struct ReqLimit<St = Table<ReqState>> {
    pub zone: Arc<ReqZone<St>>,
    /// Requests (not milli-requests); nginx's default is 0.
    pub burst: u32,
    pub delay: DelayMode,
    /// nginx's `limit_req_dry_run` is per location: give every limit of one list the same value (if they
    /// differ, the deciding limit's value applies).
    pub dry_run: bool,
}

impl<St> Clone for ReqLimit<St> {
    fn clone(&self) -> Self {
        Self {
            zone: Arc::clone(&self.zone),
            burst: self.burst,
            delay: self.delay,
            dry_run: self.dry_run,
        }
    }
}

/// `$limit_req_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReqStatus {
    Passed,
    Delayed,
    Rejected,
    DelayedDryRun,
    RejectedDryRun,
}

impl ReqStatus {
    /// The value of nginx's `$limit_req_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReqStatus::Passed => "PASSED",
            ReqStatus::Delayed => "DELAYED",
            ReqStatus::Rejected => "REJECTED",
            ReqStatus::DelayedDryRun => "DELAYED_DRY_RUN",
            ReqStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

impl std::fmt::Display for ReqStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`limit_req`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReqDecision {
    /// `None`: every key was empty (or too long), nothing was limited and `$limit_req_status` stays unset.
    pub status: Option<ReqStatus>,
    /// nginx's computed delay in ms (also for `DelayedDryRun`, which does not wait): see [`ReqDecision::wait_ms`].
    pub delay_ms: u64,
    /// Index of the limit that rejected or gave the largest delay (`None` when passed or unset).
    pub limit: Option<usize>,
    /// The excess nginx logs with the decision, in milli-requests (`E.EEE` = `excess_milli / 1000`).
    pub excess_milli: u64,
    /// Rejected because a zone had no room for a new state ("could not allocate node").
    pub no_room: bool,
}

impl ReqDecision {
    /// How long the request must wait before going on: the delay for `Delayed`, else 0.
    pub fn wait_ms(&self) -> u64 {
        if self.status == Some(ReqStatus::Delayed) {
            self.delay_ms
        } else {
            0
        }
    }

    /// Whether the caller must answer with `limit_req_status` now.
    pub fn is_rejected(&self) -> bool {
        self.status == Some(ReqStatus::Rejected)
    }
}

/// What one limit's lookup found (nginx's `ngx_http_limit_req_lookup` return codes).
#[derive(Clone, Copy)]
enum Step {
    /// Created now: excess 0, no burst check.
    New,
    /// Over burst, with the excess it would have had.
    Busy(u64),
    /// Last limit, charged.
    Ok(u64),
    /// Not the last limit, pinned, not charged yet.
    Again(u64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rc {
    Declined,
    Again,
    Ok,
    Busy,
    Error,
}

/// Pins kept on the stack for lists of up to this many limits; longer lists use one heap vector.
const INLINE_LIMITS: usize = 8;

/// Decides one request against its list of limits, charging the zones as nginx does.
///
/// `keys[i]` is the evaluated key of `limits[i]` (missing entries count as empty). `now_ms` is the caller's
/// clock, read once per request (nginx reads it once per event-loop turn). Hot path: takes each zone's shard
/// lock briefly, one at a time, and allocates nothing for up to 8 limits.
pub fn limit_req<St: Store<ReqState>>(
    now_ms: u64,
    limits: &[ReqLimit<St>],
    keys: &[&[u8]],
) -> ReqDecision {
    if let [only] = limits {
        return limit_req_one(now_ms, only, keys.first().copied().unwrap_or_default());
    }
    let n = limits.len();
    let mut inline: [Option<St::Held>; INLINE_LIMITS] = [None; INLINE_LIMITS];
    let mut heap: Vec<Option<St::Held>>;
    let pins: &mut [Option<St::Held>] = if n <= INLINE_LIMITS {
        &mut inline[..n]
    } else {
        heap = vec![None; n];
        &mut heap[..]
    };

    let mut rc = Rc::Declined;
    let mut excess = 0u64;
    let mut limit = 0usize;
    // nginx's `n` after the loop: the limits below it may hold pins.
    let mut stop = n;
    for (i, l) in limits.iter().enumerate() {
        limit = i;
        let key = keys.get(i).copied().unwrap_or_default();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            continue;
        }
        let last = i + 1 == n;
        let rate = l.zone.rate.milli_per_sec();
        let burst = l.burst as u64 * 1000;
        let fresh = || ReqState {
            excess: 0,
            // A non-last state starts at 0, so its first charge usually drains to 0 (nginx does this).
            last: if last { now_ms } else { 0 },
        };
        let found = l.zone.store.access(key, now_ms, fresh, |st, new| {
            if new {
                return (Step::New, !last);
            }
            let ms = elapsed(now_ms, st.last);
            let e = leak(st.excess, ms, rate);
            if e > burst {
                return (Step::Busy(e), false);
            }
            if !last {
                return (Step::Again(e), true);
            }
            st.excess = e;
            if ms != 0 {
                st.last = now_ms;
            }
            (Step::Ok(e), false)
        });
        match found {
            Err(_) => {
                rc = Rc::Error;
                excess = 0;
            }
            Ok((step, held)) => {
                pins[i] = held;
                match step {
                    Step::New => {
                        excess = 0;
                        rc = if last { Rc::Ok } else { Rc::Again };
                    }
                    Step::Busy(e) => {
                        excess = e;
                        rc = Rc::Busy;
                    }
                    Step::Ok(e) => {
                        excess = e;
                        rc = Rc::Ok;
                    }
                    Step::Again(e) => {
                        excess = e;
                        rc = Rc::Again;
                    }
                }
            }
        }
        if rc != Rc::Again {
            stop = i;
            break;
        }
    }

    match rc {
        Rc::Declined => return ReqDecision::default(),
        Rc::Busy | Rc::Error => {
            for (l, held) in limits.iter().zip(pins[..stop].iter_mut()) {
                if let Some(held) = held.take() {
                    l.zone.store.finish(held, |_| ());
                }
            }
            let status = if limits[limit].dry_run {
                ReqStatus::RejectedDryRun
            } else {
                ReqStatus::Rejected
            };
            return ReqDecision {
                status: Some(status),
                delay_ms: 0,
                limit: Some(limit),
                excess_milli: excess,
                no_room: rc == Rc::Error,
            };
        }
        Rc::Again => excess = 0,
        Rc::Ok => {}
    }

    // nginx's ngx_http_limit_req_account: commit the pinned limits in reverse with the same now.
    let first = &limits[limit];
    let mut max_delay = delay_for(
        excess,
        first.delay.threshold_milli(),
        first.zone.rate.milli_per_sec(),
    );
    for j in (0..stop).rev() {
        let Some(held) = pins[j].take() else {
            continue;
        };
        let l = &limits[j];
        let rate = l.zone.rate.milli_per_sec();
        let e = l.zone.store.finish(held, |st| {
            let ms = elapsed(now_ms, st.last);
            let e = leak(st.excess, ms, rate);
            if ms != 0 {
                st.last = now_ms;
            }
            st.excess = e;
            e
        });
        let d = delay_for(e, l.delay.threshold_milli(), rate);
        if d > max_delay {
            max_delay = d;
            excess = e;
            limit = j;
        }
    }

    if max_delay == 0 {
        return ReqDecision {
            status: Some(ReqStatus::Passed),
            delay_ms: 0,
            limit: None,
            excess_milli: excess,
            no_room: false,
        };
    }
    let status = if limits[limit].dry_run {
        ReqStatus::DelayedDryRun
    } else {
        ReqStatus::Delayed
    };
    ReqDecision {
        status: Some(status),
        delay_ms: max_delay,
        limit: Some(limit),
        excess_milli: excess,
        no_room: false,
    }
}

/// [`limit_req`] for a list of one limit (the usual case): nothing is pinned, the lookup charges at once.
#[inline]
fn limit_req_one<St: Store<ReqState>>(now_ms: u64, l: &ReqLimit<St>, key: &[u8]) -> ReqDecision {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return ReqDecision::default();
    }
    let rate = l.zone.rate.milli_per_sec();
    let burst = l.burst as u64 * 1000;
    let fresh = || ReqState {
        excess: 0,
        last: now_ms,
    };
    let found = l.zone.store.access(key, now_ms, fresh, |st, new| {
        if new {
            return (Ok(0), false);
        }
        let ms = elapsed(now_ms, st.last);
        let e = leak(st.excess, ms, rate);
        if e > burst {
            return (Err(e), false);
        }
        st.excess = e;
        if ms != 0 {
            st.last = now_ms;
        }
        (Ok(e), false)
    });
    let (status, delay_ms, limit, excess_milli, no_room) = match found {
        Err(_) => (ReqStatus::Rejected, 0, Some(0), 0, true),
        Ok((Err(e), _)) => (ReqStatus::Rejected, 0, Some(0), e, false),
        Ok((Ok(e), _)) => match delay_for(e, l.delay.threshold_milli(), rate) {
            0 => (ReqStatus::Passed, 0, None, e, false),
            d => (ReqStatus::Delayed, d, Some(0), e, false),
        },
    };
    let status = match (status, l.dry_run) {
        (ReqStatus::Rejected, true) => ReqStatus::RejectedDryRun,
        (ReqStatus::Delayed, true) => ReqStatus::DelayedDryRun,
        (s, _) => s,
    };
    ReqDecision {
        status: Some(status),
        delay_ms,
        limit,
        excess_milli,
        no_room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_as_nginx() {
        assert_eq!(elapsed(100, 200), 0);
        assert_eq!(elapsed(100, 100 + 60_000), 0);
        assert_eq!(elapsed(100, 100 + 60_001), 1);
        assert_eq!(elapsed(5, 0), 5);
        assert_eq!(leak(0, 62_500, 16), 0);
        assert_eq!(leak(0, 62_499, 16), 1);
        assert_eq!(leak(0, 50, 16), 1000);
        assert_eq!(delay_for(1000, 0, 2000), 500);
        assert_eq!(delay_for(900, 0, 1_000_000), 0);
        assert_eq!(DelayMode::NoDelay.threshold_milli(), u64::MAX);
    }

    #[test]
    fn state_fits_target() {
        assert!(
            ReqZone::bytes_per_state() <= 64,
            "{}",
            ReqZone::bytes_per_state()
        );
    }
}
