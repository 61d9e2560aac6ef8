//! Every default of the configuration file, in one place. `docs/configuration.md` lists the same values.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::model::{
    AccessControlSpec, AccessLogFormat, Admin, CacheSpec, ChallengeSpec, Domain, HealthCheckKind,
    HealthCheckSpec, IpAccessLimitSpec, Mode, RateLimitingSpec, Scope, Tier, Upstream,
    UpstreamSpec, UpstreamTlsSpec,
};

/// `node.tier`.
pub const TIER: Tier = Tier::Edge;
/// `node.data_dir`.
pub const DATA_DIR: &str = "./data";
/// `node.max_header_size`: 16 KiB (nginx's `large_client_header_buffers` is 4 x 8k; one head of 16k is ample).
pub const MAX_HEADER_SIZE: usize = 16 * 1024;
/// `node.max_body_size`: 10 MiB.
pub const MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
/// `node.header_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `node.body_timeout`.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `node.keepalive_timeout` (nginx's default).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// `node.access_log_format`.
pub const ACCESS_LOG_FORMAT: AccessLogFormat = AccessLogFormat::Json;

/// `node.ipv6_prefix`: an IPv6 client is its /64, the smallest network a host is normally given.
pub const IPV6_PREFIX: u8 = 64;
/// Bounds of `node.ipv6_prefix`.
pub const IPV6_PREFIX_MIN: u8 = 48;
pub const IPV6_PREFIX_MAX: u8 = 128;
/// `node.blocks_size`: 16 MiB of blocks and challenges in force.
pub const BLOCKS_SIZE: u64 = 16 * 1024 * 1024;
/// Smallest `node.blocks_size`, `table_size` of the protection tables.
pub const MIN_TABLE_SIZE: u64 = 64 * 1024;

/// `admin.listen`: loopback only.
pub const ADMIN_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
/// Environment variable read for `admin.token` when the file has none.
pub const ADMIN_TOKEN_ENV: &str = "EDGEGUARD_ADMIN_TOKEN";

/// Smallest `size` of a `limit_req_zone` / `limit_conn_zone`, as nginx.
pub const MIN_ZONE_SIZE: u64 = 32 * 1024;

/// `domain.limit_req_status` and `domain.limit_conn_status`, as nginx.
pub const LIMIT_STATUS: u16 = 503;
/// `domain.explain`.
pub const EXPLAIN: bool = false;
/// `domain.https_redirect`.
pub const HTTPS_REDIRECT: bool = false;
/// `domain.connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `domain.read_timeout`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `domain.cache.enabled`: on, as a CDN operator expects; what is cached still follows Cache-Control.
pub const CACHE_ENABLED: bool = true;
/// `domain.cache.default_ttl`.
pub const CACHE_DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// `domain.cache.ignore_query`.
pub const CACHE_IGNORE_QUERY: bool = false;
/// `domain.cache.max_size`: 64 MiB.
pub const CACHE_MAX_SIZE: u64 = 64 * 1024 * 1024;
/// `domain.cache.stale_grace`.
pub const CACHE_STALE_GRACE: Duration = Duration::from_secs(60 * 60);

/// `domain.cache.lock_timeout`: nginx's `proxy_cache_lock_timeout` default.
pub const CACHE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// `domain.cache.disk_size`: 1 GiB when `disk_path` is set.
pub const CACHE_DISK_SIZE: u64 = 1024 * 1024 * 1024;

/// `cluster.sync_interval_ms`.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Bounds of `cluster.sync_interval_ms`.
pub const SYNC_INTERVAL_MIN_MS: u64 = 10;
pub const SYNC_INTERVAL_MAX_MS: u64 = 10_000;

/// `domain.ip_access_limit.table_size`: 58 MiB, room for 1,000,000 clients at 60 bytes each (SPEC 9.1).
pub const IP_ACCESS_LIMIT_TABLE_SIZE: u64 = 58 * 1024 * 1024;
/// `domain.rate_limiting.table_size`: 192 MiB shared by the domain's rules: five rules without status selectors
/// hold 1,000,000 keys each at 40 bytes a key. With the IP access limit's table, 250 MiB per domain, within
/// SPEC 9.1's 256 MiB.
pub const RATE_LIMITING_TABLE_SIZE: u64 = 192 * 1024 * 1024;

/// `domain.ip_access_limit.enabled`.
pub const IP_ACCESS_LIMIT_ENABLED: bool = false;
/// The learned default `qps` never goes below this (SPEC section 3). An explicit `qps` is taken as written.
pub const RECOMMENDED_QPS_FLOOR: u32 = 10;

/// `domain.rate_limiting.enabled`.
pub const RATE_LIMITING_ENABLED: bool = false;
/// `domain.rate_limiting.mode`.
pub const MODE: Mode = Mode::Normal;
/// `domain.rate_limiting.parameter_check`.
pub const PARAMETER_CHECK: bool = false;

