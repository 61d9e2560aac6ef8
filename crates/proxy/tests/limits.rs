//! limit_req and limit_conn through the whole node: statuses, explain headers, delays, counts held for the
//! life of a response (HTTP/1.1 and per HTTP/2 stream), and counters kept across a reload.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn burst_site(extra: &str) -> String {
    format!(
        r#"
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "2r/s"

[[domain]]
name = "a.test"
origins = ["{{origin}}"]
explain = true
limit_req = [{{ zone = "perip", burst = 1, nodelay = true }}]
{extra}
# Every passed request must reach the origin to be counted there.
[domain.cache]
enabled = false
"#
    )
}

#[tokio::test]
async fn quick_burst_statuses_and_explain_headers() {
    let o = origin().await;
    let (_node, addr, clock) = start(&burst_site(""), o.addr).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = get(addr, "a.test", "/", &[]).await;
        assert_eq!(
            r.header("x-limit-conn-status"),
            None,
            "no limit_conn: variable unset"
        );
        seen.push((
            r.status.as_u16(),
            r.header("x-limit-req-status").unwrap_or("-").to_string(),
            r.header("x-edgeguard-decision").unwrap_or("-").to_string(),
        ));
    }
    let codes: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(codes, [200, 200, 503, 503, 503]);
    let vars: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        vars,
        ["PASSED", "PASSED", "REJECTED", "REJECTED", "REJECTED"]
    );
    assert_eq!(
        seen[2].2,
        "limit_req zone=perip excess=2.000 burst=1 delay=0ms"
    );
    assert_eq!(o.hits(), 2, "rejections never reach the origin");

    // Rejections are not charged: half a second drains one request.
    clock.advance(500);
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 200);
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 503);
}

#[tokio::test]
async fn limit_req_status_is_configurable() {
    let o = origin().await;
    let (_node, addr, _) = start(&burst_site("limit_req_status = 501"), o.addr).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(get(addr, "a.test", "/", &[]).await.status.as_u16());
    }
    assert_eq!(got, [200, 200, 501]);
}

#[tokio::test]
async fn delayed_requests_wait_and_dry_run_does_not() {
    let o = origin().await;
    let site = r#"
[[limit_req_zone]]
name = "z"
key = "$binary_remote_addr"
size = "1m"
rate = "2r/s"
[[limit_req_zone]]
name = "dry"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{origin}"]
explain = true
limit_req = [{ zone = "z", burst = 3 }]
[[domain.location]]
path = "/dry/"
limit_req = [{ zone = "dry", dry_run = true }]
"#;
    let (_node, addr, _) = start(site, o.addr).await;
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.header("x-limit-req-status"), Some("PASSED"));
    let t = Instant::now();
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-limit-req-status"), Some("DELAYED"));
    assert_eq!(
        r.header("x-edgeguard-decision"),
        Some("limit_req zone=z excess=1.000 burst=3 delay=500ms")
    );
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "waited {:?}",
        t.elapsed()
    );

    assert_eq!(
        get(addr, "a.test", "/dry/", &[])
            .await
            .header("x-limit-req-status"),
        Some("PASSED")
    );
    let r = get(addr, "a.test", "/dry/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-limit-req-status"), Some("REJECTED_DRY_RUN"));
}

fn conn_site() -> &'static str {
    r#"
[[limit_conn_zone]]
name = "addr"
key = "$binary_remote_addr"
size = "1m"

[[domain]]
name = "a.test"
origins = ["{origin}"]
explain = true
limit_conn = [{ zone = "addr", conn = 1 }]
"#
}

/// Opens `/hold` and reads until the first chunk arrived, so the request holds its count.
async fn open_hold(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).contains("first") {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    s
}

async fn status_soon_becomes(addr: std::net::SocketAddr, want: u16) -> bool {
    for _ in 0..100 {
        if get(addr, "a.test", "/", &[]).await.status == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn limit_conn_is_held_until_the_body_ends() {
    let o = origin().await;
    let (_node, addr, _) = start(conn_site(), o.addr).await;
    let mut held = open_hold(addr).await;
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-limit-conn-status"), Some("REJECTED"));
    assert_eq!(
        r.header("x-edgeguard-decision"),
        Some("limit_conn zone=addr conn=1")
    );
    o.release();
    let mut rest = [0u8; 256];
    let _ = tokio::time::timeout(WAIT, held.read(&mut rest)).await;
    assert!(
        status_soon_becomes(addr, 200).await,
        "count released after the body"
    );
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.header("x-limit-conn-status"), Some("PASSED"));
}

#[tokio::test]
async fn limit_conn_is_released_when_the_client_goes_away() {
    let o = origin().await;
    let (_node, addr, _) = start(conn_site(), o.addr).await;
    let held = open_hold(addr).await;
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 503);
    drop(held);
    assert!(
        status_soon_becomes(addr, 200).await,
        "count released after the client left"
    );
}

