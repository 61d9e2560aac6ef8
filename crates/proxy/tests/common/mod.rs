//! Test fixtures: an in-process origin, a node on a fake clock, and small HTTP/1.1, HTTP/2 and raw-TCP clients.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use edgeguard_limit::FakeClock;
use edgeguard_proxy::{Node, RunningNode};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bound on every wait in these tests, so a bug fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// An origin server on 127.0.0.1:0.
///
/// Paths: `/close` answers and closes the connection; `/hold` answers its head and a first chunk at once, then one more chunk and the end only when
/// [`Origin::release`] is called; `/slow` waits 2 s before its head; `/echo` answers with what it received;
/// `/upload` reads the whole body and answers its length; anything else answers `ok <path>`.
pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted, to see keep-alive reuse.
    pub conns: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Origin {
    /// Lets one held `/hold` response finish.
    pub fn release(&self) {
        self.gate.add_permits(1);
    }
}

type OBody = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> OBody {
    Full::new(s.into()).boxed()
}

async fn origin_handle(req: Request<Incoming>, gate: Arc<Semaphore>) -> Response<OBody> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/hold" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(2);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first\n")).await;
                if let Ok(p) = gate.acquire().await {
                    p.forget();
                }
                let _ = tx.send_data(Bytes::from_static(b"last\n")).await;
            });
            Response::new(body.boxed())
        }
        "/close" => {
            let mut resp = Response::new(full("closing\n"));
            resp.headers_mut()
                .insert("connection", http::HeaderValue::from_static("close"));
            resp
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Response::new(full("slow\n"))
        }
        "/echo" => {
            let h = req.headers();
            let get = |n: &str| {
                h.get_all(n)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join("|")
            };
            let text = format!(
                "uri={}\nhost={}\nxff={}\nvia={}\nconnection={}\nx-drop={}\n",
                req.uri(),
                get("host"),
                get("x-forwarded-for"),
                get("via"),
                get("connection"),
                get("x-drop"),
            );
            Response::new(full(text))
        }
        "/upload" => {
            let n = match req.into_body().collect().await {
                Ok(b) => b.to_bytes().len(),
                Err(_) => 0,
            };
            Response::new(full(format!("got {n}\n")))
        }
        _ => Response::new(full(format!("ok {path}\n"))),
    }
}

pub async fn origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (h, c, g) = (hits.clone(), conns.clone(), gate.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (h, g) = (h.clone(), g.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let g = g.clone();
                    async move { Ok::<_, Infallible>(origin_handle(req, g).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Origin {
        addr,
        hits,
        conns,
        gate,
    }
}

/// A config with `[node]` on 127.0.0.1:0 followed by `rest` (with `{origin}` replaced).
pub fn config(rest: &str, origin: SocketAddr) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"edge-t\"\nlisten = [\"127.0.0.1:0\"]\n{}",
        rest.replace("{origin}", &origin.to_string())
    );
    match edgeguard_config::parse(&text) {
        Ok(c) => isolated(c),
        Err(e) => panic!("test config does not parse: {e}\n{text}"),
    }
}

/// Starts a node on a fake clock at 1,000,000 ms.
pub async fn start(rest: &str, origin: SocketAddr) -> (RunningNode, SocketAddr, FakeClock) {
    let clock = FakeClock::new(1_000_000);
    let node = Node::start_with_clock(config(rest, origin), Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = node.local_addrs()[0];
    (node, addr, clock)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 GET on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get(path).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
    .await
    .expect("request timed out")
}

/// An HTTP/2 (prior knowledge) connection.
pub async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Writes `bytes`, then reads until the server closes or `WAIT` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_all(&mut stream).await
}

pub async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status codes of every response in a raw HTTP/1.1 byte stream, in order.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// Polls `f` until it holds (bounded: 3 s, longer than a health-check round), for state that changes on another
/// task.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Every test node gets its own data directory (activity log, challenge key), never the working directory.
pub fn isolated(mut config: edgeguard_config::Config) -> edgeguard_config::Config {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if config.node.data_dir.is_relative() {
        config.node.data_dir = std::env::temp_dir().join(format!(
            "edgeguard-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
    }
    config
}
