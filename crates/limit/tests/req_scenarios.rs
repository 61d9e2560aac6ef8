//! The scenarios of nginx's limit_req tests, replayed on the algorithm with a fake clock.

use std::sync::Arc;

use edgeguard_limit::{
    Clock, DelayMode, FakeClock, Rate, ReqDecision, ReqLimit, ReqStatus, ReqZone, limit_req,
};

/// A monotonic clock's value some days after boot, as nginx sees it.
const BOOT: u64 = 1_000_000_000;

fn zone(name: &str, rate: &str) -> Arc<ReqZone> {
    Arc::new(ReqZone::new(name, rate.parse::<Rate>().unwrap(), 1 << 20).unwrap())
}

fn lim(zone: &Arc<ReqZone>, burst: u32, delay: DelayMode) -> ReqLimit {
    ReqLimit {
        zone: Arc::clone(zone),
        burst,
        delay,
        dry_run: false,
    }
}

fn one(clock: &FakeClock, l: &ReqLimit, key: &[u8]) -> ReqDecision {
    limit_req(clock.now_ms(), std::slice::from_ref(l), &[key])
}

/// A key's state and pin count.
fn state_of(z: &ReqZone, key: &[u8]) -> (edgeguard_limit::ReqState, u32) {
    let h = z.store().hash(key);
    let g = z.store().lock(h);
    let r = g.peek(h, key).expect("state present");
    (*g.state(r), g.pins(r))
}

fn status(d: ReqDecision) -> &'static str {
    d.status.map_or("-", |s| s.as_str())
}

#[test]
fn quick_burst_then_rejects_are_not_charged() {
    // 2r/s burst=1 nodelay: 5 quick GETs.
    let c = FakeClock::new(BOOT);
    let z = zone("one", "2r/s");
    let l = lim(&z, 1, DelayMode::NoDelay);
    let got: Vec<_> = (0..5).map(|_| status(one(&c, &l, b"127.0.0.1"))).collect();
    assert_eq!(
        got,
        ["PASSED", "PASSED", "REJECTED", "REJECTED", "REJECTED"]
    );
    // Rejects in between charged nothing: 499 ms later still too early, 500 ms later it passes.
    c.advance(499);
    let d = one(&c, &l, b"127.0.0.1");
    assert_eq!(
        (d.status, d.excess_milli),
        (Some(ReqStatus::Rejected), 1002)
    );
    c.advance(1);
    let d = one(&c, &l, b"127.0.0.1");
    assert_eq!((d.status, d.excess_milli), (Some(ReqStatus::Passed), 1000));
    assert_eq!(d.delay_ms, 0, "nodelay above zero excess is still PASSED");
}

#[test]
fn thousand_per_second_burst_1() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "1000r/s");
    let l = lim(&z, 1, DelayMode::Default);
    assert_eq!(one(&c, &l, b"k").status, Some(ReqStatus::Passed));
    c.advance(100);
    let d = one(&c, &l, b"k");
    // 100 ms drain 100 requests at this rate.
    assert_eq!(
        (d.status, d.excess_milli, d.delay_ms),
        (Some(ReqStatus::Passed), 0, 0)
    );
    // Without the pause the excess is 1.000, which default delay turns into 1000*1000/1000000 = 1 ms.
    let d = one(&c, &l, b"k");
    assert_eq!(
        (d.status, d.excess_milli, d.delay_ms),
        (Some(ReqStatus::Delayed), 1000, 1)
    );
}

/// nginx-tests limit_req2.t: `fast($arg_b, 1000r/s)` then `slow($arg_a, 1r/m)`, no burst.
fn two_zones(start: u64, delay: DelayMode) -> Vec<(&'static str, &'static str)> {
    let c = FakeClock::new(start);
    let fast = zone("fast", "1000r/s");
    let slow = zone("slow", "1r/m");
    let limits = [lim(&fast, 0, delay), lim(&slow, 0, delay)];
    let mut out = Vec::new();
    for (b, a) in [(&b"1"[..], &b""[..]), (b"", b"1"), (b"2", b"2"), (b"", b"")] {
        let first = status(limit_req(c.now_ms(), &limits, &[b, a]));
        c.advance(100);
        let second = status(limit_req(c.now_ms(), &limits, &[b, a]));
        c.advance(100);
        out.push((first, second));
    }
    out
}

#[test]
fn two_zones_as_limit_req2() {
    let expect = [
        ("PASSED", "PASSED"),
        ("PASSED", "REJECTED"),
        ("PASSED", "REJECTED"),
        ("-", "-"),
    ];
    assert_eq!(two_zones(BOOT, DelayMode::Default), expect);
    assert_eq!(two_zones(BOOT, DelayMode::NoDelay), expect);
}

