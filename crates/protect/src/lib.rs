//! The protection engine of an edgeguard node (SPEC sections 3-4): blocks and challenges in force, the IP access
//! limit (514), the rate-limiting rules with their windows and triggers, and the feed of the activity log and
//! traffic statistics.
//!
//! The engine knows no HTTP and runs no tasks: a request comes in as a small view
//! ([`edgeguard_rules::RequestView`]) plus its normalised path and Unix milliseconds of the node's clock, and each
//! phase returns a verdict. The data plane (`edgeguard-proxy`) turns verdicts into responses and runs
//! [`NodeProtection::tick`] in the background; `edgeguard replay` drives the same engine over an access log
//! ([`replay`]). Unit tests drive it on a fake clock.
//!
//! The node's services ([`NodeProtection`]: the store, the statistics, the challenger, the blocks of every
//! domain) outlive reloads; the per-domain guards ([`Guards`], [`DomainGuard`]) are rebuilt by each reload,
//! taking over counters that keep their meaning. Enforcement semantics are in `docs/protection.md`.
//!
//! Normal and emergency mode add a detector on top of their preset rule ([`anomaly`]): it learns each domain's
//! traffic in fixed memory ([`baseline`], [`shares`], [`novelty`] for query strings and clients not seen before)
//! and acts on clients and paths far from it; [`evaluate`] measures it against generated attacks ([`episodes`]).
//!
//! Not here: answering requests (403/514 pages, the challenge page and its verify endpoint are the proxy's),
//! nginx `limit_req`/`limit_conn` (`edgeguard-limit`, applied by the proxy), timers and threads.

mod access;
pub mod anomaly;
pub mod baseline;
mod blocks;
mod budget;
#[cfg(test)]
mod budget_tests;
mod crawlers;
mod engine;
pub mod episodes;
pub mod evaluate;
#[cfg(test)]
mod evaluate_tests;
mod findings;
mod learned;
mod node;
pub mod novelty;
mod outcomes;
pub mod path;
pub mod replay;
mod settings;
pub mod shared;
pub mod shares;
mod sink;
pub mod summary;
#[cfg(test)]
mod tests;
mod thresholds;
mod time;
mod toppaths;
mod view;

pub use access::{Access, AccessLists};
pub use anomaly::{Detector, DetectorReport, Finding, Limits, Seen};
pub use baseline::{Baseline, Measure, MeasureSummary};
pub use blocks::{DomainBlocks, InForce, Inserted, PREFIX_TYPE};
pub use budget::{BlocksBudget, BlocksStats, ENTRY_OVERHEAD};
pub use crawlers::CrawlerRanges;
pub use engine::{
    Counted, DomainGuard, GuardError, IP_LIMIT_TABLE, RULE_ACCESS_DENY, RULE_CHALLENGE_ENABLED,
    RULE_CHALLENGE_PATHS, RULE_OPERATOR, Sink, TableStats, rule_set, rule_table_bytes,
};
pub use learned::{BASELINE_DIR, Baselines};
pub use node::{
    ACTION_LIFT, ACTIVITY_RETENTION_MS, DB_FILE, FLUSH_EVERY, Guards, MAX_TIMED_CHALLENGE,
    MIN_TIMED_CHALLENGE, NodeProtection, PRUNE_EVERY, ProtectError, RECOMMEND_EVERY,
    StartBlockError, StartChallengeError,
};
pub use outcomes::{VERIFY_OUTCOMES, VerifyCounts};
pub use settings::ChallengeSettings;
pub use shared::{ClusterHooks, Others, SharedCounter};
pub use shares::SharesSummary;
pub use time::rfc3339;
pub use toppaths::PathRate;
