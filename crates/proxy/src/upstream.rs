//! Talking to parents and origins: one small keep-alive pool of HTTP/1.1 connections per upstream address, and
//! the forwarding loop that tries a domain's upstreams in order (parents, then origins, for an edge).
//!
//! A connection leaves its pool for one exchange and goes back only after the response body was read to the end
//! (see `body.rs`), so a pooled connection is always idle. A request that could not be written on a pooled
//! connection (the upstream closed it meanwhile) is retried on another; a request that was written is never
//! retried, because its body is gone.
//!
//! Upstreams marked down (see `health.rs`) are skipped; a connection attempt that fails marks its upstream
//! down, so the next requests go straight to the next one until a health check brings it back. When every
//! upstream of a domain is down the request is not tried at all: 503, the body naming each and why.
//!
//! Hot path: `take_idle`/`put_back` hold a std mutex for a push or pop only, never across an `.await`; the
//! health of an upstream is one atomic load.

use std::error::Error as _;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeguard_config::Upstream;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::request_body::{BodyError, RequestBody};
use crate::tls::UpstreamTls;

/// Idle connections kept per upstream address; more are closed when released.
const MAX_IDLE: usize = 512;
/// Tries on one upstream for a request that came back unwritten (its connection closed under it).
const MAX_UNSENT: usize = 4;

/// The pool of one upstream address.
pub(crate) struct UpstreamPool {
    host: String,
    port: u16,
    /// `origin 127.0.0.1:8081` / `parent p1:80`, for error bodies and logs.
    pub(crate) label: String,
    idle: Mutex<Vec<SendRequest<RequestBody>>>,
    /// `[domain.upstream_tls]`: connections are TLS, verified for this name.
    tls: Option<UpstreamTls>,
    /// Kept with the pool (by address) across reloads.
    pub(crate) health: Health,
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

/// How one upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Resolve,
    Refused,
    ConnectTimeout,
    ConnectError,
    Reset,
    ReadTimeout,
    BadResponse,
    /// The client's body broke the exchange: these are answered as client errors.
    BodyTooLarge,
    BodyTimeout,
    ClientGone,
    /// Not tried: health checks have it down (the body names the failure that put it there).
    MarkedDown,
    /// `[domain.upstream_tls]`: the upstream's certificate did not verify, by why; or the handshake failed.
    CertUnknownIssuer,
    CertWrongName,
    CertInvalid,
    TlsHandshake,
}

/// Every `Failure`, so one fits in an `AtomicU8` as its index.
const FAILURES: [Failure; 15] = [
    Failure::Resolve,
    Failure::Refused,
    Failure::ConnectTimeout,
    Failure::ConnectError,
    Failure::Reset,
    Failure::ReadTimeout,
    Failure::BadResponse,
    Failure::BodyTooLarge,
    Failure::BodyTimeout,
    Failure::ClientGone,
    Failure::MarkedDown,
    Failure::CertUnknownIssuer,
    Failure::CertWrongName,
    Failure::CertInvalid,
    Failure::TlsHandshake,
];

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::ConnectTimeout | Failure::ReadTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::ClientGone => StatusCode::BAD_REQUEST,
            Failure::MarkedDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    pub(crate) fn is_client_side(self) -> bool {
        matches!(
            self,
            Failure::BodyTooLarge | Failure::BodyTimeout | Failure::ClientGone
        )
    }

    /// Whether this failure says the upstream cannot be reached at all (it is marked down for it).
    fn is_connect(self) -> bool {
        matches!(
            self,
            Failure::Resolve | Failure::Refused | Failure::ConnectTimeout | Failure::ConnectError
        )
    }

    pub(crate) fn index(self) -> u8 {
        FAILURES.iter().position(|&f| f == self).unwrap_or(3) as u8
    }

    pub(crate) fn from_index(i: u8) -> Failure {
        FAILURES
            .get(usize::from(i))
            .copied()
            .unwrap_or(Failure::ConnectError)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Failure::Resolve => "name could not be resolved",
            Failure::Refused => "refused the connection",
            Failure::ConnectTimeout => "did not accept the connection within connect_timeout",
            Failure::ConnectError => "could not be connected to",
            Failure::Reset => "closed or reset the connection",
            Failure::ReadTimeout => "sent no response within read_timeout",
            Failure::BadResponse => "sent an invalid response",
            Failure::BodyTooLarge => "was not sent the request: body larger than max_body_size",
            Failure::BodyTimeout => "was not sent the request: client body timed out",
            Failure::ClientGone => "was not sent the request: client body broken",
            Failure::MarkedDown => "is marked down by health checks",
            Failure::CertUnknownIssuer => {
                "upstream certificate not trusted: its issuer is not among the roots of upstream_tls.ca \
                 (or the system's)"
            }
            Failure::CertWrongName => {
                "upstream certificate not trusted: not valid for the verified name (upstream_tls.server_name, \
                 default the domain name)"
            }
            Failure::CertInvalid => {
                "upstream certificate not trusted: expired, not yet valid or otherwise invalid"
            }
            Failure::TlsHandshake => "failed the TLS handshake",
        }
    }
}

