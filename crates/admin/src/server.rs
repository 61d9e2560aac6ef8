//! The HTTP server: connections, authorization, body limits and content types, then the API, the console,
//! `/healthz` and `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::api::{self, Route, State};
use crate::control::Control;
use crate::error::ApiError;
use crate::reply::{Reply, Req, decode_segment};

/// Largest request body accepted; larger gets 413.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Time allowed to receive a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct Shared {
    /// `None` (or empty): no token, only loopback clients are answered.
    token: Option<String>,
    state: State,
}

/// Serves the admin API and console on `listener` until `shutdown` completes, then lets open connections finish
/// their requests (for at most five seconds).
///
/// With a `token`, every `/api/v1/` request (but the OpenAPI document) and `/metrics` need
/// `Authorization: Bearer TOKEN`. Without one, only clients on a loopback address are answered at all.
pub async fn serve(
    listener: TcpListener,
    token: Option<String>,
    control: Arc<dyn Control>,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        token: token.filter(|t| !t.is_empty()),
        state: State::new(control),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    // Ends the "under attack" switches whose time is up (cheap while none is on).
    let mut attacks = tokio::time::interval(Duration::from_secs(1));
    attacks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = attacks.tick() => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || api::attack::end_attacks(&shared.state));
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of file descriptors or a connection reset before accept: try again shortly rather
                        // than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                let service = service_fn(move |req| respond(Arc::clone(&shared), peer, req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// A running admin server of [`start`].
pub struct RunningAdmin {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAdmin {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open requests finish, and returns when the server is gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds `addr` and serves on the current tokio runtime (see [`serve`]).
pub async fn start(
    addr: SocketAddr,
    token: Option<String>,
    control: Arc<dyn Control>,
) -> std::io::Result<RunningAdmin> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, token, control, async move {
        let _ = rx.await;
    }));
    Ok(RunningAdmin {
        local_addr,
        stop: Some(tx),
        task,
    })
}

async fn respond(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = route(&shared, peer, req).await;
    Ok(into_response(reply))
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(reply.body));
    *res.status_mut() = reply.status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(reply.content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    for (name, value) in reply.headers {
        h.insert(name, value);
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    res
}

fn not_found() -> Reply {
    Reply::error(&ApiError::new(StatusCode::NOT_FOUND, "no such path"))
}

fn method_not_allowed(allowed: &[Method]) -> Reply {
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Reply::error(&ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; allowed: {}", list.join(", ")),
    ))
    .with_header(header::ALLOW, &list.join(", "))
}

fn get_only(method: &Method, reply: impl FnOnce() -> Reply) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        reply()
    } else {
        method_not_allowed(&[Method::GET, Method::HEAD])
    }
}

async fn route(shared: &Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let Some(segments) = path
        .strip_prefix('/')
        .unwrap_or(&path)
        .split('/')
        .map(decode_segment)
        .collect::<Option<Vec<String>>>()
    else {
        return Reply::error(&ApiError::bad_request(
            "the path holds a malformed percent-escape",
        ));
    };
    let method = req.method().clone();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match seg.as_slice() {
        [""] => get_only(&method, || {
            Reply::bytes(
                StatusCode::FOUND,
                "text/plain; charset=utf-8",
                "/console/\n",
            )
            .with_header(header::LOCATION, "/console/")
        }),
        ["healthz"] => get_only(&method, || {
            Reply::bytes(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                shared.state.control.health(),
            )
        }),
        ["console"] => get_only(&method, || {
            Reply::bytes(
                StatusCode::PERMANENT_REDIRECT,
                "text/plain; charset=utf-8",
                "/console/\n",
            )
            .with_header(header::LOCATION, "/console/")
        }),
        ["console", file] => match crate::console::asset(file) {
            Some(reply) => get_only(&method, || reply),
            None => not_found(),
        },
        ["metrics"] => {
            if let Err(denied) = authorize(shared, peer, req.headers()) {
                return denied;
            }
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed(&[Method::GET, Method::HEAD]);
            }
            let shared = Arc::clone(shared);
            blocking(move || {
                Reply::bytes(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    shared.state.control.metrics(),
                )
            })
            .await
        }
        ["api", "v1", rest @ ..] => api_request(shared, peer, req, rest).await,
        _ => not_found(),
    }
}

async fn api_request(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
    rest: &[&str],
) -> Reply {
    let segments: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
    let route = Route::parse(&segments);
    if !matches!(route, Some(Route::OpenApi))
        && let Err(denied) = authorize(shared, peer, req.headers())
    {
        return denied;
    }
    let Some(route) = route else {
        return not_found();
    };
    let mut method = req.method().clone();
    if method == Method::HEAD {
        method = Method::GET;
    }
    if !route.methods().contains(&method) {
        return method_not_allowed(route.methods());
    }
    let has_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    if has_body && let Err(reply) = check_content_type(req.headers(), route.takes_toml()) {
        return reply;
    }
    let query = req.uri().query().map(str::to_owned);
    let body = if has_body {
        match read_body(req).await {
            Ok(b) => b,
            Err(reply) => return reply,
        }
    } else {
        Bytes::new()
    };
    let shared = Arc::clone(shared);
    blocking(move || {
        let req = Req {
            method,
            query,
            body,
        };
        api::handle(&shared.state, route, &req)
    })
    .await
}

/// Runs `f` on the blocking pool: handlers call the node, which may touch SQLite or write a file.
async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Reply::error(&ApiError::internal(format!("the handler failed: {e}"))))
}

fn check_content_type(headers: &HeaderMap, toml: bool) -> Result<(), Reply> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = if toml {
        matches!(essence.as_str(), "application/toml" | "text/plain")
    } else {
        essence == "application/json" || essence.ends_with("+json")
    };
    if ok {
        return Ok(());
    }
    let expected = if toml {
        "application/toml (or text/plain)"
    } else {
        "application/json"
    };
    let found = if value.is_empty() { "none" } else { value };
    Err(Reply::error(&ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("send the body as Content-Type: {expected}; found {found}"),
    )))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_large = || {
        Reply::error(&ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let limit = usize::try_from(MAX_BODY_BYTES).unwrap_or(usize::MAX);
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Reply::error(&ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        )))),
    }
}

fn authorize(shared: &Shared, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(token) = &shared.token else {
        let ip = match peer.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return Ok(());
        }
        return Err(Reply::error(&ApiError::new(
            StatusCode::FORBIDDEN,
            "no admin token is configured, so only loopback clients are answered; set admin.token \
             (or EDGEGUARD_ADMIN_TOKEN) to manage this node from elsewhere",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let message = match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => return Ok(()),
        Some(_) => "the bearer token is wrong",
        None => "missing Authorization: Bearer TOKEN (the admin token of the node's configuration)",
    };
    Err(
        Reply::error(&ApiError::new(StatusCode::UNAUTHORIZED, message))
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"edgeguard\""),
    )
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right. The length
/// of the token is not hidden (it is fixed by configuration, not a secret of the comparison).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
