//! What gets stored and for how long: response directives, default_ttl, stale grace, keys, HEAD.

mod common;

use std::time::Duration;

use common::*;
use edgeguard_cache::{Cache, CacheConfig, CacheStatus, Lookup, NotStored, X_CACHE};
use http::Method;

#[test]
fn max_age_is_fresh_until_it_runs_out_then_stale_within_grace() {
    let c = cache();
    let r = get("/a");
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=60")]),
        b"A",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &r, at(59)), ("hit", false));
    assert_eq!(probe(&c, &r, at(60)), ("lead", true));
    assert_eq!(probe(&c, &r, at(60 + 3599)), ("lead", true));
    // Past the grace the object is gone for good.
    assert_eq!(probe(&c, &r, at(60 + 3600)), ("lead", false));
    assert_eq!(c.stats().objects, 0);
    assert_eq!(probe(&c, &r, at(60)), ("lead", false));
}

#[test]
fn s_maxage_beats_max_age() {
    let c = cache();
    let r = get("/a");
    let h = [("cache-control", "max-age=10, s-maxage=120")];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    assert_eq!(probe(&c, &r, at(100)), ("hit", false));
    assert_eq!(probe(&c, &r, at(120)), ("lead", true));
}

#[test]
fn no_store_private_and_no_cache_are_not_stored() {
    for (cc, why) in [
        ("no-store", NotStored::Policy),
        ("private, max-age=60", NotStored::Policy),
        ("no-cache", NotStored::NotFresh),
        ("max-age=0", NotStored::NotFresh),
    ] {
        let c = cache();
        let r = get("/a");
        let got = fill(&c, &r, &res(200, &[("cache-control", cc)]), b"A", t0());
        assert_eq!(got, Err(why), "{cc}");
        assert_eq!(probe(&c, &r, t0()), ("lead", false), "{cc}");
        assert_eq!(c.stats().objects, 0);
    }
}

#[test]
fn expires_counts_from_the_server_date() {
    let c = cache();
    let r = get("/a");
    let date = http_date(t0());
    let expires = http_date(at(30));
    let h = [("date", date.as_str()), ("expires", expires.as_str())];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    assert_eq!(probe(&c, &r, at(29)), ("hit", false));
    assert_eq!(probe(&c, &r, at(30)), ("lead", true));
}

#[test]
fn expires_in_the_past_is_not_stored() {
    let c = cache();
    let r = get("/a");
    let date = http_date(t0());
    let h = [("date", date.as_str()), ("expires", "0")];
    assert_eq!(
        fill(&c, &r, &res(200, &h), b"A", t0()),
        Err(NotStored::NotFresh)
    );
}

#[test]
fn default_ttl_applies_without_explicit_freshness_and_replaces_the_heuristic() {
    let c = cache();
    let r = get("/a");
    // A year-old Last-Modified would give a 36-day heuristic lifetime; default_ttl wins.
    let lm = http_date(t0() - Duration::from_secs(365 * 86_400));
    fill(
        &c,
        &r,
        &res(200, &[("last-modified", lm.as_str())]),
        b"A",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &r, at(299)), ("hit", false));
    assert_eq!(probe(&c, &r, at(300)), ("lead", true));

    // `public` without a lifetime also takes default_ttl.
    let r = get("/b");
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "public")]),
        b"B",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &r, at(299)), ("hit", false));
}

#[test]
fn default_ttl_only_for_statuses_cacheable_by_default() {
    let c = cache();
    assert_eq!(
        fill(&c, &get("/500"), &res(500, &[]), b"", t0()),
        Err(NotStored::Policy)
    );
    assert_eq!(
        fill(&c, &get("/302"), &res(302, &[]), b"", t0()),
        Err(NotStored::Policy)
    );
    fill(&c, &get("/404"), &res(404, &[]), b"nope", t0()).unwrap();
    assert_eq!(probe(&c, &get("/404"), at(1)), ("hit", false));
}

#[test]
fn age_from_upstream_shortens_freshness_and_shows_on_hits() {
    let c = cache();
    let r = get("/a");
    let h = [("cache-control", "max-age=60"), ("age", "50")];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    let key = key(&c, &r);
    let Lookup::Hit(hit) = c.lookup_or_lead(&key, &r, at(7)) else {
        panic!("expected hit")
    };
    assert_eq!(hit.age(), Duration::from_secs(57));
    let resp = hit.into_response(CacheStatus::Hit);
    assert_eq!(resp.headers()["age"], "57");
    assert_eq!(resp.headers()[X_CACHE], "HIT");
    assert_eq!(probe(&c, &r, at(10)), ("lead", true));
}

