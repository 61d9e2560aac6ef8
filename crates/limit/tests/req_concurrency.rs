//! Several threads hammering one zone: admissions match the sequential algorithm, nothing stays pinned and
//! nothing deadlocks. Time is a fake clock held still during each phase, so the count is exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use edgeguard_limit::{Clock, DelayMode, FakeClock, Rate, ReqLimit, ReqStatus, ReqZone, limit_req};

const BOOT: u64 = 1_000_000_000;
const THREADS: usize = 4;
const PHASES: usize = 20;
const KEYS: usize = 8;
const PER_KEY: usize = 5;

fn zone(name: &str, rate: &str, size: usize) -> Arc<ReqZone> {
    Arc::new(ReqZone::new(name, rate.parse::<Rate>().unwrap(), size).unwrap())
}

fn lim(z: &Arc<ReqZone>, burst: u32) -> ReqLimit {
    ReqLimit {
        zone: Arc::clone(z),
        burst,
        delay: DelayMode::NoDelay,
        dry_run: false,
    }
}

fn passed(s: Option<ReqStatus>) -> bool {
    matches!(s, Some(ReqStatus::Passed | ReqStatus::Delayed))
}

/// Runs the phases on `threads` threads; each sends PER_KEY requests for every key per phase.
fn hammer(limits: &[ReqLimit], threads: usize, global_key: bool) -> u64 {
    let clock = FakeClock::new(BOOT);
    let admitted = AtomicU64::new(0);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (clock, admitted, barrier) = (&clock, &admitted, &barrier);
            s.spawn(move || {
                for _ in 0..PHASES {
                    barrier.wait();
                    let now = clock.now_ms();
                    for i in 0..KEYS * PER_KEY {
                        // Threads walk the keys in different orders to mix lock traffic.
                        let k = ((i + t * 3) % KEYS) as u8;
                        let key = [b'k', k];
                        let keys: [&[u8]; 2] = [&key, if global_key { b"all" } else { &key }];
                        if passed(limit_req(now, limits, &keys[..limits.len()]).status) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    barrier.wait();
                }
            });
        }
        for _ in 0..PHASES {
            barrier.wait();
            barrier.wait();
            clock.advance(150);
        }
    });
    admitted.load(Ordering::Relaxed)
}

/// The same multiset of requests in one thread: `senders` times PER_KEY per key per phase.
fn sequential(burst: u32, senders: usize) -> u64 {
    let z = zone("seq", "10r/s", 1 << 20);
    let l = [lim(&z, burst)];
    let mut n = 0;
    for p in 0..PHASES {
        for _ in 0..senders * PER_KEY {
            for k in 0..KEYS as u8 {
                if passed(limit_req(BOOT + p as u64 * 150, &l, &[&[b'k', k]]).status) {
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn one_zone_admits_exactly_what_one_thread_would() {
    // Per key: 4 at the start, then alternately 1 and 2 per 150 ms phase (1.5 requests drain per phase).
    assert_eq!(sequential(3, 1), KEYS as u64 * (4 + 10 + 9 * 2));
    let one = zone("one", "10r/s", 1 << 20);
    assert_eq!(hammer(&[lim(&one, 3)], 1, false), sequential(3, 1));
    let par = zone("par", "10r/s", 1 << 20);
    let burst = THREADS as u32 * 3;
    assert_eq!(
        hammer(&[lim(&par, burst)], THREADS, false),
        sequential(burst, THREADS)
    );
    assert_no_pins(&par);
}

#[test]
fn two_zones_never_admit_more_than_the_last_allows() {
    let per_key = zone("key", "5r/s", 1 << 20);
    let global = zone("all", "50r/s", 1 << 20);
    let limits = [lim(&per_key, 2), lim(&global, 10)];
    let total = hammer(&limits, THREADS, true);
    // The global (last) limit alone: 11 at once, then 7.5 per 150 ms phase.
    let bound = 11 + (50 * 150 * (PHASES as u64 - 1)) / 1000;
    assert!(total <= bound, "{total} > {bound}");
    assert!(total >= bound / 2, "{total} admitted is too few");
    assert_no_pins(&per_key);
    assert_no_pins(&global);
}

fn assert_no_pins(z: &ReqZone) {
    for key in (0..KEYS as u8)
        .map(|k| vec![b'k', k])
        .chain([b"all".to_vec()])
    {
        let h = z.store().hash(&key);
        let g = z.store().lock(h);
        if let Some(r) = g.peek(h, &key) {
            assert_eq!(g.pins(r), 0);
        }
    }
}