/// `domain.challenge.difficulty`: 20 bits, `edgeguard_challenge::Difficulty::DEFAULT` (the proxy tests that the
/// two agree). About 0.7 s on one core of a browser, measured in docs/challenge.md.
pub const CHALLENGE_DIFFICULTY: u8 = 20;
/// Bounds of `domain.challenge.difficulty`, as `edgeguard_challenge::Difficulty`.
pub const CHALLENGE_DIFFICULTY_MIN: u8 = 1;
pub const CHALLENGE_DIFFICULTY_MAX: u8 = 32;
/// `domain.challenge.clearance_ttl`.
pub const CHALLENGE_CLEARANCE_TTL: Duration = Duration::from_secs(60 * 60);
/// Bounds of `domain.challenge.clearance_ttl`, as the challenge crate clamps it.
pub const CHALLENGE_CLEARANCE_TTL_MIN: Duration = Duration::from_secs(60);
pub const CHALLENGE_CLEARANCE_TTL_MAX: Duration = Duration::from_secs(7 * 86_400);
/// `domain.challenge.enabled`.
pub const CHALLENGE_ENABLED: bool = false;
/// Most entries of `domain.challenge.paths`: each is compared on every request of the domain.
pub const CHALLENGE_MAX_PATHS: usize = 32;

/// `node.max_connections` and `node.max_connections_per_ip`: unlimited.
pub const MAX_CONNECTIONS: u32 = 0;
/// `node.http2_idle_timeout`.
pub const HTTP2_IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// `node.http2_max_streams` (nginx's `http2_max_concurrent_streams`).
pub const HTTP2_MAX_STREAMS: u32 = 128;

/// `domain.upstream.max_fails` (nginx's default).
pub const MAX_FAILS: u32 = 1;
/// `domain.upstream.fail_timeout` (nginx's default).
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// `domain.upstream.max_conns`: unlimited.
pub const MAX_CONNS: u32 = 0;
/// `domain.upstream.queue`.
pub const UPSTREAM_QUEUE: u32 = 100;
/// `domain.upstream.queue_timeout`.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// `domain.upstream.resolve_ttl`.
pub const RESOLVE_TTL: Duration = Duration::from_secs(30);
/// `domain.health_check.interval`.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// `domain.health_check.path`.
pub const HEALTH_CHECK_PATH: &str = "/";
/// `domain.health_check.statuses`.
pub const HEALTH_CHECK_STATUSES: (u16, u16) = (200, 399);
/// `domain.health_check.fails` (nginx's default; HAProxy's `fall` is 3).
pub const HEALTH_CHECK_FAILS: u32 = 1;
/// `domain.health_check.passes` (nginx's default; HAProxy's `rise` is 2).
pub const HEALTH_CHECK_PASSES: u32 = 1;
/// `domain.websocket`.
pub const WEBSOCKET: bool = false;

impl Default for UpstreamSpec {
    fn default() -> Self {
        Self {
            max_fails: MAX_FAILS,
            fail_timeout: FAIL_TIMEOUT,
            max_conns: MAX_CONNS,
            queue: UPSTREAM_QUEUE,
            queue_timeout: QUEUE_TIMEOUT,
            resolve_ttl: RESOLVE_TTL,
        }
    }
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            kind: HealthCheckKind::Tcp,
            path: HEALTH_CHECK_PATH.to_string(),
            statuses: vec![HEALTH_CHECK_STATUSES],
            interval: HEALTH_CHECK_INTERVAL,
            fails: HEALTH_CHECK_FAILS,
            passes: HEALTH_CHECK_PASSES,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: ADMIN_LISTEN,
            token: None,
        }
    }
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            enabled: CACHE_ENABLED,
            default_ttl: CACHE_DEFAULT_TTL,
            ignore_query: CACHE_IGNORE_QUERY,
            max_size: CACHE_MAX_SIZE,
            stale_grace: CACHE_STALE_GRACE,
            lock_timeout: CACHE_LOCK_TIMEOUT,
            disk_path: None,
            disk_size: CACHE_DISK_SIZE,
        }
    }
}

impl Default for IpAccessLimitSpec {
    fn default() -> Self {
        Self {
            enabled: IP_ACCESS_LIMIT_ENABLED,
            qps: None,
            scope: Scope::Node,
            table_size: IP_ACCESS_LIMIT_TABLE_SIZE,
        }
    }
}

impl Default for RateLimitingSpec {
    fn default() -> Self {
        Self {
            enabled: RATE_LIMITING_ENABLED,
            mode: MODE,
            parameter_check: PARAMETER_CHECK,
            table_size: RATE_LIMITING_TABLE_SIZE,
            rules: Vec::new(),
        }
    }
}

impl Default for ChallengeSpec {
    fn default() -> Self {
        Self {
            difficulty: CHALLENGE_DIFFICULTY,
            clearance_ttl: CHALLENGE_CLEARANCE_TTL,
            enabled: CHALLENGE_ENABLED,
            paths: Vec::new(),
        }
    }
}

impl Domain {
    /// A domain with every optional setting at its default, as the file reads with only `name` and `origins`.
    /// `name` is taken as given (the file lower-cases it).
    pub fn with_defaults(name: impl Into<String>, origins: Vec<Upstream>) -> Self {
        Self {
            name: name.into(),
            origins,
            parents: Vec::new(),
            explain: EXPLAIN,
            limit_req_status: LIMIT_STATUS,
            limit_conn_status: LIMIT_STATUS,
            limit_req: Vec::new(),
            limit_conn: Vec::new(),
            locations: Vec::new(),
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: READ_TIMEOUT,
            cache: CacheSpec::default(),
            ip_access_limit: IpAccessLimitSpec::default(),
            rate_limiting: RateLimitingSpec::default(),
            challenge: ChallengeSpec::default(),
            https_redirect: HTTPS_REDIRECT,
            tls: None,
            upstream_tls: UpstreamTlsSpec::default(),
            access_control: AccessControlSpec::default(),
            upstream: UpstreamSpec::default(),
            health_check: HealthCheckSpec::default(),
            websocket: WEBSOCKET,
            allow_methods: Vec::new(),
        }
    }
}
