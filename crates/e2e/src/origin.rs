//! The test origin both proxies forward to: a small HTTP/1.1 server inside the test process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::HarnessError;

/// Size of every origin body, so a test can tell an origin answer from a proxy's own error page.
pub const ORIGIN_BODY_LEN: usize = 100;

/// Longest wait `?ms=N` may ask for: keeps a typo in a script from hanging a test.
const MAX_HOLD_MS: u64 = 10_000;

/// Serves every path with a 100-byte body. A query argument `ms=N` delays the answer by N ms (used to hold a
/// request open for limit_conn). Counts the requests it received.
pub struct TestOrigin {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TestOrigin {
    /// Binds 127.0.0.1:0 and serves until dropped. Needs a running tokio runtime.
    pub async fn start() -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HarnessError::Io)?;
        let addr = listener.local_addr().map_err(HarnessError::Io)?;
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(req, Arc::clone(&counter)));
                    // A client that goes away mid-request is normal here (limit tests drop connections).
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, hits, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    req: Request<Incoming>,
    hits: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let hold = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(MAX_HOLD_MS);
    if hold > 0 {
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    let body = Bytes::from(vec![b'o'; ORIGIN_BODY_LEN]);
    let resp = Response::builder()
        .header("content-type", "text/plain")
        .header("cache-control", "no-store")
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Ok(resp)
}
