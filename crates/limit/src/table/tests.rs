//! Unit tests of the table internals.

use super::shard::padded;
use super::*;

#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Idle {
    last: u64,
}

impl TableState for Idle {
    type Params = ();
    fn expirable(&self, now_ms: u64, _: &()) -> bool {
        now_ms.abs_diff(self.last) >= 60_000
    }
}

#[test]
fn slot_is_small() {
    assert!(bytes_per_state::<Idle>() <= 64);
    assert!(
        bytes_per_state::<[u64; 2]>() <= 64,
        "{}",
        bytes_per_state::<[u64; 2]>()
    );
}

#[test]
fn padded_matches_a_zero_padded_copy() {
    let bytes: Vec<u8> = (1..=16).collect();
    for n in 0..=16 {
        let mut b = [0u8; 16];
        b[..n].copy_from_slice(&bytes[..n]);
        assert_eq!(padded(&bytes[..n]), u128::from_le_bytes(b), "{n}");
    }
}

#[test]
fn long_keys_round_trip_and_free_their_chunks() {
    let t = Table::<Idle>::new(32 * 1024, ()).unwrap();
    let cap = t.capacity();
    let keys: Vec<Vec<u8>> = (0..40usize)
        .map(|n| (0..n * 7).map(|b| (b * 31 + n) as u8).collect())
        .collect();
    for k in keys.iter().filter(|k| !k.is_empty()) {
        let h = t.hash(k);
        let mut g = t.lock(h);
        let r = g.insert(h, k, 0, Idle { last: 0 }).unwrap();
        assert_eq!(g.key(r), *k);
    }
    for k in keys.iter().filter(|k| !k.is_empty()) {
        let h = t.hash(k);
        let mut g = t.lock(h);
        let r = g.find(h, k).expect("present");
        assert!(g.remove(r));
    }
    assert_eq!(t.in_use(), 0);
    // Every chunk went back: the table fills to capacity again with short keys.
    for n in 0..cap as u32 {
        let k = n.to_be_bytes();
        let h = t.hash(&k);
        t.lock(h).insert(h, &k, 0, Idle { last: 0 }).unwrap();
    }
    assert_eq!(t.in_use(), cap);
}

#[test]
fn shard_cell_keeps_nginx_capacities() {
    // The shard header is part of the budget: growing it past 128 bytes would shrink every zone's capacity.
    assert_eq!(size_of::<Padded<Cell<Idle>>>(), 128);
}
