//! The per-second limit: exact cases, an exact sliding-log model, and the memory bound.

use edgeguard_limit::persec::{MAX_LIMIT, PerSecondTable, RING, SecondState};
use edgeguard_limit::{Clock, Eviction, FakeClock};
use proptest::prelude::*;

fn table() -> PerSecondTable {
    PerSecondTable::new(1 << 20).unwrap()
}

#[test]
fn eleven_in_one_second_with_n_10_refuse_exactly_one() {
    let t = table();
    let clock = FakeClock::new(1_000_000);
    let ip = [10, 0, 0, 1];
    let mut refused = Vec::new();
    for i in 0..11 {
        if !t.check(&ip, 10, clock.now_ms()) {
            refused.push(i);
        }
        clock.advance(99);
    }
    assert_eq!(refused, [10]);
    // Same 11 requests all in one millisecond: the same single refusal.
    let t = table();
    let refused = (0..11).filter(|_| !t.check(&ip, 10, 5_000)).count();
    assert_eq!(refused, 1);
}

#[test]
fn eleven_spread_over_two_seconds_pass() {
    let t = table();
    for i in 0..11u64 {
        assert!(t.check(b"k", 10, 10_000 + i * 101), "request {i}");
    }
}

#[test]
fn sliding_not_calendar_seconds() {
    let t = table();
    // 10 at the end of one calendar second, then 1 at the start of the next: still within 1000 ms.
    for i in 0..10u64 {
        assert!(t.check(b"k", 10, 1_900 + i));
    }
    assert!(!t.check(b"k", 10, 2_001));
    assert!(!t.check(b"k", 10, 2_899));
    assert!(
        t.check(b"k", 10, 2_900),
        "the first admission left the window"
    );
}

#[test]
fn paced_at_exactly_n_per_second_is_never_refused() {
    // Exact up to N = RING (limits that divide 1000 ms evenly, so the pacing is exactly N per second).
    for n in [1u32, 2, 4, 5, 8, 10] {
        let t = table();
        let step = 1000 / u64::from(n);
        for i in 0..(20 * u64::from(n)) {
            assert!(t.check(b"k", n, 7 + i * step), "n {n} request {i}");
        }
        // One more in between is refused.
        assert!(!t.check(b"k", n, 7 + (20 * u64::from(n) - 1) * step + step / 2));
    }
}

#[test]
fn paced_above_the_ring_admits_n_per_second_less_one_group_at_most() {
    for n in [20u32, 25, 40, 50, 100, 250] {
        let t = table();
        let g = u64::from(n.div_ceil(RING as u32));
        let step = 1000 / u64::from(n);
        let seconds = 20;
        let admitted = (0..(seconds * u64::from(n)))
            .filter(|i| t.check(b"k", n, 7 + i * step))
            .count() as u64;
        // Never more than N in a second; short of N per second by at most one group's early refusals.
        assert!(admitted <= seconds * u64::from(n), "n {n}");
        assert!(
            admitted + seconds * (g - 1) >= seconds * u64::from(n),
            "n {n}: {admitted} admitted"
        );
    }
}

#[test]
fn refused_requests_are_not_counted() {
    let t = table();
    for _ in 0..3 {
        assert!(t.check(b"k", 3, 0));
    }
    for ms in 1..1000 {
        assert!(!t.check(b"k", 3, ms));
    }
    // All three admissions were at 0; the hammering did not push the window.
    for _ in 0..3 {
        assert!(t.check(b"k", 3, 1000));
    }
    assert!(!t.check(b"k", 3, 1000));
}

#[test]
fn keys_are_independent_and_zero_refuses() {
    let t = table();
    assert!(t.check(b"a", 1, 0));
    assert!(!t.check(b"a", 1, 1));
    assert!(t.check(b"b", 1, 1));
    assert!(!t.check(b"c", 0, 1));
    assert_eq!(t.in_use(), 2, "a refused new key is not stored");
}

