//! The request context: what every phase of a request reads and writes ([`RequestCtx`]), what the phases
//! answer ([`Flow`]), and the decision a finished request ends with ([`Decision::of`]). A leaf of the crate's
//! module graph: it names the state types of the runtime, the limits, the cache and the protection engine,
//! and no phase, so every phase can depend on it and none on another.
//!
//! Hot path: a context is built per request; nothing here allocates beyond the `Arc` clones of the runtime
//! snapshot and the connection facts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use edgeguard_cache::{CacheKey, CacheStatus, CachedResponse, ClientConditions, FillGuard};
use edgeguard_limit::Clock;
use edgeguard_protect::DomainGuard;
use edgeguard_store::DecisionKind;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::decision::Decision;
use crate::key::{CompiledKey, KeyBuf, KeyInput};
use crate::limits::{ConnGuard, ConnStatus, ReqDecision, ReqStatus};
use crate::runtime::{DomainRt, Limits, Runtime};
use crate::upstream::UpstreamPool;

/// Facts about one client connection, computed once at accept.
pub(crate) struct ConnInfo {
    /// The peer address, IPv4-mapped IPv6 folded to IPv4.
    pub peer_ip: IpAddr,
    /// `peer_ip` as text, for `$remote_addr` and `X-Forwarded-For` without formatting per request.
    pub peer_text: Bytes,
    /// The connection came in over TLS (`listen_tls`).
    pub https: bool,
    /// Its open streams, for `http2_idle_timeout`.
    pub activity: Arc<crate::client_conns::Activity>,
}

/// What a phase decided.
// An answer is moved once, at the end of the pipeline; boxing it would cost an allocation per answer.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Flow {
    Continue,
    Answer(Response<ProxyBody>),
}

/// Everything the phases learn about one request.
pub(crate) struct RequestCtx {
    pub rt: Arc<Runtime>,
    pub conn: Arc<ConnInfo>,
    pub started: Instant,
    /// The address limits see (peer, or from `X-Forwarded-For` behind a trusted proxy).
    pub client_ip: IpAddr,
    pub client_text: Bytes,
    pub domain: Option<Arc<DomainRt>>,
    /// The limit lists of the matched location.
    pub limits: Option<Arc<Limits>>,
    /// Evaluated keys, back to back; `key_ends[i]` ends key `i` of the phase that filled it.
    pub keys: KeyBuf,
    pub key_ends: SmallVec<[usize; 4]>,
    pub req_decision: Option<ReqDecision>,
    /// The limit_req entry the explain header names: the deciding one, else the last that counted.
    pub req_shown: Option<usize>,
    pub conn_status: Option<ConnStatus>,
    pub conn_limit: Option<usize>,
    /// limit_conn counts; moved into the response body so they last as long as the response.
    pub conn_guard: Option<ConnGuard>,
    pub delayed: Duration,
    /// Blocks, IP access limit and rules: what they decided, and the key a rule counted the request under.
    pub protect: ProtectState,
    /// Cache lookup, upstream and decision, for the upstream phase, the access log and metrics.
    pub cdn: CdnCtx,
}

impl RequestCtx {
    /// The context of a request arriving on `conn` now, under the runtime snapshot `rt`.
    pub(crate) fn new(rt: Arc<Runtime>, conn: Arc<ConnInfo>, epoch: Epoch) -> Self {
        RequestCtx {
            client_ip: conn.peer_ip,
            client_text: conn.peer_text.clone(),
            rt,
            conn,
            started: Instant::now(),
            domain: None,
            limits: None,
            keys: KeyBuf::new(),
            key_ends: SmallVec::new(),
            req_decision: None,
            req_shown: None,
            conn_status: None,
            conn_limit: None,
            conn_guard: None,
            delayed: Duration::ZERO,
            protect: ProtectState::default(),
            cdn: CdnCtx::new(epoch),
        }
    }

    /// Evaluates `keys` into `self.keys`; a key over `max` bytes is made empty (not limited).
    pub(crate) fn eval_keys(
        &mut self,
        req: &Request<Incoming>,
        keys: &[Arc<CompiledKey>],
        max: usize,
    ) {
        let ctx = self;
        let mut buf = std::mem::take(&mut ctx.keys);
        buf.clear();
        ctx.key_ends.clear();
        let host = ctx.domain.as_ref().map_or("", |d| d.name.as_str());
        let input = KeyInput {
            client_ip: ctx.client_ip,
            client_text: &ctx.client_text,
            host,
            uri: req.uri(),
            headers: req.headers(),
        };
        for k in keys {
            let start = buf.len();
            k.append(&input, &mut buf);
            if buf.len() - start > max {
                // A client can send such keys on every request: counted and summarised, not a line each.
                ctx.rt.long_keys.refuse(&buf[start..]);
                buf.truncate(start);
            }
            ctx.key_ends.push(buf.len());
        }
        ctx.keys = buf;
    }
}

