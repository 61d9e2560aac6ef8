//! The cache phase through a whole node: MISS then HIT, HEAD from a cached GET, coalescing of a burst of
//! misses into one origin request, bodies of unknown length stored as they stream, STALE when the origin
//! fails, what is not stored, limits on hits, and a reload that keeps the cache.

mod common;

use common::*;
use http::Method;

fn site(origin: std::net::SocketAddr, cache: &str) -> String {
    cache_site("edge-c", origin, cache)
}

#[tokio::test]
async fn miss_then_hit_and_head_from_the_cached_get() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];

    let r = get(addr, "a.test", "/page", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "MISS"));
    assert_eq!(r.body, "ok /page\n");
    assert_eq!(r.header("via"), Some("1.1 edge-c"));

    let r = get(addr, "a.test", "/page", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "HIT"));
    assert_eq!(r.body, "ok /page\n");
    assert_eq!(r.header("via"), Some("1.1 edge-c"));
    assert_eq!(r.header("age"), Some("0"));

    let r = send(addr, Method::HEAD, "a.test", "/page", &[], "").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "HIT"));
    assert_eq!(r.header("content-length"), Some("9"));
    assert_eq!(r.body, "");
    assert_eq!(o.hits(), 1, "the origin saw the first GET only");

    // The query is part of the key; the host's case is not.
    assert_eq!(
        get(addr, "a.test", "/page?v=2", &[]).await.x_cache(),
        "MISS"
    );
    assert_eq!(get(addr, "A.TEST", "/page?v=2", &[]).await.x_cache(), "HIT");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn ignore_query_shares_one_object() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "ignore_query = true")).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/p?a=1", &[]).await.x_cache(), "MISS");
    let r = get(addr, "a.test", "/p?b=2", &[]).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("HIT", "ok /p?a=1\n"));
}

#[tokio::test]
async fn a_burst_of_misses_makes_one_origin_request() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    let burst: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { get(addr, "a.test", "/gate", &[]).await }))
        .collect();
    assert!(eventually(|| o.hits_of("/gate") == 1).await);
    // Give the rest of the burst time to arrive and queue behind the leader (bounded, not a correctness wait:
    // late arrivals would be hits anyway).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    o.open_gate(1);
    let mut statuses = Vec::new();
    for t in burst {
        let r = t.await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "gated\n"));
        statuses.push(r.x_cache().to_string());
    }
    assert_eq!(o.hits_of("/gate"), 1, "exactly one origin request");
    assert_eq!(statuses.iter().filter(|s| *s == "MISS").count(), 1);
    assert_eq!(statuses.iter().filter(|s| *s == "HIT").count(), 19);
}

#[tokio::test]
async fn a_chunked_body_is_stored_as_it_streams() {
    let o = test_origin().await;
    // Object limit 8 KiB: 5,000 bytes fit.
    let (n, _) = node(&site(o.addr, "max_size = \"64k\"")).await;
    let addr = n.local_addrs()[0];
    let r = get(addr, "a.test", "/chunked", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "MISS"));
    assert_eq!(
        r.header("content-length"),
        None,
        "streamed to the first client"
    );
    assert_eq!(r.body, "chunk1\nchunk2\n");
    let r = get(addr, "a.test", "/chunked", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "HIT"));
    assert_eq!(r.body, "chunk1\nchunk2\n");
    assert_eq!(r.header("content-length"), Some("14"));
    assert_eq!(o.hits_of("/chunked"), 1);

    for want in ["MISS", "HIT"] {
        let r = get(addr, "a.test", "/chunked-big?n=5000", &[]).await;
        assert_eq!((r.x_cache(), r.body.len()), (want, 5000));
    }
    assert_eq!(o.hits_of("/chunked-big"), 1);
}

#[tokio::test]
async fn a_burst_of_misses_for_a_chunked_body_makes_one_origin_request() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    let burst: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { get(addr, "a.test", "/chunked-gate", &[]).await }))
        .collect();
    // The leader's head and first chunk are on their way; the body is not finished until the gate opens.
    assert!(eventually(|| o.hits_of("/chunked-gate") == 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    o.open_gate(1);
    let mut statuses = Vec::new();
    for t in burst {
        let r = t.await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (200, "chunk1\nchunk2\n")
        );
        statuses.push(r.x_cache().to_string());
    }
    assert_eq!(o.hits_of("/chunked-gate"), 1, "exactly one origin request");
    assert_eq!(statuses.iter().filter(|s| *s == "MISS").count(), 1);
}

#[tokio::test]
async fn a_client_gone_mid_body_stores_nothing_and_frees_the_fill() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];

    // The first client reads the head and the first chunk, then hangs up; its origin never finishes.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/chunked-hold")
        .header("host", "a.test")
        .header("x-hold", "1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.headers()["x-cache"], "MISS");
    let mut body = resp.into_body();
    let first = tokio::time::timeout(WAIT, http_body_util::BodyExt::frame(&mut body))
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap().into_data().unwrap(), "chunk1\n");
    drop((body, sender));
    conn.abort();

    // The next request is not held behind the abandoned fill (it would wait out read_timeout, past WAIT),
    // and finds nothing stored.
    let r = get(addr, "a.test", "/chunked-hold", &[]).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("MISS", "chunk1\nchunk2\n"));
    let r = get(addr, "a.test", "/chunked-hold", &[]).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("HIT", "chunk1\nchunk2\n"));
    assert_eq!(o.hits_of("/chunked-hold"), 2);
}

