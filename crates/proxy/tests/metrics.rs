//! `RunningNode::metrics_text`: the series an operator scrapes, with values that follow the traffic, kept
//! across a reload.

mod common;

use common::*;

fn text(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[node]
name = "edge-m"
listen = ["127.0.0.1:0"]
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[limit_conn_zone]]
name = "addr"
key = "$binary_remote_addr"
size = "1m"
[[domain]]
name = "a.test"
origins = ["{origin}"]
limit_req = [{{ zone = "perip", burst = 2, nodelay = true }}]
limit_conn = [{{ zone = "addr", conn = 10 }}]
"#
    )
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn series_follow_the_traffic() {
    let o = test_origin().await;
    let (n, _) = node(&text(o.addr)).await;
    let addr = n.local_addrs()[0];
    for _ in 0..4 {
        get(addr, "a.test", "/m", &[]).await;
    }
    get(addr, "other.test", "/", &[]).await;
    let m = n.metrics_text();
    let v = |s: &str| value(&m, s).unwrap_or_else(|| panic!("no {s} in\n{m}"));
    assert_eq!(
        v("edgeguard_requests_total{domain=\"a.test\",class=\"2xx\"}"),
        3.0
    );
    assert_eq!(
        v("edgeguard_requests_total{domain=\"a.test\",class=\"5xx\"}"),
        1.0
    );
    assert_eq!(
        v("edgeguard_requests_total{domain=\"_unknown\",class=\"4xx\"}"),
        1.0
    );
    assert_eq!(
        v("edgeguard_decisions_total{domain=\"a.test\",decision=\"pass\"}"),
        3.0
    );
    assert_eq!(
        v("edgeguard_decisions_total{domain=\"a.test\",decision=\"limit_req\"}"),
        1.0
    );
    assert_eq!(
        v("edgeguard_decisions_total{domain=\"_unknown\",decision=\"refused\"}"),
        1.0
    );
    assert_eq!(v("edgeguard_request_duration_seconds_count"), 5.0);
    assert_eq!(
        v("edgeguard_request_duration_seconds_bucket{le=\"+Inf\"}"),
        5.0
    );
    assert!(v("edgeguard_zone_capacity{kind=\"limit_req\",zone=\"perip\"}") > 1000.0);
    assert_eq!(
        v("edgeguard_zone_in_use{kind=\"limit_req\",zone=\"perip\"}"),
        1.0
    );
    assert!(v("edgeguard_zone_capacity{kind=\"limit_conn\",zone=\"addr\"}") > 1000.0);
    assert_eq!(
        v("edgeguard_zone_in_use{kind=\"limit_conn\",zone=\"addr\"}"),
        0.0
    );
    assert_eq!(
        v(&format!(
            "edgeguard_upstream_up{{kind=\"origin\",upstream=\"{}\"}}",
            o.addr
        )),
        1.0
    );
    assert_eq!(v("edgeguard_cache_hits_total{domain=\"a.test\"}"), 2.0);
    assert_eq!(v("edgeguard_cache_misses_total{domain=\"a.test\"}"), 1.0);
    assert_eq!(v("edgeguard_cache_stale_total{domain=\"a.test\"}"), 0.0);
    assert_eq!(v("edgeguard_cache_evictions_total{domain=\"a.test\"}"), 0.0);
    assert_eq!(v("edgeguard_cache_objects{domain=\"a.test\"}"), 1.0);
    assert!(v("edgeguard_cache_bytes{domain=\"a.test\"}") > 0.0);
    assert_eq!(v("edgeguard_access_log_dropped_total"), 0.0);
    for kind in ["counter", "gauge", "histogram"] {
        assert!(m.contains(&format!(" {kind}\n")), "{kind}");
    }
    // Every sample line is `name{labels} number` or `name number`.
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        let (_, num) = l.rsplit_once(' ').unwrap();
        assert!(num.parse::<f64>().is_ok(), "{l}");
    }

    // A reload keeps counters and the cache.
    n.reload(parse(&text(o.addr))).unwrap();
    get(addr, "a.test", "/m", &[]).await;
    let m = n.metrics_text();
    assert_eq!(
        value(
            &m,
            "edgeguard_requests_total{domain=\"a.test\",class=\"5xx\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "edgeguard_cache_objects{domain=\"a.test\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn detector_series_per_domain() {
    let o = test_origin().await;
    let cfg = format!(
        r#"
[node]
name = "edge-d"
listen = ["127.0.0.1:0"]
[[domain]]
name = "n.test"
origins = ["{}"]
[domain.rate_limiting]
enabled = true
mode = "normal"
"#,
        o.addr
    );
    let (n, _) = node(&cfg).await;
    let addr = n.local_addrs()[0];
    for q in ["/d", "/d?x=1", "/d?x=2"] {
        get(addr, "n.test", q, &[]).await;
    }
    let m = n.metrics_text();
    let v = |s: &str| value(&m, s).unwrap_or_else(|| panic!("no {s} in\n{m}"));
    assert_eq!(
        v("edgeguard_baseline_threshold{domain=\"n.test\",measure=\"client_requests_10s\"}"),
        150.0,
        "the floor decides before anything is learned"
    );
    assert_eq!(
        v("edgeguard_baseline_threshold{domain=\"n.test\",measure=\"path_unseen_queries_10s\"}"),
        40.0
    );
    assert_eq!(
        v("edgeguard_baseline_threshold{domain=\"n.test\",measure=\"new_clients_10s\"}"),
        100.0
    );
    assert_eq!(v("edgeguard_baseline_warming_up{domain=\"n.test\"}"), 1.0);
    assert_eq!(
        v("edgeguard_baseline_status_class_ratio{domain=\"n.test\",class=\"5xx\"}")
            + v("edgeguard_baseline_status_class_ratio{domain=\"n.test\",class=\"2xx\"}"),
        1.0,
        "the test origin's answers are learned"
    );
    assert_eq!(
        v("edgeguard_baseline_unseen_query_ratio{domain=\"n.test\"}"),
        0.0,
        "no query string counts as new before the filter is warm"
    );
    assert_eq!(
        v("edgeguard_detector_paths_in_surge{domain=\"n.test\"}"),
        0.0
    );
    assert_eq!(
        v("edgeguard_detector_findings_total{domain=\"n.test\",rule=\"baseline.flood\"}"),
        0.0
    );
    assert!(!m.contains("edgeguard_detector_in_force{"), "{m}");
}
