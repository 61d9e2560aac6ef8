//! Upstream health as nginx and Envoy keep it: an origin restart is an outage only while the origin is really
//! down, `max_fails` within `fail_timeout` before an upstream is marked down, recovery as soon as a request
//! succeeds, HTTP health probes with their `fails`/`passes` runs; and `max_conns` with its bounded queue.

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

/// Runs `rounds` health check rounds and returns what the metrics say of `addr` after each.
async fn rounds(
    edge: &edgeguard_proxy::RunningNode,
    addr: SocketAddr,
    rounds: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        edge.check_upstreams().await;
        seen.push(up(edge, addr));
    }
    seen
}

/// A one-hour interval: the background task never runs a probe during the test, the rounds are the test's.
const THRESHOLDS: &str = "[domain.health_check]\ninterval = \"1h\"\nfails = 3\npasses = 2";

#[tokio::test]
async fn fails_probes_in_a_row_mark_down_and_passes_in_a_row_bring_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = listener.local_addr().unwrap();
    let origin = serve_origin(listener);
    let good = test_origin().await;
    let (edge, _) = node(&site(&[flaky, good.addr], THRESHOLDS)).await;
    let addr = edge.local_addrs()[0];
    assert_eq!(rounds(&edge, flaky, 2).await, ["1", "1"]);

    // Down: two failed probes leave it up, the third marks it down; requests then skip it.
    origin.stop();
    assert!(eventually(|| std::net::TcpStream::connect(flaky).is_err()).await);
    assert_eq!(rounds(&edge, flaky, 3).await, ["1", "1", "0"]);
    let served = good.hits();
    let r = get(addr, "a.test", "/while-down", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(good.hits(), served + 1, "the down one is skipped");

    // Up again: one passing probe is not enough, a failed one restarts the run, two in a row bring it back.
    let back = serve_origin(TcpListener::bind(flaky).await.unwrap());
    assert_eq!(rounds(&edge, flaky, 1).await, ["0"]);
    back.stop();
    assert!(eventually(|| std::net::TcpStream::connect(flaky).is_err()).await);
    assert_eq!(rounds(&edge, flaky, 1).await, ["0"]);
    let back = serve_origin(TcpListener::bind(flaky).await.unwrap());
    assert_eq!(rounds(&edge, flaky, 2).await, ["0", "1"]);
    let r = get(addr, "a.test", "/after", &[]).await;
    assert_eq!(r.body, "ok /after\n");
    assert_eq!(back.hits_of("/after"), 1, "first in order again");

    // A passing probe between failures restarts the count: two failures, a pass, then down at the third
    // failure after it.
    back.stop();
    assert!(eventually(|| std::net::TcpStream::connect(flaky).is_err()).await);
    assert_eq!(rounds(&edge, flaky, 2).await, ["1", "1"]);
    let again = serve_origin(TcpListener::bind(flaky).await.unwrap());
    assert_eq!(rounds(&edge, flaky, 1).await, ["1"]);
    again.stop();
    assert!(eventually(|| std::net::TcpStream::connect(flaky).is_err()).await);
    assert_eq!(rounds(&edge, flaky, 3).await, ["1", "1", "0"]);
}

#[tokio::test]
async fn http_probes_count_their_runs_and_a_request_brings_an_upstream_back_at_once() {
    let o = test_origin().await;
    let check = format!("{THRESHOLDS}\ntype = \"http\"\npath = \"/health\"");
    let (edge, _) = node(&site(&[o.addr], &check)).await;
    let addr = edge.local_addrs()[0];
    // The origin answers 503 to everything: three probes take it out.
    o.fail(true);
    assert_eq!(rounds(&edge, o.addr, 3).await, ["1", "1", "0"]);
    assert!(o.hits_of("/health") >= 3);
    // It recovers; one probe passes (of the two `passes` asks for), then a request reaches it (the last
    // upstream is always tried) and succeeds: up at once, without waiting for the second probe.
    o.fail(false);
    assert_eq!(rounds(&edge, o.addr, 1).await, ["0"]);
    let r = get(addr, "a.test", "/served", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(up(&edge, o.addr), "1", "passive recovery is immediate");
    // The runs start again: one 503 probe does not take it out.
    o.fail(true);
    assert_eq!(rounds(&edge, o.addr, 1).await, ["1"]);
}

#[tokio::test]
async fn by_default_one_failed_probe_marks_down_and_one_pass_brings_back() {
    let o = test_origin().await;
    let check = "[domain.health_check]\ninterval = \"1h\"\ntype = \"http\"\npath = \"/health\"";
    let (edge, _) = node(&site(&[o.addr], check)).await;
    o.fail(true);
    assert_eq!(rounds(&edge, o.addr, 1).await, ["0"]);
    o.fail(false);
    assert_eq!(rounds(&edge, o.addr, 1).await, ["1"]);
}
