//! Time per limit_req decision against governor's keyed limiter (default dashmap state), in the same run:
//! one hot key and 1M distinct keys, on 1 and 2 threads. Prints ours/governor ratios and bytes per state.
//!
//! Both sides read the same clock source per decision (governor's default `quanta` clock); two more runs show
//! ours with `clock_gettime` per decision and with a cached time. Two more cases put the protection tables
//! (frequency-aware per-second and window tables, 1M keys each) beside governor's 1M-key figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use edgeguard_limit::persec::PerSecondTable;
use edgeguard_limit::window::{WindowSpec, WindowTable};
use edgeguard_limit::{
    Clock, DelayMode, Eviction, MonotonicClock, Rate, ReqLimit, ReqZone, limit_req,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hint::black_box;

/// Counts live heap bytes, to measure governor's bytes per state.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MANY: u32 = 1 << 20;

/// Mean ns per decision of each bench, accumulated over its measured samples.
static MEANS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(name: &str, d: Duration, iters: u64) {
    let mut m = MEANS.lock().unwrap();
    let e = m.entry(name.to_string()).or_default();
    e.0 += d;
    e.1 += iters;
}

/// Spreads consecutive indexes over the key space (an odd multiplier permutes 0..2^20).
#[inline]
fn key_at(i: u64, many: bool) -> u32 {
    if many {
        (i.wrapping_mul(0x9E37_79B1) as u32) & (MANY - 1)
    } else {
        7
    }
}

/// Runs `iters` decisions split over `threads` threads; returns the wall time.
fn run(threads: usize, iters: u64, f: &(dyn Fn(u64) + Sync)) -> Duration {
    if threads == 1 {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        return t.elapsed();
    }
    let barrier = Barrier::new(threads + 1);
    let per = iters / threads as u64 + 1;
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in t * per..(t + 1) * per {
                    f(i);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        t.elapsed()
    })
}

fn ours_zone() -> Arc<ReqZone> {
    // Room for 1M states at <= 64 B each.
    Arc::new(ReqZone::new("bench", "1000000r/s".parse::<Rate>().unwrap(), 72 << 20).unwrap())
}

fn governor() -> DefaultKeyedRateLimiter<u32> {
    let q = Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
        .allow_burst(NonZeroU32::new(1000).unwrap());
    RateLimiter::keyed(q)
}

