//! `limit_req` against a plain model written straight from the reference description of nginx's limit_req:
//! random rates, bursts, delays and timelines over 1-3 limits and a few keys, on a fake clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use edgeguard_limit::{
    Clock, DelayMode, FakeClock, Rate, ReqDecision, ReqLimit, ReqStatus, ReqZone, limit_req,
};
use proptest::prelude::*;

const RATES: [&str; 8] = [
    "1r/m", "7r/m", "30r/m", "1r/s", "2r/s", "5r/s", "13r/s", "1000r/s",
];
const KEYS: [&[u8]; 5] = [b"", b"a", b"b", b"c", b"a-key-longer-than-sixteen-bytes"];

/// One zone of the model: state per key and an LRU list (front = most recent). Never full.
#[derive(Default)]
struct ModelZone {
    rate: i128,
    states: HashMap<Vec<u8>, (i128, i128)>,
    lru: VecDeque<Vec<u8>>,
}

impl ModelZone {
    fn touch(&mut self, key: &[u8]) {
        let at = self.lru.iter().position(|k| k == key).unwrap();
        let k = self.lru.remove(at).unwrap();
        self.lru.push_front(k);
    }

    /// Before a new state: drop at most 2 tail states idle >= 60 s and drained.
    fn expire(&mut self, now: i128) {
        for _ in 0..2 {
            let Some(tail) = self.lru.back() else { return };
            let (excess, last) = self.states[tail];
            let ms = (now - last).abs();
            if ms < 60_000 || excess - self.rate * ms / 1000 > 0 {
                return;
            }
            let k = self.lru.pop_back().unwrap();
            self.states.remove(&k);
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ModelLimit {
    burst: i128,
    /// None: nodelay.
    delay: Option<i128>,
    dry: bool,
}

fn clamp_ms(now: i128, last: i128) -> i128 {
    let ms = now - last;
    if ms < -60_000 {
        1
    } else if ms < 0 {
        0
    } else {
        ms
    }
}

fn delay_of(l: &ModelLimit, rate: i128, e: i128) -> i128 {
    match l.delay {
        Some(d) if e > d => (e - d) * 1000 / rate,
        _ => 0,
    }
}

/// The reference description, step by step. Zone i belongs to limit i.
fn model(zones: &mut [ModelZone], limits: &[ModelLimit], now: i128, keys: &[&[u8]]) -> ReqDecision {
    let n = limits.len();
    let mut pinned = Vec::new();
    let mut charged_last = None;
    let mut evaluated = false;
    for i in 0..n {
        let key = keys[i];
        if key.is_empty() || key.len() > 65_535 {
            continue;
        }
        evaluated = true;
        let last = i == n - 1;
        let z = &mut zones[i];
        if let Some(&(excess, l)) = z.states.get(key) {
            z.touch(key);
            let ms = clamp_ms(now, l);
            let e = (excess - z.rate * ms / 1000 + 1000).max(0);
            if e > limits[i].burst {
                let status = if limits[i].dry {
                    ReqStatus::RejectedDryRun
                } else {
                    ReqStatus::Rejected
                };
                return ReqDecision {
                    status: Some(status),
                    delay_ms: 0,
                    limit: Some(i),
                    excess_milli: e as u64,
                    no_room: false,
                };
            }
            if last {
                z.states
                    .insert(key.to_vec(), (e, if ms != 0 { now } else { l }));
                charged_last = Some(e);
            } else {
                pinned.push(i);
            }
        } else {
            z.expire(now);
            z.states
                .insert(key.to_vec(), (0, if last { now } else { 0 }));
            z.lru.push_front(key.to_vec());
            if last {
                charged_last = Some(0);
            } else {
                pinned.push(i);
            }
        }
    }
    if !evaluated {
        return ReqDecision::default();
    }
    let e0 = charged_last.unwrap_or(0);
    let mut best = (delay_of(&limits[n - 1], zones[n - 1].rate, e0), n - 1, e0);
    for &i in pinned.iter().rev() {
        let z = &mut zones[i];
        let (excess, l) = z.states[keys[i]];
        let ms = clamp_ms(now, l);
        let e = (excess - z.rate * ms / 1000 + 1000).max(0);
        z.states
            .insert(keys[i].to_vec(), (e, if ms != 0 { now } else { l }));
        let d = delay_of(&limits[i], z.rate, e);
        if d > best.0 {
            best = (d, i, e);
        }
    }
    let (delay, at, e) = best;
    if delay == 0 {
        return ReqDecision {
            status: Some(ReqStatus::Passed),
            delay_ms: 0,
            limit: None,
            excess_milli: e as u64,
            no_room: false,
        };
    }
    ReqDecision {
        status: Some(if limits[at].dry {
            ReqStatus::DelayedDryRun
        } else {
            ReqStatus::Delayed
        }),
        delay_ms: delay as u64,
        limit: Some(at),
        excess_milli: e as u64,
        no_room: false,
    }
}

#[derive(Clone, Debug)]
struct LimitSpec {
    rate: usize,
    burst: u32,
    delay: DelayMode,
    dry: bool,
}

fn limit_spec() -> impl Strategy<Value = LimitSpec> {
    let delay = prop_oneof![
        Just(DelayMode::Default),
        Just(DelayMode::NoDelay),
        (1u32..4).prop_map(DelayMode::Delay),
    ];
    (0..RATES.len(), 0u32..5, delay, any::<bool>()).prop_map(|(rate, burst, delay, dry)| {
        LimitSpec {
            rate,
            burst,
            delay,
            dry,
        }
    })
}

/// Time steps: same turn, a few ms, about a drain, past the 60 s expiry, or backwards.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        3 => 1i64..100,
        2 => 100i64..5_000,
        1 => 55_000i64..130_000,
        1 => -80_000i64..0,
    ]
}

/// A time step and a key index per limit.
type Op = (i64, Vec<usize>);

fn case() -> impl Strategy<Value = (u64, Vec<LimitSpec>, Vec<Op>)> {
    let start = prop_oneof![0u64..3_000, Just(1_000_000_000u64)];
    (start, prop::collection::vec(limit_spec(), 1..=3)).prop_flat_map(|(start, specs)| {
        let n = specs.len();
        let op = (step(), prop::collection::vec(0..KEYS.len(), n));
        (Just(start), Just(specs), prop::collection::vec(op, 1..60))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn limit_req_matches_the_model((start, specs, ops) in case()) {
        let zones: Vec<Arc<ReqZone>> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let rate = RATES[s.rate].parse::<Rate>().unwrap();
                Arc::new(ReqZone::with_shards(format!("z{i}"), rate, 64 * 1024, 1).unwrap())
            })
            .collect();
        let limits: Vec<ReqLimit> = specs
            .iter()
            .zip(&zones)
            .map(|(s, z)| ReqLimit { zone: Arc::clone(z), burst: s.burst, delay: s.delay, dry_run: s.dry })
            .collect();
        let mut mzones: Vec<ModelZone> = zones
            .iter()
            .map(|z| ModelZone { rate: z.rate().milli_per_sec() as i128, ..Default::default() })
            .collect();
        let mlimits: Vec<ModelLimit> = specs
            .iter()
            .map(|s| ModelLimit {
                burst: s.burst as i128 * 1000,
                delay: match s.delay {
                    DelayMode::Default => Some(0),
                    DelayMode::NoDelay => None,
                    DelayMode::Delay(d) => Some(d as i128 * 1000),
                },
                dry: s.dry,
            })
            .collect();
        let clock = FakeClock::new(start);
        for (i, (dt, key_ix)) in ops.iter().enumerate() {
            let now = clock.now_ms().saturating_add_signed(*dt);
            clock.set(now);
            let keys: Vec<&[u8]> = key_ix.iter().map(|&k| KEYS[k]).collect();
            let got = limit_req(now, &limits, &keys);
            let want = model(&mut mzones, &mlimits, now as i128, &keys);
            prop_assert_eq!(got, want, "request {} at {} with keys {:?}", i, now, key_ix);
        }
        for (z, m) in zones.iter().zip(&mzones) {
            prop_assert_eq!(z.in_use(), m.states.len());
            let lru: Vec<Vec<u8>> = m.lru.iter().cloned().collect();
            prop_assert_eq!(z.store().lru_keys(0), lru);
            for (key, &(excess, last)) in &m.states {
                let h = z.store().hash(key);
                let g = z.store().lock(h);
                let r = g.peek(h, key).expect("state present");
                prop_assert_eq!((g.state(r).excess as i128, g.state(r).last as i128), (excess, last));
                prop_assert_eq!(g.pins(r), 0);
            }
        }
    }
}
