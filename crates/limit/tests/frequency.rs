//! Frequency-aware eviction of the protection tables: attackers that keep counting survive floods of one-shot
//! keys far larger than the table, the table never holds more than its capacity, and retained counts keep the
//! window's bounds. Fake time throughout.

use edgeguard_limit::window::{BUCKETS, WindowSpec, WindowTable};
use edgeguard_limit::{Clock, Eviction, FakeClock};
use proptest::prelude::*;

fn spec(interval_s: u32) -> WindowSpec {
    WindowSpec {
        interval_s,
        tracked: Vec::new(),
    }
}

fn attacker(i: u32) -> [u8; 5] {
    let b = i.to_be_bytes();
    [b'a', b[0], b[1], b[2], b[3]]
}

/// `attackers` keys each send a request every `interval / 30` for `seconds`, interleaved with `one_shots_per_step`
/// one-shot keys per step. Returns the highest count each attacker reached and the highest count any one-shot key
/// reached.
fn flood(
    t: &WindowTable,
    attackers: u32,
    one_shots_per_step: u32,
    seconds: u64,
) -> (Vec<u64>, u64) {
    let clock = FakeClock::new(10_000_000);
    let step_ms = u64::from(t.window().interval_s()) * 1000 / 30;
    let per_step = attackers + one_shots_per_step;
    let mut best = vec![0u64; attackers as usize];
    let mut one_shot_max = 0;
    let mut one_shot = 0u32;
    for _ in 0..(seconds * 1000 / step_ms) {
        let start = clock.now_ms();
        // Attackers spread evenly among the one-shot keys.
        let mut a = 0u32;
        for j in 0..per_step {
            let now = start + u64::from(j) * step_ms / u64::from(per_step);
            if u64::from(a) * u64::from(per_step) <= u64::from(j) * u64::from(attackers)
                && a < attackers
            {
                let c = t.record_request(&attacker(a), now);
                best[a as usize] = best[a as usize].max(c.requests);
                a += 1;
            } else {
                let c = t.record_request(&one_shot.to_be_bytes(), now);
                one_shot_max = one_shot_max.max(c.requests);
                one_shot += 1;
            }
        }
        clock.set(start + step_ms);
    }
    (best, one_shot_max)
}

#[test]
fn attackers_among_one_shots_at_twice_the_capacity_are_caught() {
    let t = WindowTable::new(&spec(60), 1 << 20).unwrap();
    let cap = t.capacity() as u32;
    assert!(cap > 4_000, "{cap}");
    // One-shot keys at twice the table's capacity per attacker interval (interval / 30 = 2 s).
    let (best, one_shot_max) = flood(&t, 2_000, 2 * cap, 70);
    let caught = best.iter().filter(|&&c| c >= 21).count();
    assert!(
        caught * 100 >= 95 * best.len(),
        "{caught} of {} reached 21",
        best.len()
    );
    assert_eq!(one_shot_max, 1, "a one-shot key never counts past 1");
    assert!(t.in_use() <= t.capacity());
    assert!(t.admission_refusals() > 0);

    // The same flood without admission (`Eviction::Lru`: the least recently active candidate is replaced): no
    // new key is ever refused.
    let lru = WindowTable::with_eviction(&spec(60), 1 << 20, Eviction::Lru).unwrap();
    let (best, _) = flood(&lru, 2_000, 2 * cap, 70);
    let caught = best.iter().filter(|&&c| c >= 21).count();
    eprintln!("without admission: {caught} of {} reached 21", best.len());
    assert_eq!(lru.admission_refusals(), 0);
    assert!(lru.evictions() > 0);
}

#[test]
fn forty_thousand_attackers_in_a_default_sized_table() {
    let size = WindowTable::size_for(
        edgeguard_limit::DEFAULT_TRACKED_CLIENTS,
        0,
        Eviction::FrequencyAware,
    );
    let t = WindowTable::new(&spec(60), size).unwrap();
    assert!(t.capacity() >= edgeguard_limit::DEFAULT_TRACKED_CLIENTS);
    assert!(t.held_bytes() <= size);
    // 40,000 attackers with 25 requests each in 60 s (one every 2.4 s), plus a one-shot key per attacker
    // request.
    let clock = FakeClock::new(5_000_000);
    let mut best = vec![0u64; 40_000];
    let mut one_shot = 0u32;
    for _ in 0..25 {
        let start = clock.now_ms();
        for a in 0..40_000u32 {
            let now = start + u64::from(a) * 2_400 / 40_000;
            best[a as usize] = best[a as usize].max(t.record_request(&attacker(a), now).requests);
            assert_eq!(t.record_request(&one_shot.to_be_bytes(), now).requests, 1);
            one_shot += 1;
        }
        clock.set(start + 2_400);
    }
    let caught = best.iter().filter(|&&c| c > 20).count();
    assert!(
        caught * 100 >= 95 * best.len(),
        "{caught} of 40000 above 20"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Hot keys that have counted `k` times, then go on at `k` times per sketch period (10 x capacity accesses) among one-shot keys at `n`
    /// times the table's capacity: the table never holds more than its capacity, the hot keys are retained, and while retained
    /// a hot key's count is exactly the bucketed count of its requests (so within the window's bounds).
    #[test]
    fn hot_keys_survive_floods_of_one_shot_keys(
        size_kib in 16usize..96,
        hot in 1u32..8,
        k in 4u32..12,
        n in 10u32..40,
        interval_s in 10u32..120,
    ) {
        let t = WindowTable::new(&spec(interval_s), size_kib * 1024).unwrap();
        let cap = t.capacity() as u32;
        let width = t.window().bucket_ms();
        // The sketch halves every 10 x capacity accesses; a hot key appears k times in that many.
        let gap = (10 * cap / k).max(1);
        let mut sent: Vec<Vec<u64>> = vec![Vec::new(); hot as usize];
        let mut now = 1_000_000u64;
        let count_of = |sent: &[u64], now: u64| {
            // Requests in the buckets counted at `now`: [(c - 9) * width, now].
            let lower = (now / width).saturating_sub(BUCKETS as u64 - 1) * width;
            sent.iter().filter(|&&s| s >= lower).count() as u64
        };
        // Each hot key has counted k times before the flood starts.
        for key in 0..hot {
            for _ in 0..k {
                let c = t.record_request(&attacker(key), now);
                sent[key as usize].push(now);
                prop_assert_eq!(c.requests, count_of(&sent[key as usize], now));
            }
        }
        for i in 0..(n * cap) {
            if i % gap < hot {
                let key = i % gap;
                let c = t.record_request(&attacker(key), now);
                sent[key as usize].push(now);
                let expect = count_of(&sent[key as usize], now);
                prop_assert!(c.stored());
                prop_assert_eq!(c.requests, expect, "hot key {} at {}", key, now);
            } else {
                let c = t.record_request(&(i ^ 0x8000_0000).to_be_bytes(), now);
                prop_assert_eq!(c.requests, 1);
            }
            if i % 64 == 0 {
                prop_assert!(t.in_use() <= t.capacity());
            }
            // Time moves a little: the whole run stays well inside any window.
            now += u64::from(i % 3 == 0);
        }
        prop_assert!(t.in_use() <= t.capacity());
        for key in 0..hot {
            prop_assert!(t.counts(&attacker(key), now).is_some(), "hot key {} evicted", key);
        }
    }
}
