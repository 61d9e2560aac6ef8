//! The default IP access limit (SPEC section 3, seed 003): the mean of the 30 busiest five-minute points of the
//! last 30 days, each point valued at its busiest single IP's request count / 300, rounded up, at least 10.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// Length of a statistics point: 288 of them make a day.
pub const POINT_MS: i64 = 300_000;
/// Seconds in a point: a point's count divided by this is its QPS.
pub const POINT_SECONDS: u64 = 300;
pub const POINTS_PER_DAY: usize = 288;
/// How many of the busiest points are averaged.
pub const TOP_POINTS: usize = 30;
/// The recommendation is never below this.
pub const MIN_QPS: u32 = 10;
/// The span the recommendation looks at, and the retention of statistics points.
pub const WINDOW_MS: i64 = 30 * 86_400_000;

/// Start of the point containing `time_ms`: points are aligned to Unix time, so every node and every log agree on
/// their boundaries.
pub fn point_start(time_ms: i64) -> i64 {
    time_ms.div_euclid(POINT_MS) * POINT_MS
}

/// A recommended IP access limit and what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The limit to propose: `max(MIN_QPS, ceil(sum(top_points) / (300 * top_points.len())))`, or `MIN_QPS` when
    /// there were no points.
    pub qps: u32,
    /// The same value before the floor of `MIN_QPS` (0 when there were no points).
    pub raw_qps: u64,
    /// How many points were considered.
    pub points: usize,
    /// The busiest points' max single-IP request counts, busiest first (at most `TOP_POINTS`).
    pub top_points: Vec<u64>,
}

/// Recommends a limit from per-point counts, each the highest request count of any single IP in one five-minute
/// point. Every value given is a point (callers pass the points that had traffic in the window). Computed in
/// integers: `ceil(a / b)` of the exact sum, so no point value is ever rounded before averaging.
pub fn recommend(point_counts: impl IntoIterator<Item = u64>) -> Recommendation {
    let mut top: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(TOP_POINTS + 1);
    let mut points = 0usize;
    for count in point_counts {
        points += 1;
        if top.len() < TOP_POINTS {
            top.push(Reverse(count));
        } else if top.peek().is_some_and(|Reverse(min)| count > *min) {
            top.pop();
            top.push(Reverse(count));
        }
    }
    let mut top_points: Vec<u64> = top.into_iter().map(|Reverse(c)| c).collect();
    top_points.sort_unstable_by(|a, b| b.cmp(a));
    let raw_qps = if top_points.is_empty() {
        0
    } else {
        let sum: u128 = top_points.iter().map(|&c| u128::from(c)).sum();
        let divisor = u128::from(POINT_SECONDS) * top_points.len() as u128;
        u64::try_from(sum.div_ceil(divisor)).unwrap_or(u64::MAX)
    };
    let qps = u32::try_from(raw_qps).unwrap_or(u32::MAX).max(MIN_QPS);
    Recommendation {
        qps,
        raw_qps,
        points,
        top_points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_points_gives_the_floor() {
        let r = recommend([]);
        assert_eq!((r.qps, r.raw_qps, r.points), (10, 0, 0));
        assert!(r.top_points.is_empty());
    }

    #[test]
    fn fewer_than_thirty_points_average_what_there_is() {
        // (6000 + 3001) / (300 * 2) = 15.0016... -> 16
        let r = recommend([6000, 3001]);
        assert_eq!((r.qps, r.raw_qps, r.points), (16, 16, 2));
        assert_eq!(r.top_points, vec![6000, 3001]);
        // exactly 15.0 stays 15
        assert_eq!(recommend([6000, 3000]).qps, 15);
    }

    #[test]
    fn only_the_thirty_highest_count() {
        let mut counts: Vec<u64> = (1..=30).map(|_| 30_000).collect();
        counts.extend((0..1000).map(|i| i % 7));
        let r = recommend(counts);
        assert_eq!((r.qps, r.points, r.top_points.len()), (100, 1030, 30));
    }

    #[test]
    fn floor_applies_after_rounding() {
        assert_eq!(recommend([1]).raw_qps, 1);
        assert_eq!(recommend([1]).qps, 10);
        assert_eq!(recommend([300 * 11]).qps, 11);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let r = recommend(vec![u64::MAX; 40]);
        assert_eq!(r.qps, u32::MAX);
        assert_eq!(r.raw_qps, u64::MAX.div_ceil(300));
    }

    #[test]
    fn points_align_to_unix_time() {
        assert_eq!(point_start(0), 0);
        assert_eq!(point_start(299_999), 0);
        assert_eq!(point_start(300_000), 300_000);
        assert_eq!(point_start(-1), -300_000);
    }
}
