//! A configurable origin server for tests: HTTP/1.1 on a listener the test owns (127.0.0.1:0 unless a test
//! brings one back on a known port), answering each path by a [`Route`] and counting what reaches it.
//!
//! A route is data, not code, so one origin covers the fixtures of every suite: fixed bodies, bodies naming the
//! request path, echoed request headers, sizes taken from the query, streamed bodies that pause on a gate the
//! test opens, delays, status codes and headers such as `Cache-Control`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::{Channel, Sender};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::route::{Body, Delay, Pause, Route};

type OBody = BoxBody<Bytes, Infallible>;

/// Frames a streamed body may have in flight before the sender waits for the connection to take them.
const STREAM_BUFFER: usize = 2;

/// Routes of an origin, matched on the request path: exact paths first, then prefixes, then the fallback.
#[derive(Clone, Debug)]
pub struct OriginBuilder {
    exact: HashMap<String, Route>,
    prefixes: Vec<(String, Route)>,
    fallback: Route,
    failing: Route,
}

impl Default for OriginBuilder {
    fn default() -> Self {
        OriginBuilder {
            exact: HashMap::new(),
            prefixes: Vec::new(),
            fallback: Route::path("ok ", "\n"),
            failing: Route::text("origin failing\n").status(503),
        }
    }
}

impl OriginBuilder {
    /// `path` (without the query) answers by `route`.
    pub fn route(mut self, path: &str, route: Route) -> Self {
        self.exact.insert(path.into(), route);
        self
    }

    /// Every path starting with `prefix` answers by `route` (the first matching prefix wins).
    pub fn route_prefix(mut self, prefix: &str, route: Route) -> Self {
        self.prefixes.push((prefix.into(), route));
        self
    }

    /// Every other path (default: `ok <path>\n`).
    pub fn fallback(mut self, route: Route) -> Self {
        self.fallback = route;
        self
    }

    /// The answer to every request while [`Origin::fail`] is on (default: 503 `origin failing\n`).
    pub fn when_failing(mut self, route: Route) -> Self {
        self.failing = route;
        self
    }

    /// Binds 127.0.0.1:0 and serves. Panics when the port cannot be bound (see [`OriginBuilder::try_start`]).
    pub async fn start(self) -> Origin {
        self.try_start()
            .await
            .expect("test origin binds 127.0.0.1:0")
    }

    pub async fn try_start(self) -> std::io::Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        self.serve(listener)
    }

    /// Serves on `listener` (to bring an origin back on a port a test already knows). Needs a tokio runtime.
    pub fn serve(self, listener: TcpListener) -> std::io::Result<Origin> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            routes: self,
            hits: AtomicUsize::new(0),
            paths: Mutex::new(HashMap::new()),
            conns: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            failing: AtomicBool::new(false),
            received: Mutex::new(HashMap::new()),
            not_modified: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the accept task closes them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of descriptors for a moment (tests that open many connections): try again.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                shared.conns.fetch_add(1, Ordering::SeqCst);
                let state = shared.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(req).await) }
                    });
                    // A client that goes away mid-request is normal here (limit tests drop connections).
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Origin { addr, state, task })
    }
}

