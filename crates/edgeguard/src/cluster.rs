//! The node's side of cluster mode that needs the whole node: configuration snapshots published after each
//! change through the admin API and applied when another node published one (its own `[node]`, `[admin]`
//! and `[cluster]` kept), and the last snapshot applied kept in `data_dir` with its version; tiered counting
//! wired between the cluster crate and the data plane (an edge's parent link, a parent's aggregator).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgeguard_config::{ClusterVia, Config, Tier};
use edgeguard_protect::NodeProtection;

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

/// An edge's way to its parents for tiered counting: the data plane's parent pools.
struct Parents(edgeguard_proxy::ParentClient);

impl edgeguard_cluster::ParentLink for Parents {
    fn serves(&self, domain: &str) -> bool {
        self.0.has_parents(domain)
    }

    fn post(
        &self,
        domain: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> edgeguard_cluster::PostFuture {
        let client = self.0.clone();
        let domain = domain.to_owned();
        Box::pin(async move { client.post_counts(&domain, body, timeout).await })
    }
}

/// A parent's aggregation of its edges' counts, on the node's clock.
struct EdgeCounts {
    aggregator: edgeguard_cluster::Aggregator,
    protection: Arc<NodeProtection>,
}

impl edgeguard_proxy::EdgeCounts for EdgeCounts {
    fn exchange(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        self.aggregator
            .exchange(body, self.protection.now_ms())
            .map_err(|e| e.to_string())
    }

    fn keys(&self) -> usize {
        self.aggregator.keys()
    }
}

/// A parent answers its edges' counts (tiered counting) from its trusted proxies.
pub fn aggregate_for_edges(node: &edgeguard_proxy::RunningNode, config: &Config) {
    if config.node.tier != Tier::Parent {
        return;
    }
    node.set_edge_counts(Arc::new(EdgeCounts {
        aggregator: edgeguard_cluster::Aggregator::new(),
        protection: node.protection().clone(),
    }));
    tracing::info!(
        path = edgeguard_proxy::COUNTS_PATH,
        trusted_proxies = config.node.trusted_proxies.len(),
        "parent: aggregates the counts its edges post (from node.trusted_proxies only)"
    );
}

/// Starts the node's cluster membership when `[cluster]` is set, and rebuilds the guards so that
/// cluster-scoped limits count through it.
pub fn join(
    node: &edgeguard_proxy::RunningNode,
    config: &Config,
) -> anyhow::Result<Option<Arc<edgeguard_cluster::Cluster>>> {
    aggregate_for_edges(node, config);
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let settings = edgeguard_cluster::Settings::new(&config.node.name, c);
    let protection = node.protection().clone();
    let cluster = match c.via {
        ClusterVia::Redis => edgeguard_cluster::Cluster::start(settings, protection),
        ClusterVia::Parents => {
            let link = Arc::new(Parents(node.parent_client()));
            edgeguard_cluster::Cluster::start_tiered(settings, protection, link)
        }
    };
    cluster.set_config_version(kept_version(&snapshot_path(config)));
    node.reload(config.clone())
        .map_err(|e| anyhow::anyhow!("cannot join the cluster: {e}"))?;
    match c.via {
        ClusterVia::Redis => tracing::info!(
            redis = ?c.redis_urls,
            sync_interval_ms = c.sync_interval.as_millis() as u64,
            on_redis_failure = c.on_redis_failure.as_str(),
            "cluster mode: shared limits, blocks, purges and configuration through Redis"
        ),
        ClusterVia::Parents => tracing::info!(
            sync_interval_ms = c.sync_interval.as_millis() as u64,
            on_redis_failure = c.on_redis_failure.as_str(),
            "cluster mode: cluster-scoped limits count through each domain's parents (tiered counting)"
        ),
    }
    Ok(Some(Arc::new(cluster)))
}
