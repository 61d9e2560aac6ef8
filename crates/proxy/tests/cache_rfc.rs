//! The cache against RFC 9111/9110/9213/5861 through a whole node, with an origin that counts its requests
//! and records the conditional headers it receives: revalidation (304 from the origin), conditional and
//! range requests answered from stored objects, `CDN-Cache-Control`, `stale-while-revalidate`,
//! `stale-if-error`, `must-revalidate`.

mod common;

use common::*;

const LM: &str = "Tue, 01 Dec 2026 10:00:00 GMT";

async fn rfc_origin() -> Origin {
    Origin::builder()
        .route(
            "/v",
            Route::text("version one\n")
                .cache_control("max-age=60")
                .header("etag", "\"v1\"")
                .header("last-modified", LM)
                .conditional(),
        )
        .route(
            "/nc",
            Route::text("no-cache\n")
                .cache_control("no-cache")
                .header("etag", "W/\"nc\"")
                .conditional(),
        )
        .route(
            "/lm",
            Route::text("dated\n")
                .cache_control("max-age=0")
                .header("last-modified", LM)
                .conditional(),
        )
        .route(
            "/mr",
            Route::text("strict\n")
                .cache_control("max-age=60, must-revalidate")
                .header("etag", "\"mr\"")
                .conditional(),
        )
        .route(
            "/digits",
            Route::text("0123456789").cache_control("max-age=60"),
        )
        .route(
            "/cdn",
            Route::text("cdn\n")
                .cache_control("no-store")
                .header("cdn-cache-control", "max-age=60"),
        )
        .route(
            "/swr",
            Route::path("swr ", "\n").cache_control("max-age=1, stale-while-revalidate=30"),
        )
        .route(
            "/sie",
            Route::text("sie\n").cache_control("max-age=60, stale-if-error=600"),
        )
        .route(
            "/create",
            Route::text("created\n")
                .status(201)
                .header("location", "/v")
                .header("content-location", "http://other.test/digits"),
        )
        .when_failing(Route::text("origin failing\n").status(503))
        .start()
        .await
}

fn site(origin: std::net::SocketAddr, cache: &str) -> String {
    cache_site("edge-r", origin, cache)
}

fn sent(o: &Origin, path: &str, name: &str) -> Option<String> {
    let h = o.last_headers(path)?;
    h.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_expired_object_with_a_validator_is_revalidated_not_refetched() {
    let o = rfc_origin().await;
    let (n, clock) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/v", &[]).await.x_cache(), "MISS");
    clock.advance(61_000);
    let r = get(addr, "a.test", "/v", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "REVALIDATED"));
    assert_eq!(r.body, "version one\n");
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(o.not_modified(), 1, "the origin answered 304");
    assert_eq!(sent(&o, "/v", "if-none-match").as_deref(), Some("\"v1\""));
    assert_eq!(sent(&o, "/v", "if-modified-since").as_deref(), Some(LM));
    // Fresh again for another 60 s.
    clock.advance(30_000);
    assert_eq!(get(addr, "a.test", "/v", &[]).await.x_cache(), "HIT");
    assert_eq!(o.hits_of("/v"), 2);
}

#[tokio::test]
async fn no_cache_and_max_age_0_are_stored_and_revalidated_on_each_use() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    for path in ["/nc", "/lm"] {
        assert_eq!(get(addr, "a.test", path, &[]).await.x_cache(), "MISS");
        for _ in 0..2 {
            let r = get(addr, "a.test", path, &[]).await;
            assert_eq!((r.status.as_u16(), r.x_cache()), (200, "REVALIDATED"));
        }
        assert_eq!(o.hits_of(path), 3);
    }
    assert_eq!(o.not_modified(), 4);
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale_but_others_are() {
    let o = rfc_origin().await;
    let (n, clock) = node(&site(o.addr, "stale_grace = \"10m\"")).await;
    let addr = n.local_addrs()[0];
    get(addr, "a.test", "/mr", &[]).await;
    get(addr, "a.test", "/v", &[]).await;
    clock.advance(61_000);
    o.fail(true);
    let r = get(addr, "a.test", "/mr", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (503, "MISS"));
    let r = get(addr, "a.test", "/v", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "STALE"));
}

#[tokio::test]
async fn stale_if_error_extends_the_grace() {
    let o = rfc_origin().await;
    let (n, clock) = node(&site(o.addr, "stale_grace = \"1m\"")).await;
    let addr = n.local_addrs()[0];
    get(addr, "a.test", "/sie", &[]).await;
    get(addr, "a.test", "/digits", &[]).await;
    clock.advance(300_000);
    o.fail(true);
    let r = get(addr, "a.test", "/sie", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "STALE"));
    let r = get(addr, "a.test", "/digits", &[]).await;
    assert_eq!(r.status, 503, "past the grace, no stale-if-error");
}

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_url_and_location() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    for path in ["/digits", "/v", "/create"] {
        get(addr, "a.test", path, &[]).await;
    }
    o.fail(true);
    let r = send(addr, http::Method::POST, "a.test", "/digits", &[], "x").await;
    assert_eq!(r.status, 503);
    o.fail(false);
    assert_eq!(
        get(addr, "a.test", "/digits", &[]).await.x_cache(),
        "HIT",
        "a failure invalidates nothing"
    );
    for method in [http::Method::PUT, http::Method::DELETE] {
        send(addr, method, "a.test", "/digits", &[], "").await;
        assert_eq!(get(addr, "a.test", "/digits", &[]).await.x_cache(), "MISS");
    }
    let r = send(addr, http::Method::POST, "a.test", "/create", &[], "x").await;
    assert_eq!(r.status, 201);
    assert_eq!(get(addr, "a.test", "/create", &[]).await.x_cache(), "MISS");
    assert_eq!(
        get(addr, "a.test", "/v", &[]).await.x_cache(),
        "MISS",
        "its Location"
    );
    assert_eq!(
        get(addr, "a.test", "/digits", &[]).await.x_cache(),
        "HIT",
        "a Content-Location on another host is not ours"
    );
}

