//! What the admin server needs from the node it manages. The binary implements [`Control`] over the running
//! node; [`crate::memory::MemoryControl`] implements it over plain memory for tests and demos.

use std::net::IpAddr;

use edgeguard_config::Config;
use edgeguard_store::{ActivityPage, ActivityQuery, Recommendation, StatsPoint};
use serde::Serialize;
use utoipa::ToSchema;

use crate::live::{LiveView, TopTalkers};

/// The node as seen by the admin server.
///
/// Every method is synchronous and may block (SQLite, a file write): the server calls them on tokio's blocking
/// pool, never on a runtime worker. Changes of configuration are serialized by the server, one at a time, so an
/// implementation need not guard against two concurrent [`apply`](Control::apply) calls from the admin API
/// (it must still tolerate a SIGHUP reload racing one).
pub trait Control: Send + Sync + 'static {
    /// The configuration the node runs now.
    fn config(&self) -> Config;

    /// Makes `next` the running configuration for every request that starts after this returns, keeping the
    /// counters of limits that still exist, and persists it so a restart runs it too. `next` has already passed
    /// the same validation as the configuration file.
    fn apply(&self, next: Config) -> Result<(), ApplyError>;

    /// The recommended IP access limit of `domain` (SPEC section 3) from the node's own statistics.
    fn recommended_qps(&self, domain: &str) -> Result<Recommendation, String>;

    /// One page of the activity log.
    fn activity(&self, query: &ActivityQuery) -> Result<ActivityPage, String>;

    /// Blocks and challenges in force now.
    fn blocks(&self) -> Vec<BlockInfo>;

    /// Lifts the block or challenge whose [`BlockInfo::id`] is `id`; false when there is none (any more).
    fn lift_block(&self, id: &str) -> bool;

    /// Starts a timed challenge of the whole `domain` (`path` absent) or of one path prefix for `ttl_s` seconds
    /// from now, as an operator's action: in force at once, listed by [`blocks`](Control::blocks) (object type
    /// `domain` or `prefix:/path`) and liftable there, kept across a restart, written to the activity log. A new
    /// start of the same challenge replaces its end. `ttl_s` and `path` have been checked by the caller
    /// ([`TIMED_CHALLENGE_TTL_S`], `edgeguard_config::challenge_path`), the domain exists in the configuration.
    fn start_challenge(
        &self,
        domain: &str,
        ttl_s: u64,
        path: Option<&str>,
    ) -> Result<BlockInfo, StartError>;

    /// Closed five-minute statistics points of `domain` starting in `[from_ms, to_ms)`, oldest first.
    fn stats_points(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StatsPoint>, String>;

    /// The protection tables of `domain` (the IP access limit's, then each rule's, in evaluation order); empty
    /// when the node runs none for it.
    fn protection_tables(&self, domain: &str) -> Vec<ProtectionTable> {
        let _ = domain;
        Vec::new()
    }

    /// What normal or emergency mode learned of `domain`'s traffic, with the thresholds in force; empty when the
    /// domain runs neither (or the node has not served it yet).
    fn baseline(&self, domain: &str) -> BaselineView {
        let _ = domain;
        BaselineView::default()
    }

    /// The node's metrics in the Prometheus text exposition format, served at `/metrics`.
    fn metrics(&self) -> String;

    /// The body of `/healthz` (always answered 200 while the node serves): `ok`, then a line per degraded
    /// dependency, such as a cluster whose Redis is unreachable.
    fn health(&self) -> String {
        "ok\n".to_owned()
    }

    /// The addresses this node uses towards origins: what an origin must allow for a domain that has no
    /// parents (or on a parent node).
    fn node_addresses(&self) -> Vec<IpAddr>;

    /// Removes objects from `domain`'s cache; returns how many. `Err`: the domain keeps no cache (answered
    /// as 404). The default keeps no cache at all.
    fn purge(&self, domain: &str, what: &PurgeTarget) -> Result<u64, String> {
        let _ = what;
        Err(format!("{domain} keeps no cache on this node"))
    }

    /// The last ten minutes of `domain`'s requests by outcome, `step_s` (1..=60) seconds per point; `None`
    /// when the node keeps no live counters for it (the default).
    fn live(&self, domain: &str, step_s: u64) -> Option<LiveView> {
        let _ = (domain, step_s);
        None
    }

    /// `domain`'s heaviest addresses, networks, paths and user agents of the last minute and the last hour,
    /// `limit` per list; `None` when the node keeps none (the default).
    fn top_talkers(&self, domain: &str, limit: usize) -> Option<TopTalkers> {
        let _ = (domain, limit);
        None
    }

    /// Blocks (`challenge` false: 403) or challenges one client address of `domain` for `ttl_s` seconds, as an
    /// operator's action: listed by [`blocks`](Control::blocks) (object type `ip`), liftable there, kept across
    /// a restart, written to the activity log. `ttl_s` is within [`TIMED_CHALLENGE_TTL_S`], the domain exists.
    fn start_block(
        &self,
        domain: &str,
        ip: IpAddr,
        challenge: bool,
        ttl_s: u64,
    ) -> Result<BlockInfo, StartError> {
        let _ = (domain, ip, challenge, ttl_s);
        Err(StartError::Invalid(
            "this node cannot start blocks by hand".to_owned(),
        ))
    }

    /// Unix time in milliseconds; the default time range of charts ends here.
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// What [`Control::purge`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeTarget {
    /// Paths with their query (`/a?b=1`) or absolute URLs.
    Urls(Vec<String>),
    /// A path prefix (`/img/`).
    Prefix(String),
    /// Tags from the origin's `Cache-Tag`/`Surrogate-Key`.
    Tags(Vec<String>),
}

