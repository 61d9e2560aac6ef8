//! The send quantum, coalescing and the one-visit calls of the counter tables.

use super::*;

fn urgent(wake: &Wake) -> bool {
    let urgent = wake.is_urgent();
    wake.round_starts();
    urgent
}

#[test]
fn a_key_far_from_its_limit_waits_for_the_coalesced_round_until_twice_its_quantum() {
    let wake = Arc::new(Wake::default());
    let health = Arc::new(Health::new(Default::default(), "redis"));
    let table = Arc::new(CounterTable::new(
        "d.test/ip/1000".into(),
        1000,
        health,
        wake.clone(),
    ));
    let now = 5_000_250;
    // Not confirmed yet: due at once.
    table.add(b"k", now, 1, Some(100));
    assert!(urgent(&wake));
    let mut items = Vec::new();
    table.collect(now, false, 100, &mut items);
    assert_eq!(items.len(), 1);
    table.fold(
        &items[0],
        Totals {
            others: 0,
            others_prev: 0,
            nodes: 1,
        },
        now,
    );
    // Far from the limit of 100 (seen 1): the quantum is the headroom share, (100 - seen) / 10 = 9.
    assert_eq!(quantum(100, 1, 1), (9, true));
    for _ in 0..9 {
        table.add(b"k", now, 1, Some(100));
    }
    assert!(!urgent(&wake), "due, for the next coalesced round");
    for _ in 0..9 {
        table.add(b"k", now, 1, Some(100));
    }
    assert!(urgent(&wake), "twice its quantum unsent: a round at once");
}

#[test]
fn one_visit_calls_match_the_separate_ones() {
    let health = Arc::new(Health::new(Default::default(), "redis"));
    let table = |name: &str| {
        let wake = Arc::new(Wake::default());
        Arc::new(CounterTable::new(name.into(), 1000, health.clone(), wake))
    };
    let (one, two) = (table("d.test/a/1000"), table("d.test/b/1000"));
    let others = Totals {
        others: 7,
        others_prev: 30,
        nodes: 2,
    };
    let now = 9_000_400;
    for t in [&one, &two] {
        t.add(b"k", now, 1, Some(100));
        let mut items = Vec::new();
        t.collect(now, false, 100, &mut items);
        t.fold(&items[0], others, now);
    }
    for i in 0..5 {
        let at = now + i * 100;
        let got = one.add_then_others(b"k", at, Some(100));
        two.add(b"k", at, 1, Some(100));
        assert_eq!(got, two.others(b"k", at), "at {at}");
        let mut seen = None;
        one.others_then_add(b"k", at, Some(100), &mut |o| {
            seen = Some(o);
            i % 2 == 0
        });
        assert_eq!(seen, Some(two.others(b"k", at)));
        if i % 2 == 0 {
            two.add(b"k", at, 1, Some(100));
        }
    }
    let own = |t: &CounterTable| {
        let key = t.key(b"k");
        let map = lock(t.shard(key.hash));
        map.find(key.hash, |e| e.key.is(key.hash, b"k"))
            .map(|e| e.s.own)
    };
    assert_eq!(own(&one), own(&two));
    assert_eq!(own(&one), Some(9));
}

#[test]
fn a_key_near_its_limit_wakes_the_sync_at_once() {
    // The share (100 - 90) / 10 is not above q = 1: near the limit every count is due at once.
    assert_eq!(quantum(100, 90, 1), (1, false));
    assert_eq!(quantum(100, 80, 3), (1, false));
    // Three nodes far from a limit of 1,000: each may hold (1000 - 100) / 30 = 30 (q is 16).
    assert_eq!(quantum(1000, 100, 3), (30, true));
    // At L / 6 from the limit the share is q: near.
    assert_eq!(quantum(1200, 1000, 1), (20, false));
    assert_eq!(quantum(0, 0, 1), (1, false));
}

#[test]
fn periodic_rounds_visit_every_key_only_while_another_node_counts_them() {
    let health = Arc::new(Health::new(Default::default(), "redis"));
    let table = Arc::new(CounterTable::new(
        "d.test/ip/1000".into(),
        1000,
        health,
        Default::default(),
    ));
    let totals = |others| Totals {
        others,
        others_prev: 0,
        nodes: 2,
    };
    let mut now = 7_000_000;
    let round = |now, periodic| {
        let mut items = Vec::new();
        table.collect(now, periodic, 100, &mut items);
        items
    };
    table.add(b"k", now, 1, Some(1000));
    let first = round(now, false);
    assert_eq!(first.len(), 1, "not confirmed yet: due at once");
    // Another node counts the key: while it is active, each periodic round refreshes its totals.
    table.fold(&first[0], totals(5), now);
    for _ in 0..3 {
        now += 100;
        table.add(b"k", now, 1, Some(1000));
        let items = round(now, true);
        assert_eq!(items.len(), 1, "a shared key is refreshed every interval");
        table.fold(&items[0], totals(5), now);
    }
    // Nobody else counts it any more: periodic rounds leave it alone until a second has passed.
    now += 100;
    let items = round(now, true);
    assert_eq!(items.len(), 1);
    table.fold(&items[0], totals(0), now);
    now += 100;
    table.add(b"k", now, 1, Some(1000));
    assert!(round(now, true).is_empty(), "only the keys due are visited");
    // Idle for two windows, but no visit of every key yet: still followed.
    now += 2100;
    table.visited_ms.store(now, Ordering::Relaxed);
    assert!(round(now + 900, true).is_empty());
    assert_eq!(table.keys(), 1);
    // A second after the last visit of every key, every key is visited again: the idle key is dropped.
    assert!(round(now + 1000, true).is_empty());
    assert_eq!(table.keys(), 0, "idle for two windows: dropped");
}
