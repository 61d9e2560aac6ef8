//! Point counting in fixed memory, persistence of points, and the recommendation from the node's statistics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgeguard_store::{
    ActivityLog, DecisionKind, POINT_MS, PointCounter, SpaceSaving, StatsOptions, TrafficStats,
    WINDOW_MS,
};
use proptest::prelude::*;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

/// A point start well after the epoch, aligned to 300 s.
const T0: i64 = 1_431_857_100_000;

#[test]
fn handles_are_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ActivityLog>();
    shareable::<edgeguard_store::ActivityWriter>();
    shareable::<TrafficStats>();
    // 1,024 slots stay near the documented 150 bytes a slot.
    let bytes = SpaceSaving::new(1024).allocated_bytes();
    assert!((100 * 1024..200 * 1024).contains(&bytes), "{bytes}");
}

#[test]
fn few_ips_are_counted_exactly() {
    let mut c = PointCounter::new(16);
    let counts = [(1u32, 5u64), (2, 7), (3, 2)];
    for (ip, n) in counts {
        for i in 0..n {
            assert!(c.record(v4(ip), T0 + i as i64 * 1000).is_none());
        }
    }
    let p = c.current().unwrap();
    assert_eq!(
        (p.point_start_ms, p.requests, p.max_ip_count, p.max_ip_error),
        (T0, 14, 7, 0)
    );
    assert!(c.summary().is_exact());
    // IPv6 and the IPv4-mapped form of an IPv4 address are different clients only if they differ as addresses.
    c.record(IpAddr::V6(Ipv6Addr::LOCALHOST), T0);
    c.record(IpAddr::V6(Ipv4Addr::from(2u32).to_ipv6_mapped()), T0);
    assert_eq!(c.current().unwrap().max_ip_count, 8);
}

#[test]
fn points_roll_over_at_boundaries_and_time_never_goes_back() {
    let mut c = PointCounter::new(8);
    c.record(v4(1), T0 + 299_999);
    c.record_decision(DecisionKind::Passed, T0 + 299_999);
    // A late event is counted in the current point.
    c.record(v4(1), T0 - 5_000);
    let closed = c.record(v4(2), T0 + POINT_MS).unwrap();
    assert_eq!(
        (
            closed.point_start_ms,
            closed.requests,
            closed.max_ip_count,
            closed.passed
        ),
        (T0, 2, 2, 1)
    );
    c.record_decision(DecisionKind::Limited, T0 + POINT_MS + 1);
    c.record_decision(DecisionKind::Blocked, T0 + POINT_MS + 2);
    c.record_decision(DecisionKind::Challenged, T0 + POINT_MS + 3);
    // Idle points in between produce nothing.
    let closed = c.roll(T0 + 10 * POINT_MS).unwrap();
    assert_eq!(closed.point_start_ms, T0 + POINT_MS);
    assert_eq!(
        (
            closed.requests,
            closed.limited,
            closed.blocked,
            closed.challenged
        ),
        (1, 1, 1, 1)
    );
    assert!(c.roll(T0 + 11 * POINT_MS).is_none());
    assert!(c.current().is_none());
}