/// Every upstream tried for a request, with how each failed; the last decides the status.
#[derive(Debug, Default)]
pub(crate) struct Failures(pub(crate) Vec<(Arc<UpstreamPool>, Failure)>);

impl Failures {
    /// The last upstream actually tried decides; 503 when none was (every one marked down).
    pub(crate) fn status(&self) -> StatusCode {
        match self.last_tried() {
            Some(f) => f.status(),
            None if self.0.is_empty() => StatusCode::BAD_GATEWAY,
            None => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The failure of the last upstream tried (not skipped as down).
    pub(crate) fn last_tried(&self) -> Option<Failure> {
        self.0
            .iter()
            .rev()
            .map(|(_, f)| *f)
            .find(|&f| f != Failure::MarkedDown)
    }

    /// Whether every upstream was skipped as down (the 503 case).
    pub(crate) fn all_down(&self) -> bool {
        !self.0.is_empty() && self.last_tried().is_none()
    }

    /// The error body: one line per upstream tried.
    pub(crate) fn body(&self) -> String {
        let status = self.status();
        let mut out = format!(
            "{} {}\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        );
        if self.0.is_empty() {
            out.push_str("edgeguard: this domain has no upstream configured\n");
        } else if self.all_down() {
            out.push_str(
                "edgeguard: every upstream of this domain is marked down by health checks\n",
            );
        }
        for (pool, failure) in &self.0 {
            if *failure == Failure::MarkedDown {
                let _ = writeln!(
                    out,
                    "edgeguard: {} {} (last failure: {})",
                    pool.label,
                    failure.describe(),
                    pool.health.cause().describe()
                );
            } else {
                let _ = writeln!(out, "edgeguard: {} {}", pool.label, failure.describe());
            }
        }
        out
    }
}

impl UpstreamPool {
    pub(crate) fn new(kind: &str, up: &Upstream, tls: Option<UpstreamTls>) -> Self {
        let scheme = if tls.is_some() { "https://" } else { "" };
        Self {
            host: up.host.clone(),
            port: up.port,
            label: format!("{kind} {scheme}{}:{}", up.host, up.port),
            idle: Mutex::new(Vec::new()),
            tls,
            health: Health::default(),
        }
    }

    /// Same address and same TLS settings: such a pool (and its idle connections) serves both.
    pub(crate) fn same_address(&self, up: &Upstream, tls: Option<&UpstreamTls>) -> bool {
        let same_tls = match (&self.tls, tls) {
            (None, None) => true,
            (Some(a), Some(b)) => a.spec == b.spec && a.server_name == b.server_name,
            _ => false,
        };
        self.host == up.host && self.port == up.port && same_tls
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
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// The socket address to connect to (a name is resolved each time, so DNS changes are followed).
    pub(crate) async fn resolve(&self, timeout: Duration) -> Result<SocketAddr, Failure> {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, self.port)),
            Err(_) => {
                let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
                match tokio::time::timeout(timeout, lookup).await {
                    Ok(Ok(mut addrs)) => addrs.next().ok_or(Failure::Resolve),
                    Ok(Err(_)) => Err(Failure::Resolve),
                    Err(_) => Err(Failure::ConnectTimeout),
                }
            }
        }
    }

    async fn connect(&self, timeout: Duration) -> Result<SendRequest<RequestBody>, Failure> {
        let addr = self.resolve(timeout).await?;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                    std::io::ErrorKind::TimedOut => Failure::ConnectTimeout,
                    _ => Failure::ConnectError,
                });
            }
            Err(_) => return Err(Failure::ConnectTimeout),
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return handshake(stream).await;
        };
        let connect = tls.connector.connect(tls.server_name.clone(), stream);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(stream)) => handshake(stream).await,
            Ok(Err(e)) => Err(tls_failure(&e)),
            Err(_) => Err(Failure::ConnectTimeout),
        }
    }
}

