//! limit_conn against the scenarios of nginx's `limit_conn*.t` and the module's source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use edgeguard_limit::conn::{ConnLimit, ConnStatus, ConnZone, MIN_ZONE_BYTES, limit_conn};

fn zone(name: &str) -> Arc<ConnZone> {
    Arc::new(ConnZone::new(name, MIN_ZONE_BYTES).unwrap())
}

fn lim(zone: &Arc<ConnZone>, conn: u32, dry_run: bool) -> ConnLimit {
    ConnLimit {
        zone: Arc::clone(zone),
        conn,
        dry_run,
    }
}

#[test]
fn held_request_blocks_same_key_not_other_zone_until_released() {
    let a = zone("a");
    let b = zone("b");
    let here = [lim(&a, 1, false)];
    let held = limit_conn(&here, &[b"k"]);
    assert_eq!(held.status, Some(ConnStatus::Passed));
    assert_eq!(held.guard.held(), 1);
    assert_eq!(a.count(b"k"), 1);

    // Same key, same zone, elsewhere (another location with the same N).
    let second = limit_conn(&here, &[b"k"]);
    assert_eq!(second.status, Some(ConnStatus::Rejected));
    assert_eq!(second.limit, Some(0));
    assert_eq!(second.guard.held(), 0);
    assert_eq!(a.count(b"k"), 1, "a refusal takes nothing");

    // Another key, and the same key in another zone, pass.
    assert_eq!(limit_conn(&here, &[b"j"]).status, Some(ConnStatus::Passed));
    let other = limit_conn(&[lim(&b, 1, false)], &[b"k"]);
    assert_eq!(other.status, Some(ConnStatus::Passed));

    drop(held);
    assert_eq!(a.count(b"k"), 0);
    let after = limit_conn(&here, &[b"k"]);
    assert_eq!(after.status, Some(ConnStatus::Passed));
    assert_eq!(after.limit, None);
}

#[test]
fn count_is_per_key_each_place_compares_its_own_n() {
    let z = zone("z");
    let g1 = limit_conn(&[lim(&z, 2, false)], &[b"k"]);
    let g2 = limit_conn(&[lim(&z, 2, false)], &[b"k"]);
    assert_eq!(z.count(b"k"), 2);
    // A place allowing 3 still admits; one allowing 2 does not.
    assert_eq!(
        limit_conn(&[lim(&z, 2, false)], &[b"k"]).status,
        Some(ConnStatus::Rejected)
    );
    let g3 = limit_conn(&[lim(&z, 3, false)], &[b"k"]);
    assert_eq!(g3.status, Some(ConnStatus::Passed));
    assert_eq!(z.count(b"k"), 3);
    drop((g1, g2, g3));
    assert_eq!(z.count(b"k"), 0);
    assert_eq!(z.in_use(), 0);
}

#[test]
fn unusable_keys_leave_status_unset() {
    let z = zone("z");
    let limits = [lim(&z, 1, false)];
    let empty = limit_conn(&limits, &[b""]);
    assert_eq!(empty.status, None);
    assert_eq!(empty.guard.held(), 0);
    let long = [b'x'; 256];
    assert_eq!(limit_conn(&limits, &[&long]).status, None);
    let max = [b'x'; 255];
    assert_eq!(
        limit_conn(&limits, &[&max]).status,
        Some(ConnStatus::Passed)
    );
    assert_eq!(limit_conn(&[], &[]).status, None);
}

#[test]
fn refusal_by_a_later_limit_releases_earlier_ones() {
    let a = zone("a");
    let b = zone("b");
    let hold_b = limit_conn(&[lim(&b, 1, false)], &[b"x"]);
    let limits = [lim(&a, 5, false), lim(&b, 1, false)];
    let d = limit_conn(&limits, &[b"k", b"x"]);
    assert_eq!(d.status, Some(ConnStatus::Rejected));
    assert_eq!(d.limit, Some(1));
    assert_eq!(a.count(b"k"), 0, "the first limit's count was given back");
    assert_eq!(a.in_use(), 0);
    // Skipped keys still count as usable elsewhere: the status is that of the limits with keys.
    let d = limit_conn(&limits, &[b"", b"x"]);
    assert_eq!((d.status, d.limit), (Some(ConnStatus::Rejected), Some(1)));
    drop(hold_b);
    let both = limit_conn(&limits, &[b"k", b"x"]);
    assert_eq!(both.status, Some(ConnStatus::Passed));
    assert_eq!(both.guard.held(), 2);
    assert_eq!((a.count(b"k"), b.count(b"x")), (1, 1));
}

