//! The memory budget: LRU eviction, per-object limit, bytes in use never above the budget.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use edgeguard_cache::{Cache, CacheConfig, Lookup, NotStored};
use proptest::prelude::*;

const CC: [(&str, &str); 1] = [("cache-control", "max-age=600")];

fn small_cache(max_size: u64) -> Cache {
    Cache::new(CacheConfig {
        max_size,
        ..config()
    })
}

fn fill_sized(c: &Cache, path: &str, size: usize) -> Result<(), NotStored> {
    fill_variant(c, path, None, size)
}

/// Fills `path` for a client sending `Accept-Language: lang` (the response varies on it when `lang` is given).
fn fill_variant(c: &Cache, path: &str, lang: Option<&str>, size: usize) -> Result<(), NotStored> {
    let headers: Vec<(&str, &str)> = lang.map(|l| ("accept-language", l)).into_iter().collect();
    let r = req(http::Method::GET, path, &headers);
    let key = key(c, &r);
    let mut response = CC.to_vec();
    if lang.is_some() {
        response.push(("vary", "accept-language"));
    }
    match c.lookup_or_lead(&key, &r, t0()) {
        Lookup::Lead { fill, .. } => {
            fill.complete(&res(200, &response), Bytes::from(vec![b'x'; size]), t0())
        }
        Lookup::Hit(_) => Ok(()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn least_recently_used_goes_first() {
    let c = small_cache(64 * 1024);
    for i in 0..12 {
        fill_sized(&c, &format!("/{i}"), 4000).unwrap();
    }
    let s = c.stats();
    assert!(s.bytes <= 64 * 1024);
    assert_eq!(s.evictions, 0);
    // Touch /0 so /1 is now the oldest.
    assert_eq!(probe(&c, &get("/0"), t0()), ("hit", false));
    for i in 12..16 {
        fill_sized(&c, &format!("/{i}"), 4000).unwrap();
    }
    let s = c.stats();
    assert!(s.evictions > 0);
    assert!(s.bytes <= 64 * 1024);
    assert_eq!(probe(&c, &get("/0"), t0()), ("hit", false));
    assert_eq!(probe(&c, &get("/1"), t0()), ("lead", false));
    assert_eq!(probe(&c, &get("/15"), t0()), ("hit", false));
}

#[test]
fn objects_over_the_limit_are_not_stored() {
    let c = small_cache(64 * 1024);
    assert_eq!(c.max_object_size(), 8 * 1024);
    let err = fill_sized(&c, "/big", 8 * 1024 + 1).unwrap_err();
    assert!(
        matches!(err, NotStored::TooLarge { limit: 8192, .. }),
        "{err:?}"
    );
    // Headers and bookkeeping count too: a body just under the limit does not fit.
    assert!(matches!(
        fill_sized(&c, "/edge", 8 * 1024),
        Err(NotStored::TooLarge { .. })
    ));
    let default = Cache::new(config());
    assert_eq!(default.max_object_size(), (1 << 20) / 8);
    let huge = Cache::new(CacheConfig {
        max_size: 1 << 30,
        ..config()
    });
    assert_eq!(huge.max_object_size(), 8 << 20);
}

#[test]
fn the_guard_precheck_uses_content_length() {
    let c = small_cache(64 * 1024);
    let r = get("/x");
    let key = key(&c, &r);
    let Lookup::Lead { fill, .. } = c.lookup_or_lead(&key, &r, t0()) else {
        panic!("lead")
    };
    let big = res(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("content-length", "100000"),
        ],
    );
    assert!(matches!(
        fill.check(&big, t0()),
        Err(NotStored::TooLarge { size: 100_000, .. })
    ));
    assert_eq!(
        fill.check(&res(200, &[("set-cookie", "a=b")]), t0()),
        Err(NotStored::SetCookie)
    );
    assert_eq!(fill.check(&res(200, &CC), t0()), Ok(()));
}

#[test]
fn purge_and_clear_release_bytes() {
    let c = small_cache(64 * 1024);
    fill_sized(&c, "/a", 100).unwrap();
    fill_sized(&c, "/b", 100).unwrap();
    assert!(c.purge(&key(&c, &get("/a"))));
    assert!(!c.purge(&key(&c, &get("/a"))));
    assert_eq!(c.stats().objects, 1);
    c.clear();
    let s = c.stats();
    assert_eq!((s.objects, s.bytes), (0, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Fill { path: u8, size: usize },
    FillVariant { path: u8, lang: u8, size: usize },
    Get { path: u8, secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..40, 0usize..6000).prop_map(|(path, size)| Op::Fill { path, size }),
        (0u8..4, 0u8..12, 0usize..3000).prop_map(|(path, lang, size)| Op::FillVariant {
            path,
            lang,
            size
        }),
        (0u8..40, 0u64..1200).prop_map(|(path, secs)| Op::Get { path, secs }),
    ]
}

proptest! {
    // Integration tests have no lib.rs beside them for proptest's regression files.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bytes_in_use_never_exceed_the_budget(ops in prop::collection::vec(op(), 1..200)) {
        let budget = 32 * 1024;
        let c = small_cache(budget);
        for op in ops {
            match op {
                Op::Fill { path, size } => {
                    let _ = fill_sized(&c, &format!("/{path}"), size);
                }
                Op::FillVariant { path, lang, size } => {
                    let lang = format!("l{lang}");
                    let _ = fill_variant(&c, &format!("/v{path}"), Some(&lang), size);
                }
                Op::Get { path, secs } => {
                    let r = get(&format!("/{path}"));
                    let key = key(&c, &r);
                    // Dropping a lead here abandons the fill, as a failed upstream would.
                    let _ = c.lookup_or_lead(&key, &r, t0() + Duration::from_secs(secs));
                }
            }
            let s = c.stats();
            prop_assert!(s.bytes <= budget, "{} bytes over a {} budget", s.bytes, budget);
            prop_assert!(s.objects <= budget / 256);
            prop_assert_eq!(s.objects == 0, s.bytes == 0);
        }
    }
}