#[tokio::test]
async fn the_fill_does_not_forward_client_conditions_and_answers_them() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    let r = get(addr, "a.test", "/v", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (304, "MISS"));
    assert_eq!(r.body, "");
    assert_eq!(sent(&o, "/v", "if-none-match"), None);
    assert_eq!(o.not_modified(), 0);
    // The origin's 200 filled the cache.
    let r = get(addr, "a.test", "/v", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache(), r.body.as_str()),
        (200, "HIT", "version one\n")
    );
}

#[tokio::test]
async fn conditional_requests_on_a_hit_get_304() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    get(addr, "a.test", "/v", &[]).await;
    let cases: [(&[(&str, &str)], u16); 6] = [
        (&[("if-none-match", "\"v1\"")], 304),
        (&[("if-none-match", "W/\"v1\"")], 304),
        (&[("if-none-match", "\"x\", \"v1\"")], 304),
        (&[("if-none-match", "\"v2\"")], 200),
        (&[("if-modified-since", LM)], 304),
        // If-None-Match takes precedence: it fails, so If-Modified-Since is not looked at.
        (
            &[("if-none-match", "\"v2\""), ("if-modified-since", LM)],
            200,
        ),
    ];
    for (headers, want) in cases {
        let r = get(addr, "a.test", "/v", headers).await;
        assert_eq!(
            (r.status.as_u16(), r.x_cache()),
            (want, "HIT"),
            "{headers:?}"
        );
        if want == 304 {
            assert_eq!(r.body, "");
            assert_eq!(r.header("etag"), Some("\"v1\""));
        }
    }
    let r = get(
        addr,
        "a.test",
        "/v",
        &[("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, 200, "modified since then");
    assert_eq!(o.hits_of("/v"), 1);
}

#[tokio::test]
async fn ranges_are_answered_from_the_stored_object() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    let r = get(addr, "a.test", "/digits", &[("range", "bytes=2-5")]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (206, "MISS"));
    assert_eq!(r.body, "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(
        sent(&o, "/digits", "range"),
        None,
        "the whole object was fetched"
    );

    let r = get(addr, "a.test", "/digits", &[("range", "bytes=-3")]).await;
    assert_eq!(
        (r.status.as_u16(), r.x_cache(), r.body.as_str()),
        (206, "HIT", "789")
    );
    assert_eq!(r.header("content-range"), Some("bytes 7-9/10"));
    assert_eq!(r.header("content-length"), Some("3"));

    let r = get(addr, "a.test", "/digits", &[("range", "bytes=10-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));

    let r = get(addr, "a.test", "/digits", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "0123456789"));
    assert_eq!(o.hits_of("/digits"), 1);
}

#[tokio::test]
async fn cdn_cache_control_wins_and_is_not_forwarded() {
    let o = rfc_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    for want in ["MISS", "HIT"] {
        let r = get(addr, "a.test", "/cdn", &[]).await;
        assert_eq!(r.x_cache(), want);
        assert_eq!(r.header("cdn-cache-control"), None);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert_eq!(o.hits_of("/cdn"), 1);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let o = rfc_origin().await;
    let (n, clock) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/swr", &[]).await.x_cache(), "MISS");
    clock.advance(2_000);
    let r = get(addr, "a.test", "/swr", &[]).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("UPDATING", "swr /swr\n"));
    assert!(eventually(|| o.hits_of("/swr") == 2).await);
    assert!(eventually(|| n.metrics_text().contains("edgeguard_cache_objects")).await);
    // The refresh is stored: fresh again.
    let mut fresh = false;
    for _ in 0..50 {
        if get(addr, "a.test", "/swr", &[]).await.x_cache() == "HIT" {
            fresh = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(fresh);
    assert_eq!(o.hits_of("/swr"), 2, "one background refresh");
}

#[tokio::test]
async fn purge_by_urls_prefix_and_tags() {
    let o = Origin::builder()
        .route_prefix(
            "/img/",
            Route::path("img ", "\n")
                .cache_control("max-age=60")
                .header("cache-tag", "img, all"),
        )
        .fallback(
            Route::path("ok ", "\n")
                .cache_control("max-age=60")
                .header("surrogate-key", "all page"),
        )
        .start()
        .await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    let paths = ["/img/1", "/img/2", "/a", "/b?x=1", "/c"];
    for p in paths {
        let r = get(addr, "a.test", p, &[]).await;
        assert_eq!(
            r.header("cache-tag"),
            None,
            "purge groups are not sent downstream"
        );
        assert_eq!(r.header("surrogate-key"), None);
    }
    use edgeguard_proxy::Purge;
    assert_eq!(
        n.purge(
            "a.test",
            &Purge::Urls(vec!["/b?x=1".into(), "/none".into()])
        ),
        Some(1)
    );
    assert_eq!(n.purge("a.test", &Purge::Tags(vec!["img".into()])), Some(2));
    assert_eq!(get(addr, "a.test", "/a", &[]).await.x_cache(), "HIT");
    assert_eq!(get(addr, "a.test", "/img/1", &[]).await.x_cache(), "MISS");
    assert_eq!(n.purge("a.test", &Purge::Prefix("/img/".into())), Some(1));
    assert_eq!(
        n.purge("a.test", &Purge::Tags(vec!["page".into()])),
        Some(2)
    );
    assert_eq!(n.purge("nope.test", &Purge::Prefix("/".into())), None);
}