#[test]
fn lru_flood_of_distinct_keys_stays_within_budget_and_evicts_old_keys() {
    let t = PerSecondTable::with_eviction(64 * 1024, Eviction::Lru).unwrap();
    let cap = t.capacity();
    assert!(t.held_bytes() <= 64 * 1024);
    assert!(PerSecondTable::bytes_per_key() <= 60);
    assert!(cap >= 64 * 1024 / 60 * 9 / 10, "{cap}");
    // One real client at its limit, then a flood of spoofed addresses, all within one second.
    for _ in 0..5 {
        assert!(t.check(b"real", 5, 0));
    }
    for i in 0..(10 * cap as u32) {
        assert!(t.check(&i.to_be_bytes(), 5, 1 + u64::from(i) / 1000));
        assert!(t.in_use() <= cap);
    }
    assert_eq!(t.in_use(), cap);
    // The flood evicted the real client: it starts afresh (documented: eviction forgets).
    assert!(t.check(b"real", 5, 1_000_000));
    assert!(t.evictions() > 0);
}

#[test]
fn frequency_aware_flood_keeps_a_client_at_its_limit() {
    let t = PerSecondTable::new(64 * 1024).unwrap();
    let cap = t.capacity();
    assert!(t.held_bytes() <= 64 * 1024);
    // A real client at its limit every second while a flood of one-shot addresses, 10x the table per
    // second, passes through.
    let mut now = 0;
    for round in 0..5u32 {
        for _ in 0..5 {
            assert!(t.check(b"real", 5, now));
        }
        for i in 0..(10 * cap as u32) {
            // One-shot keys are never refused, stored or not.
            assert!(t.check(&(round * 10_000_000 + i).to_be_bytes(), 5, now + 1));
        }
        assert!(t.in_use() <= cap);
        // Still within the same second: the client was kept, so its 6th request is refused.
        assert!(!t.check(b"real", 5, now + 2), "round {round}");
        now += 1_000;
    }
    assert!(t.admission_refusals() > 0);
}

#[test]
fn large_limits_never_admit_more_than_n_in_a_second() {
    let t = table();
    let n = 1000;
    let admitted = (0..3000).filter(|i| t.check(b"k", n, 50 + i / 3)).count();
    assert_eq!(admitted, 1000);
    const { assert!(MAX_LIMIT >= 1_000_000) };
}

/// The exact model: a log of admission times.
fn model(log: &mut Vec<u64>, limit: u32, now: u64) -> bool {
    log.retain(|&t| now - t < 1000);
    if log.len() < limit as usize {
        log.push(now);
        true
    } else {
        false
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Up to N = RING every decision equals the exact sliding log's, over gaps that cross the rebase of
    /// offsets (65.5 s).
    #[test]
    fn exact_up_to_ring(
        limit in 1u32..=RING as u32,
        gaps in prop::collection::vec(prop_oneof![4 => 0u64..40, 2 => 0u64..1200, 1 => 0u64..200_000], 1..600),
    ) {
        let mut s = SecondState::new(0);
        let mut log = Vec::new();
        let mut now = 0;
        for (i, g) in gaps.iter().enumerate() {
            now += g;
            prop_assert_eq!(s.check(limit, now), model(&mut log, limit, now), "event {} at {}", i, now);
        }
    }

    /// Above RING: never more than N admissions in any 1000 ms, and never refused while the exact count is
    /// below N - (g - 1) with g = ceil(N / RING).
    #[test]
    fn grouped_is_safe_and_close(
        limit in (RING as u32 + 1)..600,
        gaps in prop::collection::vec(prop_oneof![6 => 0u64..3, 1 => 0u64..1500], 1..3000),
    ) {
        let slack = limit.div_ceil(RING as u32) as usize - 1;
        let mut s = SecondState::new(0);
        let mut log: Vec<u64> = Vec::new();
        let mut now = 0;
        for g in gaps {
            now += g;
            log.retain(|&t| now - t < 1000);
            let live = log.len();
            let ok = s.check(limit, now);
            if ok {
                prop_assert!(live < limit as usize, "admitted with {} in the last second", live);
                log.push(now);
            } else {
                prop_assert!(live + slack >= limit as usize, "refused with only {} in the last second", live);
            }
        }
    }
}

#[test]
fn concurrent_checks_admit_exactly_n_per_second() {
    let t = std::sync::Arc::new(table());
    let clock = FakeClock::new(50_000);
    let admitted: usize = (0..4)
        .map(|_| {
            let t = std::sync::Arc::clone(&t);
            let clock = clock.clone();
            std::thread::spawn(move || {
                (0..500)
                    .filter(|_| t.check(b"ip", 100, clock.now_ms()))
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(admitted, 100);
}
