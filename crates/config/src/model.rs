//! The validated configuration model. Everything here has passed validation: zone references resolve, sizes
//! and rates are in range, rules obey SPEC section 4. The data plane builds its runtime state from this.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use edgeguard_limit::{DelayMode, Rate};
use edgeguard_rules::RuleSpec;
pub use edgeguard_rules::Scope;

/// A whole node's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: Node,
    pub admin: Admin,
    pub cluster: Option<Cluster>,
    pub limit_req_zones: Vec<ReqZoneSpec>,
    pub limit_conn_zones: Vec<ConnZoneSpec>,
    pub domains: Vec<Domain>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// L1: forwards misses to the domain's parents, then origins.
    Edge,
    /// L2: forwards misses to origins.
    Parent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub tier: Tier,
    pub listen: Vec<SocketAddr>,
    /// `listen_tls`: HTTPS listeners (HTTP/1.1 and HTTP/2 by ALPN); the certificate is chosen by SNI from the
    /// domains' `[domain.tls]`.
    pub listen_tls: Vec<SocketAddr>,
    pub trusted_proxies: Vec<IpNet>,
    pub data_dir: PathBuf,
    /// Largest request head (request line + headers) accepted; larger gets 431. `max_header_size`, default 16k.
    pub max_header_size: usize,
    /// Largest request body accepted; larger gets 413. `max_body_size`, default 10m.
    pub max_body_size: u64,
    /// Time allowed to receive a request head. `header_timeout`, default 10s.
    pub header_timeout: Duration,
    /// Time allowed between body reads. `body_timeout`, default 30s.
    pub body_timeout: Duration,
    /// Idle keep-alive connections are closed after this. `keepalive_timeout`, default 75s.
    pub keepalive_timeout: Duration,
    /// `access_log`: a file path, or absent for none.
    pub access_log: Option<PathBuf>,
    /// `access_log_format`: JSON lines (default) or nginx combined.
    pub access_log_format: AccessLogFormat,
    /// `ipv6_prefix`, 48..=128, default 64: the IP access limit, `object = "ip"` rules and blocks count an IPv6
    /// client by this prefix (an IPv4-mapped address is its IPv4 address).
    pub ipv6_prefix: u8,
    /// `blocks_size`: memory budget in bytes of the blocks and challenges in force, all domains.
    pub blocks_size: u64,
    /// `good_crawlers`: files listing verified crawler ranges, as written (relative to the configuration's
    /// folder). Normal and emergency mode never challenge or block an address in them.
    pub good_crawlers: Vec<PathBuf>,
    /// The ranges read from `good_crawlers` when the configuration was loaded (a reload reads them again).
    pub good_crawler_nets: Vec<IpNet>,
    /// `max_connections`: client connections open at once on all listeners; 0 = unlimited (default).
    pub max_connections: u32,
    /// `max_connections_per_ip`: client connections open at once from one address; 0 = unlimited (default).
    pub max_connections_per_ip: u32,
    /// `http2_idle_timeout`: an HTTP/2 connection with no open stream for this long is closed (GOAWAY).
    /// Default 3m (nginx's `http2_idle_timeout` before 1.19.7).
    pub http2_idle_timeout: Duration,
    /// `http2_max_streams`: concurrent streams per HTTP/2 connection, default 128 (nginx's
    /// `http2_max_concurrent_streams`).
    pub http2_max_streams: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    #[default]
    Json,
    Combined,
}

/// An address range for `trusted_proxies`: `127.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this range. An IPv4-mapped IPv6 address matches the IPv4 range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub listen: SocketAddr,
    /// From `token`, or the `EDGEGUARD_ADMIN_TOKEN` environment variable when the file has none.
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `via`: where the counts of cluster-scoped limits are shared, Redis (default) or the domains' parents.
    pub via: ClusterVia,
    /// One `redis://` URL for a single instance, or the seed nodes of a Redis Cluster; empty with
    /// `via = "parents"`.
    pub redis_urls: Vec<String>,
    /// `sync_interval_ms`, 10..=10000, default 100.
    pub sync_interval: Duration,
    /// `on_redis_failure`, default local.
    pub on_redis_failure: RedisFailure,
    /// `redis_ca`: a PEM file of the CA certificates `rediss://` URLs are verified with (default: the
    /// system's roots).
    pub redis_ca: Option<PathBuf>,
}

/// Where a node shares the counts of its cluster-scoped limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterVia {
    /// Redis (`redis_url`): counts, blocks, purges and configuration.
    #[default]
    Redis,
    /// Tiered counting: an edge sends its counts to each domain's parent, which aggregates them for its edges
    /// (no Redis; counts only).
    Parents,
}

