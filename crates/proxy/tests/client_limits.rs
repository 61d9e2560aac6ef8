//! Client-side limits: `[node] max_connections_per_ip` and `max_connections` close connections past them at
//! accept, `http2_idle_timeout` closes an HTTP/2 connection without streams, and 1,000 slowloris connections
//! (slowhttptest, installed by scripts/test.sh) neither keep a normal client from being served nor outlive
//! `header_timeout`.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http::Request;
use http_body_util::Empty;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SITE: &str = r#"
[[domain]]
name = "a.test"
origins = ["{origin}"]
"#;

fn gauge(node: &edgeguard_proxy::RunningNode, name: &str) -> u64 {
    let prefix = format!("{name} ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Whether the node closes a fresh connection at once (reads EOF) rather than waiting for a request.
async fn closed_at_accept(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn connections_per_address_and_in_all_are_capped() {
    let o = origin().await;
    let limits = "max_connections_per_ip = 3\n";
    let (node, addr, _) = start(&format!("{limits}{SITE}"), o.addr).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    assert!(eventually(|| gauge(&node, "edgeguard_client_connections") == 3).await);
    assert!(
        closed_at_accept(addr).await,
        "a fourth from 127.0.0.1 is closed"
    );
    assert!(gauge(&node, "edgeguard_client_connections_refused_total") >= 1);
    held.pop();
    let mut served = false;
    for _ in 0..100 {
        if !closed_at_accept_quick(addr).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "room again once one closed");
    drop(held);

    let (node, addr, _) = start(&format!("max_connections = 2\n{SITE}"), o.addr).await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    assert!(eventually(|| gauge(&node, "edgeguard_client_connections") == 2).await);
    assert!(closed_at_accept(addr).await, "a third in all is closed");
}

/// A connection that is kept and answered: a request on it gets a status line.
async fn closed_at_accept_quick(addr: SocketAddr) -> bool {
    let out = raw(
        addr,
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    !out.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let o = origin().await;
    let (_node, addr, _) = start(&format!("http2_idle_timeout = \"300ms\"\n{SITE}"), o.addr).await;
    let mut conn = h2(addr).await;
    let req = Request::get("http://a.test/one")
        .body(Empty::new())
        .unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let mut closed = false;
    for _ in 0..300 {
        if conn.is_closed() || conn.ready().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "GOAWAY after http2_idle_timeout without a stream");

    // The default (3 minutes) keeps it open meanwhile.
    let (_node, addr, _) = start(SITE, o.addr).await;
    let mut conn = h2(addr).await;
    let req = Request::get("http://a.test/two")
        .body(Empty::new())
        .unwrap();
    assert_eq!(conn.send_request(req).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!conn.is_closed());
    assert!(conn.ready().await.is_ok());
}

#[tokio::test]
async fn a_normal_client_is_served_beside_1000_slowloris_connections() {
    let o = origin().await;
    let (node, addr, _) = start(&format!("header_timeout = \"4s\"\n{SITE}"), o.addr).await;
    // 1,000 connections, each sending one more header line every second and never ending its head.
    let mut slow = Command::new("slowhttptest")
        .args([
            "-H", "-c", "1000", "-r", "1000", "-i", "1", "-s", "8192", "-t", "GET", "-x", "24",
        ])
        .args(["-p", "3", "-l", "40", "-u", &format!("http://{addr}/")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slowhttptest is installed (scripts/test.sh installs it)");
    // Bounded in time, not in rounds: on a loaded machine slowhttptest takes longer to open them all.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(gauge(&node, "edgeguard_client_connections"));
        if peak >= 950 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(peak >= 950, "slowhttptest opened {peak} connections");
    let mut took = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let r = get(addr, "a.test", &format!("/normal{i}"), &[]).await;
        took.push(t.elapsed());
        assert_eq!(r.status, 200, "served beside the slow connections");
    }
    // A figure for docs/reliability.md (`--no-capture`), not an assertion: timing depends on the machine.
    took.sort();
    eprintln!(
        "beside {peak} slow connections: 20 normal requests, median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    // header_timeout cuts them: the count falls back while slowhttptest still runs.
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut low = u64::MAX;
    while Instant::now() < deadline {
        low = low.min(gauge(&node, "edgeguard_client_connections"));
        if low < 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = slow.kill();
    let _ = slow.wait();
    assert!(
        low < 50,
        "slow heads are cut by header_timeout: still {low} open"
    );
    assert_eq!(o.hits_of("/"), 0, "no slow head reached the origin");
}
