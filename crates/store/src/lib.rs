//! The node's durable memory and traffic arithmetic: the activity log of rule triggers (SPEC section 4), the blocks
//! and challenges in force across restarts, per-domain five-minute traffic statistics counted in fixed memory, the
//! recommended IP access limit (SPEC section 3), and the access-log reader behind `edgeguard recommend` and
//! `replay`. Everything lives in one SQLite file in the node's `data_dir`; the request path only ever touches
//! in-memory counters and a bounded queue. This crate makes no decisions about requests, holds no configuration and
//! knows nothing of HTTP: the proxy calls it, the admin API reads it.

mod activity;
mod db;
mod error;
mod from_log;
mod heavy;
mod log;
mod recommend;
mod stats;
mod time;

pub use activity::{
    ActivityEntry, ActivityLog, ActivityLogOptions, ActivityPage, ActivityQuery, ActivityRecord,
    ActivityWriter, BlockRecord, MAX_PAGE_SIZE, WriterStats,
};
pub use error::StoreError;
pub use from_log::{recommend_from_log, recommend_from_log_per_host};
pub use heavy::{DecisionKind, MaxCount, PointCounter, SpaceSaving, StatsPoint};
pub use log::{LogFormat, LogLine, LogReader, LogStats, MAX_LINE_BYTES};
pub use recommend::{
    MIN_QPS, POINT_MS, POINT_SECONDS, POINTS_PER_DAY, Recommendation, TOP_POINTS, WINDOW_MS,
    point_start, recommend,
};
pub use stats::{StatsOptions, TrafficStats};
