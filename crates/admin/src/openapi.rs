//! The schemas of the JSON the API exchanges, for the OpenAPI document (assembled from the handlers'
//! annotations in `api/doc.rs`). A domain's JSON is its `[[domain]]` table of the configuration file; the `*Doc` types here
//! describe that shape (a test checks that what the API writes reads back into them).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `limit_req` entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitReqDoc {
    pub zone: String,
    pub burst: Option<u32>,
    pub nodelay: Option<bool>,
    pub delay: Option<u32>,
    pub dry_run: Option<bool>,
}

/// `limit_conn` entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitConnDoc {
    pub zone: String,
    pub conn: u32,
    pub dry_run: Option<bool>,
}

/// `[[domain.location]]`: a list given here replaces the domain's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationDoc {
    pub path: String,
    pub limit_req: Option<Vec<LimitReqDoc>>,
    pub limit_conn: Option<Vec<LimitConnDoc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheDoc {
    pub enabled: Option<bool>,
    /// e.g. `"5m"`.
    pub default_ttl: Option<String>,
    pub ignore_query: Option<bool>,
    /// e.g. `"64m"`.
    pub max_size: Option<String>,
    /// e.g. `"1h"`.
    pub stale_grace: Option<String>,
    /// How long a request waits for another's fill of the same object, e.g. `"5s"`.
    pub lock_timeout: Option<String>,
    /// A disk tier under this folder; absent: memory only.
    pub disk_path: Option<String>,
    /// e.g. `"1g"`.
    pub disk_size: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpAccessLimitDoc {
    pub enabled: Option<bool>,
    /// Absent or null: the recommended default.
    pub qps: Option<u32>,
    /// `node` | `cluster`.
    pub scope: Option<String>,
    /// Memory budget of the per-client table, e.g. `"58m"`.
    pub table_size: Option<String>,
}

/// `[domain.challenge]`: the bot-detection challenge of the domain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeDoc {
    /// Every request without a valid clearance is challenged (default false).
    pub enabled: Option<bool>,
    /// Proof-of-work bits, 1..=32 (default 20: about 0.7 s on one browser core).
    #[schema(example = 20)]
    pub difficulty: Option<u8>,
    /// How long a pass lasts, 1m..=7d, e.g. `"1h"` (the default).
    pub clearance_ttl: Option<String>,
    /// Path prefixes always challenged, e.g. `["/login"]`.
    pub paths: Option<Vec<String>>,
}

/// A custom rate-limiting rule (SPEC section 4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// 4-30 ASCII letters and digits, unique within the domain (ignoring case).
    #[schema(example = "register01")]
    pub name: String,
    #[schema(example = "/register")]
    pub uri: String,
    /// `exact` | `prefix` | `fuzzy`.
    #[serde(rename = "match")]
    #[schema(example = "prefix")]
    pub match_: String,
    /// 0-9999, lower first; absent = after those that have one, exact before prefix before fuzzy.
    pub priority: Option<i64>,
    /// `ip` | `header:NAME` | `domain` | `param:NAME`.
    #[schema(example = "ip")]
    pub object: String,
    /// Seconds, 10-600.
    #[schema(example = 10)]
    pub interval: i64,
    #[schema(example = "\"count\">50")]
    pub criteria: String,
    /// `block` | `bot_detection` | `log` (counted and logged, nothing refused).
    #[schema(example = "block")]
    pub action: String,
    /// Seconds, at least 60.
    #[schema(example = 600)]
    pub ttl: i64,
    /// `node` | `cluster`; absent: cluster when the node is in a cluster.
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingDoc {
    pub enabled: Option<bool>,
    /// `normal` | `emergency` | `custom`.
    pub mode: Option<String>,
    pub parameter_check: Option<bool>,
    /// Memory budget of the rules' windows, e.g. `"192m"`.
    pub table_size: Option<String>,
    pub rules: Option<Vec<RuleDoc>>,
    /// Read only (GET): rule names in the order they are tried.
    pub evaluation_order: Option<Vec<String>>,
}