/// Why [`Control::apply`] did not apply a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The node refused the configuration (it cannot run it); nothing changed. Answered as 400.
    #[error("the node refused the configuration: {0}")]
    Rejected(String),
    /// Applying or persisting failed on the node's side. Answered as 500.
    #[error("the configuration could not be applied: {0}")]
    Failed(String),
}

/// Shortest and longest timed challenge the API starts, in seconds (1 s ..= 30 days); a permanent one is
/// `[domain.challenge] enabled = true`.
pub const TIMED_CHALLENGE_TTL_S: std::ops::RangeInclusive<u64> = 1..=30 * 86_400;

/// Why [`Control::start_challenge`] did not start a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The node does not serve the domain (yet). Answered as 404.
    #[error("{0}")]
    NoDomain(String),
    /// The node refused it, e.g. a block of the whole domain is in force. Answered as 409.
    #[error("{0}")]
    Conflict(String),
    /// The request was out of range for the node. Answered as 400.
    #[error("{0}")]
    Invalid(String),
}

/// One protection table of a domain as the node reports it (`GET /api/v1/domains/{name}/protection-tables`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProtectionTable {
    /// `ip-access-limit`, or the rule's name.
    pub table: String,
    /// Memory budget of the table (its share of `table_size`), bytes; resident only as keys fill it.
    pub size_bytes: u64,
    /// Keys it holds at most (keys of up to 16 bytes).
    pub capacity: u64,
    /// Keys it holds now.
    pub in_use: u64,
    /// Keys with live counts evicted for a new key since the table was built.
    pub evictions: u64,
    /// New keys not stored because every candidate victim was estimated to count more.
    pub admission_refusals: u64,
}

/// What a domain's detector learned and holds (`GET /api/v1/domains/{name}/baseline`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BaselineView {
    /// The per-client and per-path request measures have fewer than 2,000 samples, or the node has served the
    /// domain for less than five minutes (the novelty signals are off): the floors decide.
    pub warming_up: bool,
    pub measures: Vec<BaselineMeasure>,
    pub shares: BaselineShares,
    /// The busiest paths (up to 16) and their learned requests in 10 s.
    pub top_paths: Vec<BaselinePath>,
    /// Paths in surge now (their repeat clients are challenged).
    pub paths_in_surge: u64,
    /// Networks (/24, IPv6 /48) whose login requests are challenged now.
    pub networks_flagged: u64,
    /// Decisions made since the detector's tables were built, per rule (`baseline.flood`, ...).
    pub findings: Vec<BaselineFindings>,
}