/// The HTTP/1.1 client handshake on a connected stream; the connection is driven by its own task.
async fn handshake<S>(stream: S) -> Result<SendRequest<RequestBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::ConnectError)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
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

/// Records that `pool` failed with `failure` (logged with the upstream and the cause; a connect failure
/// marks it down).
fn failed(failures: &mut Failures, pool: &Arc<UpstreamPool>, failure: Failure) {
    if !failure.is_client_side() {
        tracing::warn!(upstream = %pool.label, cause = failure.describe(), "upstream failed");
    }
    if failure.is_connect() {
        pool.health.mark_down(&pool.label, failure);
    }
    failures.0.push((pool.clone(), failure));
}

/// Sends `req` to the first of `upstreams` that is up and takes it. On success the response comes with the
/// connection it arrived on, to be released once its body has been read.
pub(crate) async fn forward(
    upstreams: &[Arc<UpstreamPool>],
    mut req: Request<RequestBody>,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(Response<Incoming>, Pooled), Failures> {
    let mut failures = Failures::default();
    'upstreams: for pool in upstreams {
        if !pool.health.is_up() {
            failures.0.push((pool.clone(), Failure::MarkedDown));
            continue;
        }
        let mut unsent = 0;
        loop {
            // Stale idle connections are dropped as they are found, so this loop drains the pool at worst;
            // fresh connections and unsent retries are bounded below.
            let (mut sender, fresh) = match pool.take_idle() {
                Some(s) => (s, false),
                None => match pool.connect(connect_timeout).await {
                    Ok(s) => (s, true),
                    Err(f) => {
                        failed(&mut failures, pool, f);
                        continue 'upstreams;
                    }
                },
            };
            if sender.ready().await.is_err() {
                if fresh {
                    failed(&mut failures, pool, Failure::Reset);
                    continue 'upstreams;
                }
                continue;
            }
            let sent = req.body().sent_signal();
            match send_timed(&mut sender, req, sent, read_timeout).await {
                Ok(Ok(resp)) => {
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
                        failed(&mut failures, pool, Failure::Reset);
                        req = back;
                        continue 'upstreams;
                    }
                    None => {
                        failed(&mut failures, pool, classify(e.error()));
                        return Err(failures);
                    }
                },
                Err(_) => {
                    failed(&mut failures, pool, Failure::ReadTimeout);
                    return Err(failures);
                }
            }
        }
    }
    Err(failures)
}

/// The health of one upstream address. Starts up: a node that has just started tries its upstreams. Written
/// by the forwarding loop (passive) and by the active checks of `health.rs`.
///
/// Hot path: [`Health::is_up`] is one relaxed load; marking down is one store (and a log line on the change).
#[derive(Debug)]
pub(crate) struct Health {
    up: AtomicBool,
    /// The failure that marked it down, as a `Failure` index, for the 503 body.
    cause: AtomicU8,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            up: AtomicBool::new(true),
            cause: AtomicU8::new(0),
        }
    }
}

impl Health {
    /// Hot path: one load.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// The failure that marked the upstream down (meaningful while it is down).
    pub(crate) fn cause(&self) -> Failure {
        Failure::from_index(self.cause.load(Relaxed))
    }

    /// Marks the upstream down because of `why`; logs when that changes its state.
    pub(crate) fn mark_down(&self, label: &str, why: Failure) {
        self.cause.store(why.index(), Relaxed);
        if self.up.swap(false, Relaxed) {
            tracing::error!(upstream = %label, cause = why.describe(), "upstream marked down");
        }
    }

    /// Marks the upstream up; logs when that changes its state.
    pub(crate) fn mark_up(&self, label: &str) {
        if !self.up.swap(true, Relaxed) {
            tracing::warn!(upstream = %label, "upstream back up (health check passed)");
        }
    }
}