#[test]
fn a_flood_of_distinct_ips_keeps_memory_fixed_and_the_max_within_bound() {
    const SLOTS: usize = 64;
    let mut s = SpaceSaving::new(SLOTS);
    let bytes = s.allocated_bytes();
    let heavy = v4(0xC000_0201);
    let mut heavy_count = 0u64;
    // 200,000 distinct flood IPs, one request each, and one IP with 5,000 requests spread through it.
    for i in 0..200_000u32 {
        s.add(v4(0x0A00_0000 + i));
        if i % 40 == 0 {
            s.add(heavy);
            heavy_count += 1;
        }
    }
    assert_eq!(heavy_count, 5_000);
    // The map counts slots taken by deletion markers as used, so its capacity can read lower between rehashes;
    // growth would read higher.
    assert!(
        s.allocated_bytes() <= bytes,
        "memory never grows past construction"
    );
    assert!(s.tracked() <= SLOTS);
    let n = s.total();
    let bound = n / SLOTS as u64;
    let max = s.max_count();
    assert!(
        max.lower <= heavy_count && heavy_count <= max.upper,
        "{max:?}"
    );
    assert!(max.upper - max.lower <= bound, "{max:?} bound {bound}");
    // An IP above N/k is guaranteed to be monitored, with an error of at most N/k.
    let (count, error) = s.estimate(heavy).expect("heavy hitter monitored");
    assert!(count >= heavy_count && count - error <= heavy_count && error <= bound);

    // A counter resets to empty without releasing memory.
    s.reset();
    assert_eq!((s.total(), s.tracked(), s.allocated_bytes()), (0, 0, bytes));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Against exact counts: exact while the distinct IPs fit, otherwise the documented bounds.
    #[test]
    fn space_saving_bounds_hold(slots in 1usize..12, stream in proptest::collection::vec(0u32..40, 0..600)) {
        let mut s = SpaceSaving::new(slots);
        let mut exact: HashMap<u32, u64> = HashMap::new();
        for &ip in &stream {
            s.add(v4(ip));
            *exact.entry(ip).or_default() += 1;
        }
        let true_max = exact.values().copied().max().unwrap_or(0);
        let max = s.max_count();
        prop_assert!(max.lower <= true_max && true_max <= max.upper);
        prop_assert!(max.upper - max.lower <= stream.len() as u64 / slots as u64);
        if exact.len() <= slots {
            prop_assert_eq!(max, edgeguard_store::MaxCount { lower: true_max, upper: true_max });
        }
        for (&ip, &n) in &exact {
            if let Some((count, error)) = s.estimate(v4(ip)) {
                prop_assert!(count >= n && count - error <= n);
            } else {
                prop_assert!(n <= stream.len() as u64 / slots as u64);
            }
        }
    }
}

#[test]
fn statistics_persist_across_restarts_and_expire_after_30_days() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let options = StatsOptions {
        slots: 32,
        ..StatsOptions::default()
    };
    {
        let log = ActivityLog::open(&path).unwrap();
        let stats = TrafficStats::new(options, &log);
        // Point 0: ip 1 x 4, ip 2 x 1. Point 1: ip 3 x 2. Point 3: ip 1 x 1.
        for (ip, n, point) in [(1, 4, 0), (2, 1, 0), (3, 2, 1), (1, 1, 3)] {
            for _ in 0..n {
                stats.record_request("a.example", v4(ip), T0 + point * POINT_MS + 10);
                stats.record_decision(
                    "a.example",
                    DecisionKind::Passed,
                    T0 + point * POINT_MS + 10,
                );
            }
        }
        stats.record_request("b.example", v4(9), T0);
        // Points 0 and 1 are closed; point 3 has not ended at this time.
        assert_eq!(stats.flush(T0 + 3 * POINT_MS + 20).unwrap(), 3);
        let pts = stats.points("a.example", T0, T0 + 10 * POINT_MS).unwrap();
        let summary: Vec<_> = pts
            .iter()
            .map(|p| (p.point_start_ms - T0, p.requests, p.max_ip_count))
            .collect();
        assert_eq!(summary, vec![(0, 5, 4), (POINT_MS, 2, 2)]);
        assert_eq!(stats.current("a.example").unwrap().requests, 1);
        // Shutdown persists the unfinished point too.
        assert_eq!(stats.close(T0 + 3 * POINT_MS + 30).unwrap(), 1);
    }
    let log = ActivityLog::open(&path).unwrap();
    let stats = TrafficStats::new(options, &log);
    // Counting resumes in the same point after the restart: the two halves merge.
    stats.record_request("a.example", v4(1), T0 + 3 * POINT_MS + 40);
    stats.record_request("a.example", v4(1), T0 + 3 * POINT_MS + 41);
    stats.flush(T0 + 4 * POINT_MS).unwrap();
    let pts = stats.points("a.example", T0, T0 + 10 * POINT_MS).unwrap();
    assert_eq!(pts.len(), 3);
    assert_eq!(pts[0].passed, 5);
    let merged = pts[2];
    assert_eq!((merged.requests, merged.max_ip_count), (3, 2));
    // The true maximum (3, the same IP in both halves) is within the merged bounds.
    assert!(merged.max_ip_count + merged.max_ip_error >= 3);
    assert_eq!(
        stats.points("b.example", T0, T0 + POINT_MS).unwrap().len(),
        1
    );

    // 30 days later the first points have expired.
    stats.record_request("a.example", v4(1), T0 + WINDOW_MS + POINT_MS);
    stats.flush(T0 + WINDOW_MS + 2 * POINT_MS).unwrap();
    let pts = stats.points("a.example", 0, i64::MAX).unwrap();
    let starts: Vec<i64> = pts.iter().map(|p| p.point_start_ms - T0).collect();
    assert_eq!(starts, vec![3 * POINT_MS, WINDOW_MS + POINT_MS]);
}