/// What the protection phases learned about one request.
#[derive(Default)]
pub(crate) struct ProtectState {
    pub guard: Option<Arc<DomainGuard>>,
    /// Unix milliseconds of the node's clock when the request entered the protection phases.
    pub now_ms: u64,
    /// The rule that counted the request; its key is in `key`.
    pub counted: Option<usize>,
    /// What the learned-baseline detector saw of the request, for its response hook.
    pub seen: Option<edgeguard_protect::Seen>,
    /// Scratch for object keys; after the rules phase, the counting rule's key.
    pub key: Vec<u8>,
    /// A challenge in force found by phase 1, answered after the IP access limit had its say.
    pub challenge: Option<edgeguard_protect::InForce>,
    /// Set when a protection phase answered (or let a challenged client through).
    pub outcome: Option<DecisionKind>,
    /// `X-Edgeguard-Decision` text, only for domains with `explain`.
    pub decision: Option<String>,
}

/// Wall-clock time for freshness (`Date`, `Expires` are wall-clock), read as a fixed wall time plus the node
/// clock's progress, so tests that drive a fake clock drive the cache too. A step of the system clock after
/// start is not followed; freshness is seconds to hours, so the drift of a monotonic clock does not matter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    wall: SystemTime,
    ms: u64,
}

impl Epoch {
    pub(crate) fn new(clock: &dyn Clock) -> Self {
        Epoch {
            wall: SystemTime::now(),
            ms: clock.now_ms(),
        }
    }

    pub(crate) fn now(&self, clock: &dyn Clock) -> SystemTime {
        self.wall + Duration::from_millis(clock.now_ms().saturating_sub(self.ms))
    }
}

// Here rather than in `decision.rs`: it reads the context, and `decision.rs` stays a leaf the context can name.
impl Decision {
    /// The decision for a finished request: the one a phase set, else read from the limit outcomes.
    pub(crate) fn of(ctx: &RequestCtx) -> Decision {
        if let Some(d) = ctx.cdn.decision {
            return d;
        }
        if ctx.domain.is_none() {
            return Decision::Refused;
        }
        match ctx.protect.outcome {
            Some(DecisionKind::Blocked) => return Decision::Block,
            Some(DecisionKind::Challenged) => return Decision::Challenge,
            // Protection reports a limit only for the IP access limit (limit_req/limit_conn are read below).
            Some(DecisionKind::Limited) => return Decision::IpAccessLimit,
            _ => {}
        }
        if ctx.conn_status == Some(ConnStatus::Rejected) {
            return Decision::LimitConn;
        }
        match ctx.req_decision.and_then(|d| d.status) {
            Some(ReqStatus::Rejected) => Decision::LimitReq,
            Some(ReqStatus::Delayed) => Decision::Delay,
            _ => Decision::Pass,
        }
    }
}

/// Per-request state of the CDN phases (cache, upstream, access log).
pub(crate) struct CdnCtx {
    pub epoch: Epoch,
    /// Cache time of the lookup.
    pub now: SystemTime,
    /// Left by the cache phase for the upstream phase.
    pub cache: Option<Pending>,
    /// What `X-Cache` said, for the access log and metrics.
    pub cache_status: Option<CacheStatus>,
    /// The upstream that answered (or the last one tried).
    pub upstream: Option<Arc<UpstreamPool>>,
    /// Time from sending the request upstream to its response head.
    pub upstream_time: Option<Duration>,
    /// Set by a phase that answered on its own (protection); derived from the limit decisions otherwise.
    pub decision: Option<Decision>,
}

impl CdnCtx {
    pub(crate) fn new(epoch: Epoch) -> Self {
        CdnCtx {
            epoch,
            now: epoch.wall,
            cache: None,
            cache_status: None,
            upstream: None,
            upstream_time: None,
            decision: None,
        }
    }
}

/// A cache lookup that still needs the upstream.
pub(crate) struct Pending {
    /// This request leads the fill of a missing object.
    pub fill: Option<FillGuard>,
    /// The expired copy to answer with if the upstream fails.
    pub stale: Option<CachedResponse>,
    /// The client's conditional and range headers, taken off the request that fills the cache and
    /// answered from the object it stores.
    pub conds: Option<ClientConditions>,
    /// An unsafe request (POST, PUT, DELETE, PATCH): the key whose object a success invalidates.
    pub invalidate: Option<CacheKey>,
}

/// A short local answer.
pub(crate) fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    resp
}

/// Checked once (see `phases/protect.rs`).
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Appends `n` in decimal.
pub(crate) fn put_decimal(buf: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

/// The answer of `limit_req_status` / `limit_conn_status`: the status line and why, without formatting.
pub(crate) fn limit_answer(code: StatusCode, why: &str) -> Response<ProxyBody> {
    let mut body = BytesMut::with_capacity(64);
    body.put_slice(code.as_str().as_bytes());
    body.put_u8(b' ');
    body.put_slice(code.canonical_reason().unwrap_or("").as_bytes());
    body.put_slice(b"\nedgeguard: ");
    body.put_slice(why.as_bytes());
    body.put_u8(b'\n');
    answer(code, body.freeze())
}

pub(crate) fn key_slices<'a>(keys: &'a KeyBuf, ends: &[usize]) -> SmallVec<[&'a [u8]; 4]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let k = &keys[start..end];
            start = end;
            k
        })
        .collect()
}
