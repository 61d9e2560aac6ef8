//! The node's protection services, shared by every configuration it runs: the store (activity log, blocks,
//! statistics), the challenger, the blocks of every domain, the recommended IP access limits; and [`Guards`],
//! the per-domain engines one configuration builds from them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use edgeguard_challenge::Challenger;
use edgeguard_config::Config;
use edgeguard_limit::Clock;
use edgeguard_rules::{Action, Object};
use edgeguard_store::{
    ActivityLog, ActivityRecord, BlockRecord, MIN_QPS, Recommendation, StatsOptions, StoreError,
    TrafficStats,
};

use crate::blocks::{self, DomainBlocks, InForce, PREFIX_TYPE};
use crate::budget::{BlocksBudget, BlocksStats};
use crate::engine::{DomainGuard, GuardError, RULE_OPERATOR, Sink};
use crate::outcomes::VerifyCounts;
use crate::shared::ClusterHooks;
use crate::summary::Summaries;
use crate::{Baseline, Baselines, CrawlerRanges};

mod operator;
pub use operator::StartBlockError;

/// The node's database file in `data_dir`.
pub const DB_FILE: &str = "edgeguard.db";
/// How often statistics are flushed and expired blocks swept.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// How often the recommended IP access limit of domains without a `qps` is recomputed.
pub const RECOMMEND_EVERY: Duration = Duration::from_secs(300);
/// How often activity records older than [`ACTIVITY_RETENTION_MS`] are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Age past which activity records are pruned.
pub const ACTIVITY_RETENTION_MS: i64 = 30 * 86_400_000;
/// The activity log's action of a block or challenge lifted before its TTL.
pub const ACTION_LIFT: &str = "lift";

/// The node's protection services, shared by every configuration it runs.
pub struct NodeProtection {
    node: String,
    clock: Arc<dyn Clock>,
    /// Unix milliseconds minus the clock's reading at start: the node's notion of wall time follows its clock,
    /// so a fake clock moves block expiry and challenge ages too.
    offset_ms: i64,
    log: ActivityLog,
    stats: TrafficStats,
    challenger: Challenger,
    blocks: Mutex<HashMap<String, Arc<DomainBlocks>>>,
    /// `[node] blocks_size`, shared by every domain's blocks.
    budget: Arc<BlocksBudget>,
    verify: VerifyCounts,
    recommended: Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// Refusal tallies of the node (rule triggers here, the data plane's limits beside them).
    summaries: Arc<Summaries>,
    /// `[node] ipv6_prefix` of the configuration in force, to name an IPv6 client the way its block is keyed.
    ipv6_prefix: AtomicU8,
    /// What normal and emergency mode learned of each domain's traffic.
    baselines: Baselines,
    /// The cluster backend, once the node joined one ([`NodeProtection::set_cluster`]).
    cluster: Mutex<Option<Arc<dyn ClusterHooks>>>,
}

impl std::fmt::Debug for NodeProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProtection")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why the node's protection services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("node.data_dir {dir}: {source}")]
    Store {
        dir: String,
        #[source]
        source: StoreError,
    },
    #[error("node.data_dir {dir}: challenge key: {source}")]
    Key {
        dir: String,
        #[source]
        source: edgeguard_challenge::KeyError,
    },
}

impl NodeProtection {
    /// Opens `data_dir/edgeguard.db` (activity log, blocks, statistics) and the challenge key, and puts the
    /// blocks stored there that are still unexpired back in force.
    pub fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<NodeProtection, ProtectError> {
        let dir = &config.node.data_dir;
        let dir_text = || dir.display().to_string();
        let log = ActivityLog::open(dir.join(DB_FILE)).map_err(|source| ProtectError::Store {
            dir: dir_text(),
            source,
        })?;
        let challenger = Challenger::load_or_create(dir).map_err(|source| ProtectError::Key {
            dir: dir_text(),
            source,
        })?;
        let stats = TrafficStats::new(StatsOptions::default(), &log);
        let offset_ms = unix_now_ms() - i64::try_from(clock.now_ms()).unwrap_or(0);
        let p = NodeProtection {
            node: config.node.name.clone(),
            clock,
            offset_ms,
            log,
            stats,
            challenger,
            blocks: Mutex::new(HashMap::new()),
            budget: BlocksBudget::new(config.node.blocks_size),
            verify: VerifyCounts::default(),
            recommended: Mutex::new(HashMap::new()),
            summaries: Arc::default(),
            ipv6_prefix: AtomicU8::new(config.node.ipv6_prefix),
            baselines: Baselines::new(dir),
            cluster: Mutex::new(None),
        };
        let now = p.now_ms();
        match p.log.load_blocks(i64::try_from(now).unwrap_or(i64::MAX)) {
            Ok(stored) => {
                let n = stored.len();
                for b in stored {
                    p.restore(&b, now);
                }
                if n > 0 {
                    tracing::info!(blocks = n, "blocks and challenges in force restored");
                }
            }
            Err(e) => tracing::error!("cannot load blocks in force: {e}"),
        }
        Ok(p)
    }

