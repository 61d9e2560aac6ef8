//! Fixtures of the CDN tests: an origin that can be held, made to fail or stopped, nodes from TOML text on a
//! fake clock, and a one-request client for any method.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

#[allow(unused_imports)] // Not every test file that uses these fixtures polls.
pub use common::{eventually, isolated};

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edgeguard_limit::FakeClock;
use edgeguard_proxy::{Node, RunningNode};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Bound on every wait, so a bug fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// An origin on 127.0.0.1:0.
///
/// Paths: `/gate` answers only when [`TestOrigin::open_gate`] lets it; `/big?n=N` answers N bytes; `/cookie`
/// sets a cookie; `/chunked` streams a body of unknown length; `/chunked-big?n=N` streams N bytes in chunks;
/// `/chunked-gate` streams `chunk1` and sends `chunk2` when the gate lets it; `/chunked-hold` streams
/// `chunk1` then `chunk2`, or never `chunk2` when the request carries `x-hold`; `/echo-cookie` answers the
/// `Cookie` headers it received, one a line; `/slow` waits 5 s; `/nocache` says `no-store`;
/// anything else answers `ok <path and query>`. Everything cacheable says `max-age=60`. While
/// [`TestOrigin::fail`] is on, every request gets 503.
pub struct TestOrigin {
    pub addr: SocketAddr,
    total: Arc<AtomicUsize>,
    paths: Arc<Mutex<HashMap<String, usize>>>,
    gate: Arc<Semaphore>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl TestOrigin {
    /// Requests received, all paths.
    pub fn hits(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Requests received for `path` (without the query).
    pub fn hits_of(&self, path: &str) -> usize {
        self.paths.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Closes the listener and every connection: new connections are refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

type OBody = BoxBody<Bytes, Infallible>;

fn reply(status: u16, cache: &str, body: impl Into<Bytes>) -> Response<OBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    if !cache.is_empty() {
        r.headers_mut()
            .insert("cache-control", cache.parse().unwrap());
    }
    r
}

async fn handle(
    req: Request<Incoming>,
    gate: Arc<Semaphore>,
    failing: Arc<AtomicBool>,
) -> Response<OBody> {
    if failing.load(Ordering::SeqCst) {
        return reply(503, "", "origin failing\n");
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match path.as_str() {
        "/gate" => {
            if let Ok(p) = gate.acquire().await {
                p.forget();
            }
            reply(200, "max-age=60", "gated\n")
        }
        "/big" => {
            let n: usize = query
                .strip_prefix("n=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            reply(200, "max-age=60", vec![b'x'; n])
        }
        "/cookie" => {
            let mut r = reply(200, "max-age=60", "cookie\n");
            r.headers_mut()
                .insert("set-cookie", "session=1".parse().unwrap());
            r
        }
        "/chunked" => {
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(2);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"chunk1\n")).await;
                let _ = tx.send_data(Bytes::from_static(b"chunk2\n")).await;
            });
            let mut r = Response::new(body.boxed());
            r.headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            r
        }
        "/chunked-big" => {
            let n: usize = query
                .strip_prefix("n=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            streamed(move |mut tx| async move {
                let mut left = n;
                while left > 0 {
                    let step = left.min(1000);
                    if tx.send_data(Bytes::from(vec![b'x'; step])).await.is_err() {
                        return;
                    }
                    left -= step;
                }
            })
        }
        "/chunked-gate" => streamed(move |mut tx| async move {
            let _ = tx.send_data(Bytes::from_static(b"chunk1\n")).await;
            if let Ok(p) = gate.acquire().await {
                p.forget();
            }
            let _ = tx.send_data(Bytes::from_static(b"chunk2\n")).await;
        }),
        "/chunked-hold" => {
            let hold = req.headers().contains_key("x-hold");
            streamed(move |mut tx| async move {
                let _ = tx.send_data(Bytes::from_static(b"chunk1\n")).await;
                if hold {
                    std::future::pending::<()>().await;
                }
                let _ = tx.send_data(Bytes::from_static(b"chunk2\n")).await;
            })
        }
        "/echo-cookie" => {
            let mut text = String::new();
            for v in req.headers().get_all("cookie") {
                text.push_str(&String::from_utf8_lossy(v.as_bytes()));
                text.push('\n');
            }
            reply(200, "no-store", text)
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, "max-age=60", "slow\n")
        }
        "/nocache" => reply(200, "no-store", "nocache\n"),
        _ => {
            let text = match req.uri().query() {
                Some(q) => format!("ok {path}?{q}\n"),
                None => format!("ok {path}\n"),
            };
            reply(200, "max-age=60", text)
        }
    }
}

/// A cacheable response of unknown length whose body `send` writes.
fn streamed<F, Fut>(send: F) -> Response<OBody>
where
    F: FnOnce(http_body_util::channel::Sender<Bytes, Infallible>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(2);
    tokio::spawn(send(tx));
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert("cache-control", "max-age=60".parse().unwrap());
    r
}

pub async fn test_origin() -> TestOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_origin(listener)
}

/// An origin on a given listener (to bring one back on a known port).
pub fn serve_origin(listener: TcpListener) -> TestOrigin {
    let addr = listener.local_addr().unwrap();
    let total = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(HashMap::new()));
    let gate = Arc::new(Semaphore::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (t, p, g, f) = (total.clone(), paths.clone(), gate.clone(), failing.clone());
    let task = tokio::spawn(async move {
        // Connections live in this set, so aborting the accept task closes them too.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (t, p, g, f) = (t.clone(), p.clone(), g.clone(), f.clone());
            conns.spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    t.fetch_add(1, Ordering::SeqCst);
                    *p.lock()
                        .unwrap()
                        .entry(req.uri().path().to_string())
                        .or_insert(0) += 1;
                    let (g, f) = (g.clone(), f.clone());
                    async move { Ok::<_, Infallible>(handle(req, g, f).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    TestOrigin {
        addr,
        total,
        paths,
        gate,
        failing,
        task,
    }
}

/// A node from whole TOML text, on a fake clock at 1,000,000 ms.
pub async fn node(text: &str) -> (RunningNode, FakeClock) {
    let clock = FakeClock::new(1_000_000);
    let config = isolated(edgeguard_config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    let node = Node::start_with_clock(config, Arc::new(clock.clone()))
        .await
        .unwrap();
    (node, clock)
}

pub fn parse(text: &str) -> edgeguard_config::Config {
    isolated(edgeguard_config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

/// A port nothing listens on (it was free a moment ago).
pub async fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("-")
    }
}

/// One request on a fresh HTTP/1.1 connection.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
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

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(addr, Method::GET, host, path, &[]).await
}