impl ClusterVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterVia::Redis => "redis",
            ClusterVia::Parents => "parents",
        }
    }
}

/// What a node does while Redis (or, with `via = "parents"`, the parent) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisFailure {
    /// Keep deciding on the node's own counts (as `scope = "node"`).
    #[default]
    Local,
    /// Let cluster-scoped limits pass.
    Open,
    /// Refuse what cluster-scoped limits cover.
    Closed,
}

impl RedisFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Local => "local",
            RedisFailure::Open => "open",
            RedisFailure::Closed => "closed",
        }
    }
}

/// One part of an nginx-style key such as `$binary_remote_addr` or `$host$uri` or `user-$arg_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Literal(String),
    /// 4 bytes for IPv4, 16 for IPv6.
    BinaryRemoteAddr,
    RemoteAddr,
    Host,
    /// Path without the query.
    Uri,
    /// Path and query as received.
    RequestUri,
    /// `$http_NAME`: NAME lower-case with `_` standing for `-`, as nginx.
    Http(String),
    /// `$arg_NAME`: the first query argument NAME.
    Arg(String),
}

/// A key template: the concatenation of its parts. Empty result = not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pub source: String,
    pub parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReqZoneSpec {
    pub name: String,
    pub key: KeyTemplate,
    /// Bytes, >= 32 KiB.
    pub size: u64,
    pub rate: Rate,
    /// `scope`, default node (as nginx).
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnZoneSpec {
    pub name: String,
    pub key: KeyTemplate,
    /// Bytes, >= 32 KiB.
    pub size: u64,
}

/// `limit_req = [{ zone, burst, nodelay | delay, dry_run }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReqSpec {
    pub zone: String,
    /// Requests (not milli-requests); 0 when absent.
    pub burst: u32,
    pub delay: DelayMode,
    pub dry_run: bool,
}

/// `limit_conn = [{ zone, conn, dry_run }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConnSpec {
    pub zone: String,
    /// 1..=65535.
    pub conn: u32,
    pub dry_run: bool,
}

/// An upstream address as written: `host:port` (a name is resolved when connecting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// Lower-case host name, without port.
    pub name: String,
    pub origins: Vec<Upstream>,
    pub parents: Vec<Upstream>,
    pub explain: bool,
    /// 400..=599, default 503.
    pub limit_req_status: u16,
    /// 400..=599, default 503.
    pub limit_conn_status: u16,
    pub limit_req: Vec<LimitReqSpec>,
    pub limit_conn: Vec<LimitConnSpec>,
    /// Sorted longest path first, so the first whose prefix matches wins.
    pub locations: Vec<Location>,
    /// `connect_timeout`, default 5s.
    pub connect_timeout: Duration,
    /// `read_timeout` (time to the upstream's response head, and between body reads), default 60s.
    pub read_timeout: Duration,
    pub cache: CacheSpec,
    pub ip_access_limit: IpAccessLimitSpec,
    pub rate_limiting: RateLimitingSpec,
    pub challenge: ChallengeSpec,
    /// `https_redirect`: plain-HTTP requests get 308 to the same URL on https (after the challenge and limits).
    pub https_redirect: bool,
    /// `[domain.tls]`: the certificate SNI picks for this domain.
    pub tls: Option<TlsSpec>,
    /// `[domain.upstream_tls]`: HTTPS towards this domain's parents and origins.
    pub upstream_tls: UpstreamTlsSpec,
    /// `[domain.access_control]`.
    pub access_control: AccessControlSpec,
    /// `[domain.upstream]`: passive health, connection caps and name resolution of the upstreams.
    pub upstream: UpstreamSpec,
    /// `[domain.health_check]`: the active probe of every upstream.
    pub health_check: HealthCheckSpec,
    /// `websocket`: `Upgrade` requests (WebSocket and others) are passed through to the upstream.
    pub websocket: bool,
    /// `allow_methods`: of CONNECT and TRACE, those forwarded; the others are refused with 405.
    pub allow_methods: Vec<String>,
}

