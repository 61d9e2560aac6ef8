//! Hit path cost: key building, lookup of a fresh object, and building the response the proxy sends.
//! Reports times only; nothing here asserts on them.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use edgeguard_cache::{Cache, CacheConfig, CacheStatus, Lookup};
use http::{Request, Response};

fn setup(objects: usize) -> (Cache, http::request::Parts, SystemTime) {
    let cache = Cache::new(CacheConfig::new(64 << 20));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let res = Response::builder()
        .header("cache-control", "max-age=3600")
        .header("content-type", "text/html; charset=utf-8")
        .header("etag", "\"abc123\"")
        .header("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")
        .body(())
        .expect("bench response")
        .into_parts()
        .0;
    let body = Bytes::from(vec![b'x'; 1024]);
    for i in 0..objects {
        let req = request(&format!("/static/file-{i}.html?v=3"));
        let key = cache.key("www.example.com", &req.uri);
        if let Lookup::Lead { fill, .. } = cache.lookup_or_lead(&key, &req, now) {
            let _ = fill.complete(&res, body.clone(), now);
        }
    }
    (cache, request("/static/file-7.html?v=3"), now)
}

fn request(uri: &str) -> http::request::Parts {
    Request::get(uri)
        .header("host", "www.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept-encoding", "gzip, br")
        .body(())
        .expect("bench request")
        .into_parts()
        .0
}

fn hit(c: &mut Criterion) {
    let (cache, req, now) = setup(10_000);
    let later = now + Duration::from_secs(10);

    c.bench_function("key", |b| {
        b.iter(|| black_box(cache.key(black_box("www.example.com"), &req.uri)))
    });

    c.bench_function("hit_lookup", |b| {
        let key = cache.key("www.example.com", &req.uri);
        b.iter(
            || match cache.lookup_or_lead(&key, black_box(&req), later) {
                Lookup::Hit(hit) => black_box(hit),
                other => panic!("expected a hit, got {other:?}"),
            },
        )
    });

    c.bench_function("hit_key_lookup_response", |b| {
        b.iter(|| {
            let key = cache.key("www.example.com", &req.uri);
            match cache.lookup_or_lead(&key, black_box(&req), later) {
                Lookup::Hit(hit) => black_box(hit.into_response(CacheStatus::Hit)),
                other => panic!("expected a hit, got {other:?}"),
            }
        })
    });
}

criterion_group!(benches, hit);
criterion_main!(benches);