#[tokio::test]
async fn http2_streams_count_separately() {
    let o = origin().await;
    let (_node, addr, _) = start(conn_site(), o.addr).await;
    let mut h2 = h2(addr).await;
    let req = |path: &str| {
        Request::get(format!("http://a.test{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let first = tokio::time::timeout(WAIT, h2.send_request(req("/hold")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = tokio::time::timeout(WAIT, h2.send_request(req("/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["x-limit-conn-status"], "REJECTED");
    // Resetting the held stream (dropping its body) releases its count.
    drop(first);
    let mut ok = false;
    for _ in 0..100 {
        let r = tokio::time::timeout(WAIT, h2.send_request(req("/")))
            .await
            .unwrap()
            .unwrap();
        if r.status() == 200 {
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok /\n");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "stream reset released the count");
}

#[tokio::test]
async fn reload_keeps_unchanged_zones_counters() {
    let o = origin().await;
    let site = |rate: &str, explain: bool| {
        format!(
            r#"
[[limit_req_zone]]
name = "z"
key = "$binary_remote_addr"
size = "1m"
rate = "{rate}"
[[domain]]
name = "a.test"
origins = ["{{origin}}"]
explain = {explain}
limit_req = [{{ zone = "z" }}]
"#
        )
    };
    let (node, addr, _) = start(&site("1r/m", false), o.addr).await;
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 200);
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 503);
    node.reload(config(&site("1r/m", true), o.addr)).unwrap();
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 503, "same zone after reload: no free burst");
    assert_eq!(
        r.header("x-limit-req-status"),
        Some("REJECTED"),
        "new settings in force"
    );
    node.reload(config(&site("2r/m", true), o.addr)).unwrap();
    assert_eq!(
        get(addr, "a.test", "/", &[]).await.status,
        200,
        "a changed zone starts afresh"
    );
    node.shutdown().await;
}

/// A client that leaves while the origin has not answered yet frees its count at once (nginx finalizes such a
/// request when it sees the client close), not when the origin finally answers.
#[tokio::test]
async fn limit_conn_is_released_when_the_client_leaves_before_the_head() {
    let o = origin().await;
    let (_node, addr, _) = start(conn_site(), o.addr).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(|| o.hits() == 1).await);
    assert_eq!(get(addr, "a.test", "/", &[]).await.status, 503);
    let t = Instant::now();
    drop(s);
    assert!(status_soon_becomes(addr, 200).await);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "released only after {:?}",
        t.elapsed()
    );
}

/// limit_req runs first: a request it rejects never reaches limit_conn, so `$limit_conn_status` stays unset;
/// an empty limit_conn key leaves it unset too.
#[tokio::test]
async fn conn_status_is_unset_when_limit_conn_did_not_run() {
    let o = origin().await;
    let site = r#"
[[limit_req_zone]]
name = "z"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[limit_conn_zone]]
name = "addr"
key = "$binary_remote_addr"
size = "1m"
[[limit_conn_zone]]
name = "byhdr"
key = "$http_x_user"
size = "1m"
[[domain]]
name = "a.test"
origins = ["{origin}"]
explain = true
limit_req = [{ zone = "z" }]
limit_conn = [{ zone = "addr", conn = 5 }]
[[domain.location]]
path = "/free/"
limit_req = []
limit_conn = [{ zone = "byhdr", conn = 1 }]
"#;
    let (_node, addr, _) = start(site, o.addr).await;
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(
        (
            r.header("x-limit-req-status"),
            r.header("x-limit-conn-status")
        ),
        (Some("PASSED"), Some("PASSED"))
    );
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        (
            r.header("x-limit-req-status"),
            r.header("x-limit-conn-status")
        ),
        (Some("REJECTED"), None)
    );
    let r = get(addr, "a.test", "/free/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.header("x-limit-req-status"),
            r.header("x-limit-conn-status")
        ),
        (None, None)
    );
    assert_eq!(r.header("x-edgeguard-decision"), Some("none"));
    let r = get(addr, "a.test", "/free/", &[("x-user", "u1")]).await;
    assert_eq!(r.header("x-limit-conn-status"), Some("PASSED"));
}
