//! Talking to parents and origins: one small keep-alive pool of HTTP/1.1 connections per upstream address, and
//! the forwarding loop that tries a domain's upstreams in order (parents, then origins, for an edge).
//!
//! A connection leaves its pool for one exchange and goes back only after the response body was read to the end
//! (see `body.rs`), so a pooled connection is always idle. A request that could not be written on a pooled
//! connection (the upstream closed it meanwhile) is retried on another; a request that was written is never
//! retried, because its body is gone.
//!
//! Health (`upstream/state.rs`): `max_fails` connection failures within `fail_timeout` mark an upstream down
//! for `fail_timeout`, so the next requests go straight to the next one; a success brings it back at once.
//! The last upstream of a domain that is still up is never marked down by a request's failure, and when every
//! upstream is down the last one is tried anyway (nginx ignores `max_fails` for a one-server group): a
//! restarted origin is served again by the first request that reaches it, not by the next health check.
//!
//! `max_conns` (`upstream/gate.rs`) caps the sockets open to one upstream; requests beyond it wait in a
//! bounded queue for a connection to come back. Names are resolved once per `resolve_ttl`, and every address
//! is used in turn.
//!
//! Hot path: `take_idle`/`put_back` hold a std mutex for a push or pop only, never across an `.await`; the
//! health of an upstream is one atomic load.

mod failure;
mod gate;
mod state;

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeguard_config::{HealthCheckKind, HealthCheckSpec, Upstream, UpstreamSpec};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub(crate) use failure::{Failure, Failures};
use gate::{Addresses, ConnGate, Next, Slot};
pub(crate) use state::Health;

use crate::request_body::{BodyError, RequestBody};
use crate::tls::UpstreamTls;

/// Idle connections kept per upstream address; more are closed when released.
const MAX_IDLE: usize = 512;
/// Tries on one upstream for a request that came back unwritten (its connection closed under it).
const MAX_UNSENT: usize = 4;

/// What a pool is built from besides its address: `[domain.upstream]`, `[domain.health_check]` and the Host
/// an HTTP check sends (the first domain's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub(crate) upstream: UpstreamSpec,
    pub(crate) check: HealthCheckSpec,
    pub(crate) check_host: String,
}

impl PoolSettings {
    /// Whether a pool built with `self` serves a domain asking for `other` (the check's Host matters only for
    /// HTTP checks).
    fn serves(&self, other: &PoolSettings) -> bool {
        self.upstream == other.upstream
            && self.check == other.check
            && (self.check.kind == HealthCheckKind::Tcp || self.check_host == other.check_host)
    }
}

/// The pool of one upstream address.
pub(crate) struct UpstreamPool {
    host: String,
    port: u16,
    /// `origin 127.0.0.1:8081` / `parent p1:80`, for error bodies and logs.
    pub(crate) label: String,
    idle: Mutex<Vec<SendRequest<RequestBody>>>,
    /// `[domain.upstream_tls]`: connections are TLS, verified for this name.
    tls: Option<UpstreamTls>,
    /// Kept with the pool (by address and settings) across reloads.
    pub(crate) health: Health,
    pub(crate) settings: PoolSettings,
    gate: ConnGate,
    addresses: Addresses,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// A connection on loan for one exchange.
pub(crate) struct Pooled {
    pool: Arc<UpstreamPool>,
    sender: SendRequest<RequestBody>,
}

impl Pooled {
    /// The upstream this connection is to.
    pub(crate) fn pool(&self) -> &Arc<UpstreamPool> {
        &self.pool
    }

    pub(crate) fn put_back(self) {
        self.pool.put(self.sender);
    }
}

impl UpstreamPool {
    pub(crate) fn new(
        kind: &str,
        up: &Upstream,
        tls: Option<UpstreamTls>,
        settings: PoolSettings,
    ) -> Self {
        let scheme = if tls.is_some() { "https://" } else { "" };
        Self {
            host: up.host.clone(),
            port: up.port,
            label: format!("{kind} {scheme}{}:{}", up.host, up.port),
            idle: Mutex::new(Vec::new()),
            tls,
            health: Health::default(),
            gate: ConnGate::new(&settings.upstream),
            addresses: Addresses::new(&up.host, up.port, settings.upstream.resolve_ttl),
            settings,
        }
    }

