//! Upstream health as nginx and Envoy keep it: an origin restart is an outage only while the origin is really
//! down, `max_fails` within `fail_timeout` before an upstream is marked down, recovery as soon as a request
//! succeeds, HTTP health probes; and `max_conns` with its bounded queue.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::net::TcpListener;

fn site(origins: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = origins.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[node]\nname = \"edge-1\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"a.test\"\n\
         origins = [{}]\n[domain.cache]\nenabled = false\n{extra}\n",
        list.join(", ")
    )
}

fn up(node: &edgeguard_proxy::RunningNode, addr: SocketAddr) -> String {
    let prefix = format!("edgeguard_upstream_up{{kind=\"origin\",upstream=\"{addr}\"}} ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| "absent".into())
}

#[tokio::test]
async fn an_origin_restart_answers_200_as_soon_as_it_is_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o_addr = listener.local_addr().unwrap();
    let origin = serve_origin(listener);
    let (edge, _) = node(&site(&[o_addr], "")).await;
    let addr = edge.local_addrs()[0];
    for i in 0..5 {
        assert_eq!(
            get(addr, "a.test", &format!("/a{i}"), &[]).await.status,
            200
        );
    }
    // The origin goes away: requests fail while it is down, and a health check round sees it down too.
    origin.stop();
    assert!(eventually(|| std::net::TcpStream::connect(o_addr).is_err()).await);
    for _ in 0..3 {
        assert_eq!(get(addr, "a.test", "/down", &[]).await.status, 502);
    }
    edge.check_upstreams().await;
    assert_eq!(up(&edge, o_addr), "0");
    // Back on the same port: every request from the first one on is served, before any health check.
    let _back = serve_origin(TcpListener::bind(o_addr).await.unwrap());
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(
            get(addr, "a.test", &format!("/b{i}"), &[])
                .await
                .status
                .as_u16(),
        );
    }
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(up(&edge, o_addr), "1");
}

#[tokio::test]
async fn max_fails_within_fail_timeout_then_recovery_by_a_request() {
    let dead = dead_addr().await;
    let good = test_origin().await;
    let extra = "[domain.upstream]\nmax_fails = 3\nfail_timeout = \"300ms\"";
    let (edge, _) = node(&site(&[dead, good.addr], extra)).await;
    let addr = edge.local_addrs()[0];
    // Two failures: still up, each request tries it first and falls over to the next.
    for _ in 0..2 {
        assert_eq!(get(addr, "a.test", "/x", &[]).await.status, 200);
        assert_eq!(up(&edge, dead), "1");
    }
    // The third within fail_timeout marks it down: the next requests go straight to the good one.
    assert_eq!(get(addr, "a.test", "/x", &[]).await.status, 200);
    assert_eq!(up(&edge, dead), "0");
    let r = get(addr, "a.test", "/y", &[]).await;
    assert_eq!(r.body, "ok /y\n");
    // It comes back; once fail_timeout is over a request tries it again, succeeds, and it is up at once.
    let back = serve_origin(TcpListener::bind(dead).await.unwrap());
    let mut recovered = false;
    for _ in 0..100 {
        let _ = get(addr, "a.test", "/z", &[]).await;
        if back.hits() > 0 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered, "tried again after fail_timeout");
    assert_eq!(up(&edge, dead), "1");
}

#[tokio::test]
async fn max_fails_zero_never_marks_down_by_requests() {
    let dead = dead_addr().await;
    let good = test_origin().await;
    let (edge, _) = node(&site(
        &[dead, good.addr],
        "[domain.upstream]\nmax_fails = 0",
    ))
    .await;
    let addr = edge.local_addrs()[0];
    for _ in 0..3 {
        assert_eq!(get(addr, "a.test", "/x", &[]).await.status, 200);
    }
    assert_eq!(up(&edge, dead), "1");
}

#[tokio::test]
async fn http_health_checks_judge_the_status() {
    let o = Origin::builder()
        .route("/health", Route::text("broken\n").status(500))
        .route("/ready", Route::text("ready\n"))
        .start()
        .await;
    let check = |path: &str, statuses: &str| {
        format!("[domain.health_check]\ntype = \"http\"\npath = \"{path}\"\n{statuses}")
    };
    let (edge, _) = node(&site(&[o.addr], &check("/health", ""))).await;
    edge.check_upstreams().await;
    assert_eq!(up(&edge, o.addr), "0", "500 is outside the default 200-399");
    assert!(o.hits_of("/health") >= 1);
    // A status list that takes 5xx passes it; another path that answers 200 too.
    edge.reload(parse(&site(
        &[o.addr],
        &check("/health", "statuses = [\"5xx\"]"),
    )))
    .unwrap();
    edge.check_upstreams().await;
    assert_eq!(up(&edge, o.addr), "1");
    edge.reload(parse(&site(
        &[o.addr],
        &check("/ready", "statuses = [200]"),
    )))
    .unwrap();
    edge.check_upstreams().await;
    assert_eq!(up(&edge, o.addr), "1");
    let h = o.last_headers("/ready").unwrap();
    assert_eq!(h.get("host").unwrap(), "a.test");
}

fn slow_origin() -> edgeguard_testkit::OriginBuilder {
    Origin::builder().fallback(Route::path("ok ", "\n").delay(Duration::from_millis(50)))
}

#[tokio::test]
async fn a_miss_flood_never_opens_more_than_max_conns_origin_sockets() {
    let o = slow_origin().start().await;
    let extra = "[domain.upstream]\nmax_conns = 3\nqueue = 100\nqueue_timeout = \"10s\"";
    let (edge, _) = node(&site(&[o.addr], extra)).await;
    let addr = edge.local_addrs()[0];
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        set.spawn(async move { get(addr, "a.test", &format!("/m{i}"), &[]).await.status });
    }
    let mut ok = 0;
    while let Some(s) = set.join_next().await {
        if s.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 40, "every queued request is served");
    assert!(o.conns() <= 3, "origin sockets opened: {}", o.conns());
    assert_eq!(o.hits(), 40);
    let open = edge
        .metrics_text()
        .lines()
        .any(|l| l.starts_with("edgeguard_upstream_connections{"));
    assert!(open, "open sockets are in the metrics");
}

#[tokio::test]
async fn beyond_max_conns_and_a_full_queue_is_503() {
    let o = Origin::builder()
        .fallback(Route::text("held\n").gated())
        .start()
        .await;
    let extra = "[domain.upstream]\nmax_conns = 1\nqueue = 0";
    let (edge, _) = node(&site(&[o.addr], extra)).await;
    let addr = edge.local_addrs()[0];
    let first = tokio::spawn(async move { get(addr, "a.test", "/first", &[]).await });
    assert!(eventually(|| o.conns() == 1).await);
    let r = get(addr, "a.test", "/second", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body
            .contains("max_conns connections in use and a full queue"),
        "{}",
        r.body
    );
    o.open_gate(1);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(up(&edge, o.addr), "1", "a busy upstream is not a dead one");
}