/// `[domain.upstream]`, nginx's `server ... max_fails= fail_timeout= max_conns=` and `queue` for every parent
/// and origin of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// `max_fails`: failed connection attempts within `fail_timeout` that mark an upstream down; 0 = never
    /// by requests (health checks still do). Default 1, as nginx. The last upstream that is up is never
    /// marked down by requests.
    pub max_fails: u32,
    /// `fail_timeout`: the window the failures are counted in, and how long a marked-down upstream waits
    /// before requests try it again. Default 10s.
    pub fail_timeout: Duration,
    /// `max_conns`: connections open at once to one upstream address; 0 = unlimited (default).
    pub max_conns: u32,
    /// `queue`: requests that may wait for a connection when an upstream is at `max_conns`; beyond that, or
    /// after `queue_timeout`, the next upstream is tried or 503 answered. Default 100.
    pub queue: u32,
    /// `queue_timeout`: default 5s.
    pub queue_timeout: Duration,
    /// `resolve_ttl`: how long the addresses a name resolved to are used before it is resolved again.
    /// Default 30s.
    pub resolve_ttl: Duration,
}

/// What an active health check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthCheckKind {
    /// A TCP connect.
    #[default]
    Tcp,
    /// `GET path`, passing when the status is among `statuses`.
    Http,
}

/// `[domain.health_check]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// `type`: "tcp" (default) or "http".
    pub kind: HealthCheckKind,
    /// `path`, for "http": default "/".
    pub path: String,
    /// `statuses`, for "http": ranges of passing statuses, inclusive; default 200-399.
    pub statuses: Vec<(u16, u16)>,
    /// `interval`: default 2s.
    pub interval: Duration,
    /// `fails`: probes failed in a row that mark an upstream down (nginx's `health_check fails=`, HAProxy's
    /// `fall`). Default 1, as nginx.
    pub fails: u32,
    /// `passes`: probes passed in a row that bring a down upstream back (nginx's `passes=`, HAProxy's
    /// `rise`); a request that succeeds brings it back at once whatever this says. Default 1, as nginx.
    pub passes: u32,
}

impl HealthCheckSpec {
    /// Whether `status` passes the check.
    pub fn passes(&self, status: u16) -> bool {
        self.statuses
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// `[domain.tls]`: a PEM certificate chain and its private key. Relative paths are taken from the
/// configuration file's folder when the file is loaded with [`crate::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[domain.upstream_tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTlsSpec {
    pub enabled: bool,
    /// PEM roots to verify the upstream with; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// SNI and the name verified; `None`: the domain name.
    pub server_name: Option<String>,
}

/// `[domain.access_control]`: `allow` is never limited, blocked or challenged; `deny` always gets 403.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessControlSpec {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// `[[domain.location]]`: a list given here replaces the domain's list of the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: String,
    pub limit_req: Option<Vec<LimitReqSpec>>,
    pub limit_conn: Option<Vec<LimitConnSpec>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSpec {
    pub enabled: bool,
    /// For responses without Cache-Control/Expires freshness. `default_ttl`, default 5m.
    pub default_ttl: Duration,
    pub ignore_query: bool,
    /// `max_size`: memory budget in bytes, default 64m.
    pub max_size: u64,
    /// `stale_grace`: how long past expiry an object may be served when the upstream fails, default 1h.
    pub stale_grace: Duration,
    /// `lock_timeout`: how long a request waits for another request's fill of the same object before going
    /// upstream itself (nginx's `proxy_cache_lock_timeout`), default 5s.
    pub lock_timeout: Duration,
    /// `disk_path`: a disk tier under this folder that survives restarts; `None`: memory only.
    pub disk_path: Option<PathBuf>,
    /// `disk_size`: the disk tier's byte budget, default 1g.
    pub disk_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAccessLimitSpec {
    pub enabled: bool,
    /// `None`: the recommended default from the node's statistics, at least 10.
    pub qps: Option<u32>,
    /// `scope`, default node.
    pub scope: Scope,
    /// `table_size`: memory budget in bytes of the per-client table.
    pub table_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    Emergency,
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitingSpec {
    pub enabled: bool,
    pub mode: Mode,
    pub parameter_check: bool,
    /// `table_size`: memory budget in bytes of the rule windows of the domain, shared by its rules.
    pub table_size: u64,
    /// Validated by `edgeguard_rules` (at most 5, names unique, ...).
    pub rules: Vec<RuleSpec>,
}

/// `[domain.challenge]`: the bot-detection challenge of the domain (SPEC section 4): how hard the puzzle is, how
/// long a pass lasts, and where the challenge applies without any rule having triggered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeSpec {
    /// Leading zero bits the proof of work needs, 1..=32; expected work 2^bits hashes. Default 20.
    pub difficulty: u8,
    /// How long a clearance cookie lasts, 1m..=7d. Default 1h.
    pub clearance_ttl: Duration,
    /// Every request of the domain without a valid clearance is challenged.
    pub enabled: bool,
    /// Path prefixes (each starting with `/`) whose requests are always challenged without a clearance; empty =
    /// none. Compared with the normalised path, as locations and rules are.
    pub paths: Vec<String>,
}
