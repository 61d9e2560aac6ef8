//! The node's side of cluster mode that needs the whole node: configuration snapshots published after each
//! change through the admin API and applied when another node published one (its own `[node]`, `[admin]`
//! and `[cluster]` kept), and the last snapshot applied kept in `data_dir` with its version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgeguard_config::Config;

/// The last configuration snapshot applied, in `data_dir`: its first line is `# version N`.
pub const SNAPSHOT_FILE: &str = "cluster-config.toml";

pub fn snapshot_path(config: &Config) -> PathBuf {
    config.node.data_dir.join(SNAPSHOT_FILE)
}

/// The version of the snapshot kept in `data_dir`, 0 when there is none.
pub fn kept_version(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .next()?
                .strip_prefix("# version ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Keeps `snapshot` as the last good one.
pub fn keep(path: &Path, version: u64, snapshot: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, format!("# version {version}\n{snapshot}"))?;
    std::fs::rename(&tmp, path)
}

/// What a snapshot carries: everything but the node's own sections.
pub fn snapshot_of(config: &Config) -> String {
    edgeguard_config::to_toml(config)
}

/// `snapshot` applied over `local`: the snapshot's zones and domains, the node's own `[node]`, `[admin]` and
/// `[cluster]`.
pub fn merge(local: &Config, snapshot: &str) -> Result<Config, String> {
    let theirs = edgeguard_config::parse(snapshot).map_err(|e| e.to_string())?;
    Ok(Config {
        node: local.node.clone(),
        admin: local.admin.clone(),
        cluster: local.cluster.clone(),
        ..theirs
    })
}

/// Starts the node's cluster membership when `[cluster]` is set, and rebuilds the guards so that
/// cluster-scoped limits count through it.
pub fn join(
    node: &edgeguard_proxy::RunningNode,
    config: &Config,
) -> anyhow::Result<Option<Arc<edgeguard_cluster::Cluster>>> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let settings = edgeguard_cluster::Settings::new(&config.node.name, c);
    let cluster = edgeguard_cluster::Cluster::start(settings, node.protection().clone());
    cluster.set_config_version(kept_version(&snapshot_path(config)));
    node.reload(config.clone())
        .map_err(|e| anyhow::anyhow!("cannot join the cluster: {e}"))?;
    tracing::info!(
        redis = ?c.redis_urls,
        sync_interval_ms = c.sync_interval.as_millis() as u64,
        on_redis_failure = c.on_redis_failure.as_str(),
        "cluster mode: shared limits, blocks, purges and configuration through Redis"
    );
    Ok(Some(Arc::new(cluster)))
}
