//! Unit tests of the compact table: placement, budget, admission, against a plain map as the model.

use std::collections::HashMap;

use super::*;

/// A counter that goes idle after 1000 ms without an event.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counter {
    n: u32,
    last: u64,
}

// SAFETY: integers only.
unsafe impl Zeroable for Counter {}

impl CompactState for Counter {
    type Params = ();
    fn idle(&self, now_ms: u64, _: &()) -> bool {
        now_ms.saturating_sub(self.last) >= 1000
    }
    fn last_ms(&self, _: &()) -> u64 {
        self.last
    }
}

fn bump(t: &CompactTable<Counter>, key: &[u8], now: u64) -> Option<u32> {
    let fp = t.fingerprint(key);
    let mut g = t.lock(fp);
    if let Some(i) = g.find(fp) {
        let s = g.state_mut(i);
        s.n += 1;
        s.last = now;
        return Some(s.n);
    }
    g.insert(fp, now, Counter { n: 1, last: now })
        .ok()
        .map(|_| 1)
}

#[test]
fn a_bucket_of_fingerprints_is_one_cache_line() {
    assert_eq!(WAYS * FP, 64);
    assert_eq!(size_of::<Padded<Cell<Counter>>>(), 128);
}

#[test]
fn budget_and_capacity() {
    for size in [4 * 1024, 64 * 1024, 300 * 1024, 3 << 20] {
        for e in [Eviction::FrequencyAware, Eviction::Lru] {
            let t = CompactTable::<Counter>::new(size, (), e).unwrap();
            assert!(t.held_bytes() <= size, "{size} {e:?}");
            let per = CompactTable::<Counter>::bytes_per_state(e);
            // Rounding to whole buckets per shard loses at most a bucket per shard.
            assert!(
                t.capacity() * per + 8 * 1024 + 2 * WAYS * per >= size / 16 * 15,
                "{size}"
            );
        }
    }
    assert!(CompactTable::<Counter>::new(64, (), Eviction::Lru).is_err());
    let keys = 100_000;
    let t = CompactTable::<Counter>::new(
        CompactTable::<Counter>::size_for(keys, Eviction::FrequencyAware),
        (),
        Eviction::FrequencyAware,
    )
    .unwrap();
    assert!(t.capacity() >= keys);
}

#[test]
fn keys_of_any_length_cost_one_way() {
    let t = CompactTable::<Counter>::new(64 * 1024, (), Eviction::FrequencyAware).unwrap();
    let long = vec![7u8; 100_000];
    assert_eq!(bump(&t, &long, 0), Some(1));
    assert_eq!(bump(&t, &long, 1), Some(2));
    assert_eq!(bump(&t, b"", 1), Some(1));
    assert_eq!(t.in_use(), 2);
}

#[test]
fn two_choices_fill_buckets_evenly() {
    let t = CompactTable::<Counter>::new(1 << 20, (), Eviction::FrequencyAware).unwrap();
    let cap = t.capacity();
    for k in 0..cap as u32 {
        bump(&t, &k.to_le_bytes(), 0);
    }
    let stored = (0..cap as u32)
        .filter(|k| {
            let fp = t.fingerprint(&k.to_le_bytes());
            t.lock(fp).peek(fp).is_some()
        })
        .count();
    assert_eq!(stored, t.in_use());
    assert!(
        stored * 100 >= cap * 94,
        "{stored} of {cap} stored at load 1"
    );
}

#[test]
fn lru_replaces_the_least_recently_active_and_never_refuses() {
    let t = CompactTable::<Counter>::new(16 * 1024, (), Eviction::Lru).unwrap();
    let cap = t.capacity() as u32;
    for k in 0..(4 * cap) {
        assert_eq!(bump(&t, &k.to_le_bytes(), u64::from(k / 64)), Some(1));
    }
    assert_eq!(t.admission_refusals(), 0);
    assert!(t.evictions() > 0);
    assert_eq!(t.in_use(), cap as usize);
}

#[test]
fn idle_states_make_room_without_counting_as_evictions() {
    let t = CompactTable::<Counter>::new(16 * 1024, (), Eviction::FrequencyAware).unwrap();
    let cap = t.capacity() as u32;
    for k in 0..cap {
        bump(&t, &k.to_le_bytes(), 0);
    }
    let first = t.in_use();
    // A second later every state is idle: new keys take their ways as they would take free ones.
    let stored = (cap..(2 * cap))
        .filter(|k| bump(&t, &k.to_le_bytes(), 5_000).is_some())
        .count();
    // As many as the first time, up to the spread of random placement in a table this small.
    assert!(
        stored * 100 >= first * 95,
        "{stored} stored, {first} before"
    );
    assert!(
        t.evictions() * 100 <= u64::from(cap),
        "{} evictions",
        t.evictions()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Against a map of exact counts: a retained key's count is exact (it restarts only after it was dropped),
    /// the table never holds more than its capacity nor more bytes than its budget, and hot keys stay.
    #[test]
    fn counts_exact_for_retained_keys(
        size_kib in 4usize..64,
        lru in proptest::bool::ANY,
        ops in proptest::collection::vec((0u32..3000, 0u64..4), 1..4000),
    ) {
        let e = if lru { Eviction::Lru } else { Eviction::FrequencyAware };
        let t = CompactTable::<Counter>::new(size_kib * 1024, (), e).unwrap();
        proptest::prop_assert!(t.held_bytes() <= size_kib * 1024);
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut now = 0u64;
        for (i, (key, dt)) in ops.into_iter().enumerate() {
            now += dt;
            // Keys below 8 are hot: every fourth operation.
            let key = if i % 4 == 0 { key % 8 } else { key };
            let fp = t.fingerprint(&key.to_le_bytes());
            let before = t.lock(fp).peek(fp).is_some();
            if !before {
                // Never stored, or dropped since: it starts afresh.
                model.remove(&key);
            }
            let got = bump(&t, &key.to_le_bytes(), now);
            let present = t.lock(fp).peek(fp).is_some();
            match got {
                Some(n) => {
                    let want = model.entry(key).or_insert(0);
                    *want += 1;
                    proptest::prop_assert_eq!(n, *want, "key {}", key);
                    proptest::prop_assert!(present);
                }
                None => {
                    proptest::prop_assert!(!lru, "LRU never refuses");
                    proptest::prop_assert!(!before && !present);
                }
            }
            proptest::prop_assert!(t.in_use() <= t.capacity());
        }
    }
}

#[test]
fn a_stored_keys_accesses_count_in_its_way_and_age_with_the_sketch() {
    let t = CompactTable::<Counter>::new(64 * 1024, (), Eviction::FrequencyAware).unwrap();
    let fp = t.fingerprint(b"hot");
    assert_eq!(fp.0 & FREQ, 0, "fingerprints keep the count bits clear");
    for i in 0..20 {
        bump(&t, b"hot", i);
    }
    let count = |t: &CompactTable<Counter>| {
        let g = t.lock(fp);
        let i = g.peek(fp).expect("stored");
        (
            g.inner.fps[i] & FREQ,
            g.inner.sketch.as_ref().unwrap().estimate(fp.sketch()),
        )
    };
    // Counted once in the sketch (the attempt that stored it), then in its way, saturating at 15.
    assert_eq!(count(&t), (15, 1));
    // A halving period of other keys' accesses halves the stored key's count with the sketch's.
    let sample = t.capacity() * 10;
    for k in 0..sample as u32 {
        bump(&t, &k.to_be_bytes(), 21);
    }
    let (way, _) = count(&t);
    assert!(way <= 7, "count {way} was not halved");
}