/// Learned shares of a domain's traffic (counts fade: halved every 6 hours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BaselineShares {
    /// Requests learned.
    pub requests: u64,
    /// Of them, with a query string.
    pub with_query: u64,
    /// Of them, with a query string not seen before for the path (the cache cannot answer them).
    pub unseen_query: u64,
    /// `unseen_query` per mille of `requests`.
    pub unseen_query_per_mille: u64,
    /// Responses by status class, `1xx` to `5xx`.
    pub status_classes: Vec<StatusClassShare>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusClassShare {
    /// `1xx` .. `5xx`.
    pub class: String,
    pub responses: u64,
    /// Per mille of all responses.
    pub per_mille: u64,
}

/// One of a domain's busiest paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BaselinePath {
    pub path: String,
    /// Samples learned of it.
    pub samples: u64,
    /// Typical requests in 10 s (a moving average of the samples).
    pub requests_10s: u64,
    /// Highest requests in 10 s sampled.
    pub peak_10s: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BaselineFindings {
    pub rule: String,
    pub count: u64,
}

/// One measure of a domain's learned baseline (`GET /api/v1/domains/{name}/baseline`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BaselineMeasure {
    /// `client_requests_10s`, `client_requests_60s`, `client_404s_10s`, `path_requests_10s`,
    /// `login_failures_300s`, `path_unseen_queries_10s` (a path's requests with a query string not seen before
    /// for it) or `new_clients_10s` (clients of the domain not seen in the last one to two hours).
    pub measure: String,
    /// Samples learned (old ones fade: halved every 6 hours).
    pub events: u64,
    /// 99th and 99.9th percentiles; absent until enough samples were learned.
    pub p99: Option<u64>,
    pub p999: Option<u64>,
    /// The threshold in force: the mode's floor, or its factor times `p999` when that is higher.
    pub threshold: u64,
}

/// A block or challenge in force for one object of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BlockInfo {
    /// Opaque, stable while the block lasts; `DELETE /api/v1/blocks/{id}` lifts it.
    pub id: String,
    pub domain: String,
    /// `ip`, `header:NAME`, `domain` or `param:NAME`; `prefix:/path` for an operator's challenge of a path
    /// prefix (its object value is then the domain).
    pub object_type: String,
    pub object_value: String,
    /// The rule that triggered it; `admin-api` for a challenge started through the API.
    pub rule: String,
    /// `block` or `bot_detection`.
    pub action: String,
    /// Unix time in milliseconds when it ends.
    pub until_ms: i64,
}

/// A URL-safe id for the block of one object of one domain: the lower-case hex of `domain`, `object_type` and
/// `object_value` joined by NUL (which none of them can hold), so it needs no escaping in a path and maps back
/// without a table. Implementations of [`Control`] may use any other scheme.
pub fn block_id(domain: &str, object_type: &str, object_value: &str) -> String {
    let mut id =
        String::with_capacity(2 * (domain.len() + object_type.len() + object_value.len() + 2));
    for (i, part) in [domain, object_type, object_value].iter().enumerate() {
        if i > 0 {
            id.push_str("00");
        }
        for b in part.bytes() {
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl BlockInfo {
    /// The listing of a stored block, with its [`block_id`].
    pub fn from_record(b: edgeguard_store::BlockRecord) -> Self {
        BlockInfo {
            id: block_id(&b.domain, &b.object_type, &b.object_value),
            domain: b.domain,
            object_type: b.object_type,
            object_value: b.object_value,
            rule: b.rule,
            action: b.action,
            until_ms: b.until_ms,
        }
    }
}