/// A domain: the `[[domain]]` table of the configuration file, as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainDoc {
    #[schema(example = "www.example.com")]
    pub name: String,
    /// `host:port`.
    pub origins: Vec<String>,
    /// L2 nodes, `host:port`; empty = straight to the origin.
    pub parents: Option<Vec<String>>,
    pub explain: Option<bool>,
    pub limit_req_status: Option<u16>,
    pub limit_conn_status: Option<u16>,
    pub limit_req: Option<Vec<LimitReqDoc>>,
    pub limit_conn: Option<Vec<LimitConnDoc>>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub location: Option<Vec<LocationDoc>>,
    pub cache: Option<CacheDoc>,
    pub ip_access_limit: Option<IpAccessLimitDoc>,
    pub rate_limiting: Option<RateLimitingDoc>,
    pub challenge: Option<ChallengeDoc>,
    /// Plain-HTTP requests get 308 to https.
    pub https_redirect: Option<bool>,
    pub tls: Option<TlsDoc>,
    pub upstream_tls: Option<UpstreamTlsDoc>,
    pub access_control: Option<AccessControlDoc>,
    /// HTTP/1.1 `Upgrade` (WebSocket) passed through to the upstream.
    pub websocket: Option<bool>,
    /// Methods refused (405) unless listed here: `CONNECT`, `TRACE`.
    pub allow_methods: Option<Vec<String>>,
    pub upstream: Option<UpstreamDoc>,
    pub health_check: Option<HealthCheckDoc>,
}

/// `[domain.upstream]`: failure accounting and connection caps per upstream address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamDoc {
    /// Failures within `fail_timeout` that mark an upstream down (0: never).
    pub max_fails: Option<u32>,
    /// e.g. `"10s"`.
    pub fail_timeout: Option<String>,
    /// Connections open to one upstream at most (0: unlimited).
    pub max_conns: Option<u32>,
    /// Requests waiting for a connection at most.
    pub queue: Option<u32>,
    /// e.g. `"5s"`.
    pub queue_timeout: Option<String>,
    /// How long a resolved upstream name is used, e.g. `"30s"`.
    pub resolve_ttl: Option<String>,
}

/// `[domain.health_check]`: the active probe of every upstream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckDoc {
    /// `tcp` | `http`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The path an `http` probe asks for.
    pub path: Option<String>,
    /// Statuses that pass: `200`, `"2xx"` or `"200-399"`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub statuses: Option<Vec<serde_json::Value>>,
    /// e.g. `"2s"`.
    pub interval: Option<String>,
    /// Probes failed in a row that mark an upstream down (default 1).
    pub fails: Option<u32>,
    /// Probes passed in a row that bring it back (default 1); a successful request brings it back at once.
    pub passes: Option<u32>,
}

/// `[domain.tls]`: the certificate SNI picks for the domain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsDoc {
    /// PEM certificate chain (path on the node).
    pub cert: String,
    /// PEM private key (path on the node).
    pub key: String,
}

/// `[domain.upstream_tls]`: HTTPS towards parents and origins.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsDoc {
    pub enabled: Option<bool>,
    /// PEM roots (path on the node); absent: the system's roots.
    pub ca: Option<String>,
    /// SNI and verified name; absent: the domain name.
    pub server_name: Option<String>,
}

/// `[domain.access_control]`: address ranges never limited (`allow`) or always refused (`deny`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessControlDoc {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainDoc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleDoc>,
    pub evaluation_order: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleOrder {
    /// Every rule of the domain, first to run first; priorities 1, 2, ... are assigned in this order.
    pub names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityRecordDoc {
    pub id: i64,
    pub time_ms: i64,
    pub node: String,
    pub domain: String,
    pub rule: String,
    pub object_type: String,
    pub object_value: String,
    pub action: String,
    pub ttl_s: u32,
    /// The values that made the criteria true.
    pub detail: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityPageDoc {
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub records: Vec<ActivityRecordDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineDoc {
    pub domain: String,
    /// Whether the domain runs normal or emergency mode, which learn and use the baseline.
    pub learning: bool,
    #[serde(flatten)]
    pub view: crate::control::BaselineView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectionTableList {
    pub tables: Vec<crate::control::ProtectionTable>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    pub blocks: Vec<crate::control::BlockInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsPointDoc {
    pub point_start_ms: i64,
    pub requests: u64,
    pub max_ip_count: u64,
    pub max_ip_error: u64,
    pub passed: u64,
    pub limited: u64,
    pub blocked: u64,
    pub challenged: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsDoc {
    pub domain: String,
    pub from: i64,
    pub to: i64,
    pub point_ms: i64,
    pub points: Vec<StatsPointDoc>,
}
