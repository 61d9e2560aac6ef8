//! The HTTP/2 row of the reference table: `limit_conn 1` counts streams, not connections. On one HTTP/2
//! connection with prior knowledge (h2c), stream 1 is held by a slow origin, stream 2 with the same key is
//! rejected, stream 1 is reset (RST_STREAM), and the next stream passes. Run against nginx (checked against
//! the table) and edgeguard (checked against nginx). Skips, saying why, when `/usr/sbin/nginx` is absent.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edgeguard_e2e::edgeguard::Edgeguard;
use edgeguard_e2e::nginx::{LISTEN_PLACEHOLDER, Nginx, nginx_available};
use edgeguard_e2e::origin::TestOrigin;
use edgeguard_e2e::scenario::{ConnLimit, Scenario, Site};
use h2::client::SendRequest;
use tokio::net::TcpStream;
use tokio::time::timeout;

const A: &str = "a.test";
/// How long the origin holds stream 1: far longer than the row, which resets it.
const HOLD: &str = "/?ms=5000";
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Polls (10 ms apart) for the held request to reach the origin.
const ARRIVAL_POLLS: usize = 500;

/// What one stream got: status and the limit_conn variable, or `None` for the reset stream.
type Seen = Option<(u16, Option<String>)>;

fn scenario() -> Scenario {
    Scenario::new()
        .conn_zone("c1", "$binary_remote_addr", "1m")
        .site(Site::new(A).limit_conn(vec![ConnLimit::new("c1", 1)]))
}

fn request(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://{A}{path}"))
        .body(())
        .expect("a valid request")
}

async fn response(
    send: &mut SendRequest<Bytes>,
    path: &str,
    lc_header: &str,
) -> (u16, Option<String>) {
    let (resp, _) = send.send_request(request(path), true).unwrap();
    let resp = timeout(STEP_TIMEOUT, resp)
        .await
        .expect("response in time")
        .unwrap();
    let status = resp.status().as_u16();
    let lc = resp
        .headers()
        .get(lc_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the body to its end so the stream is closed before the next one.
    let mut body = resp.into_body();
    while let Some(chunk) = timeout(STEP_TIMEOUT, body.data())
        .await
        .expect("body in time")
    {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    (status, lc)
}

/// Drives the row over one h2c connection to `addr`; `origin` tells when stream 1 is held.
async fn drive(addr: SocketAddr, origin: &TestOrigin, lc_header: &str) -> Vec<Seen> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let mut ping = conn.ping_pong().expect("ping_pong taken once");
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();

    let before = origin.hits();
    let (held, mut held_stream) = send.send_request(request(HOLD), true).unwrap();
    let mut polls = 0;
    while origin.hits() == before {
        polls += 1;
        assert!(
            polls < ARRIVAL_POLLS,
            "held request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = response(&mut send, "/", lc_header).await;
    held_stream.send_reset(h2::Reason::CANCEL);
    drop(held);
    // A PING answered after the RST_STREAM means the server has read the reset before the next stream.
    timeout(STEP_TIMEOUT, ping.ping(h2::Ping::opaque()))
        .await
        .expect("pong in time")
        .unwrap();
    let third = response(&mut send, "/", lc_header).await;
    conn_task.abort();
    vec![None, Some(second), Some(third)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_count_against_limit_conn() {
    if !nginx_available() {
        eprintln!("note: /usr/sbin/nginx absent; HTTP/2 row skipped");
        return;
    }
    let origin = TestOrigin::start().await.unwrap();
    let scenario = scenario();
    let listen = format!("listen {LISTEN_PLACEHOLDER} default_server");
    let snippet = scenario.nginx_snippet(origin.addr());
    assert!(snippet.contains(&listen), "{snippet}");
    let nginx = Nginx::start(&snippet.replace(&listen, &format!("{listen} http2"))).unwrap();
    let reference = drive(nginx.addr(), &origin, "x-lc").await;
    drop(nginx);

    let rejected = Some((503, Some("REJECTED".to_owned())));
    let passed = Some((200, Some("PASSED".to_owned())));
    assert_eq!(
        reference,
        vec![None, rejected, passed],
        "nginx against the reference table"
    );

    let node = Edgeguard::start(&scenario, origin.addr()).await.unwrap();
    let ours = drive(node.addr(), &origin, "x-limit-conn-status").await;
    node.shutdown().await;
    assert_eq!(ours, reference, "edgeguard against nginx");
}
