//! [`MemoryControl`]: a [`Control`] over a configuration behind a lock and a real activity log, without a data
//! plane. It stands in for the node in the admin crate's own tests and lets anyone try the console without
//! running a proxy. It does not persist the configuration.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use edgeguard_config::Config;
use edgeguard_store::{
    ActivityLog, ActivityPage, ActivityQuery, ActivityRecord, BlockRecord, Recommendation,
    StatsOptions, StatsPoint, StoreError, TrafficStats,
};

use crate::control::{ApplyError, BaselineView, BlockInfo, Control, StartError};

/// A node made of memory: the configuration applies instantly and nothing serves traffic.
pub struct MemoryControl {
    config: RwLock<Config>,
    log: ActivityLog,
    stats: TrafficStats,
    addresses: Vec<IpAddr>,
    /// 0 = the system clock.
    now_ms: AtomicI64,
    applied: AtomicU64,
    /// When set, the next `apply` is refused with this message (tests of the error path).
    refuse_next: Mutex<Option<ApplyError>>,
    /// What [`Control::baseline`] answers, by lower-case domain.
    baselines: Mutex<Vec<(String, BaselineView)>>,
}

impl MemoryControl {
    /// `data_dir` holds the activity log's database (`activity.db`).
    pub fn new(config: Config, data_dir: &Path) -> Result<Self, StoreError> {
        let log = ActivityLog::open(data_dir.join("activity.db"))?;
        Ok(MemoryControl {
            config: RwLock::new(config),
            log,
            stats: TrafficStats::in_memory(StatsOptions::default()),
            addresses: Vec::new(),
            now_ms: AtomicI64::new(0),
            applied: AtomicU64::new(0),
            refuse_next: Mutex::new(None),
            baselines: Mutex::new(Vec::new()),
        })
    }

    /// The addresses reported by [`Control::node_addresses`].
    pub fn with_addresses(mut self, addresses: Vec<IpAddr>) -> Self {
        self.addresses = addresses;
        self
    }

    /// Fixes the clock (Unix milliseconds); 0 returns to the system clock.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The activity log, to insert records and blocks.
    pub fn activity_log(&self) -> &ActivityLog {
        &self.log
    }

    /// The traffic statistics, to feed requests and decisions.
    pub fn stats(&self) -> &TrafficStats {
        &self.stats
    }

    /// How many configurations were applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// What [`Control::baseline`] answers for `domain` from now on (nothing learns here).
    pub fn set_baseline(&self, domain: &str, view: BaselineView) {
        let mut b = self.baselines.lock().unwrap_or_else(|p| p.into_inner());
        let domain = domain.to_ascii_lowercase();
        b.retain(|(d, _)| *d != domain);
        b.push((domain, view));
    }

    /// Makes the next [`Control::apply`] fail with `error`.
    pub fn refuse_next_apply(&self, error: ApplyError) {
        *self.refuse_next.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }
}

impl Control for MemoryControl {
    fn baseline(&self, domain: &str) -> BaselineView {
        let b = self.baselines.lock().unwrap_or_else(|p| p.into_inner());
        b.iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn apply(&self, next: Config) -> Result<(), ApplyError> {
        if let Some(e) = self
            .refuse_next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = next;
        self.applied.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn recommended_qps(&self, domain: &str) -> Result<Recommendation, String> {
        self.stats
            .recommend(domain, self.now_ms())
            .map_err(|e| e.to_string())
    }

    fn activity(&self, query: &ActivityQuery) -> Result<ActivityPage, String> {
        self.log.query(query).map_err(|e| e.to_string())
    }

    fn blocks(&self) -> Vec<BlockInfo> {
        self.log
            .load_blocks(self.now_ms())
            .unwrap_or_default()
            .into_iter()
            .map(BlockInfo::from_record)
            .collect()
    }

    /// Stores the challenge as a block and an activity record, as the node does (nothing serves traffic here).
    fn start_challenge(
        &self,
        domain: &str,
        ttl_s: u64,
        path: Option<&str>,
    ) -> Result<BlockInfo, StartError> {
        let domain = domain.to_ascii_lowercase();
        if !self
            .config()
            .domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(&domain))
        {
            return Err(StartError::NoDomain(format!("no domain named {domain:?}")));
        }
        let now = self.now_ms();
        let object_type = path.map_or_else(|| "domain".to_owned(), |p| format!("prefix:{p}"));
        let block = BlockRecord {
            domain: domain.clone(),
            object_type: object_type.clone(),
            object_value: domain.clone(),
            rule: "admin-api".to_owned(),
            action: "bot_detection".to_owned(),
            until_ms: now
                .saturating_add(i64::try_from(ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX)),
        };
        let failed = |e: StoreError| StartError::Invalid(e.to_string());
        self.log.save_block(&block).map_err(failed)?;
        self.log
            .record(&ActivityRecord {
                time_ms: now,
                node: "memory".to_owned(),
                domain: domain.clone(),
                rule: block.rule.clone(),
                object_type,
                object_value: domain,
                action: block.action.clone(),
                ttl_s: u32::try_from(ttl_s).unwrap_or(u32::MAX),
                detail: "timed challenge started by an operator through the admin API".to_owned(),
            })
            .map_err(failed)?;
        Ok(BlockInfo::from_record(block))
    }

    fn lift_block(&self, id: &str) -> bool {
        self.blocks().into_iter().any(|b| {
            b.id == id
                && self
                    .log
                    .remove_block(&b.domain, &b.object_type, &b.object_value)
                    .unwrap_or(false)
        })
    }

    fn stats_points(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StatsPoint>, String> {
        self.stats
            .points(domain, from_ms, to_ms)
            .map_err(|e| e.to_string())
    }

    fn metrics(&self) -> String {
        let w = self.log.writer_stats();
        format!(
            "# HELP edgeguard_config_applied_total Configurations applied through the admin API.\n\
             # TYPE edgeguard_config_applied_total counter\n\
             edgeguard_config_applied_total {}\n\
             # HELP edgeguard_activity_written_total Activity log records written.\n\
             # TYPE edgeguard_activity_written_total counter\n\
             edgeguard_activity_written_total {}\n",
            self.applied(),
            w.written
        )
    }

    fn node_addresses(&self) -> Vec<IpAddr> {
        self.addresses.clone()
    }

    fn now_ms(&self) -> i64 {
        match self.now_ms.load(Ordering::Relaxed) {
            0 => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            fixed => fixed,
        }
    }
}
