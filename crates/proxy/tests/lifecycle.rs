//! Starting, reloading and stopping a node.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SITE: &str = "[[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n";

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let o = origin().await;
    let (node, addr, _) = start(SITE, o.addr).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let stopping = tokio::spawn(node.shutdown_within(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    assert!(!stopping.is_finished(), "waits for the request in flight");
    o.release();
    let rest = read_all(&mut s).await;
    assert!(rest.contains("last"), "{rest}");
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_grace_is_bounded() {
    let o = origin().await;
    let (node, addr, _) = start(SITE, o.addr).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let _ = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let t = std::time::Instant::now();
    node.shutdown_within(Duration::from_millis(200)).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn start_fails_cleanly_on_a_taken_port_and_serves_several_listeners() {
    let o = origin().await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = format!(
        "[node]\nname = \"n\"\nlisten = [\"127.0.0.1:{port}\"]\n{}",
        SITE.replace("{origin}", &o.addr.to_string())
    );
    let err = edgeguard_proxy::Node::start(isolated(edgeguard_config::parse(&text).unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");

    let text = format!(
        "[node]\nname = \"n\"\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\n{}",
        SITE.replace("{origin}", &o.addr.to_string())
    );
    let node = edgeguard_proxy::Node::start(isolated(edgeguard_config::parse(&text).unwrap()))
        .await
        .unwrap();
    assert_eq!(node.local_addrs().len(), 2);
    for &addr in node.local_addrs() {
        assert_eq!(get(addr, "a.test", "/", &[]).await.status, 200);
    }
}