#[test]
fn authorization_is_stored_only_when_the_response_allows() {
    let c = cache();
    let auth = [("authorization", "Bearer x")];
    let r = req(Method::GET, "/private", &auth);
    let got = fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=60")]),
        b"A",
        t0(),
    );
    assert_eq!(got, Err(NotStored::Policy));
    // Nor by default_ttl.
    assert_eq!(
        fill(&c, &r, &res(200, &[]), b"A", t0()),
        Err(NotStored::Policy)
    );
    for (path, cc) in [("/p", "public, max-age=60"), ("/s", "s-maxage=60")] {
        let r = req(Method::GET, path, &auth);
        fill(&c, &r, &res(200, &[("cache-control", cc)]), b"A", t0()).unwrap();
        assert_eq!(probe(&c, &get(path), at(1)), ("hit", false), "{cc}");
    }
}

#[test]
fn set_cookie_is_never_stored() {
    let c = cache();
    let h = [
        ("cache-control", "public, max-age=60"),
        ("set-cookie", "s=1"),
    ];
    assert_eq!(
        fill(&c, &get("/a"), &res(200, &h), b"A", t0()),
        Err(NotStored::SetCookie)
    );
}

#[test]
fn client_cache_directives_neither_bust_nor_block_the_cache() {
    let c = cache();
    let busting = [
        ("cache-control", "no-cache, no-store"),
        ("pragma", "no-cache"),
    ];
    let r = req(Method::GET, "/a", &busting);
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=60")]),
        b"A",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &r, at(1)), ("hit", false));
}

#[test]
fn must_revalidate_is_never_served_stale() {
    let c = cache();
    let r = get("/a");
    let h = [("cache-control", "max-age=60, must-revalidate")];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    assert_eq!(probe(&c, &r, at(59)), ("hit", false));
    assert_eq!(probe(&c, &r, at(61)), ("lead", false));
}

#[test]
fn other_methods_and_range_misses_pass() {
    let c = cache();
    assert_eq!(
        probe(&c, &req(Method::POST, "/a", &[]), t0()),
        ("pass", false)
    );
    assert_eq!(
        probe(&c, &req(Method::GET, "/a", &[("range", "bytes=0-1")]), t0()),
        ("pass", false)
    );
    // A stored full object answers a Range request (a server may ignore Range).
    fill(
        &c,
        &get("/a"),
        &res(200, &[("cache-control", "max-age=60")]),
        b"AB",
        t0(),
    )
    .unwrap();
    assert_eq!(
        probe(&c, &req(Method::GET, "/a", &[("range", "bytes=0-1")]), t0()),
        ("hit", false)
    );
    let s = c.stats();
    assert_eq!((s.passes, s.misses, s.hits), (2, 1, 1));
}

#[test]
fn head_is_answered_from_a_stored_get_without_body() {
    let c = cache();
    let head = req(Method::HEAD, "/a", &[]);
    // A HEAD miss does not lead: it has no body to store.
    assert_eq!(probe(&c, &head, t0()), ("pass", false));
    let h = [
        ("cache-control", "max-age=60"),
        ("content-type", "text/plain"),
    ];
    fill(&c, &get("/a"), &res(200, &h), b"hello", t0()).unwrap();
    let key = key(&c, &head);
    let Lookup::Hit(hit) = c.lookup_or_lead(&key, &head, at(1)) else {
        panic!("expected hit")
    };
    assert!(hit.is_head());
    let resp = hit.into_response(CacheStatus::Hit);
    assert!(resp.body().is_empty());
    assert_eq!(resp.headers()["content-length"], "5");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    // The GET still gets the body.
    let get = get("/a");
    let Lookup::Hit(hit) = c.lookup_or_lead(&key, &get, at(1)) else {
        panic!("expected hit")
    };
    assert_eq!(&hit.into_response(CacheStatus::Hit).body()[..], b"hello");
}

#[test]
fn stale_copy_is_offered_with_the_refill_and_built_as_stale() {
    let c = cache();
    let r = get("/a");
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=10")]),
        b"old",
        t0(),
    )
    .unwrap();
    let key = key(&c, &r);
    let Lookup::Lead {
        fill,
        stale: Some(stale),
    } = c.lookup_or_lead(&key, &r, at(20))
    else {
        panic!("expected lead with stale copy")
    };
    // Upstream failed: the proxy drops the guard and answers with the stale copy.
    drop(fill);
    c.record_stale_served();
    let resp = stale.into_response(CacheStatus::Stale);
    assert_eq!(resp.headers()[X_CACHE], "STALE");
    assert_eq!(resp.headers()["age"], "20");
    assert_eq!(&resp.body()[..], b"old");
    assert_eq!(c.stats().stale_served, 1);
    // The failed refill left the stale copy in place.
    assert_eq!(probe(&c, &r, at(21)), ("lead", true));
}

#[test]
fn a_refill_replaces_the_stale_copy() {
    let c = cache();
    let r = get("/a");
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=10")]),
        b"old",
        t0(),
    )
    .unwrap();
    fill(
        &c,
        &r,
        &res(200, &[("cache-control", "max-age=10")]),
        b"new",
        at(20),
    )
    .unwrap();
    let key = key(&c, &r);
    let Lookup::Hit(hit) = c.lookup_or_lead(&key, &r, at(21)) else {
        panic!("expected hit")
    };
    assert_eq!(&hit.body()[..], b"new");
    assert_eq!(c.stats().objects, 1);
}