#[test]
fn new_non_last_state_starts_at_zero_time() {
    // Its first commit drains from `last = 0`: right after boot the clock has not run long enough to drain a
    // whole request at 1000r/s (1 ms), so nginx charges 1000 and delays 1 ms.
    let c = FakeClock::new(0);
    let fast = zone("fast", "1000r/s");
    let slow = zone("slow", "1r/m");
    let limits = [
        lim(&fast, 0, DelayMode::Default),
        lim(&slow, 0, DelayMode::Default),
    ];
    let d = limit_req(c.now_ms(), &limits, &[b"1", b""]);
    assert_eq!(
        (d.status, d.delay_ms, d.limit),
        (Some(ReqStatus::Delayed), 1, Some(0))
    );
    assert_eq!(d.excess_milli, 1000);
    // At 1 s or later it drains to 0, as in the test above.
    c.set(1);
    let d = limit_req(c.now_ms(), &limits, &[b"other", b""]);
    assert_eq!((d.status, d.excess_milli), (Some(ReqStatus::Passed), 0));
}

#[test]
fn later_reject_does_not_charge_earlier_zones() {
    let c = FakeClock::new(BOOT);
    let a = zone("a", "1r/s");
    let b = zone("b", "1r/m");
    let limits = [
        lim(&a, 10, DelayMode::NoDelay),
        lim(&b, 0, DelayMode::NoDelay),
    ];
    assert_eq!(
        status(limit_req(c.now_ms(), &limits, &[b"x", b"y"])),
        "PASSED"
    );
    let before = state_of(&a, b"x");
    for _ in 0..5 {
        let d = limit_req(c.now_ms(), &limits, &[b"x", b"y"]);
        assert_eq!((d.status, d.limit), (Some(ReqStatus::Rejected), Some(1)));
    }
    assert_eq!(state_of(&a, b"x"), before);
    assert_eq!(before.1, 0, "pins released");
}

#[test]
fn thirty_per_minute_burst_2_delay_1() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "30r/m");
    let l = lim(&z, 2, DelayMode::Delay(1));
    let r1 = one(&c, &l, b"ip");
    let r2 = one(&c, &l, b"ip");
    let r3 = one(&c, &l, b"ip");
    c.advance(200);
    let r4 = one(&c, &l, b"ip");
    assert_eq!(r1.status, Some(ReqStatus::Passed));
    assert_eq!(
        (r2.status, r2.excess_milli),
        (Some(ReqStatus::Passed), 1000)
    );
    assert_eq!(
        (r3.status, r3.delay_ms, r3.wait_ms()),
        (Some(ReqStatus::Delayed), 2000, 2000)
    );
    assert_eq!(
        (r4.status, r4.excess_milli),
        (Some(ReqStatus::Rejected), 2900)
    );
}

#[test]
fn two_per_second_burst_3_default_delay() {
    // Five concurrent requests, read at +0, +20, +20, +40, +40 ms.
    let c = FakeClock::new(BOOT);
    let z = zone("one", "2r/s");
    let l = lim(&z, 3, DelayMode::Default);
    let mut got = Vec::new();
    for step in [0, 20, 0, 20, 0] {
        c.advance(step);
        let d = one(&c, &l, b"ip");
        got.push((status(d), d.delay_ms));
    }
    assert_eq!(
        got,
        [
            ("PASSED", 0),
            ("DELAYED", 480),
            ("DELAYED", 980),
            ("DELAYED", 1460),
            ("REJECTED", 0)
        ]
    );
}

#[test]
fn dry_run_row() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "1r/m");
    let dry = |burst| ReqLimit {
        dry_run: true,
        ..lim(&z, burst, DelayMode::Default)
    };
    let d1 = one(&c, &dry(2), b"ip");
    let d2 = one(&c, &dry(2), b"ip");
    let d3 = one(&c, &dry(0), b"ip");
    let d4 = one(&c, &lim(&z, 0, DelayMode::Default), b"ip");
    let d5 = limit_req::<edgeguard_limit::Table<_>>(c.now_ms(), &[], &[]);
    assert_eq!(status(d1), "PASSED");
    assert_eq!(
        (status(d2), d2.delay_ms, d2.wait_ms()),
        ("DELAYED_DRY_RUN", 62_500, 0)
    );
    assert_eq!((status(d3), d3.excess_milli), ("REJECTED_DRY_RUN", 2000));
    // The dry-run delay was charged, the dry-run reject was not.
    assert_eq!((status(d4), d4.excess_milli), ("REJECTED", 2000));
    assert_eq!(d5, ReqDecision::default());
}

#[test]
fn leak_remainder_lost_at_50_ms() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "1r/m");
    let l = lim(&z, 20, DelayMode::NoDelay);
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(one(&c, &l, b"ip").excess_milli);
        c.advance(50);
    }
    assert_eq!(got, (0..12).map(|i| i * 1000).collect::<Vec<_>>());
}

#[test]
fn pipelined_requests_step_by_1000() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "5r/s");
    let l = lim(&z, 10, DelayMode::NoDelay);
    let got: Vec<_> = (0..6).map(|_| one(&c, &l, b"ip").excess_milli).collect();
    assert_eq!(got, [0, 1000, 2000, 3000, 4000, 5000]);
}

