//! Forwarding: keep-alive reuse, pipelining, and the 502/504 bodies that say which upstream failed how.

mod common;

use common::*;
use tokio::net::TcpListener;

fn site(origins: &str, extra: &str) -> String {
    format!("[[domain]]\nname = \"a.test\"\norigins = [{origins}]\n{extra}\n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", ""), o.addr).await;
    let out = raw(
        addr,
        b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\nGET /two HTTP/1.1\r\nHost: a.test\r\n\r\nGET /three HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200, 200, 200], "{out}");
    let (one, two, three) = (
        out.find("ok /one").unwrap(),
        out.find("ok /two").unwrap(),
        out.find("ok /three").unwrap(),
    );
    assert!(one < two && two < three, "{out}");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", ""), o.addr).await;
    for i in 0..5 {
        let r = get(addr, "a.test", &format!("/n{i}"), &[]).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(o.hits(), 5);
    assert_eq!(o.conns(), 1, "one keep-alive connection serves them all");
}

#[tokio::test]
async fn a_connection_the_origin_closed_is_not_reused() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", ""), o.addr).await;
    for _ in 0..3 {
        let r = get(addr, "a.test", "/close", &[]).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "closing\n"));
        assert_eq!(
            r.header("connection"),
            None,
            "hop-by-hop header not passed on"
        );
        assert_eq!(get(addr, "a.test", "/after", &[]).await.body, "ok /after\n");
    }
}

#[tokio::test]
async fn refused_connection_is_502_naming_the_origin() {
    // A port that was just free: nothing listens there.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (_node, addr, _) = start(&site(&format!("\"{dead}\""), ""), dead).await;
    let r = get(addr, "a.test", "/", &[]).await;
    assert_eq!(r.status, 502);
    assert!(
        r.body
            .contains(&format!("origin {dead} refused the connection")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn failover_tries_the_next_origin() {
    let o = origin().await;
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (_node, addr, _) = start(&site(&format!("\"{dead}\", \"{{origin}}\""), ""), o.addr).await;
    let r = get(addr, "a.test", "/x", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "ok /x\n");
}

#[tokio::test]
async fn slow_origin_is_504_naming_the_timeout() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", "read_timeout = \"300ms\""), o.addr).await;
    let r = get(addr, "a.test", "/slow", &[]).await;
    assert_eq!(r.status, 504);
    assert!(
        r.body.contains(&format!(
            "origin {} sent no response within read_timeout",
            o.addr
        )),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn request_bodies_are_streamed() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", ""), o.addr).await;
    let body = "x".repeat(100_000);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let out = raw(addr, req.as_bytes()).await;
    assert_eq!(statuses(&out), [200], "{out}");
    assert!(out.contains("got 100000"), "{out}");
    let chunked = "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let out = raw(addr, chunked.as_bytes()).await;
    assert!(out.contains("got 11"), "{out}");
}

/// `read_timeout` times the origin's answer from the end of the request body, so a slow but steady upload
/// longer than it is not cut.
#[tokio::test]
async fn upload_longer_than_read_timeout_passes() {
    use tokio::io::AsyncWriteExt;
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", "read_timeout = \"300ms\""), o.addr).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 50\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        s.write_all(b"0123456789").await.unwrap();
    }
    let out = read_all(&mut s).await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("got 50"),
        "{out}"
    );
}

#[tokio::test]
async fn head_requests_keep_the_connection_usable() {
    let o = origin().await;
    let (_node, addr, _) = start(&site("\"{origin}\"", ""), o.addr).await;
    let out = raw(
        addr,
        b"HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\nGET /g HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200, 200], "{out}");
    assert!(
        !out.contains("ok /h"),
        "HEAD answered without a body: {out}"
    );
    assert!(out.contains("ok /g"), "{out}");
    assert_eq!(
        o.conns(),
        1,
        "the HEAD exchange left its upstream connection reusable"
    );
}