#[test]
fn dry_run_counts_passes_but_a_refusal_holds_nothing_and_stops() {
    let a = zone("a");
    let b = zone("b");
    let c = zone("c");
    // A dry-run pass is counted as any pass.
    let held = limit_conn(&[lim(&b, 1, true)], &[b"x"]);
    assert_eq!(held.status, Some(ConnStatus::Passed));
    assert_eq!(b.count(b"x"), 1);

    let limits = [lim(&a, 5, true), lim(&b, 1, true), lim(&c, 5, true)];
    let d = limit_conn(&limits, &[b"k", b"x", b"k"]);
    assert_eq!(d.status, Some(ConnStatus::RejectedDryRun));
    assert_eq!(d.status.map(ConnStatus::as_str), Some("REJECTED_DRY_RUN"));
    assert_eq!(d.limit, Some(1));
    assert_eq!(d.guard.held(), 0, "the request goes on holding nothing");
    assert_eq!(a.count(b"k"), 0, "earlier counts given back");
    assert_eq!(c.count(b"k"), 0, "later limits not evaluated, as in nginx");
    assert_eq!(b.count(b"x"), 1);
}

#[test]
fn status_strings() {
    assert_eq!(ConnStatus::Passed.as_str(), "PASSED");
    assert_eq!(ConnStatus::Rejected.as_str(), "REJECTED");
    assert_eq!(ConnStatus::RejectedDryRun.as_str(), "REJECTED_DRY_RUN");
}

#[test]
fn guard_dropped_on_another_thread_releases() {
    let z = zone("z");
    let d = limit_conn(&[lim(&z, 1, false)], &[b"k"]);
    assert_eq!(z.count(b"k"), 1);
    let guard = d.guard;
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(z.count(b"k"), 0);
    assert_eq!(z.in_use(), 0);
}

#[test]
fn full_zone_refuses_new_keys_like_nginx() {
    let z = zone("z");
    let fit = z.capacity();
    assert!(fit > 100, "{fit} states in 32 KiB");
    let limits = [lim(&z, 1, false)];
    let mut guards = Vec::new();
    for i in 0..fit as u64 {
        let d = limit_conn(&limits, &[&i.to_be_bytes()]);
        assert_eq!(d.status, Some(ConnStatus::Passed), "key {i}");
        guards.push(d.guard);
    }
    let key = u64::MAX.to_be_bytes();
    let full = limit_conn(&limits, &[&key]);
    assert_eq!(
        (full.status, full.limit),
        (Some(ConnStatus::Rejected), Some(0))
    );
    let dry = limit_conn(&[lim(&z, 1, true)], &[&key]);
    assert_eq!(dry.status, Some(ConnStatus::RejectedDryRun));
    assert_eq!(z.in_use(), z.capacity());
    assert!(z.held_bytes() <= MIN_ZONE_BYTES);
    guards.pop();
    assert_eq!(
        limit_conn(&limits, &[&key]).status,
        Some(ConnStatus::Passed)
    );
}

#[test]
fn flood_of_distinct_keys_never_passes_the_budget() {
    let z = zone("z");
    let limits = [lim(&z, 1, false)];
    let mut guards = Vec::new();
    let mut refused = 0;
    for i in 0..20_000u32 {
        let d = limit_conn(&limits, &[&i.to_le_bytes()]);
        assert!(z.in_use() <= z.capacity());
        if d.status == Some(ConnStatus::Rejected) {
            refused += 1;
        }
        guards.push(d.guard);
    }
    assert!(refused > 0);
    drop(guards);
    assert_eq!(z.in_use(), 0);
}

#[test]
fn concurrent_acquire_and_release_never_exceeds_n() {
    const N: u32 = 3;
    const THREADS: usize = 8;
    const ROUNDS: usize = 2_000;
    let z = zone("z");
    let inside = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let z = Arc::clone(&z);
            let inside = Arc::clone(&inside);
            std::thread::spawn(move || {
                let limits = [lim(&z, N, false)];
                let mut passed = 0;
                for _ in 0..ROUNDS {
                    let d = limit_conn(&limits, &[b"shared"]);
                    if d.status == Some(ConnStatus::Passed) {
                        passed += 1;
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= N, "{now} requests inside at once");
                        assert!(z.count(b"shared") <= N);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                    // The guard is dropped here, after `inside` went down.
                }
                passed
            })
        })
        .collect();
    let passed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(passed > 0);
    assert_eq!(z.count(b"shared"), 0);
    assert_eq!(z.in_use(), 0);
}

#[test]
fn concurrent_many_keys_in_a_sharded_zone() {
    const N: u32 = 2;
    let z = Arc::new(ConnZone::new("big", 4 << 20).unwrap());
    let threads: Vec<_> = (0..6u8)
        .map(|t| {
            let z = Arc::clone(&z);
            std::thread::spawn(move || {
                let limits = [lim(&z, N, false)];
                let mut held = Vec::new();
                for i in 0..3_000u32 {
                    let key = [b'k', (i % 17) as u8, t % 2];
                    let d = limit_conn(&limits, &[&key]);
                    if d.status == Some(ConnStatus::Passed) {
                        assert!(z.count(&key) <= N);
                        held.push(d.guard);
                    }
                    // Keep a few requests open at a time, releasing the oldest.
                    if held.len() > 5 {
                        held.remove(0);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(z.in_use(), 0);
    assert!(z.held_bytes() <= 4 << 20);
}
