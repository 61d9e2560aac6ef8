//! The cache's disk tier and `Vary` variants through a whole node: an object stored before a stop is served
//! after the restart with the origin gone; clients alternating `Accept-Encoding` are both served from cache.

mod common;

use common::*;

fn site(origin: std::net::SocketAddr, dir: &std::path::Path) -> String {
    cache_site(
        "edge-d",
        origin,
        &format!("disk_path = \"{}\"\ndisk_size = \"16m\"", dir.display()),
    )
}

#[tokio::test]
async fn objects_on_disk_survive_a_restart_with_the_origin_down() {
    let dir = tempfile::tempdir().unwrap();
    let origin = test_origin().await;
    let (edge, _) = node(&site(origin.addr(), dir.path())).await;
    let addr = edge.local_addrs()[0];
    let first = get(addr, "a.test", "/page?x=1", &[]).await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (200, "MISS"));
    edge.shutdown().await;
    // The folder of the domain holds the object.
    assert!(dir.path().join("a.test").is_dir());

    let dead = dead_addr().await;
    let (edge, _) = node(&site(dead, dir.path())).await;
    let addr = edge.local_addrs()[0];
    let again = get(addr, "a.test", "/page?x=1", &[]).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.body);
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.body, first.body);
    // Anything the disk does not hold still needs the (dead) origin.
    let other = get(addr, "a.test", "/other", &[]).await;
    assert_eq!(other.status.as_u16(), 502);
    let metrics = edge.metrics_text();
    assert!(
        metrics.contains("edgeguard_cache_disk_hits_total{domain=\"a.test\"} 1"),
        "{metrics}"
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn alternating_encodings_are_each_served_from_cache() {
    let origin = Origin::builder()
        .fallback(
            Route::header_lines("accept-encoding")
                .cache_control("max-age=60")
                .header("vary", "Accept-Encoding"),
        )
        .start()
        .await;
    let (node, _) = node(&cache_site("edge-v", origin.addr(), "enabled = true")).await;
    let addr = node.local_addrs()[0];
    let encodings = ["gzip, deflate, br", "identity", "gzip"];
    for round in 0..3 {
        for enc in encodings {
            let r = get(addr, "a.test", "/v", &[("accept-encoding", enc)]).await;
            assert_eq!(r.status.as_u16(), 200);
            assert_eq!(r.body.trim(), enc, "each client gets its own variant");
            let want = if round == 0 { "MISS" } else { "HIT" };
            assert_eq!(r.x_cache(), want, "round {round}, {enc}");
        }
    }
    // The same codings spelled another way share a variant.
    let r = get(
        addr,
        "a.test",
        "/v",
        &[("accept-encoding", "br;q=1, GZIP, deflate")],
    )
    .await;
    assert_eq!((r.x_cache(), r.body.trim()), ("HIT", "gzip, deflate, br"));
    assert_eq!(origin.hits_of("/v"), 3);
    node.shutdown().await;
}
