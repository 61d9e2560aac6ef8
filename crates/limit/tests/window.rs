//! Sliding-window counters against an exact model, and their memory bound.

use edgeguard_limit::Eviction;
use edgeguard_limit::window::{
    BUCKETS, MAX_TRACKED, StatusSel, WindowCounts, WindowError, WindowSpec, WindowTable,
};
use proptest::prelude::*;

fn spec(interval_s: u32, tracked: &[&str]) -> WindowSpec {
    WindowSpec {
        interval_s,
        tracked: tracked.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

#[test]
fn counts_requests_responses_and_selectors() {
    let t = WindowTable::new(&spec(10, &["404", "4xx", "5xx"]), 1 << 20).unwrap();
    assert_eq!(t.counts(b"ip", 0), None);
    assert_eq!(t.record_status(b"ip", 0, 404), None, "no window yet");
    let c = t.record_request(b"ip", 1_000);
    assert_eq!(
        (c.requests, c.responses, c.status()),
        (1, 0, &[0, 0, 0][..])
    );
    t.record_request(b"ip", 1_100);
    let c = t.record_status(b"ip", 1_200, 404).unwrap();
    assert_eq!(
        (c.requests, c.responses, c.status()),
        (2, 1, &[1, 1, 0][..])
    );
    let c = t.record_status(b"ip", 1_300, 403).unwrap();
    assert_eq!(c.status(), &[1, 2, 0]);
    let c = t.record_status(b"ip", 1_400, 502).unwrap();
    assert_eq!((c.responses, c.status()), (3, &[1, 2, 1][..]));
    // Other keys are apart.
    assert_eq!(t.record_request(b"other", 1_500).requests, 1);
    // 10 s later the first bucket (1-2 s) has left the window.
    assert_eq!(t.counts(b"ip", 10_999).unwrap().requests, 2);
    let c = t.counts(b"ip", 11_000).unwrap();
    assert_eq!(
        (c.requests, c.responses, c.status()),
        (0, 0, &[0, 0, 0][..])
    );
    assert_eq!(t.record_request(b"ip", 11_000).requests, 1);
}

#[test]
fn spec_errors() {
    assert_eq!(
        WindowTable::new(&spec(5, &[]), 1 << 20).err(),
        Some(WindowError::Interval(5))
    );
    let many = vec!["404"; MAX_TRACKED + 1];
    assert!(matches!(
        WindowTable::new(&spec(60, &many), 1 << 20),
        Err(WindowError::TooManyTracked(_))
    ));
    assert!(matches!(
        WindowTable::new(&spec(60, &[]), 64),
        Err(WindowError::TooSmall { .. })
    ));
}

#[test]
fn lru_flood_of_distinct_keys_stays_within_budget() {
    let size = 128 * 1024;
    let t = WindowTable::with_eviction(&spec(60, &["404"]), size, Eviction::Lru).unwrap();
    let cap = t.capacity();
    assert!(t.held_bytes() <= size);
    assert!(cap * t.bytes_per_key() <= size);
    for _ in 0..5 {
        t.record_request(b"real", 0);
    }
    for i in 0..(5 * cap as u32) {
        let c = t.record_request(&i.to_be_bytes(), 1 + u64::from(i));
        assert_eq!(c.requests, 1);
        assert!(t.in_use() <= cap);
    }
    assert_eq!(t.in_use(), cap);
    // The real key was evicted: it restarts from zero.
    assert_eq!(t.counts(b"real", 5 * cap as u64), None);
    assert!(t.evictions() >= 4 * cap as u64);
    assert_eq!(t.admission_refusals(), 0);
    assert_eq!(t.record_request(b"real", 5 * cap as u64).requests, 1);
}

#[test]
fn older_clock_reads_count_in_the_newest_bucket() {
    let t = WindowTable::new(&spec(10, &[]), 1 << 16).unwrap();
    t.record_request(b"k", 5_000);
    assert_eq!(t.record_request(b"k", 4_000).requests, 2);
    assert_eq!(t.counts(b"k", 5_000).unwrap().requests, 2);
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Request,
    Status(u16),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => Just(Ev::Request),
        2 => prop_oneof![Just(200u16), Just(404), Just(403), Just(500), Just(502), 100u16..600].prop_map(Ev::Status),
    ]
}

fn sel() -> impl Strategy<Value = StatusSel> {
    prop_oneof![
        prop_oneof![Just(404u16), Just(200), Just(500), 100u16..600].prop_map(StatusSel::Code),
        (1u8..=5).prop_map(StatusSel::Class),
    ]
}

/// Counts of `events` (time, key, event) for `key` whose time lies in `from..=to`.
fn model(
    events: &[(u64, usize, Ev)],
    key: usize,
    tracked: &[StatusSel],
    from: u64,
    to: u64,
) -> (u64, u64, Vec<u64>) {
    let mut out = (0, 0, vec![0; tracked.len()]);
    for &(t, k, e) in events {
        if k != key || t < from || t > to {
            continue;
        }
        match e {
            Ev::Request => out.0 += 1,
            // A window without selectors counts requests only.
            Ev::Status(_) if tracked.is_empty() => {}
            Ev::Status(s) => {
                out.1 += 1;
                for (n, sel) in out.2.iter_mut().zip(tracked) {
                    *n += u64::from(sel.matches(s));
                }
            }
        }
    }
    out
}

fn check(
    t: &WindowTable,
    events: &[(u64, usize, Ev)],
    key: usize,
    tracked: &[StatusSel],
    c: WindowCounts,
    now: u64,
) -> Result<(), TestCaseError> {
    let w = t.window().bucket_ms();
    let interval = w * BUCKETS as u64;
    let bucket = now / w;
    // The buckets counted: [(c - 9) * w, now].
    let lower = bucket.saturating_sub(BUCKETS as u64 - 1) * w;
    let counted = model(events, key, tracked, lower, now);
    prop_assert_eq!(
        (c.requests, c.responses, c.status().to_vec()),
        counted.clone(),
        "at {}",
        now
    );
    // Against the exact window (now - interval, now]: never above it, below by at most bucket c - 10's events.
    let exact = model(
        events,
        key,
        tracked,
        (now + 1).saturating_sub(interval),
        now,
    );
    let oldest = model(
        events,
        key,
        tracked,
        bucket.saturating_sub(BUCKETS as u64) * w,
        lower.saturating_sub(1),
    );
    let pairs = [
        (counted.0, exact.0, oldest.0),
        (counted.1, exact.1, oldest.1),
    ]
    .into_iter()
    .chain((0..tracked.len()).map(|i| (counted.2[i], exact.2[i], oldest.2[i])));
    for (got, exact, slack) in pairs {
        prop_assert!(
            got <= exact && exact - got <= slack,
            "got {} exact {} bucket {}",
            got,
            exact,
            slack
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn matches_the_exact_model_within_one_bucket(
        interval_s in 10u32..=600,
        tracked in prop::collection::vec(sel(), 0..=MAX_TRACKED),
        steps in prop::collection::vec((0u32..1000, 0usize..3, ev(), 0u32..1000), 1..300),
    ) {
        let t = WindowTable::new(&WindowSpec { interval_s, tracked: tracked.clone() }, 1 << 20).unwrap();
        let interval_ms = u64::from(interval_s) * 1000;
        let mut now = 1_000_000u64;
        let mut events = Vec::new();
        let mut seen = [false; 3];
        for (gap, key, e, look) in steps {
            // Mostly small steps inside the window, now and then a jump past it.
            now += if gap < 990 { u64::from(gap) * interval_ms / 2000 } else { interval_ms * u64::from(gap - 988) };
            let name = [b'k', key as u8];
            match e {
                Ev::Request => {
                    events.push((now, key, e));
                    seen[key] = true;
                    let c = t.record_request(&name, now);
                    check(&t, &events, key, &tracked, c, now)?;
                }
                Ev::Status(s) => {
                    match t.record_status(&name, now, s) {
                        Some(c) => {
                            prop_assert!(seen[key]);
                            events.push((now, key, e));
                            check(&t, &events, key, &tracked, c, now)?;
                        }
                        // Never seen, or dropped while idle to make room for another key (nothing was lost:
                        // every bucket had left the window).
                        None => {
                            let w = t.window().bucket_ms();
                            let lower = (now / w).saturating_sub(BUCKETS as u64 - 1) * w;
                            let m = model(&events, key, &tracked, lower, now);
                            prop_assert_eq!((m.0, m.1), (0, 0));
                            seen[key] = false;
                        }
                    }
                }
            }
            // A read at a later moment sees the same bound, without changing anything.
            let later = now + u64::from(look) * interval_ms / 500;
            if let Some(c) = t.counts(&name, later) {
                check(&t, &events, key, &tracked, c, later)?;
            }
        }
    }
}

#[test]
fn bytes_per_key_as_documented() {
    let per = |k: usize| {
        WindowTable::new(&spec(60, &vec!["404"; k]), 1 << 20)
            .unwrap()
            .bytes_per_key()
    };
    // State: a 4-byte bucket index and 10 buckets of C u16 counters (C = 1 without selectors); the compact table
    // adds an 8-byte fingerprint and the frequency sketch 8.
    assert_eq!([per(0), per(1), per(2)], [40, 80, 100]);
    assert_eq!(per(MAX_TRACKED), 4 + 10 * 10 * 2 + 8 + 8);
    assert_eq!(WindowTable::bytes_per_state(0, Eviction::Lru), 32);
    for k in 0..=MAX_TRACKED {
        assert_eq!(
            WindowTable::bytes_per_state(k, Eviction::FrequencyAware),
            per(k)
        );
    }
}