/// A running origin. It keeps serving when this handle is dropped (until the runtime ends); [`Origin::stop`]
/// ends it sooner.
pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Origin {
    pub fn builder() -> OriginBuilder {
        OriginBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received on counted routes, all paths.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Requests received for `path` (without the query), counted routes or not.
    pub fn hits_of(&self, path: &str) -> usize {
        let paths = self.state.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(path).copied().unwrap_or(0)
    }

    /// The headers of the last request received for `path` (without the query).
    pub fn last_headers(&self, path: &str) -> Option<http::HeaderMap> {
        let received = self
            .state
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        received.get(path).cloned()
    }

    /// 304 answers sent by [`Route::conditional`] routes.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Connections accepted, to see keep-alive reuse.
    pub fn conns(&self) -> usize {
        self.state.conns.load(Ordering::SeqCst)
    }

    /// Lets `n` waits on the gate through (gated routes and paused chunks).
    pub fn open_gate(&self, n: usize) {
        self.state.gate.add_permits(n);
    }

    /// Lets one wait on the gate through.
    pub fn release(&self) {
        self.open_gate(1);
    }

    /// While on, every request gets the failing answer.
    pub fn fail(&self, on: bool) {
        self.state.failing.store(on, Ordering::SeqCst);
    }

    /// Closes the listener and every connection: new connections are refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

struct State {
    routes: OriginBuilder,
    hits: AtomicUsize,
    paths: Mutex<HashMap<String, usize>>,
    conns: AtomicUsize,
    gate: Semaphore,
    failing: AtomicBool,
    received: Mutex<HashMap<String, http::HeaderMap>>,
    not_modified: AtomicUsize,
}

impl State {
    fn route(&self, path: &str) -> &Route {
        if self.failing.load(Ordering::SeqCst) {
            return &self.routes.failing;
        }
        if let Some(r) = self.routes.exact.get(path) {
            return r;
        }
        self.routes
            .prefixes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map_or(&self.routes.fallback, |(_, r)| r)
    }

    async fn pass_gate(&self) {
        if let Ok(p) = self.gate.acquire().await {
            p.forget();
        }
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<OBody> {
        let path = req.uri().path().to_owned();
        *self
            .paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.clone())
            .or_insert(0) += 1;
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone(), req.headers().clone());
        let route = self.route(&path).clone();
        if route.counted {
            self.hits.fetch_add(1, Ordering::SeqCst);
        }
        if route.conditional && route.not_modified(req.headers()) {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = http::StatusCode::NOT_MODIFIED;
            for (k, v) in route.headers {
                if k != http::header::CONTENT_LENGTH {
                    resp.headers_mut().append(k, v);
                }
            }
            return resp;
        }
        let query = req.uri().query().map(str::to_owned);
        match route.delay {
            Delay::None => {}
            Delay::Fixed(d) => tokio::time::sleep(d).await,
            Delay::FromQuery { param, max } => {
                let ms = query_arg(query.as_deref(), param).unwrap_or(0);
                let d = Duration::from_millis(ms as u64).min(max);
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
            }
        }
        if route.gated {
            self.pass_gate().await;
        }
        let body = match &route.body {
            Body::Fixed(b) => full(b.clone()),
            Body::Path {
                prefix,
                query: with_query,
                suffix,
            } => match query.as_deref().filter(|_| *with_query) {
                Some(q) => full(format!("{prefix}{path}?{q}{suffix}")),
                None => full(format!("{prefix}{path}{suffix}")),
            },
            Body::Echo(fields) => {
                let mut text = format!("uri={}\n", req.uri());
                for (label, name) in fields {
                    let values = req
                        .headers()
                        .get_all(name.as_str())
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                        .join("|");
                    text.push_str(&format!("{label}={values}\n"));
                }
                full(text)
            }
            Body::HeaderLines(name) => {
                let mut text = String::new();
                for v in req.headers().get_all(name.as_str()) {
                    text.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    text.push('\n');
                }
                full(text)
            }
            Body::ReceivedLen { prefix, suffix } => {
                let n = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes().len(),
                    Err(_) => 0,
                };
                full(format!("{prefix}{n}{suffix}"))
            }
            Body::Sized {
                param,
                byte,
                chunk: None,
            } => full(vec![*byte; query_arg(query.as_deref(), param).unwrap_or(0)]),
            Body::Sized {
                param,
                byte,
                chunk: Some(step),
            } => {
                let (n, byte, step) = (
                    query_arg(query.as_deref(), param).unwrap_or(0),
                    *byte,
                    *step,
                );
                streamed(move |mut tx| async move {
                    let mut left = n;
                    while left > 0 {
                        let now = left.min(step);
                        if tx.send_data(Bytes::from(vec![byte; now])).await.is_err() {
                            return;
                        }
                        left -= now;
                    }
                })
            }
            Body::Chunks { chunks, pause } => {
                let (chunks, pause) = (chunks.clone(), pause.clone());
                let hold = match &pause {
                    Some((_, Pause::ForeverIf(h))) => req.headers().contains_key(h.as_str()),
                    _ => false,
                };
                let state = self.clone();
                streamed(move |mut tx| async move {
                    for (i, chunk) in chunks.into_iter().enumerate() {
                        match &pause {
                            Some((at, Pause::Gate)) if *at == i => state.pass_gate().await,
                            Some((at, Pause::ForeverIf(_))) if *at == i && hold => {
                                std::future::pending::<()>().await
                            }
                            _ => {}
                        }
                        if tx.send_data(chunk).await.is_err() {
                            return;
                        }
                    }
                })
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = route.status;
        for (k, v) in route.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

fn full(b: impl Into<Bytes>) -> OBody {
    Full::new(b.into()).boxed()
}

/// A body of unknown length whose frames `send` writes on its own task.
fn streamed<F, Fut>(send: F) -> OBody
where
    F: FnOnce(Sender<Bytes, Infallible>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, body) = Channel::<Bytes, Infallible>::new(STREAM_BUFFER);
    tokio::spawn(send(tx));
    body.boxed()
}

/// The number in `name=N` of a query string.
fn query_arg(query: Option<&str>, name: &str) -> Option<usize> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