    fn restore(&self, b: &BlockRecord, now: u64) {
        let prefix = b.object_type.strip_prefix(PREFIX_TYPE);
        let object = Object::parse(&b.object_type);
        let action = Action::parse(&b.action);
        let entry = |action| InForce {
            rule: Arc::from(b.rule.as_str()),
            action,
            until_ms: u64::try_from(b.until_ms).unwrap_or(0),
        };
        match (prefix, object, action) {
            (Some(prefix), _, Some(Action::BotDetection))
                if edgeguard_config::challenge_path(prefix).is_ok() =>
            {
                self.domain_blocks(&b.domain)
                    .set_prefix(prefix, entry(Action::BotDetection));
            }
            (None, Ok(object), Some(action)) => {
                self.domain_blocks(&b.domain).insert(
                    &object,
                    b.object_value.as_bytes(),
                    entry(action),
                    now,
                );
            }
            _ => tracing::warn!(?b, "stored block not understood; ignored"),
        }
    }

    /// Makes the node a member of a cluster: guards built from now on count `scope = "cluster"` limits through
    /// `hooks`, and blocks put in force or lifted here are told to it. Rebuild the guards (a reload) to apply.
    pub fn set_cluster(&self, hooks: Arc<dyn ClusterHooks>) {
        *lock(&self.cluster) = Some(hooks);
    }

    /// The cluster backend the node joined, if any (the data plane's `limit_req` zones of cluster scope count
    /// through it).
    pub fn cluster(&self) -> Option<Arc<dyn ClusterHooks>> {
        lock(&self.cluster).clone()
    }

    /// Puts in force a block or challenge another node of the cluster decided (and stores it, so it outlives a
    /// restart). Not told back to the cluster.
    pub fn apply_shared_block(&self, b: &BlockRecord) {
        self.restore(b, self.now_ms());
        self.log.writer().submit_block(b.clone());
    }

    /// Lifts a block or challenge that was lifted on another node of the cluster. Not told back to the cluster.
    pub fn lift_shared(&self, domain: &str, object_type: &str, object_value: &str) -> bool {
        self.lift_inner(domain, object_type, object_value, "cluster", false)
    }

