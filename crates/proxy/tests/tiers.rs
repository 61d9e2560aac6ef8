//! An edge in front of a parent in front of an origin: the parent limits the real client, not the edge.

mod common;

use std::sync::Arc;

use common::*;
use edgeguard_limit::FakeClock;
use edgeguard_proxy::Node;

async fn node(text: String) -> edgeguard_proxy::RunningNode {
    let config = isolated(edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    Node::start_with_clock(config, Arc::new(FakeClock::new(1_000_000)))
        .await
        .unwrap()
}

#[tokio::test]
async fn parent_limits_the_client_the_edge_forwarded() {
    let o = origin().await;
    let parent = node(format!(
        r#"
[node]
name = "parent-1"
tier = "parent"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.0/8"]
[[limit_req_zone]]
name = "perip"
key = "$remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{}"]
explain = true
limit_req = [{{ zone = "perip" }}]
"#,
        o.addr
    ))
    .await;
    let edge = node(format!(
        r#"
[node]
name = "edge-1"
tier = "edge"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.0/8"]
[[domain]]
name = "a.test"
origins = ["{}"]
parents = ["{}"]
"#,
        o.addr,
        parent.local_addrs()[0]
    ))
    .await;
    let addr = edge.local_addrs()[0];
    let client = |ip: &'static str| [("x-forwarded-for", ip)];

    let r = get(addr, "a.test", "/echo", &client("203.0.113.5")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("xff=203.0.113.5, 127.0.0.1, 127.0.0.1\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("via=1.1 edge-1|1.1 parent-1\n"),
        "{}",
        r.body
    );
    let vias: Vec<_> = r
        .headers
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(vias, ["1.1 parent-1", "1.1 edge-1"]);

    let r = get(addr, "a.test", "/", &client("203.0.113.5")).await;
    assert_eq!(r.status, 503, "same client, limited at the parent");
    assert_eq!(r.header("x-limit-req-status"), Some("REJECTED"));
    let r = get(addr, "a.test", "/", &client("203.0.113.6")).await;
    assert_eq!(r.status, 200, "another client behind the same edge is not");
}