#[test]
fn query_is_part_of_the_key_unless_ignored() {
    let c = cache();
    fill(
        &c,
        &get("/a?x=1"),
        &res(200, &[("cache-control", "max-age=60")]),
        b"A",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &get("/a?x=1"), t0()), ("hit", false));
    assert_eq!(probe(&c, &get("/a?x=2"), t0()), ("lead", false));

    let c = Cache::new(CacheConfig {
        ignore_query: true,
        ..config()
    });
    fill(
        &c,
        &get("/a?x=1"),
        &res(200, &[("cache-control", "max-age=60")]),
        b"A",
        t0(),
    )
    .unwrap();
    assert_eq!(probe(&c, &get("/a?x=2"), t0()), ("hit", false));
    assert_eq!(probe(&c, &get("/a"), t0()), ("hit", false));
}

fn hit_body(c: &Cache, r: &http::request::Parts, now: std::time::SystemTime) -> String {
    match c.lookup_or_lead(&key(c, r), r, now) {
        Lookup::Hit(hit) => String::from_utf8_lossy(hit.body()).into_owned(),
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn variants_per_url_are_bounded() {
    let c = cache();
    let h = [("cache-control", "max-age=60"), ("vary", "accept-language")];
    let langs: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
    for lang in &langs {
        let r = req(Method::GET, "/a", &[("accept-language", lang)]);
        let body: &'static [u8] = lang.clone().into_bytes().leak();
        fill(&c, &r, &res(200, &h), body, t0()).unwrap();
    }
    assert_eq!(c.stats().objects, edgeguard_cache::MAX_VARIANTS as u64);
    // The most recently stored ones are kept.
    let last = req(Method::GET, "/a", &[("accept-language", "l19")]);
    assert_eq!(hit_body(&c, &last, at(1)), "l19");
    let first = req(Method::GET, "/a", &[("accept-language", "l0")]);
    assert_eq!(probe(&c, &first, at(1)), ("lead", false));
}

#[test]
fn vary_serves_only_the_matching_variant() {
    let c = cache();
    let gz = req(Method::GET, "/a", &[("accept-encoding", "gzip")]);
    let br = req(Method::GET, "/a", &[("accept-encoding", "br")]);
    let h = [("cache-control", "max-age=60"), ("vary", "Accept-Encoding")];
    fill(&c, &gz, &res(200, &h), b"gz", t0()).unwrap();
    assert_eq!(probe(&c, &gz, at(1)), ("hit", false));
    assert_eq!(probe(&c, &br, at(1)), ("lead", false));
    // A second variant is stored beside the first: clients alternating encodings both hit.
    fill(&c, &br, &res(200, &h), b"br", at(1)).unwrap();
    for _ in 0..3 {
        assert_eq!(hit_body(&c, &gz, at(2)), "gz");
        assert_eq!(hit_body(&c, &br, at(2)), "br");
    }
    // The same codings spelled another way select the same variant.
    let gz2 = req(
        Method::GET,
        "/a",
        &[("accept-encoding", "GZIP;q=1.0, identity")],
    );
    assert_eq!(hit_body(&c, &gz2, at(2)), "gz");
    assert_eq!(c.stats().objects, 2);
    // A refill of one variant replaces it, not the other.
    fill(&c, &gz, &res(200, &h), b"gz-2", at(100)).unwrap();
    assert_eq!(hit_body(&c, &gz, at(101)), "gz-2");
    assert_eq!(c.stats().objects, 2);
    // A purge of the URL drops every variant.
    assert_eq!(c.purge_keys(&[key(&c, &gz)]), 2);
    assert_eq!(c.stats().objects, 0);
    let star = [("cache-control", "max-age=60"), ("vary", "*")];
    assert_eq!(
        fill(&c, &get("/b"), &res(200, &star), b"", t0()),
        Err(NotStored::VaryStar)
    );
}

#[test]
fn hop_by_hop_headers_are_not_replayed() {
    let c = cache();
    let h = [
        ("cache-control", "max-age=60"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
    ];
    fill(&c, &get("/a"), &res(200, &h), b"body", t0()).unwrap();
    let key = key(&c, &get("/a"));
    let Lookup::Hit(hit) = c.lookup_or_lead(&key, &get("/a"), t0()) else {
        panic!("expected hit")
    };
    let headers = hit.headers();
    assert!(!headers.contains_key("connection"));
    assert!(!headers.contains_key("keep-alive"));
    assert!(!headers.contains_key("transfer-encoding"));
    assert_eq!(headers["content-length"], "4");
}

#[test]
fn huge_lifetimes_are_capped_not_overflowed() {
    let c = cache();
    let r = get("/a");
    let h = [("cache-control", "max-age=10000000000000000000")];
    fill(&c, &r, &res(200, &h), b"A", t0()).unwrap();
    assert_eq!(probe(&c, &r, at(1 << 30)), ("hit", false));
    assert_eq!(probe(&c, &r, at(1 << 31)), ("lead", true));
}
