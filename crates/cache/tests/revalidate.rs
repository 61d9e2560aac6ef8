//! Revalidation, hit-for-pass, stale-while-revalidate and purge, on a fake clock (a `now` argument).

mod common;

use bytes::Bytes;
use common::*;
use edgeguard_cache::{CacheStatus, HIT_FOR_PASS_TTL, Lookup};
use http::HeaderMap;

fn lead(
    c: &edgeguard_cache::Cache,
    r: &http::request::Parts,
    now: std::time::SystemTime,
) -> edgeguard_cache::FillGuard {
    match c.lookup_or_lead(&key(c, r), r, now) {
        Lookup::Lead { fill, .. } => fill,
        other => panic!("expected to lead, got {other:?}"),
    }
}

#[test]
fn a_304_refreshes_headers_and_freshness_and_keeps_the_body() {
    let c = cache();
    let r = get("/a");
    let h = [
        ("cache-control", "no-cache"),
        ("etag", "\"1\""),
        ("x-v", "old"),
    ];
    fill(&c, &r, &res(200, &h), b"BODY", t0()).unwrap();
    let fill = lead(&c, &r, at(1));
    assert!(fill.is_revalidation());
    let mut sent = HeaderMap::new();
    fill.add_validators(&mut sent);
    assert_eq!(sent["if-none-match"], "\"1\"");
    let not_modified = res(
        304,
        &[
            ("cache-control", "max-age=60"),
            ("etag", "\"1\""),
            ("x-v", "new"),
        ],
    );
    let c304 = fill.refresh(&not_modified, at(1)).expect("revalidated");
    let resp = c304.into_response(CacheStatus::Revalidated);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), &Bytes::from_static(b"BODY"));
    assert_eq!(resp.headers()["x-v"], "new");
    assert_eq!(resp.headers()["content-length"], "4");
    assert_eq!(probe(&c, &r, at(60)), ("hit", false));
    assert_eq!(probe(&c, &r, at(62)).0, "lead");
    assert_eq!(c.stats().revalidated, 1);
}

#[test]
fn without_a_validator_no_cache_is_not_revalidated() {
    let c = cache();
    let r = get("/a");
    let h = [("cache-control", "max-age=10")];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    assert!(!lead(&c, &r, at(11)).is_revalidation());
}

#[test]
fn hit_for_pass_lets_requests_for_an_uncacheable_url_go_side_by_side() {
    let c = cache();
    let r = get("/u");
    let h = [("cache-control", "max-age=60"), ("set-cookie", "s=1")];
    assert!(fill(&c, &r, &res(200, &h), b"A", t0()).is_err());
    // Remembered: two concurrent requests both lead, neither waits on the other.
    let _first = lead(&c, &r, at(1));
    let _second = lead(&c, &r, at(1));
    drop((_first, _second));
    // Forgotten after the memo's lifetime: coalescing again.
    let later = at(1) + HIT_FOR_PASS_TTL;
    let _first = lead(&c, &r, later);
    assert_eq!(kind(&c.lookup_or_lead(&key(&c, &r), &r, later)).0, "follow");
}

#[test]
fn stale_while_revalidate_answers_the_copy_and_leads_one_refresh() {
    let c = cache();
    let r = get("/s");
    let h = [("cache-control", "max-age=10, stale-while-revalidate=20")];
    fill(&c, &r, &res(200, &h), b"S", t0()).unwrap();
    let Lookup::Updating {
        fill: Some(refresh),
        ..
    } = c.lookup_or_lead(&key(&c, &r), &r, at(11))
    else {
        panic!("updating with a refresh")
    };
    let Lookup::Updating { fill: None, .. } = c.lookup_or_lead(&key(&c, &r), &r, at(12)) else {
        panic!("updating, refresh already running")
    };
    refresh
        .complete(&res(200, &h), Bytes::from_static(b"T"), at(12))
        .unwrap();
    assert_eq!(probe(&c, &r, at(13)), ("hit", false));
    // Past the window: an ordinary miss.
    assert_eq!(probe(&c, &r, at(12 + 31)).0, "lead");
}

#[test]
fn purge_by_key_prefix_and_tag() {
    let c = cache();
    let tagged = [("cache-control", "max-age=60"), ("cache-tag", "red, blue")];
    let keyed = [
        ("cache-control", "max-age=60"),
        ("surrogate-key", "green red"),
    ];
    let plain = [("cache-control", "max-age=60")];
    fill(&c, &get("/img/1"), &res(200, &tagged), b"1", t0()).unwrap();
    fill(&c, &get("/img/2"), &res(200, &keyed), b"2", t0()).unwrap();
    fill(&c, &get("/css/1"), &res(200, &plain), b"3", t0()).unwrap();
    fill(&c, &get("/css/2"), &res(200, &tagged), b"4", t0()).unwrap();
    assert_eq!(c.purge_tags(&["blue"]), 2);
    assert_eq!(probe(&c, &get("/img/2"), at(1)), ("hit", false));
    assert_eq!(probe(&c, &get("/css/1"), at(1)), ("hit", false));
    assert_eq!(c.purge_prefix("example.com/img/"), 1);
    assert_eq!(
        c.purge_keys(&[key(&c, &get("/css/1")), key(&c, &get("/nothing"))]),
        1
    );
    assert_eq!(c.stats().objects, 0);
}
