use super::*;

const W: u64 = 10_000;
/// Window 170 000 000 of 10 s (a time in 2023), ms into it.
const WIN: u64 = 170_000_000;
fn at(win: u64, ms: u64) -> u64 {
    win * W + ms
}

fn batch(node: &str, lines: &[(u64, u64, u64, &str)]) -> Vec<u8> {
    let mut s = format!("edgeguard-counts/1 {node}\n");
    for (win, own, own_prev, key) in lines {
        s.push_str(&format!(
            "{W} {win} {own} {own_prev} {key} p.test/flood100/{W}\n"
        ));
    }
    s.into_bytes()
}

fn answer(a: &Aggregator, body: &[u8], now: u64) -> Vec<(u64, u64, u64)> {
    let out = a.exchange(body, now).unwrap();
    let n = String::from_utf8_lossy(&out).lines().count() - 1;
    wire::decode_totals(&out, n)
        .unwrap()
        .1
        .into_iter()
        .map(|t| (t.others, t.others_prev, t.nodes))
        .collect()
}

#[test]
fn each_edge_gets_the_others_total() {
    let a = Aggregator::new();
    let now = at(WIN, 500);
    assert_eq!(
        answer(&a, &batch("e1", &[(WIN, 10, 0, "0a")]), now),
        [(0, 0, 1)]
    );
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN, 20, 0, "0a")]), now),
        [(10, 0, 2)]
    );
    assert_eq!(
        answer(&a, &batch("e3", &[(WIN, 5, 0, "0a")]), now),
        [(30, 0, 3)]
    );
    // A read (nothing new) sees the others; another key is its own.
    assert_eq!(
        answer(
            &a,
            &batch("e1", &[(WIN, 10, 0, "0a"), (WIN, 1, 0, "0b")]),
            now
        ),
        [(25, 0, 3), (0, 0, 1)]
    );
    assert_eq!(a.keys(), 2);
}

#[test]
fn a_batch_sent_again_or_late_counts_once() {
    let a = Aggregator::new();
    let now = at(WIN, 500);
    let b = batch("e1", &[(WIN, 7, 0, "0a")]);
    answer(&a, &b, now);
    // A retry after a lost answer, and a replay of an older, smaller count.
    answer(&a, &b, now);
    answer(&a, &batch("e1", &[(WIN, 5, 0, "0a")]), now);
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN, 0, 0, "0a")]), now),
        [(7, 0, 1)]
    );
    answer(&a, &batch("e1", &[(WIN, 9, 0, "0a")]), now);
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN, 1, 0, "0a")]), now),
        [(9, 0, 2)]
    );
}

#[test]
fn the_previous_window_is_answered_and_old_windows_go() {
    let a = Aggregator::new();
    answer(&a, &batch("e1", &[(WIN, 30, 0, "0a")]), at(WIN, 9_000));
    // Next window: e1's count of the previous one is what e2 reads as the others' previous total.
    let now = at(WIN + 1, 100);
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN + 1, 2, 0, "0a")]), now),
        [(0, 30, 1)]
    );
    // e1 sends its final count of the previous window with its first of the new one.
    answer(&a, &batch("e1", &[(WIN + 1, 1, 32, "0a")]), now);
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN + 1, 2, 0, "0a")]), now),
        [(1, 32, 2)]
    );
    // Two windows on, WIN is gone: nothing of it is answered, a late batch for it is not kept.
    let later = at(WIN + 3, 100);
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN + 3, 1, 0, "0a")]), later),
        [(0, 0, 1)]
    );
    assert_eq!(
        answer(&a, &batch("e1", &[(WIN, 40, 0, "0a")]), later),
        [(0, 0, 1)]
    );
}

#[test]
fn keys_expire_and_memory_is_bounded() {
    let a = Aggregator::new();
    let now = at(WIN, 0);
    let mut body = String::from("edgeguard-counts/1 e1\n");
    for i in 0..MAX_AGG_KEYS + 10 {
        body.push_str(&format!("{W} {WIN} 1 0 {i:08x} p.test/flood100/{W}\n"));
    }
    a.exchange(body.as_bytes(), now).unwrap();
    assert_eq!(a.keys(), MAX_AGG_KEYS);
    // A key past the cap is answered as nobody else's.
    assert_eq!(
        answer(&a, &batch("e2", &[(WIN, 1, 0, "ffffffffff")]), now),
        [(0, 0, 1)]
    );
    // Once their window and the next have ended, the keys are swept.
    answer(
        &a,
        &batch("e2", &[(WIN + 2, 1, 0, "0a")]),
        at(WIN + 2, 2_000),
    );
    assert_eq!(a.keys(), 1);
}

#[test]
fn malformed_batches_are_refused() {
    let a = Aggregator::new();
    for bad in [
        &b""[..],
        b"hello\n",
        b"edgeguard-counts/1\n",
        b"edgeguard-counts/1 e1\n10000 1 x 0 0a t\n",
        b"edgeguard-counts/1 e1\n10000 1 1 0 0g t\n",
        b"edgeguard-counts/1 e1\n0 1 1 0 0a t\n",
        b"edgeguard-counts/1 e1\n10000 1 1 0 0a\n",
    ] {
        assert!(
            a.exchange(bad, 0).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(a.keys(), 0);
}

#[test]
fn edge_names_are_bounded() {
    let a = Aggregator::new();
    let now = at(WIN, 0);
    for i in 0..MAX_EDGES {
        a.exchange(&batch(&format!("e{i}"), &[(WIN, 1, 0, "0a")]), now)
            .unwrap();
    }
    assert!(
        a.exchange(&batch("one-more", &[(WIN, 1, 0, "0a")]), now)
            .is_err()
    );
}
