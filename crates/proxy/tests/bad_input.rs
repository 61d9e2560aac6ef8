//! Bad and hostile input over raw TCP: every case gets its status (or a closed connection), never a panic.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SITE: &str = r#"
max_body_size = "1k"
header_timeout = "300ms"
body_timeout = "300ms"

[[domain]]
name = "a.test"
origins = ["{origin}"]
"#;

#[tokio::test]
async fn malformed_heads_are_400() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nHost: a.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX: \x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        let out = raw(addr, bad).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{:?} -> {out}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(o.hits(), 0);
}

/// Paths nginx refuses while normalising them are refused here too, before any limit or upstream.
#[tokio::test]
async fn paths_nginx_refuses_are_400() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    for path in ["/%zz", "/../etc/passwd", "/a/%2e%2e/%2e%2e/x", "/a%00b"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
        let out = raw(addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
    }
    assert_eq!(o.hits(), 0);
    assert_eq!(
        get(addr, "a.test", "/a/../b", &[]).await.body,
        "ok /a/../b\n",
        "forwarded as received"
    );
}

#[tokio::test]
async fn oversized_head_is_431() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let out = raw(addr, req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // Just under the limit is fine.
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    assert_eq!(statuses(&raw(addr, req.as_bytes()).await), [200]);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let out = raw(
        addr,
        b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(o.hits(), 0, "refused before contacting the origin");

    let chunk = "a".repeat(600);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let out = raw(addr, req.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
}

#[tokio::test]
async fn slow_head_is_cut_off() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.te").await.unwrap();
    let t = Instant::now();
    let out = read_all(&mut s).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}: {out}",
        t.elapsed()
    );
    assert!(!out.contains("200"), "{out}");
}

#[tokio::test]
async fn slow_body_is_408() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t = Instant::now();
    let out = read_all(&mut s).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

#[tokio::test]
async fn hostile_bytes_never_break_the_node() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..64 {
        let mut junk = Vec::with_capacity(512);
        if i % 2 == 0 {
            junk.extend_from_slice(b"GET /");
        }
        for _ in 0..(i * 8 + 1) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed & 0xff) as u8);
        }
        junk.extend_from_slice(b"\r\n\r\n");
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&junk).await;
        let _ = read_all(&mut s).await;
    }
    // HTTP/2 preface followed by garbage frames.
    let _ = raw(
        addr,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00garbage",
    )
    .await;
    assert_eq!(get(addr, "a.test", "/still", &[]).await.body, "ok /still\n");
}

/// A body framed both ways must not reach the origin framed differently from how the node read it.
#[tokio::test]
async fn content_length_with_chunked_is_not_smuggled() {
    let o = origin().await;
    let (_node, addr, _) = start(SITE, o.addr).await;
    let out = raw(
        addr,
        b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 400") || out.contains("got 5\n"),
        "{out}"
    );
    assert_eq!(statuses(&out).len(), 1, "{out}");
}