#[test]
fn one_per_minute_boundary() {
    for (wait, expect) in [(62_500, ReqStatus::Passed), (62_499, ReqStatus::Rejected)] {
        let c = FakeClock::new(BOOT);
        let z = zone("one", "1r/m");
        let l = lim(&z, 0, DelayMode::Default);
        assert_eq!(one(&c, &l, b"ip").status, Some(ReqStatus::Passed));
        c.advance(wait);
        assert_eq!(one(&c, &l, b"ip").status, Some(expect), "after {wait} ms");
    }
}

#[test]
fn clock_going_back() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "1000r/s");
    let l = lim(&z, 5, DelayMode::NoDelay);
    assert_eq!(one(&c, &l, b"k").excess_milli, 0);
    // 30 s back: ms = 0, nothing drains and `last` stays.
    c.set(BOOT - 30_000);
    assert_eq!(one(&c, &l, b"k").excess_milli, 1000);
    // 70 s back: ms = 1, drains 1000 and `last` moves back.
    c.set(BOOT - 70_000);
    assert_eq!(one(&c, &l, b"k").excess_milli, 1000);
    // So at BOOT, 70 s have passed.
    c.set(BOOT);
    assert_eq!(one(&c, &l, b"k").excess_milli, 0);
}

#[test]
fn empty_and_oversized_keys_are_skipped() {
    let c = FakeClock::new(BOOT);
    let z = zone("one", "1r/m");
    let l = lim(&z, 0, DelayMode::Default);
    let huge = vec![b'x'; 65_536];
    for _ in 0..3 {
        assert_eq!(one(&c, &l, b""), ReqDecision::default());
        assert_eq!(one(&c, &l, &huge), ReqDecision::default());
    }
    assert_eq!(z.in_use(), 0);
    // 65,535 bytes is still a key: it takes ~2,000 slots of the 1 MiB zone and is limited.
    let max = vec![b'y'; 65_535];
    assert_eq!(one(&c, &l, &max).status, Some(ReqStatus::Passed));
    assert_eq!(one(&c, &l, &max).status, Some(ReqStatus::Rejected));
}

#[test]
fn largest_delay_wins_and_ties_keep_the_later_limit() {
    let c = FakeClock::new(BOOT);
    let a = zone("a", "1r/s");
    let b = zone("b", "1r/s");
    let z = zone("z", "2r/s");
    let limits = [
        lim(&a, 5, DelayMode::Default),
        lim(&b, 5, DelayMode::Default),
        lim(&z, 5, DelayMode::Default),
    ];
    limit_req(c.now_ms(), &limits, &[b"k", b"k", b"k"]);
    let d = limit_req(c.now_ms(), &limits, &[b"k", b"k", b"k"]);
    // a and b both give 1000 ms, z gives 500: b (met first in the reverse walk) wins.
    assert_eq!(
        (d.status, d.delay_ms, d.limit),
        (Some(ReqStatus::Delayed), 1000, Some(1))
    );
}

#[test]
fn more_limits_than_the_inline_pins() {
    let c = FakeClock::new(BOOT);
    let zones: Vec<_> = (0..10).map(|i| zone(&format!("z{i}"), "1r/s")).collect();
    let limits: Vec<_> = zones
        .iter()
        .map(|z| lim(z, 1, DelayMode::NoDelay))
        .collect();
    let keys = [&b"k"[..]; 10];
    assert_eq!(status(limit_req(c.now_ms(), &limits, &keys)), "PASSED");
    assert_eq!(status(limit_req(c.now_ms(), &limits, &keys)), "PASSED");
    let d = limit_req(c.now_ms(), &limits, &keys);
    assert_eq!((d.status, d.limit), (Some(ReqStatus::Rejected), Some(0)));
    for z in &zones {
        assert_eq!(z.in_use(), 1);
    }
}

/// A cluster-scoped zone charges what other nodes admitted: the bucket fills as if they had come here, stops at
/// a full bucket, and drains at the rate.
#[test]
fn requests_charged_from_elsewhere_fill_the_bucket_up_to_full() {
    let clock = FakeClock::new(BOOT);
    let z = zone("shared", "10r/s");
    let l = lim(&z, 5, DelayMode::NoDelay);
    assert_eq!(status(one(&clock, &l, b"k")), "PASSED");
    // Three admitted elsewhere: two more fit in the burst of five, then the bucket is full.
    z.charge(b"k", clock.now_ms(), 3, 5_000);
    assert_eq!(state_of(&z, b"k").0.excess, 3_000);
    assert_eq!(status(one(&clock, &l, b"k")), "PASSED");
    assert_eq!(status(one(&clock, &l, b"k")), "PASSED");
    assert_eq!(status(one(&clock, &l, b"k")), "REJECTED");
    // A late batch of 50 leaves a full bucket, not 50 requests to drain: 100 ms frees one request.
    z.charge(b"k", clock.now_ms(), 50, 5_000);
    assert_eq!(state_of(&z, b"k").0.excess, 5_000);
    clock.advance(100);
    assert_eq!(status(one(&clock, &l, b"k")), "PASSED");
    assert_eq!(status(one(&clock, &l, b"k")), "REJECTED");
    // A key new to the zone starts from what was charged.
    z.charge(b"new", clock.now_ms(), 5, 5_000);
    assert_eq!(status(one(&clock, &l, b"new")), "REJECTED");
}
