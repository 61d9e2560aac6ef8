//! The admin API's view of the running node ([`edgeguard_admin::Control`]): configuration changes are applied
//! live and written back to the configuration file, so the file, the API and a restart always agree.

mod live;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use edgeguard_admin::{ApplyError, BlockInfo, Control, PurgeTarget, StartError};
use edgeguard_cluster::{Cluster, Listener, PurgeEvent};
use edgeguard_config::Config;
use edgeguard_protect::StartChallengeError;
use edgeguard_proxy::RunningNode;
use edgeguard_store::{ActivityPage, ActivityQuery, Recommendation, StatsPoint};

pub struct NodeControl {
    node: Arc<RunningNode>,
    /// The configuration in force; SIGHUP reloads and API changes both go through it.
    current: Mutex<Config>,
    path: PathBuf,
    /// The node's cluster membership, with `[cluster]`: API changes and purges are published through it.
    cluster: Option<Arc<Cluster>>,
}

impl NodeControl {
    pub fn new(
        node: Arc<RunningNode>,
        config: Config,
        path: &Path,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        Self {
            node,
            current: Mutex::new(config),
            path: path.to_owned(),
            cluster,
        }
    }

    /// A configuration snapshot another node published: applied over this node's own sections, written to
    /// the configuration file and kept in `data_dir`. A snapshot the node refuses leaves the running one.
    pub fn config_from_cluster(&self, version: u64, snapshot: &str) {
        let mut current = self.lock();
        let next = match crate::cluster::merge(&current, snapshot) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(
                    version,
                    "cluster configuration not valid here; keeping the running one: {e}"
                );
                return;
            }
        };
        if let Err(e) = self.node.reload(next.clone()) {
            tracing::error!(version, error = %e, "cluster configuration refused; keeping the running one");
            return;
        }
        *current = next;
        if let Err(e) = persist(&self.path, &current) {
            tracing::warn!(path = %self.path.display(), "cluster configuration applied, not written: {e}");
        }
        let kept = crate::cluster::snapshot_path(&current);
        if let Err(e) = crate::cluster::keep(&kept, version, snapshot) {
            tracing::warn!(path = %kept.display(), "cluster configuration snapshot not kept: {e}");
        }
        tracing::info!(version, "configuration from the cluster applied");
    }

    /// A purge another node ran.
    pub fn purge_from_cluster(&self, p: &PurgeEvent) {
        let what = match p.kind.as_str() {
            "urls" => PurgeTarget::Urls(p.values.clone()),
            "prefix" => PurgeTarget::Prefix(p.values.first().cloned().unwrap_or_default()),
            "tags" => PurgeTarget::Tags(p.values.clone()),
            _ => return,
        };
        match self.purge_here(&p.domain, &what) {
            Ok(n) => tracing::info!(domain = %p.domain, objects = n, "purge from the cluster"),
            Err(e) => tracing::debug!(domain = %p.domain, "purge from the cluster: {e}"),
        }
    }

    fn purge_here(&self, domain: &str, what: &PurgeTarget) -> Result<u64, String> {
        use edgeguard_proxy::Purge;
        let what = match what {
            PurgeTarget::Urls(u) => Purge::Urls(u.clone()),
            PurgeTarget::Prefix(p) => Purge::Prefix(p.clone()),
            PurgeTarget::Tags(t) => Purge::Tags(t.clone()),
        };
        self.node
            .purge(domain, &what)
            .map(|n| n as u64)
            .ok_or_else(|| format!("{domain} keeps no cache on this node"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Config> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// SIGHUP: re-read the file; an invalid file or one the node refuses leaves the running configuration.
    pub fn reload_from_file(&self) {
        let path = self.path.display();
        let config = match edgeguard_config::load(&self.path) {
            Ok(config) => config,
            Err(errors) => {
                for e in &errors {
                    tracing::error!(%path, line = e.line, key = %e.key, "{}", e.message);
                }
                tracing::error!(%path, "invalid configuration; keeping the running one");
                return;
            }
        };
        let mut current = self.lock();
        match self.node.reload(config.clone()) {
            Ok(()) => {
                *current = config;
                tracing::info!(%path, "configuration reloaded");
            }
            Err(e) => {
                tracing::error!(%path, error = %e, "reload refused; keeping the running configuration")
            }
        }
    }
}

impl NodeControl {
    /// SIGUSR1: reopen the access log file, as nginx does, after a rotation moved it away.
    pub fn reopen_logs(&self) {
        self.node.reopen_logs();
        tracing::info!("access log reopened");
    }
}

/// Relays the cluster's events to the node's control (weakly: the control owns the cluster).
pub struct Relay(pub Weak<NodeControl>);

impl Listener for Relay {
    fn purge(&self, purge: &PurgeEvent) {
        if let Some(control) = self.0.upgrade() {
            control.purge_from_cluster(purge);
        }
    }

    fn config(&self, version: u64, snapshot: &str) {
        if let Some(control) = self.0.upgrade() {
            control.config_from_cluster(version, snapshot);
        }
    }
}

impl Control for NodeControl {
    fn config(&self) -> Config {
        self.lock().clone()
    }

    fn apply(&self, next: Config) -> Result<(), ApplyError> {
        let mut current = self.lock();
        self.node
            .reload(next.clone())
            .map_err(|e| ApplyError::Rejected(e.to_string()))?;
        *current = next;
        if let Some(cluster) = &self.cluster {
            cluster.publish_config(crate::cluster::snapshot_of(&current));
        }
        persist(&self.path, &current).map_err(|e| {
            ApplyError::Failed(format!(
                "applied, but writing {} failed: {e}",
                self.path.display()
            ))
        })
    }

    fn recommended_qps(&self, domain: &str) -> Result<Recommendation, String> {
        self.node.recommended_qps(domain).map_err(|e| e.to_string())
    }

    fn activity(&self, query: &ActivityQuery) -> Result<ActivityPage, String> {
        self.node
            .activity_log()
            .query(query)
            .map_err(|e| e.to_string())
    }

    fn blocks(&self) -> Vec<BlockInfo> {
        self.node
            .blocks_in_force()
            .into_iter()
            .map(BlockInfo::from_record)
            .collect()
    }

    fn start_challenge(
        &self,
        domain: &str,
        ttl_s: u64,
        path: Option<&str>,
    ) -> Result<BlockInfo, StartError> {
        self.node
            .start_challenge(domain, std::time::Duration::from_secs(ttl_s), path)
            .map(BlockInfo::from_record)
            .map_err(|e| match e {
                StartChallengeError::UnknownDomain(_) => StartError::NoDomain(e.to_string()),
                StartChallengeError::Blocked { .. } => StartError::Conflict(e.to_string()),
                StartChallengeError::Ttl(_) | StartChallengeError::Path(_) => {
                    StartError::Invalid(e.to_string())
                }
            })
    }

    fn purge(&self, domain: &str, what: &PurgeTarget) -> Result<u64, String> {
        let n = self.purge_here(domain, what)?;
        if let Some(cluster) = &self.cluster {
            let (kind, values) = match what {
                PurgeTarget::Urls(u) => ("urls", u.clone()),
                PurgeTarget::Prefix(p) => ("prefix", vec![p.clone()]),
                PurgeTarget::Tags(t) => ("tags", t.clone()),
            };
            cluster.publish_purge(PurgeEvent {
                domain: domain.to_ascii_lowercase(),
                kind: kind.to_owned(),
                values,
            });
        }
        Ok(n)
    }

    fn lift_block(&self, id: &str) -> bool {
        let Some(found) =
            self.node.blocks_in_force().into_iter().find(|b| {
                edgeguard_admin::block_id(&b.domain, &b.object_type, &b.object_value) == id
            })
        else {
            return false;
        };
        self.node
            .lift_block(&found.domain, &found.object_type, &found.object_value)
    }

    fn stats_points(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StatsPoint>, String> {
        self.node
            .traffic_stats()
            .points(domain, from_ms, to_ms)
            .map_err(|e| e.to_string())
    }

    fn protection_tables(&self, domain: &str) -> Vec<edgeguard_admin::ProtectionTable> {
        let tables = self.node.protection_tables(domain).unwrap_or_default();
        tables
            .into_iter()
            .map(|t| edgeguard_admin::ProtectionTable {
                table: t.table,
                size_bytes: t.size_bytes,
                capacity: t.capacity,
                in_use: t.in_use,
                evictions: t.evictions,
                admission_refusals: t.admission_refusals,
            })
            .collect()
    }

    fn live(&self, domain: &str, step_s: u64) -> Option<edgeguard_admin::LiveView> {
        live::live(&self.node, domain, step_s)
    }

    fn top_talkers(&self, domain: &str, limit: usize) -> Option<edgeguard_admin::TopTalkers> {
        live::top_talkers(&self.node, domain, limit)
    }

    fn start_block(
        &self,
        domain: &str,
        ip: IpAddr,
        challenge: bool,
        ttl_s: u64,
    ) -> Result<BlockInfo, StartError> {
        live::start_block(&self.node, domain, ip, challenge, ttl_s)
    }

    fn baseline(&self, domain: &str) -> edgeguard_admin::BaselineView {
        self.node
            .baseline(domain)
            .map(crate::baseline_view::view)
            .unwrap_or_default()
    }

    fn metrics(&self) -> String {
        let mut text = self.node.metrics_text();
        if let Some(cluster) = &self.cluster {
            text.push_str(&cluster.metrics_text());
        }
        text
    }

    fn health(&self) -> String {
        let mut text = "ok\n".to_owned();
        if let Some(cluster) = &self.cluster {
            text += &format!("{}\n", cluster.health().summary());
        }
        // A full disk under data_dir: requests are served, the activity log is not written.
        if let Some(why) = self.node.activity_log().write_error() {
            text += &format!("activity_log: degraded (cannot write: {why})\n");
        }
        text
    }

    fn node_addresses(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self.node.local_addrs().iter().map(|a| a.ip()).collect();
        ips.sort();
        ips.dedup();
        ips
    }
}

/// Writes the configuration back to its file atomically (a temporary file renamed over it). Only the settings that
/// changed are rewritten, in place, so the operator's comments and order stay; a file that cannot be edited so
/// (it no longer parses, say) is replaced by the canonical form. A token that came from `EDGEGUARD_ADMIN_TOKEN` is
/// not written into the file.
fn persist(path: &Path, config: &Config) -> std::io::Result<()> {
    let mut to_write = config.clone();
    if let Ok(env_token) = std::env::var("EDGEGUARD_ADMIN_TOKEN")
        && to_write.admin.token.as_deref() == Some(env_token.as_str())
    {
        to_write.admin.token = None;
    }
    let edited = std::fs::read_to_string(path)
        .ok()
        .and_then(|original| edgeguard_config::edit_toml(&original, &to_write));
    let text = edited.unwrap_or_else(|| {
        format!(
            "# Written by edgeguard after a change through the admin API; edit freely and send SIGHUP.\n{}",
            edgeguard_config::to_toml(&to_write)
        )
    });
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
