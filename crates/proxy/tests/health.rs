//! Tiers and failover: an edge goes to its parents in order while they are up, to the origins when every
//! parent is down, health checks bring a parent back; origin failures answer 502/504/503 with a body that
//! names the upstream and the cause.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::net::TcpListener;

fn parent_text(origin: SocketAddr) -> String {
    format!(
        r#"
[node]
name = "parent-1"
tier = "parent"
listen = ["127.0.0.1:0"]
[[domain]]
name = "a.test"
origins = ["{origin}"]
[domain.cache]
enabled = false
"#
    )
}

fn edge_text(parents: &[SocketAddr], origins: &[SocketAddr], extra: &str) -> String {
    let list = |a: &[SocketAddr]| {
        a.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[node]
name = "edge-1"
tier = "edge"
listen = ["127.0.0.1:0"]
[[domain]]
name = "a.test"
origins = [{}]
parents = [{}]
{extra}
[domain.cache]
enabled = false
"#,
        list(origins),
        list(parents)
    )
}

fn up_line(metrics: &str, kind: &str, addr: SocketAddr) -> String {
    let prefix = format!("edgeguard_upstream_up{{kind=\"{kind}\",upstream=\"{addr}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or("absent")
        .to_string()
}

#[tokio::test]
async fn parents_in_order_then_origin_and_back() {
    let o = test_origin().await;
    let (parent, _) = node(&parent_text(o.addr)).await;
    let p_addr = parent.local_addrs()[0];
    let dead_parent = dead_addr().await;
    let (edge, _) = node(&edge_text(&[dead_parent, p_addr], &[o.addr], "")).await;
    let addr = edge.local_addrs()[0];

    // The first parent refuses: marked down, the second parent serves.
    let r = get(addr, "a.test", "/one", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let vias: Vec<_> = r.headers.get_all("via").iter().collect();
    assert_eq!(vias, ["1.1 parent-1", "1.1 edge-1"], "through the parent");
    let m = edge.metrics_text();
    assert_eq!(up_line(&m, "parent", dead_parent), "0");
    assert_eq!(up_line(&m, "parent", p_addr), "1");
    assert_eq!(up_line(&m, "origin", o.addr), "1");

    // Every parent down: straight to the origin.
    parent.shutdown_within(std::time::Duration::ZERO).await;
    let r = get(addr, "a.test", "/two", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let vias: Vec<_> = r.headers.get_all("via").iter().collect();
    assert_eq!(vias, ["1.1 edge-1"], "back to origin");
    assert_eq!(r.body, "ok /two\n");
    assert_eq!(up_line(&edge.metrics_text(), "parent", p_addr), "0");

    // A reload naming another parent: it starts up and is used.
    let (back, _) = node(&parent_text(o.addr).replace("parent-1", "parent-2")).await;
    let back_addr = back.local_addrs()[0];
    edge.reload(parse(&edge_text(&[back_addr], &[o.addr], "")))
        .unwrap();
    let r = get(addr, "a.test", "/three", &[]).await;
    let vias: Vec<_> = r.headers.get_all("via").iter().collect();
    assert_eq!(vias, ["1.1 parent-2", "1.1 edge-1"]);

    // The origin seen by the parent and directly: both counted.
    assert_eq!(o.hits(), 3);
}

#[tokio::test]
async fn a_down_parent_comes_back_after_a_health_check() {
    let o = test_origin().await;
    let (parent, _) = node(&parent_text(o.addr)).await;
    let p_addr = parent.local_addrs()[0];
    // Stop the parent, keep its port number for the restart.
    parent.shutdown_within(std::time::Duration::ZERO).await;
    let (edge, _) = node(&edge_text(&[p_addr], &[o.addr], "")).await;
    let addr = edge.local_addrs()[0];
    let r = get(addr, "a.test", "/a", &[]).await;
    assert_eq!(r.headers.get_all("via").iter().count(), 1, "origin direct");
    assert_eq!(up_line(&edge.metrics_text(), "parent", p_addr), "0");

    // A health check while it is still down changes nothing.
    edge.check_upstreams().await;
    assert_eq!(up_line(&edge.metrics_text(), "parent", p_addr), "0");

    let text = parent_text(o.addr).replace("127.0.0.1:0", &p_addr.to_string());
    let (_parent, _) = node(&text).await;
    edge.check_upstreams().await;
    assert_eq!(up_line(&edge.metrics_text(), "parent", p_addr), "1");
    let r = get(addr, "a.test", "/b", &[]).await;
    let vias: Vec<_> = r.headers.get_all("via").iter().collect();
    assert_eq!(vias, ["1.1 parent-1", "1.1 edge-1"]);
}

#[tokio::test]
async fn a_lone_origin_is_never_marked_down_by_requests() {
    let dead = dead_addr().await;
    let (edge, _) = node(&edge_text(&[], &[dead], "")).await;
    let addr = edge.local_addrs()[0];
    let refused = format!("502 Bad Gateway\nedgeguard: origin {dead} refused the connection\n");
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (502, refused.as_str())
    );
    // nginx ignores max_fails for a one-server group: the next request tries it again.
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (502, refused.as_str())
    );
    assert_eq!(up_line(&edge.metrics_text(), "origin", dead), "1");
    // A failed health check marks it down; it is still tried, being the last one.
    edge.check_upstreams().await;
    assert_eq!(up_line(&edge.metrics_text(), "origin", dead), "0");
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    // The origin comes up: the first request reaches it and brings it back, no health check needed.
    let listener = TcpListener::bind(dead).await.unwrap();
    let _o = serve_origin(listener);
    assert_eq!(get(addr, "a.test", "/up", &[]).await.body, "ok /up\n");
    assert_eq!(up_line(&edge.metrics_text(), "origin", dead), "1");
}

#[tokio::test]
async fn every_origin_down_names_each_and_the_last_is_tried() {
    let (d1, d2) = (dead_addr().await, dead_addr().await);
    let (edge, _) = node(&edge_text(&[], &[d1, d2], "")).await;
    let addr = edge.local_addrs()[0];
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 502);
    assert!(
        r.body.contains(&format!("origin {d1} refused"))
            && r.body.contains(&format!("origin {d2} refused")),
        "{}",
        r.body
    );
    edge.check_upstreams().await;
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 502, "the last origin is tried: {}", r.body);
    assert!(
        r.body.contains(&format!(
            "origin {d1} is marked down (last failure: refused the connection)"
        )) && r.body.contains(&format!("origin {d2} refused")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn origin_read_timeout_is_504() {
    let o = test_origin().await;
    let (edge, _) = node(&edge_text(&[], &[o.addr], "read_timeout = \"200ms\"")).await;
    let addr = edge.local_addrs()[0];
    let r = get(addr, "a.test", "/slow", &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.body,
        format!(
            "504 Gateway Timeout\nedgeguard: origin {} sent no response within read_timeout\n",
            o.addr
        )
    );
    // A slow answer is not a dead origin: it stays up.
    assert_eq!(up_line(&edge.metrics_text(), "origin", o.addr), "1");
    assert_eq!(get(addr, "a.test", "/fast", &[]).await.status, 200);
}

#[tokio::test]
async fn a_parent_passes_the_origin_failure_on() {
    let dead = dead_addr().await;
    let (parent, _) = node(&parent_text(dead)).await;
    let (edge, _) = node(&edge_text(&[parent.local_addrs()[0]], &[dead], "")).await;
    let r = get(edge.local_addrs()[0], "a.test", "/", &[]).await;
    assert_eq!(r.status, 502);
    assert!(
        r.body
            .contains(&format!("origin {dead} refused the connection")),
        "the parent's body reaches the client: {}",
        r.body
    );
}
