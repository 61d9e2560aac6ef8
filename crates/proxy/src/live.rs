//! What the console's live view reads ([`DomainLive`]): per-second request counts of the last ten minutes by
//! outcome ([`LiveRing`]) and the domain's top talkers ([`crate::talkers::Talkers`]), kept per domain in fixed
//! memory and carried across reloads by domain name. A leaf like `stats.rs`: the runtime holds it, the
//! pipeline feeds it, `RunningNode::live` and `RunningNode::top_talkers` read it.
//!
//! Hot path: [`LiveRing::record`] is one load, at most one compare-and-swap (the first request of a second
//! claims its slot and zeroes it) and one relaxed `fetch_add`. No lock, no allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::decision::Decision;
use crate::talkers::Talkers;

/// Seconds the ring keeps: ten minutes at one-second resolution.
pub const LIVE_SECONDS: usize = 600;

/// The outcomes counted, in the order of [`LivePoint::counts`]: served from the cache, served by an upstream,
/// refused by a limit (429/503/514), blocked (403), challenged, upstream errors (502/503/504 the node answered
/// for a failed upstream, or a 5xx an upstream sent), and everything else the node refused itself (400, 404,
/// 413, ...).
pub const LIVE_KINDS: [&str; 7] = [
    "hit",
    "miss",
    "limited",
    "blocked",
    "challenged",
    "upstream_error",
    "other",
];

/// What one request counts as, an index into [`LIVE_KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveKind {
    Hit = 0,
    Miss = 1,
    Limited = 2,
    Blocked = 3,
    Challenged = 4,
    UpstreamError = 5,
    Other = 6,
}

impl LiveKind {
    /// The kind of a finished request: its decision, its status, and whether the cache answered it.
    pub(crate) fn of(decision: Decision, status: u16, from_cache: bool) -> LiveKind {
        match decision {
            Decision::LimitReq | Decision::LimitConn | Decision::IpAccessLimit => LiveKind::Limited,
            Decision::Block => LiveKind::Blocked,
            Decision::Challenge => LiveKind::Challenged,
            Decision::Refused => LiveKind::Other,
            Decision::Pass | Decision::Delay if (500..=599).contains(&status) => {
                LiveKind::UpstreamError
            }
            Decision::Pass | Decision::Delay if from_cache => LiveKind::Hit,
            Decision::Pass | Decision::Delay => LiveKind::Miss,
        }
    }

    /// Whether the node refused the request (the top talkers' `refused`).
    pub(crate) fn refused(self) -> bool {
        matches!(
            self,
            LiveKind::Limited | LiveKind::Blocked | LiveKind::Challenged | LiveKind::Other
        )
    }
}

struct Second {
    /// The Unix second the counts belong to.
    stamp: AtomicU64,
    counts: [AtomicU32; 7],
}

/// Requests per second of the last [`LIVE_SECONDS`], by kind, in one array of atomics allocated up front.
///
/// A slot is reused every ten minutes: the first request of a new second swaps the slot's stamp and zeroes its
/// counts. A request of the same second racing that first one may be counted before the zeroing and lost; a
/// request of an older second than the slot holds (a slow request finishing ten minutes late) is not counted.
pub(crate) struct LiveRing {
    secs: Box<[Second]>,
}

impl std::fmt::Debug for LiveRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRing").finish_non_exhaustive()
    }
}

impl Default for LiveRing {
    fn default() -> Self {
        LiveRing {
            secs: (0..LIVE_SECONDS)
                .map(|_| Second {
                    stamp: AtomicU64::new(0),
                    counts: Default::default(),
                })
                .collect(),
        }
    }
}

/// Counts of one point of a [`LiveSeries`], in [`LIVE_KINDS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LivePoint {
    /// Unix second the point starts at.
    pub start_s: u64,
    pub counts: [u64; 7],
}

/// The last ten minutes of a domain at `step_s` seconds per point, oldest first; the last point is the one
/// running now (partial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSeries {
    pub step_s: u64,
    /// Unix second the series was read at.
    pub now_s: u64,
    pub points: Vec<LivePoint>,
}

impl LiveRing {
    /// Hot path: see the module comment.
    pub(crate) fn record(&self, unix_s: u64, kind: LiveKind) {
        let slot = &self.secs[(unix_s % LIVE_SECONDS as u64) as usize];
        let stamp = slot.stamp.load(Ordering::Acquire);
        if stamp != unix_s {
            if stamp > unix_s {
                return;
            }
            if slot
                .stamp
                .compare_exchange(stamp, unix_s, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                for c in &slot.counts {
                    c.store(0, Ordering::Relaxed);
                }
            } else if slot.stamp.load(Ordering::Acquire) != unix_s {
                return;
            }
        }
        slot.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of the last [`LIVE_SECONDS`] up to `now_s`, summed per `step_s` (1..=60) seconds.
    pub(crate) fn series(&self, now_s: u64, step_s: u64) -> LiveSeries {
        let step_s = step_s.clamp(1, 60);
        let first = (now_s + 1).saturating_sub(LIVE_SECONDS as u64);
        let first = first - first % step_s;
        let mut points: Vec<LivePoint> = Vec::with_capacity(LIVE_SECONDS / step_s as usize + 1);
        let mut s = first;
        while s <= now_s {
            let mut p = LivePoint {
                start_s: s,
                counts: [0; 7],
            };
            for sec in s..(s + step_s).min(now_s + 1) {
                let slot = &self.secs[(sec % LIVE_SECONDS as u64) as usize];
                if slot.stamp.load(Ordering::Acquire) == sec {
                    for (c, a) in p.counts.iter_mut().zip(&slot.counts) {
                        *c += u64::from(a.load(Ordering::Relaxed));
                    }
                }
            }
            points.push(p);
            s += step_s;
        }
        LiveSeries {
            step_s,
            now_s,
            points,
        }
    }
}

/// The live view of one domain.
#[derive(Debug, Default)]
pub(crate) struct DomainLive {
    pub ring: LiveRing,
    pub talkers: Talkers,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_second_and_forgets_after_ten_minutes() {
        let r = LiveRing::default();
        let t0 = 1_700_000_000;
        for _ in 0..5 {
            r.record(t0, LiveKind::Miss);
        }
        r.record(t0, LiveKind::Blocked);
        r.record(t0 + 1, LiveKind::Hit);
        let s = r.series(t0 + 1, 1);
        assert_eq!(s.points.len(), LIVE_SECONDS);
        let last = s.points[s.points.len() - 1];
        let before = s.points[s.points.len() - 2];
        assert_eq!((last.start_s, last.counts[0]), (t0 + 1, 1));
        assert_eq!((before.counts[1], before.counts[3]), (5, 1));
        // Ten-second steps sum the seconds.
        let s10 = r.series(t0 + 1, 10);
        let total: u64 = s10
            .points
            .iter()
            .map(|p| p.counts.iter().sum::<u64>())
            .sum();
        assert_eq!(total, 7);
        // The slot of t0 is reused ten minutes later and starts from zero.
        r.record(t0 + LIVE_SECONDS as u64, LiveKind::Limited);
        let s = r.series(t0 + LIVE_SECONDS as u64, 1);
        let total: u64 = s.points.iter().map(|p| p.counts.iter().sum::<u64>()).sum();
        assert_eq!(
            total, 2,
            "t0's six are gone; t0+1's hit and the new limited stay"
        );
        // A request of a second older than its slot holds is not counted.
        r.record(t0, LiveKind::Miss);
        assert_eq!(r.series(t0 + LIVE_SECONDS as u64, 1), s);
    }
}
