//! What the console's live view reads from the node: per-second counts of a domain's requests by outcome and
//! its top talkers ([`crate::Control::live`], [`crate::Control::top_talkers`]). The node keeps both in fixed
//! memory; these are the shapes the API serves.

use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/v1/domains/{name}/live`: the last ten minutes, `step_s` seconds per point, oldest first; the last
/// point is the one running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LiveView {
    pub domain: String,
    pub step_s: u64,
    /// When the node read its counters (Unix milliseconds).
    pub now_ms: i64,
    pub points: Vec<LivePoint>,
}

/// Requests of one point by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct LivePoint {
    /// Unix milliseconds the point starts at.
    pub start_ms: i64,
    /// Served from the cache.
    pub hit: u64,
    /// Served by an upstream (including uncacheable requests).
    pub miss: u64,
    /// Refused by a limit: limit_req, limit_conn (429/503 as configured), the IP access limit (514).
    pub limited: u64,
    /// 403: a block in force or the deny list.
    pub blocked: u64,
    /// Sent the challenge page.
    pub challenged: u64,
    /// 5xx from a failed or failing upstream.
    pub upstream_error: u64,
    /// Refused by the node itself otherwise (400, 413, ...).
    pub other: u64,
}

/// One heavy hitter of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Talker {
    /// An address (`192.0.2.7`; an IPv6 client as its `/64`), a network (`/24`, `/48`), a path or a user agent
    /// (cut at 48 bytes; `-` for none).
    pub key: String,
    /// Requests in the window, an upper bound (a space-saving estimate).
    pub requests: u64,
    /// By how much `requests` may be over.
    pub error: u64,
    /// Of these, the requests the node refused (limited, blocked, challenged, or refused otherwise).
    pub refused: u64,
}

/// The top talkers of one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TalkerWindow {
    /// `minute` or `hour`.
    pub window: String,
    /// Seconds the window covers now.
    pub seconds: u64,
    /// Requests the window counted.
    pub total: u64,
    pub addresses: Vec<Talker>,
    pub networks: Vec<Talker>,
    pub paths: Vec<Talker>,
    pub user_agents: Vec<Talker>,
}

/// `GET /api/v1/domains/{name}/top-talkers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopTalkers {
    pub domain: String,
    /// The last minute, then the last hour.
    pub windows: Vec<TalkerWindow>,
}
