//! HTTP/2 attack patterns against a node (h2c with prior knowledge on its plain listener; the TLS listeners
//! share the settings): rapid reset (CVE-2023-44487) and a CONTINUATION flood both end the attacking
//! connection, reach the origin at most a handful of times, and leave the node serving other clients.
//! Frames are written by hand: a well-behaved client library cannot send these.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// HPACK for `GET http://a.test/`: static-table :method GET, :scheme http, :path /, and :authority as a
/// literal without indexing.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 6];
    b.extend_from_slice(b"a.test");
    b
}

/// Reads frames until the peer closes or `limit` passes; returns the GOAWAY error code, if one came.
async fn goaway_of(s: &mut TcpStream, limit: Duration) -> Option<u32> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 16384];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let mut at = 0;
    while at + 9 <= buf.len() {
        let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
        let kind = buf[at + 3];
        if kind == GOAWAY && at + 9 + 8 <= buf.len() {
            let p = &buf[at + 9..];
            return Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + len;
    }
    None
}

async fn attacker(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    s.write_all(&hello).await.unwrap();
    s
}

/// A normal request on a fresh connection still gets its answer.
async fn still_serving(addr: std::net::SocketAddr) {
    let r = get(addr, "a.test", "/after", &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_closes_the_connection_with_goaway() {
    let origin = origin().await;
    let (node, addr, _) = start(
        "[[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n",
        origin.addr,
    )
    .await;
    let mut s = attacker(addr).await;
    // 2,000 streams opened and cancelled at once, in one burst.
    let block = get_block();
    let mut burst = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        frame(&mut burst, HEADERS, END_HEADERS | END_STREAM, id, &block);
        frame(&mut burst, RST_STREAM, 0, id, &8u32.to_be_bytes());
    }
    // The node may close before reading it all: a failed write is part of the expected outcome.
    let _ = s.write_all(&burst).await;
    let code = goaway_of(&mut s, Duration::from_secs(5)).await;
    // ENHANCE_YOUR_CALM (0xb) from h2's reset accounting.
    assert_eq!(code, Some(0xb), "the attacking connection gets GOAWAY");
    assert!(
        origin.hits() < 200,
        "{} of 2000 cancelled streams reached the origin",
        origin.hits()
    );
    still_serving(addr).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off_before_the_block_ends() {
    let origin = origin().await;
    let (node, addr, _) = start(
        "max_header_size = \"16k\"\n[[domain]]\nname = \"a.test\"\norigins = [\"{origin}\"]\n",
        origin.addr,
    )
    .await;
    let mut s = attacker(addr).await;
    let mut flood = Vec::new();
    frame(&mut flood, HEADERS, END_STREAM, 1, &get_block());
    // Literal header fields without indexing, 1 KiB each, in CONTINUATION frames that never end the block:
    // 8 MiB in all, far past max_header_size.
    let mut field = vec![0x00, 0x05];
    field.extend_from_slice(b"x-pad");
    // Value length 1024 as an HPACK integer with a 7-bit prefix: 127, then 897 in 7-bit groups.
    field.extend_from_slice(&[0x7f, 0x81, 0x07]);
    field.extend(std::iter::repeat_n(b'a', 1024));
    let mut sent_all = true;
    let mut chunk = Vec::new();
    for _ in 0..64 {
        frame(&mut chunk, CONTINUATION, 0, 1, &field);
    }
    for _ in 0..128 {
        flood.extend_from_slice(&chunk);
        if s.write_all(&flood).await.is_err() {
            sent_all = false;
            break;
        }
        flood.clear();
    }
    let code = goaway_of(&mut s, Duration::from_secs(5)).await;
    assert!(
        code.is_some() || !sent_all,
        "the connection is closed (GOAWAY {code:?}) before 8 MiB of one header block are taken"
    );
    assert_eq!(
        origin.hits(),
        0,
        "the unfinished request never reaches the origin"
    );
    still_serving(addr).await;
    node.shutdown().await;
}
