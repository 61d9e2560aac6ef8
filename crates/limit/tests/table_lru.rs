//! Byte budget, LRU order and eviction of the keyed table, through limit_req as nginx's 32k zone test does.

use std::sync::Arc;

use edgeguard_limit::{
    DelayMode, Rate, ReqLimit, ReqStatus, ReqZone, Table, TableError, limit_req,
};

const BOOT: u64 = 1_000_000_000;

fn zone_32k() -> Arc<ReqZone> {
    Arc::new(ReqZone::new("z", "1r/s".parse::<Rate>().unwrap(), 32 * 1024).unwrap())
}

fn lim(z: &Arc<ReqZone>) -> ReqLimit {
    ReqLimit {
        zone: Arc::clone(z),
        burst: 0,
        delay: DelayMode::NoDelay,
        dry_run: false,
    }
}

fn key(i: usize) -> [u8; 8] {
    (i as u64).to_be_bytes()
}

fn lru(z: &ReqZone) -> Vec<Vec<u8>> {
    z.store().lru_keys(0)
}

#[test]
fn budget_and_capacity() {
    let z = zone_32k();
    assert_eq!(
        z.store().shard_count(),
        1,
        "small zones keep nginx's single LRU"
    );
    assert!(ReqZone::bytes_per_state() <= 64);
    // nginx holds 191 states of 8-byte keys in 32k.
    assert!(z.capacity() >= 2 * 191, "capacity {}", z.capacity());
    assert!(
        z.store().held_bytes() <= 32 * 1024,
        "{}",
        z.store().held_bytes()
    );
    for size in [32 * 1024, 100_000, 256 * 1024, 1 << 20, 10 << 20] {
        let t =
            Table::<edgeguard_limit::ReqState>::new(size, Rate::per_second(1.try_into().unwrap()))
                .unwrap();
        assert!(t.held_bytes() <= size, "{size}: {}", t.held_bytes());
        assert!(t.capacity() * ReqZone::bytes_per_state() <= size);
        // At least 95% of the budget goes to states.
        assert!(
            t.capacity() * ReqZone::bytes_per_state() * 100 >= size * 95,
            "{size}"
        );
    }
    assert!(matches!(
        ReqZone::new("z", Rate::per_second(1.try_into().unwrap()), 32 * 1024 - 1),
        Err(edgeguard_limit::ReqZoneError::TooSmall { .. })
    ));
    assert!(matches!(
        Table::<edgeguard_limit::ReqState>::new(10, Rate::per_second(1.try_into().unwrap())),
        Err(TableError::TooSmall { .. })
    ));
}

#[test]
fn fills_to_capacity_then_evicts_the_least_recent() {
    let z = zone_32k();
    let l = lim(&z);
    let cap = z.capacity();
    // One new key per ms: all fresh, none expirable.
    for i in 0..cap {
        let d = limit_req(BOOT + i as u64, std::slice::from_ref(&l), &[&key(i)]);
        assert_eq!(d.status, Some(ReqStatus::Passed));
    }
    assert_eq!(z.in_use(), cap);
    let now = BOOT + cap as u64;
    // A lookup (even a rejected one) moves key 0 to the head.
    let d = limit_req(now, std::slice::from_ref(&l), &[&key(0)]);
    assert_eq!(d.status, Some(ReqStatus::Rejected));
    assert_eq!(lru(&z)[0], key(0));
    // The next new key forces out the tail (key 1) and nothing else (key 2 is not expirable).
    let d = limit_req(now, std::slice::from_ref(&l), &[&key(cap)]);
    assert_eq!(d.status, Some(ReqStatus::Passed));
    assert_eq!(z.in_use(), cap);
    let order = lru(&z);
    assert_eq!(order.len(), cap);
    assert_eq!(order[0], key(cap));
    assert_eq!(order[1], key(0));
    assert_eq!(order[2], key(cap - 1));
    assert_eq!(*order.last().unwrap(), key(2));
    assert!(!order.contains(&key(1).to_vec()));
    // Key 1 comes back as a new state, forcing out key 2.
    let d = limit_req(now, std::slice::from_ref(&l), &[&key(1)]);
    assert_eq!((d.status, d.excess_milli), (Some(ReqStatus::Passed), 0));
    assert_eq!(*lru(&z).last().unwrap(), key(3));
}

#[test]
fn at_most_two_expired_states_go_per_new_state() {
    let z = zone_32k();
    let l = lim(&z);
    for i in 0..10 {
        limit_req(BOOT, std::slice::from_ref(&l), &[&key(i)]);
    }
    // Idle 59,999 ms: not expirable.
    limit_req(BOOT + 59_999, std::slice::from_ref(&l), &[&key(100)]);
    assert_eq!(z.in_use(), 11);
    // Idle 60 s and drained: the two oldest go before each new state.
    limit_req(BOOT + 60_000, std::slice::from_ref(&l), &[&key(101)]);
    assert_eq!(z.in_use(), 10);
    let order = lru(&z);
    assert_eq!(*order.last().unwrap(), key(2));
    limit_req(BOOT + 60_000, std::slice::from_ref(&l), &[&key(102)]);
    assert_eq!(z.in_use(), 9);
    assert_eq!(*lru(&z).last().unwrap(), key(4));
}