#[tokio::test]
async fn stale_copy_when_the_origin_fails() {
    let o = test_origin().await;
    let (n, clock) = node(&site(o.addr, "stale_grace = \"10m\"")).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/s", &[]).await.x_cache(), "MISS");

    // Past max-age=60: expired, within the grace.
    clock.advance(61_000);
    o.fail(true);
    let r = get(addr, "a.test", "/s", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "STALE"), "{r:?}");
    assert_eq!(r.body, "ok /s\n");
    assert_eq!(r.header("age"), Some("61"));

    // The origin gone altogether (connection refused): still the stale copy.
    o.stop();
    let r = get(addr, "a.test", "/s", &[]).await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "STALE"), "{r:?}");

    // Past the grace: the failure shows (a lone origin is tried every time, never skipped as down).
    clock.advance(600_000);
    let r = get(addr, "a.test", "/s", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.x_cache(), "MISS");
    assert!(r.body.contains("refused the connection"), "{}", r.body);
    assert!(
        n.metrics_text()
            .contains("edgeguard_cache_stale_total{domain=\"a.test\"} 2")
    );
}

#[tokio::test]
async fn an_expired_object_is_fetched_again() {
    let o = test_origin().await;
    let (n, clock) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/e", &[]).await.x_cache(), "MISS");
    clock.advance(30_000);
    let r = get(addr, "a.test", "/e", &[]).await;
    assert_eq!((r.x_cache(), r.header("age")), ("HIT", Some("30")));
    clock.advance(31_000);
    assert_eq!(get(addr, "a.test", "/e", &[]).await.x_cache(), "MISS");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn what_is_not_stored() {
    let o = test_origin().await;
    // Object limit: max_size / 8 = 8 KiB.
    let (n, _) = node(&site(o.addr, "max_size = \"64k\"")).await;
    let addr = n.local_addrs()[0];
    for path in [
        "/cookie",
        "/nocache",
        "/big?n=20000",
        "/chunked-big?n=20000",
    ] {
        for _ in 0..2 {
            let r = get(addr, "a.test", path, &[]).await;
            assert_eq!((r.status.as_u16(), r.x_cache()), (200, "MISS"), "{path}");
        }
    }
    assert_eq!(
        get(addr, "a.test", "/big?n=20000", &[]).await.body.len(),
        20000
    );
    assert_eq!(
        get(addr, "a.test", "/chunked-big?n=20000", &[])
            .await
            .body
            .len(),
        20000
    );
    assert_eq!(o.hits_of("/chunked-big"), 3, "over the limit: never stored");
    // A POST goes through and does not fill.
    let r = send(addr, Method::POST, "a.test", "/post", &[], "").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (200, "MISS"));
    assert_eq!(get(addr, "a.test", "/post", &[]).await.x_cache(), "MISS");
    // A small object is.
    get(addr, "a.test", "/big?n=1000", &[]).await;
    assert_eq!(
        get(addr, "a.test", "/big?n=1000", &[]).await.x_cache(),
        "HIT"
    );
}

#[tokio::test]
async fn limits_apply_to_hits() {
    let o = test_origin().await;
    let text = format!(
        r#"
[node]
name = "edge-c"
listen = ["127.0.0.1:0"]
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{}"]
limit_req = [{{ zone = "perip", burst = 1, nodelay = true }}]
"#,
        o.addr
    );
    let (n, _) = node(&text).await;
    let addr = n.local_addrs()[0];
    assert_eq!(get(addr, "a.test", "/x", &[]).await.x_cache(), "MISS");
    assert_eq!(get(addr, "a.test", "/x", &[]).await.x_cache(), "HIT");
    let r = get(addr, "a.test", "/x", &[]).await;
    assert_eq!(r.status, 503, "a hit is limited like any request");
    assert_eq!(r.x_cache(), "-");
}

#[tokio::test]
async fn reload_keeps_the_cache_unless_its_settings_change() {
    let o = test_origin().await;
    let (n, _) = node(&site(o.addr, "")).await;
    let addr = n.local_addrs()[0];
    get(addr, "a.test", "/r", &[]).await;
    n.reload(parse(&site(o.addr, ""))).unwrap();
    assert_eq!(get(addr, "a.test", "/r", &[]).await.x_cache(), "HIT");
    n.reload(parse(&site(o.addr, "default_ttl = \"1m\"")))
        .unwrap();
    assert_eq!(
        get(addr, "a.test", "/r", &[]).await.x_cache(),
        "MISS",
        "new settings, new cache"
    );
    n.reload(parse(&site(o.addr, "enabled = false"))).unwrap();
    assert_eq!(get(addr, "a.test", "/r", &[]).await.x_cache(), "-");
    assert_eq!(o.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stops_waiting_after_lock_timeout() {
    let origin = test_origin().await;
    let (node, _) = node(&cache_site("edge-l", origin.addr, "lock_timeout = \"1s\"")).await;
    let addr = node.local_addrs()[0];
    // /slow answers after 5 s: the leader's fill is still in flight when the follower gives up on it.
    let leader = tokio::spawn(async move { get(addr, "a.test", "/slow", &[]).await });
    assert!(eventually(|| origin.hits_of("/slow") == 1).await);
    let follower = tokio::spawn(async move { get(addr, "a.test", "/slow", &[]).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(origin.hits_of("/slow"), 1, "the follower waits at first");
    // Well before the leader's answer (5 s), the follower has gone upstream on its own.
    let mut gone = false;
    for _ in 0..20 {
        if origin.hits_of("/slow") == 2 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the follower went upstream after lock_timeout");
    let (l, f) = (leader.await.unwrap(), follower.await.unwrap());
    assert_eq!((l.status.as_u16(), f.status.as_u16()), (200, 200));
    assert_eq!(l.x_cache(), "MISS");
    node.shutdown().await;
}
