//! Routing by Host and path, client address rules, and the headers added when forwarding.

mod common;

use common::*;

const SITE: &str = r#"
trusted_proxies = ["127.0.0.0/8"]

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"

[[limit_req_zone]]
name = "api"
key = "$remote_addr"
size = "1m"
rate = "1r/m"

[[limit_req_zone]]
name = "apiv2"
key = "$remote_addr"
size = "1m"
rate = "1r/m"

[[domain]]
name = "www.example.com"
origins = ["{origin}"]
explain = true
limit_req = [{ zone = "perip", burst = 100, nodelay = true }]

[[domain.location]]
path = "/api/"
limit_req = [{ zone = "api", burst = 100, nodelay = true }]

[[domain.location]]
path = "/api/v2/"
limit_req = [{ zone = "apiv2", burst = 100, nodelay = true }]
"#;

#[tokio::test]
async fn unknown_host_is_404_naming_it() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let r = get(addr, "other.example.net", "/", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("\"other.example.net\""), "{}", r.body);
}

#[tokio::test]
async fn host_port_and_case_are_ignored() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    for host in [
        "www.example.com",
        "WWW.Example.COM:8080",
        "www.example.com.",
    ] {
        let r = get(addr, host, "/x", &[]).await;
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.body, "ok /x\n");
    }
}

#[tokio::test]
async fn http11_without_host_is_400_http10_is_404() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let out = raw(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(statuses(&out), [400], "{out}");
    assert!(out.contains("no Host header"), "{out}");
    let out = raw(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        statuses(&out).len(),
        0,
        "HTTP/1.0 answers with HTTP/1.0: {out}"
    );
    assert!(out.starts_with("HTTP/1.0 40"), "{out}");
}

#[tokio::test]
async fn longest_location_prefix_wins_on_the_normalised_path() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let zone = |r: &Reply| {
        let d = r.header("x-edgeguard-decision").unwrap_or("").to_string();
        d.split_whitespace().nth(1).unwrap_or("").to_string()
    };
    let h = "www.example.com";
    assert_eq!(zone(&get(addr, h, "/", &[]).await), "zone=perip");
    assert_eq!(zone(&get(addr, h, "/api", &[]).await), "zone=perip");
    assert_eq!(zone(&get(addr, h, "/api/x", &[]).await), "zone=api");
    assert_eq!(zone(&get(addr, h, "/api/v2/x", &[]).await), "zone=apiv2");
    assert_eq!(zone(&get(addr, h, "//api//v2/x", &[]).await), "zone=apiv2");
    assert_eq!(
        zone(&get(addr, h, "/x/../api/%76%32/", &[]).await),
        "zone=apiv2"
    );
}

#[tokio::test]
async fn forwarding_adds_xff_and_via_and_drops_hop_by_hop() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let r = get(
        addr,
        "www.example.com:81",
        "/echo?a=1",
        &[("connection", "x-drop"), ("x-drop", "1")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("uri=/echo?a=1\n"), "{}", r.body);
    assert!(r.body.contains("host=www.example.com:81\n"), "{}", r.body);
    assert!(r.body.contains("xff=127.0.0.1\n"), "{}", r.body);
    assert!(r.body.contains("via=1.1 edge-t\n"), "{}", r.body);
    assert!(r.body.contains("x-drop=\n"), "{}", r.body);
    assert_eq!(r.header("via"), Some("1.1 edge-t"));

    let r = get(
        addr,
        "www.example.com",
        "/echo",
        &[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
        ],
    )
    .await;
    assert!(
        r.body.contains("xff=1.2.3.4, 5.6.7.8, 127.0.0.1\n"),
        "{}",
        r.body
    );
}

/// The peer (127.0.0.1) is trusted, so limits count the right-most untrusted X-Forwarded-For address.
#[tokio::test]
async fn limits_see_the_forwarded_client_behind_a_trusted_proxy() {
    let o = origin().await;
    let one = r#"
trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]
[[limit_req_zone]]
name = "perip"
key = "$remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{origin}"]
explain = true
limit_req = [{ zone = "perip" }]
"#;
    let (_node, addr, _) = start(one, o.addr).await;
    let s = |r: Reply| r.status.as_u16();
    assert_eq!(
        s(get(
            addr,
            "a.test",
            "/",
            &[("x-forwarded-for", "1.1.1.1, 10.0.0.9")]
        )
        .await),
        200
    );
    // Same client through another trusted hop: limited.
    assert_eq!(
        s(get(addr, "a.test", "/", &[("x-forwarded-for", "1.1.1.1")]).await),
        503
    );
    // A spoofed left-most entry does not pick the address.
    assert_eq!(
        s(get(
            addr,
            "a.test",
            "/",
            &[("x-forwarded-for", "2.2.2.2, 1.1.1.1")]
        )
        .await),
        503
    );
    // Another client passes; no header means the peer itself.
    assert_eq!(
        s(get(addr, "a.test", "/", &[("x-forwarded-for", "1.1.1.2")]).await),
        200
    );
    assert_eq!(s(get(addr, "a.test", "/", &[]).await), 200);
    assert_eq!(
        s(get(addr, "a.test", "/", &[("x-forwarded-for", "garbage")]).await),
        503
    );
}