#[test]
fn undrained_tail_stops_expiry() {
    let z = Arc::new(ReqZone::new("z", "1r/m".parse::<Rate>().unwrap(), 32 * 1024).unwrap());
    let l = ReqLimit {
        burst: 5,
        ..lim(&z)
    };
    // Key 0 gets excess 3000: at 1r/m it takes 3 * 62.5 s to drain.
    for _ in 0..4 {
        limit_req(BOOT, std::slice::from_ref(&l), &[&key(0)]);
    }
    limit_req(BOOT, std::slice::from_ref(&l), &[&key(1)]);
    // 120 s later key 0 is idle but not drained (3000 - 16*120 = 1080 > 0): nothing expires.
    limit_req(BOOT + 120_000, std::slice::from_ref(&l), &[&key(2)]);
    assert_eq!(z.in_use(), 3);
    // 187.5 s after, drained (3000 - 16*187.5 = 0): key 0 and then key 1 expire.
    limit_req(BOOT + 187_500, std::slice::from_ref(&l), &[&key(3)]);
    assert_eq!(lru(&z), [key(3).to_vec(), key(2).to_vec()]);
}

#[test]
fn no_room_when_the_tail_is_pinned() {
    let z = zone_32k();
    let l = lim(&z);
    let cap = z.capacity();
    for i in 0..cap {
        limit_req(BOOT, std::slice::from_ref(&l), &[&key(i)]);
    }
    // A request of another thread holds the tail (key 0) between its lookup and its commit.
    let t = z.store();
    let h = t.hash(&key(0));
    let r = t.lock(h).peek(h, &key(0)).unwrap();
    t.lock(h).pin(r);
    let d = limit_req(BOOT + 1, std::slice::from_ref(&l), &[&key(cap)]);
    assert_eq!(
        (d.status, d.no_room, d.excess_milli, d.limit),
        (Some(ReqStatus::Rejected), true, 0, Some(0))
    );
    let dry = ReqLimit {
        dry_run: true,
        ..lim(&z)
    };
    let d = limit_req(BOOT + 1, std::slice::from_ref(&dry), &[&key(cap)]);
    assert_eq!(
        (d.status, d.no_room),
        (Some(ReqStatus::RejectedDryRun), true)
    );
    assert_eq!(z.in_use(), cap);
    // Released, the tail is evicted again.
    t.lock(h).unpin(r);
    let d = limit_req(BOOT + 1, std::slice::from_ref(&l), &[&key(cap)]);
    assert_eq!((d.status, d.no_room), (Some(ReqStatus::Passed), false));
    assert!(!lru(&z).contains(&key(0).to_vec()));
}

#[test]
fn long_keys_are_charged_to_the_budget() {
    let z = zone_32k();
    let l = lim(&z);
    let cap = z.capacity();
    // A 100-byte key ($host$uri) takes 1 slot plus 4 chunk slots of 28 bytes (12 bytes stay inline).
    let long = |i: usize| format!("example.com/some/path/{i:078}").into_bytes();
    assert_eq!(long(0).len(), 100);
    for i in 0..cap {
        let d = limit_req(BOOT + i as u64, std::slice::from_ref(&l), &[&long(i)]);
        assert_eq!(d.status, Some(ReqStatus::Passed));
    }
    assert_eq!(z.in_use(), cap / 5);
    // The newest fifth survived, in order.
    let order = lru(&z);
    assert_eq!(order[0], long(cap - 1));
    assert_eq!(*order.last().unwrap(), long(cap - cap / 5));
    // Still found and limited.
    let d = limit_req(
        BOOT + cap as u64,
        std::slice::from_ref(&l),
        &[&long(cap - 1)],
    );
    assert_eq!(d.status, Some(ReqStatus::Rejected));
    // A key bigger than the whole zone never fits: rejected like nginx's failed allocation.
    let huge = vec![b'h'; 40_000];
    let d = limit_req(BOOT, std::slice::from_ref(&l), &[&huge]);
    assert_eq!((d.status, d.no_room), (Some(ReqStatus::Rejected), true));
}

#[test]
fn ipv6_keys_fit_inline() {
    let z = zone_32k();
    let l = lim(&z);
    let cap = z.capacity();
    for i in 0..cap {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&key(i));
        limit_req(BOOT + i as u64, std::slice::from_ref(&l), &[&k]);
    }
    assert_eq!(z.in_use(), cap);
}

#[test]
fn big_tables_are_sharded_and_hold_their_capacity() {
    let z = ReqZone::new("big", "1r/s".parse::<Rate>().unwrap(), 4 << 20).unwrap();
    let z = Arc::new(z);
    assert!(z.store().shard_count() > 1);
    let l = lim(&z);
    let n = z.capacity() * 9 / 10;
    for i in 0..n {
        limit_req(BOOT, std::slice::from_ref(&l), &[&key(i)]);
    }
    // Hash spread leaves every shard below its share, so nothing was evicted.
    assert_eq!(z.in_use(), n);
}