    /// Unix milliseconds as the node's clock tells them.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX) + self.offset_ms)
            .unwrap_or(0)
    }

    /// The node's refusal tallies: counted always, written as summary lines by the data plane's background task.
    pub fn summaries(&self) -> &Arc<Summaries> {
        &self.summaries
    }

    pub fn node_name(&self) -> &str {
        &self.node
    }

    pub fn activity_log(&self) -> &ActivityLog {
        &self.log
    }

    pub fn traffic_stats(&self) -> &TrafficStats {
        &self.stats
    }

    pub fn challenger(&self) -> &Challenger {
        &self.challenger
    }

    /// The blocks budget: bytes and entries held, evictions (for `/metrics`).
    pub fn blocks_stats(&self) -> BlocksStats {
        self.budget.stats()
    }

    /// What the challenge verify endpoint answered, counted (for `/metrics`; never one log line each).
    pub fn verify_counts(&self) -> &VerifyCounts {
        &self.verify
    }

    /// What normal and emergency mode learned of `domain`'s traffic, if it has been served in one of them.
    pub fn baseline(&self, domain: &str) -> Option<Arc<Baseline>> {
        self.baselines.peek(domain)
    }

    fn domain_blocks(&self, domain: &str) -> Arc<DomainBlocks> {
        lock(&self.blocks)
            .entry(domain.to_ascii_lowercase())
            .or_insert_with(|| {
                DomainBlocks::shared(DomainBlocks::with_budget(
                    &domain.to_ascii_lowercase(),
                    self.budget.clone(),
                ))
            })
            .clone()
    }

    fn recommended_cell(&self, domain: &str) -> Arc<AtomicU32> {
        lock(&self.recommended)
            .entry(domain.to_owned())
            .or_insert_with(|| Arc::new(AtomicU32::new(MIN_QPS)))
            .clone()
    }

    /// The recommended IP access limit of `domain` from the node's statistics (SPEC section 3). Disk I/O.
    pub fn recommend(&self, domain: &str) -> Result<Recommendation, StoreError> {
        let now = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        self.stats.recommend(domain, now)
    }

    /// Builds the guards of every domain of `config`, taking over counters from `previous`. Computes the
    /// recommended limit of domains that need one and have none yet (disk I/O: start and reload only).
    pub fn guards(
        self: &Arc<Self>,
        config: &Config,
        previous: Option<&Guards>,
    ) -> Result<Guards, GuardError> {
        let mut map = HashMap::with_capacity_and_hasher(config.domains.len(), Default::default());
        let crawlers = Arc::new(CrawlerRanges::new(&config.node.good_crawler_nets));
        for d in &config.domains {
            let name = d.name.to_ascii_lowercase();
            let before = previous.and_then(|p| p.map.get(&name)).map(|g| &**g);
            let recommended = if d.ip_access_limit.enabled && d.ip_access_limit.qps.is_none() {
                let cell = self.recommended_cell(&name);
                // Computed when the recommendation starts to apply; the background task refreshes it after that.
                if !before.is_some_and(DomainGuard::uses_recommendation) {
                    self.refresh_recommendation(&name, &cell);
                }
                cell
            } else {
                // Not read while the domain has a `qps` or no limit; not refreshed in the background either.
                Arc::new(AtomicU32::new(MIN_QPS))
            };
            // Pre-registered so `/metrics` shows each configured rule before it first triggers.
            for rule in &d.rate_limiting.rules {
                self.summaries.rule(&name, &rule.name);
            }
            let guard = DomainGuard::build(
                d,
                before,
                self.domain_blocks(&name),
                recommended,
                Sink {
                    node: self.node.clone(),
                    writer: Some(self.log.writer()),
                    summaries: self.summaries.clone(),
                    cluster: self.cluster(),
                },
            )?
            .with_challenger(&self.challenger)
            .with_ipv6_prefix(config.node.ipv6_prefix);
            let guard = match guard.detector() {
                Some(_) => {
                    guard.with_learning(self.baselines.get(&name, self.now_ms()), crawlers.clone())
                }
                None => guard,
            };
            map.insert(name, Arc::new(guard));
        }
        self.ipv6_prefix
            .store(config.node.ipv6_prefix, Ordering::Relaxed);
        Ok(Guards {
            map,
            node: Some(self.clone()),
        })
    }

    fn refresh_recommendation(&self, domain: &str, cell: &AtomicU32) {
        match self.recommend(domain) {
            Ok(r) => cell.store(r.qps.max(MIN_QPS), Ordering::Relaxed),
            Err(e) => tracing::warn!(
                domain,
                "cannot compute the recommended IP access limit: {e}"
            ),
        }
    }

    /// Blocks and challenges in force now, every domain.
    pub fn blocks_in_force(&self) -> Vec<BlockRecord> {
        let now = self.now_ms();
        let all: Vec<Arc<DomainBlocks>> = lock(&self.blocks).values().cloned().collect();
        let mut out: Vec<BlockRecord> = all.iter().flat_map(|b| b.list(now)).collect();
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        out
    }

    /// Lifts a block or challenge early on the operator's word (the admin API), as [`NodeProtection::lift_by`]
    /// with `admin-api`. Returns whether one was in force.
    pub fn lift(&self, domain: &str, object_type: &str, object_value: &str) -> bool {
        self.lift_by(domain, object_type, object_value, RULE_OPERATOR)
    }

    /// Lifts a block or challenge early, in memory and in the store, and writes a `lift` activity record naming
    /// the block's rule and `lifter` (who asked) in its detail. Returns whether one was in force.
    pub fn lift_by(
        &self,
        domain: &str,
        object_type: &str,
        object_value: &str,
        lifter: &str,
    ) -> bool {
        self.lift_inner(domain, object_type, object_value, lifter, true)
    }

    fn lift_inner(
        &self,
        domain: &str,
        object_type: &str,
        object_value: &str,
        lifter: &str,
        tell_cluster: bool,
    ) -> bool {
        let Some(blocks) = lock(&self.blocks)
            .get(&domain.to_ascii_lowercase())
            .cloned()
        else {
            return false;
        };
        let object = Object::parse(object_type);
        // The value as the block is keyed (an IPv6 address names its prefix), for the store and the record too.
        let key = match &object {
            Ok(o) => self.object_key(o, object_value),
            Err(_) => object_value.to_owned(),
        };
        let object_value = key.as_str();
        let found = match object_type.strip_prefix(PREFIX_TYPE) {
            Some(prefix) => blocks.remove_prefix(prefix),
            None => match object {
                Ok(object) => blocks.remove(&object, key.as_bytes()),
                Err(_) => None,
            },
        };
        let Some(entry) = found else {
            return false;
        };
        if tell_cluster && let Some(c) = self.cluster() {
            c.block_lifted(blocks.domain(), object_type, object_value);
        }
        let writer = self.log.writer();
        writer.submit_unblock(blocks.domain(), object_type, object_value);
        writer.submit(ActivityRecord {
            time_ms: i64::try_from(self.now_ms()).unwrap_or(i64::MAX),
            node: self.node.clone(),
            domain: blocks.domain().to_owned(),
            rule: entry.rule.to_string(),
            object_type: object_type.to_owned(),
            object_value: object_value.to_owned(),
            action: ACTION_LIFT.to_owned(),
            ttl_s: 0,
            detail: format!("by={lifter} was={}", entry.action.as_str()),
        });
        tracing::info!(domain, object_type, object_value, lifter, "block lifted");
        true
    }

    /// The key an `ip` block of `value` is held under: an address, or an address with a prefix length
    /// (`2001:db8:7:7::/64`, `2001:db8:7:7::1/64`), names its client as the node counts it, so an operator can
    /// lift the block of an IPv6 client by any of its addresses; other values are taken as written.
    fn object_key(&self, object: &Object, value: &str) -> String {
        if *object != Object::Ip {
            return value.to_owned();
        }
        let (addr, bits) = match value.split_once('/') {
            Some((a, b)) => (a, b.parse::<u8>().ok()),
            None => (value, Some(self.ipv6_prefix.load(Ordering::Relaxed))),
        };
        match (addr.parse::<std::net::IpAddr>(), bits) {
            (Ok(ip), Some(bits)) => {
                let mut key = Vec::new();
                edgeguard_rules::ip_key_into(ip, bits, &mut key);
                String::from_utf8(key).unwrap_or_else(|_| value.to_owned())
            }
            _ => value.to_owned(),
        }
    }

    /// Starts a challenge of the whole `domain` (`prefix` absent) or of one path prefix for `ttl` from now, as
    /// an operator's action: in force at once, listed and liftable with the blocks, stored so it outlives a
    /// restart, and written to the activity log. A new start replaces the TTL of the same challenge. The caller
    /// checks that the node serves `domain`.
    pub fn start_challenge(
        &self,
        domain: &str,
        ttl: Duration,
        prefix: Option<&str>,
    ) -> Result<BlockRecord, StartChallengeError> {
        if ttl < MIN_TIMED_CHALLENGE || ttl > MAX_TIMED_CHALLENGE {
            return Err(StartChallengeError::Ttl(ttl.as_secs()));
        }
        if let Some(p) = prefix {
            edgeguard_config::challenge_path(p).map_err(StartChallengeError::Path)?;
        }
        let domain = domain.to_ascii_lowercase();
        let now = self.now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = InForce {
            rule: Arc::from(RULE_OPERATOR),
            action: Action::BotDetection,
            until_ms: now.saturating_add(ttl_ms),
        };
        let blocks = self.domain_blocks(&domain);
        let record = match prefix {
            Some(p) => {
                blocks.set_prefix(p, entry.clone());
                blocks::prefix_record(&domain, p, &entry)
            }
            None => {
                blocks
                    .replace(&Object::Domain, domain.as_bytes(), entry.clone(), now)
                    .map_err(|b| StartChallengeError::Blocked {
                        rule: b.rule.to_string(),
                        until_ms: b.until_ms,
                    })?;
                blocks::record(&domain, &Object::Domain, domain.as_bytes(), &entry)
            }
        };
        let writer = self.log.writer();
        writer.submit(ActivityRecord {
            time_ms: i64::try_from(now).unwrap_or(i64::MAX),
            node: self.node.clone(),
            domain: domain.clone(),
            rule: RULE_OPERATOR.to_owned(),
            object_type: record.object_type.clone(),
            object_value: record.object_value.clone(),
            action: Action::BotDetection.as_str().to_owned(),
            ttl_s: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            detail: "timed challenge started by an operator through the admin API".to_owned(),
        });
        writer.submit_block(record.clone());
        if let Some(c) = self.cluster() {
            c.block_set(&record);
        }
        tracing::warn!(
            domain,
            object_type = %record.object_type,
            ttl_s = ttl.as_secs(),
            "timed challenge started by an operator"
        );
        Ok(record)
    }

    /// One background round, to be run every [`FLUSH_EVERY`] with `round` counting up from 0: flush
    /// statistics, sweep expired blocks; every `RECOMMEND_EVERY` recompute the recommendations, every
    /// `PRUNE_EVERY` prune old activity. Blocking I/O: the caller runs it off its async workers (the proxy
    /// spawns it on a blocking thread), which is why this crate has no timer of its own.
    pub fn tick(&self, round: u64) {
        let now = self.now_ms();
        let now_i = i64::try_from(now).unwrap_or(i64::MAX);
        if let Err(e) = self.stats.flush(now_i) {
            tracing::warn!("statistics flush failed: {e}");
        }
        let all: Vec<Arc<DomainBlocks>> = lock(&self.blocks).values().cloned().collect();
        for b in all {
            b.sweep(now);
        }
        let per = |every: Duration| (every.as_secs() / FLUSH_EVERY.as_secs()).max(1);
        if round > 0 && round.checked_rem(per(RECOMMEND_EVERY)) == Some(0) {
            let cells: Vec<(String, Arc<AtomicU32>)> = lock(&self.recommended)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (domain, cell) in cells {
                self.refresh_recommendation(&domain, &cell);
            }
            if let Err(e) = self.baselines.save() {
                tracing::warn!("learned baselines not saved: {e}");
            }
        }
        if round.checked_rem(per(PRUNE_EVERY)) == Some(0)
            && let Err(e) = self.log.prune(now_i - ACTIVITY_RETENTION_MS)
        {
            tracing::warn!("activity log prune failed: {e}");
        }
    }

    /// At shutdown: persist the unfinished statistics points and wait for queued activity to be written.
    /// Blocking I/O.
    pub fn close(&self) {
        let now = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        if let Err(e) = self.stats.close(now) {
            tracing::warn!("statistics not saved at shutdown: {e}");
        }
        if let Err(e) = self.log.sync() {
            tracing::warn!("activity log not synced at shutdown: {e}");
        }
        if let Err(e) = self.baselines.save() {
            tracing::warn!("learned baselines not saved at shutdown: {e}");
        }
    }
}

