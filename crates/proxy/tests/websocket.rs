//! WebSocket pass-through: with `websocket = true` the upgrade reaches the origin, its 101 reaches the client
//! and frames flow both ways through the node (an echo); the tunnel holds its limit_conn count for its whole
//! life. Without it, the upgrade headers are removed and the origin sees a plain request.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that answers an `Upgrade: websocket` request with 101 and then echoes every byte, and anything
/// else with 200 `plain`. Keeps the request heads it received.
async fn ws_origin() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let upgrade = head.to_ascii_lowercase().contains("upgrade: websocket");
                let connect = head.starts_with("CONNECT ");
                seen.lock().unwrap().push(head);
                if connect {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await;
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    return;
                }
                if !upgrade {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    )
                    .await;
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

const UPGRADE: &[u8] =
    b"GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked WebSocket text frame, as a client sends it.
fn frame(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Opens a WebSocket through the node; the head of the answer and the stream.
async fn open(addr: SocketAddr) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(UPGRADE).await.unwrap();
    let head = read_head(&mut s).await.unwrap_or_default();
    (head, s)
}

async fn echo(s: &mut TcpStream, text: &str) -> Vec<u8> {
    let f = frame(text);
    s.write_all(&f).await.unwrap();
    let mut back = vec![0u8; f.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    back
}

const SITE: &str = r#"
[[limit_conn_zone]]
name = "addr"
key = "$binary_remote_addr"
size = "1m"

[[domain]]
name = "a.test"
origins = ["{origin}"]
websocket = true
limit_conn = [{ zone = "addr", conn = 1 }]
"#;

#[tokio::test]
async fn websocket_echo_through_the_node() {
    let (o, heads) = ws_origin().await;
    let (_node, addr, _) = start(SITE, o).await;
    let (head, mut ws) = open(addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    for text in ["hello", "through the edge", "third"] {
        assert_eq!(echo(&mut ws, text).await, frame(text));
    }
    let origin_head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(origin_head.contains("connection: upgrade"), "{origin_head}");
    assert!(
        origin_head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{origin_head}"
    );
    assert!(origin_head.contains("via: 1.1 edge-t"), "{origin_head}");
}

#[tokio::test]
async fn an_open_websocket_holds_its_limit_conn_count() {
    let (o, _) = ws_origin().await;
    let (_node, addr, _) = start(SITE, o).await;
    let (head, mut first) = open(addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echo(&mut first, "a").await, frame("a"));
    // conn = 1: the second one is refused while the first is open, long after its handshake.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (head, _) = open(addr).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    drop(first);
    let mut reopened = false;
    for _ in 0..100 {
        let (head, mut again) = open(addr).await;
        if head.starts_with("HTTP/1.1 101") {
            assert_eq!(echo(&mut again, "b").await, frame("b"));
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened, "the count is released when the tunnel closes");
}

#[tokio::test]
async fn without_websocket_the_upgrade_is_removed() {
    let (o, heads) = ws_origin().await;
    let site = SITE.replace("websocket = true\n", "");
    let (_node, addr, _) = start(&site, o).await;
    let (head, mut s) = open(addr).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0u8; 5];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"plain");
    let origin_head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(!origin_head.contains("upgrade"), "{origin_head}");
}

#[tokio::test]
async fn an_allowed_connect_is_a_tunnel() {
    let (o, heads) = ws_origin().await;
    let site = SITE.replace("websocket = true\n", "allow_methods = [\"CONNECT\"]\n");
    let (_node, addr, _) = start(&site, o).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await.unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(echo(&mut s, "tunnelled").await, frame("tunnelled"));
    let origin_head = heads.lock().unwrap()[0].clone();
    assert!(
        origin_head.starts_with("CONNECT a.test:443 HTTP/1.1"),
        "{origin_head}"
    );
}
