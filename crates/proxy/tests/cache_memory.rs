//! The cache's byte budget is a hard bound of the memory it holds: a node whose cache is filled many times over
//! with small objects through real HTTP grows its resident memory by about the budget, not by the read buffers
//! the objects arrived in (an entry that kept a slice of hyper's 8 KiB buffer alive would hold several times its
//! charged size).

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const BUDGET: u64 = 8 << 20;
const BODY: usize = 1_000;
const CLIENTS: usize = 8;

/// Resident bytes of this process.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Answers every request on a connection with the same cacheable 1,000 bytes, or `no-store` for `/pass...`.
async fn bare_origin() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Head and body in one write: two small writes would wait on delayed acknowledgements.
    let answer = |cc: &str| {
        let mut a =
            format!("HTTP/1.1 200 OK\r\ncache-control: {cc}\r\ncontent-length: {BODY}\r\n\r\n")
                .into_bytes();
        a.resize(a.len() + BODY, b'x');
        a
    };
    let (stored, passed) = (answer("max-age=600"), answer("no-store"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (stored, passed) = (stored.clone(), passed.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                let mut have = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[have..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have += n;
                    while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        let pass = buf[..end].windows(5).any(|w| w == b"/pass");
                        let answer = if pass { &passed } else { &stored };
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                    }
                }
            });
        }
    });
    addr
}

/// The value of a metric of domain `a.test`.
fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{domain=\"a.test\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// `n` GETs of `/<prefix><i>` per client over keep-alive connections; every answer must be 200.
async fn load(addr: SocketAddr, prefix: &'static str, n: usize) {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            for i in 0..n {
                let req = Request::get(format!("/{prefix}{c}-{i}"))
                    .header("host", "a.test")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                sender.ready().await.expect("ready");
                let resp = sender.send_request(req).await.expect("response");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.len(), BODY);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_objects_hold_about_the_budget() {
    // An origin that keeps nothing per request (the testkit origin records every path it saw), so the
    // process's growth is the node's.
    let origin = bare_origin().await;
    let (node, _) = node(&cache_site(
        "edge-m",
        origin,
        &format!("max_size = {BUDGET}"),
    ))
    .await;
    let addr = node.local_addrs()[0];
    // Connections, pools and buffers warmed on answers that are never stored.
    load(addr, "pass", 500).await;
    let before = rss();
    // Three times the budget offered, in objects of about 1.3 KB charged each.
    let objects_per_client = (3 * BUDGET as usize / 1_300) / CLIENTS;
    load(addr, "o", objects_per_client).await;
    let after = rss();
    let metrics = node.metrics_text();
    let (bytes, objects, evictions) = (
        metric(&metrics, "edgeguard_cache_bytes"),
        metric(&metrics, "edgeguard_cache_objects"),
        metric(&metrics, "edgeguard_cache_evictions_total"),
    );
    assert!(
        bytes <= BUDGET && bytes > BUDGET / 2,
        "{bytes} bytes charged"
    );
    assert!(evictions > 0, "the budget was reached");
    let grown = after.saturating_sub(before);
    println!(
        "cache budget {} MiB, charged {:.1} MiB in {objects} objects ({evictions} evicted), resident memory grew \
         {:.1} MiB",
        BUDGET >> 20,
        bytes as f64 / f64::from(1 << 20),
        grown as f64 / f64::from(1 << 20)
    );
    // The budget, plus the allocator's slack and the index: far below what held read buffers would add.
    assert!(
        grown <= BUDGET * 3 / 2 + (4 << 20),
        "resident memory grew {grown} bytes for a {BUDGET}-byte budget"
    );
    node.shutdown().await;
}