    /// Same address, TLS settings and pool settings: such a pool (and its idle connections) serves both.
    pub(crate) fn same_address(
        &self,
        up: &Upstream,
        tls: Option<&UpstreamTls>,
        settings: &PoolSettings,
    ) -> bool {
        let same_tls = match (&self.tls, tls) {
            (None, None) => true,
            (Some(a), Some(b)) => a.spec == b.spec && a.server_name == b.server_name,
            _ => false,
        };
        self.host == up.host && self.port == up.port && same_tls && self.settings.serves(settings)
    }

    /// Sockets open to this upstream now, when `max_conns` caps them (for metrics).
    pub(crate) fn open_conns(&self) -> Option<u32> {
        self.gate.open(self.settings.upstream.max_conns)
    }

    fn take_idle(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(sender);
        }
        self.gate.returned();
    }

    /// The addresses to connect to, in the order to try them (see `upstream/gate.rs`).
    pub(crate) async fn resolve(&self, timeout: Duration) -> Result<Vec<SocketAddr>, Failure> {
        self.addresses.resolve(timeout).await
    }

    /// A TCP connection to the first address that takes one, each tried within `timeout`.
    pub(crate) async fn connect_tcp(&self, timeout: Duration) -> Result<TcpStream, Failure> {
        let mut last = Failure::Resolve;
        for addr in self.resolve(timeout).await? {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => {
                    last = match e.kind() {
                        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                        std::io::ErrorKind::TimedOut => Failure::ConnectTimeout,
                        _ => Failure::ConnectError,
                    };
                }
                Err(_) => last = Failure::ConnectTimeout,
            }
        }
        Err(last)
    }

    /// A new HTTP/1.1 connection (TLS where configured); `slot`, when given, lives as long as the socket.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        slot: Option<Slot>,
    ) -> Result<SendRequest<RequestBody>, Failure> {
        let stream = self.connect_tcp(timeout).await?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return handshake(stream, slot).await;
        };
        let connect = tls.connector.connect(tls.server_name.clone(), stream);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => handshake(stream, slot).await,
            Ok(Err(e)) => Err(tls_failure(&e)),
            Err(_) => Err(Failure::ConnectTimeout),
        }
    }

    /// An idle connection, else a new one within `max_conns` (waiting in the queue when at the cap).
    async fn connection(
        &self,
        timeout: Duration,
    ) -> Result<(SendRequest<RequestBody>, bool), Failure> {
        loop {
            if let Some(s) = self.take_idle() {
                return Ok((s, false));
            }
            match self.gate.next().await? {
                Next::Open(slot) => return Ok((self.connect(timeout, Some(slot)).await?, true)),
                Next::Retry => continue,
            }
        }
    }
}

/// The HTTP/1.1 client handshake on a connected stream; the connection is driven by its own task, which
/// holds the `max_conns` slot until the socket closes.
async fn handshake<S>(stream: S, slot: Option<Slot>) -> Result<SendRequest<RequestBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::ConnectError)?;
    tokio::spawn(async move {
        // Upgrades (WebSocket) take the socket over after a 101; the slot stays with it either way.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("upstream connection ended: {e}");
        }
        drop(slot);
    });
    Ok(sender)
}

/// What a failed TLS handshake with an upstream says about its certificate.
fn tls_failure(e: &std::io::Error) -> Failure {
    use rustls::{CertificateError, Error};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return Failure::TlsHandshake;
    };
    tracing::debug!("upstream TLS handshake failed: {err}");
    match err {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => Failure::CertUnknownIssuer,
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Failure::CertWrongName,
        Error::InvalidCertificate(_) => Failure::CertInvalid,
        _ => Failure::TlsHandshake,
    }
}

fn classify(err: &hyper::Error) -> Failure {
    let mut source = err.source();
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<BodyError>() {
            return match b {
                BodyError::TooLarge => Failure::BodyTooLarge,
                BodyError::ClientTimeout => Failure::BodyTimeout,
                _ => Failure::ClientGone,
            };
        }
        source = s.source();
    }
    if err.is_timeout() {
        Failure::ReadTimeout
    } else if err.is_parse() || err.is_parse_status() {
        Failure::BadResponse
    } else {
        Failure::Reset
    }
}