/// Shortest timed challenge an operator can start.
pub const MIN_TIMED_CHALLENGE: Duration = Duration::from_secs(1);
/// Longest timed challenge an operator can start (a permanent one is `[domain.challenge] enabled = true`).
pub const MAX_TIMED_CHALLENGE: Duration = Duration::from_secs(30 * 86_400);

/// Why a timed challenge was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartChallengeError {
    #[error("no domain named {0:?} is served by this node")]
    UnknownDomain(String),
    #[error("ttl must be 1..=2592000 seconds (30 days); found {0}")]
    Ttl(u64),
    #[error("path: {0}")]
    Path(String),
    #[error(
        "the domain is blocked by rule {rule:?} until {until_ms} (Unix ms); a challenge would be weaker"
    )]
    Blocked { rule: String, until_ms: u64 },
}

/// The guards of one configuration, by lower-case domain name.
#[derive(Default)]
pub struct Guards {
    /// Keys come from the configuration only, so the fast hasher is safe here.
    map: HashMap<String, Arc<DomainGuard>, foldhash::fast::RandomState>,
    node: Option<Arc<NodeProtection>>,
}

impl Guards {
    #[inline]
    pub fn get(&self, domain: &str) -> Option<&Arc<DomainGuard>> {
        self.map.get(domain)
    }

    pub fn node(&self) -> Option<&Arc<NodeProtection>> {
        self.node.as_ref()
    }

    /// Every domain's guard, by lower-case name, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<DomainGuard>)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }
}