#[test]
fn unflushed_points_are_visible_and_in_memory_statistics_work() {
    let stats = TrafficStats::in_memory(StatsOptions {
        slots: 8,
        max_domains: 2,
    });
    for i in 0..3000 {
        stats.record_request("a.example", v4(1), T0 + i);
    }
    stats.record_request("a.example", v4(2), T0 + POINT_MS);
    // Closed by the rollover, not flushed yet.
    let pts = stats.points("a.example", T0, T0 + POINT_MS).unwrap();
    assert_eq!(pts.len(), 1);
    assert_eq!(pts[0].max_ip_count, 3000);
    stats.flush(T0 + 2 * POINT_MS).unwrap();
    assert_eq!(
        stats
            .points("a.example", T0, T0 + 2 * POINT_MS)
            .unwrap()
            .len(),
        2
    );

    // A third domain is over max_domains: dropped and counted.
    stats.record_request("b.example", v4(1), T0);
    stats.record_request("c.example", v4(1), T0);
    assert_eq!(stats.dropped_events(), 1);
    assert!(stats.current("c.example").is_none());
}

#[test]
fn the_node_recommends_from_its_own_statistics() {
    let stats = TrafficStats::in_memory(StatsOptions::default());
    // 40 points; point k has one IP with 3000 + 100 k requests (QPS 10 + k/3).
    let mut expected: Vec<u64> = Vec::new();
    for k in 0..40i64 {
        let n = 3000 + 100 * k;
        expected.push(n as u64);
        for i in 0..n {
            stats.record_request("a.example", v4(7), T0 + k * POINT_MS + i % POINT_MS);
        }
        stats.record_request("a.example", v4(8), T0 + k * POINT_MS);
    }
    let now = T0 + 40 * POINT_MS;
    stats.flush(now).unwrap();
    let r = stats.recommend("a.example", now).unwrap();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    expected.truncate(30);
    assert_eq!(r.top_points, expected);
    assert_eq!(r.points, 40);
    // Points 10..39: counts 4000..6900, sum 163,500, / 9000 = 18.17 -> 19.
    assert_eq!(r.qps, 19);
    assert_eq!(stats.recommend("nobody.example", now).unwrap().qps, 10);
}

#[test]
fn record_outcome_counts_like_request_and_decision_together() {
    let opts = || StatsOptions {
        slots: 8,
        max_domains: 4,
    };
    let (one, two) = (
        TrafficStats::in_memory(opts()),
        TrafficStats::in_memory(opts()),
    );
    let events = [
        (v4(1), DecisionKind::Passed, T0),
        (v4(1), DecisionKind::Limited, T0 + 10),
        (v4(2), DecisionKind::Blocked, T0 + 20),
        // The next point: the first is closed by this event.
        (v4(3), DecisionKind::Challenged, T0 + POINT_MS + 1),
    ];
    for (ip, kind, t) in events {
        one.record_outcome("a.example", ip, kind, t);
        two.record_request("a.example", ip, t);
        two.record_decision("a.example", kind, t);
    }
    assert_eq!(one.current("a.example"), two.current("a.example"));
    assert_eq!(
        one.points("a.example", T0, T0 + 2 * POINT_MS).unwrap(),
        two.points("a.example", T0, T0 + 2 * POINT_MS).unwrap()
    );
    let first = &one.points("a.example", T0, T0 + POINT_MS).unwrap()[0];
    assert_eq!((first.requests, first.max_ip_count), (3, 2));
    assert_eq!((first.passed, first.limited, first.blocked), (1, 1, 1));
}