/// Sends `req` on `sender`, timing the response head from when the request body has been read in full.
async fn send_timed(
    sender: &mut SendRequest<RequestBody>,
    req: Request<RequestBody>,
    sent: Option<Arc<tokio::sync::Notify>>,
    read_timeout: Duration,
) -> Result<
    Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<RequestBody>>>,
    tokio::time::error::Elapsed,
> {
    let send = sender.try_send_request(req);
    let Some(sent) = sent else {
        return tokio::time::timeout(read_timeout, send).await;
    };
    tokio::pin!(send);
    tokio::select! {
        biased;
        result = &mut send => Ok(result),
        () = sent.notified() => tokio::time::timeout(read_timeout, send).await,
    }
}

/// Records that `pool` failed with `failure` (logged with the upstream and the cause). A connect failure
/// counts towards `max_fails`, unless every other upstream of the domain is down already.
fn failed(
    failures: &mut Failures,
    upstreams: &[Arc<UpstreamPool>],
    pool: &Arc<UpstreamPool>,
    failure: Failure,
) {
    if !failure.is_client_side() {
        tracing::warn!(upstream = %pool.label, cause = failure.describe(), "upstream failed");
    }
    if failure.is_connect() {
        let another_up = upstreams
            .iter()
            .any(|u| !Arc::ptr_eq(u, pool) && u.health.is_up());
        let s = &pool.settings.upstream;
        pool.health.failed(
            &pool.label,
            failure,
            s.max_fails,
            s.fail_timeout,
            another_up,
        );
    }
    failures.0.push((pool.clone(), failure));
}

/// Sends `req` to the first of `upstreams` that is up and takes it; when all are down, to the last one. On
/// success the response comes with the connection it arrived on, to be released once its body has been read.
pub(crate) async fn forward(
    upstreams: &[Arc<UpstreamPool>],
    mut req: Request<RequestBody>,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(Response<Incoming>, Pooled), Failures> {
    let mut failures = Failures::default();
    let last = upstreams.len().saturating_sub(1);
    'upstreams: for (i, pool) in upstreams.iter().enumerate() {
        // Every one before was skipped as down: the last is tried anyway.
        let none_tried = failures.0.iter().all(|(_, f)| *f == Failure::MarkedDown);
        let tried = pool.health.is_up() || (i == last && none_tried);
        if !tried {
            failures.0.push((pool.clone(), Failure::MarkedDown));
            continue;
        }
        let mut unsent = 0;
        loop {
            // Stale idle connections are dropped as they are found, so this loop drains the pool at worst;
            // fresh connections and unsent retries are bounded below.
            let (mut sender, fresh) = match pool.connection(connect_timeout).await {
                Ok(c) => c,
                Err(f) => {
                    failed(&mut failures, upstreams, pool, f);
                    continue 'upstreams;
                }
            };
            if sender.ready().await.is_err() {
                if fresh {
                    failed(&mut failures, upstreams, pool, Failure::Reset);
                    continue 'upstreams;
                }
                continue;
            }
            let sent = req.body().sent_signal();
            match send_timed(&mut sender, req, sent, read_timeout).await {
                Ok(Ok(resp)) => {
                    pool.health.succeeded(&pool.label);
                    return Ok((
                        resp,
                        Pooled {
                            pool: pool.clone(),
                            sender,
                        },
                    ));
                }
                Ok(Err(mut e)) => match e.take_message() {
                    Some(back) if unsent + 1 < MAX_UNSENT => {
                        unsent += 1;
                        req = back;
                    }
                    Some(back) => {
                        failed(&mut failures, upstreams, pool, Failure::Reset);
                        req = back;
                        continue 'upstreams;
                    }
                    None => {
                        failed(&mut failures, upstreams, pool, classify(e.error()));
                        return Err(failures);
                    }
                },
                Err(_) => {
                    failed(&mut failures, upstreams, pool, Failure::ReadTimeout);
                    return Err(failures);
                }
            }
        }
    }
    Err(failures)
}