fn benches(c: &mut Criterion) {
    let zone = ours_zone();
    let limit = [ReqLimit {
        zone: Arc::clone(&zone),
        burst: 1000,
        delay: DelayMode::NoDelay,
        dry_run: false,
    }];
    let before = LIVE.load(Ordering::Relaxed);
    let gov = governor();
    for k in 0..MANY {
        let _ = gov.check_key(&k);
    }
    let gov_bytes = LIVE.load(Ordering::Relaxed) - before;
    let clock = MonotonicClock;
    for k in 0..MANY {
        limit_req(clock.now_ms(), &limit, &[&k.to_be_bytes()]);
    }
    assert_eq!(zone.in_use(), MANY as usize, "zone too small for the bench");

    // Ours reads the same clock source as governor (quanta), offset to the monotonic clock's origin.
    let qc = quanta::Clock::new();
    let (q0, base) = (qc.raw(), clock.now_ms());
    let now_ms = || base + qc.delta_as_nanos(q0, qc.raw()) / 1_000_000;
    let ours = |i: u64, many: bool| {
        let k = key_at(i, many).to_be_bytes();
        black_box(limit_req(now_ms(), &limit, &[&k]));
    };
    let theirs = |i: u64, many: bool| {
        let _ = black_box(gov.check_key(&key_at(i, many)));
    };

    let mut g = c.benchmark_group("limit_req");
    for threads in [1usize, 2] {
        for many in [false, true] {
            let case = format!("{}/{}t", if many { "1M_keys" } else { "hot_key" }, threads);
            let name = format!("ours/{case}");
            g.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let d = run(threads, iters, &|i| ours(i, many));
                    record(&name, d, iters);
                    d
                })
            });
            let name = format!("governor/{case}");
            g.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    let d = run(threads, iters, &|i| theirs(i, many));
                    record(&name, d, iters);
                    d
                })
            });
        }
    }
    // The same hot key with the clock read per decision through clock_gettime, and with a time read once per
    // batch as nginx reads it once per event-loop turn.
    g.bench_function("ours_clock_gettime/hot_key/1t", |b| {
        b.iter(|| black_box(limit_req(clock.now_ms(), &limit, &[&7u32.to_be_bytes()])))
    });
    let fixed = clock.now_ms();
    g.bench_function("ours_cached_now/hot_key/1t", |b| {
        b.iter(|| black_box(limit_req(fixed, &limit, &[&7u32.to_be_bytes()])))
    });
    // The protection tables (compact: fingerprints in set-associative buckets, frequency-aware), sized for 1M keys
    // and filled with 1M, one thread.
    let fa = Eviction::FrequencyAware;
    let persec = PerSecondTable::new(PerSecondTable::size_for(MANY as usize, fa)).unwrap();
    let spec = WindowSpec {
        interval_s: 60,
        tracked: Vec::new(),
    };
    let window = WindowTable::new(&spec, WindowTable::size_for(MANY as usize, 0, fa)).unwrap();
    for k in 0..MANY {
        persec.check(&k.to_be_bytes(), 1_000_000, now_ms());
        window.record_request(&k.to_be_bytes(), now_ms());
    }
    // Per-second states go idle a second after their last admission and make way for new keys, so the
    // per-second table holds fewer than 1M keys once the fill has taken longer than a second.
    // Sized for exactly MANY keys: about 96 % of them find a way (the rest are refused as one-shot keys).
    assert!(
        window.in_use() >= MANY as usize * 95 / 100,
        "window table too small"
    );
    let persec_check = |i: u64| {
        black_box(persec.check(&key_at(i, true).to_be_bytes(), 1_000_000, now_ms()));
    };
    let window_record = |i: u64| {
        black_box(window.record_request(&key_at(i, true).to_be_bytes(), now_ms()));
    };
    let cases: [(&str, &(dyn Fn(u64) + Sync)); 2] = [
        ("persec_frequency/1M_keys/1t", &persec_check),
        ("window_frequency/1M_keys/1t", &window_record),
    ];
    for (name, f) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let d = run(1, iters, f);
                record(name, d, iters);
                d
            })
        });
    }
    g.finish();

    let m = MEANS.lock().unwrap();
    let ns = |k: &str| {
        m.get(k)
            .map(|(d, n)| d.as_nanos() as f64 / (*n).max(1) as f64)
    };
    println!(
        "\nlimit_req vs governor keyed (mean ns per decision over all samples; wall time / decisions)"
    );
    for threads in [1, 2] {
        for case in ["hot_key", "1M_keys"] {
            let case = format!("{case}/{threads}t");
            if let (Some(o), Some(g)) =
                (ns(&format!("ours/{case}")), ns(&format!("governor/{case}")))
            {
                println!(
                    "  {case:<12} ours {o:8.1} ns  governor {g:8.1} ns  ratio {:.2}",
                    o / g
                );
            }
        }
    }
    for case in ["persec_frequency", "window_frequency"] {
        if let (Some(o), Some(g)) = (ns(&format!("{case}/1M_keys/1t")), ns("governor/1M_keys/1t")) {
            println!(
                "  {case:<17} 1M keys/1t {o:8.1} ns  governor {g:8.1} ns  ratio {:.2}",
                o / g
            );
        }
    }
    println!(
        "  compact tables: per-second {} B per key ({} of {} in use), window {} B per key ({} of {} in use)",
        PerSecondTable::bytes_per_key(),
        persec.in_use(),
        persec.capacity(),
        window.bytes_per_key(),
        window.in_use(),
        window.capacity()
    );
    println!(
        "  bytes per state: ours {} (zone {} B holds {} states, {} in use), governor ~{:.0} (heap growth for {} keys)",
        ReqZone::bytes_per_state(),
        zone.store().size_bytes(),
        zone.capacity(),
        zone.in_use(),
        gov_bytes as f64 / MANY as f64,
        MANY
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
}
