//! Fixtures of the cluster tests: a real redis-server of the test's own (port chosen at run time, no
//! persistence, killed at the end), and edgeguard nodes on loopback that join it. Clients are told apart by
//! `X-Forwarded-For` from the trusted 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeguard_cluster::{Cluster, Settings};
use edgeguard_proxy::{Node, RunningNode};
use edgeguard_testkit::{Origin, Reply, Route};

pub use edgeguard_testkit::redis::Redis;

/// An origin answering 200 everywhere.
pub async fn origin() -> Origin {
    Origin::builder().fallback(Route::text("ok")).start().await
}

/// The configuration of node `name`: domain `p.test` on `origin`, `[cluster]` on `redis_url` with
/// `sync_ms`, then `domain_extra`.
pub fn config(
    name: &str,
    dir: &Path,
    origin: SocketAddr,
    redis_url: &str,
    sync_ms: u64,
    domain_extra: &str,
) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"{name}\"\nlisten = [\"127.0.0.1:0\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         data_dir = \"{}\"\n[cluster]\nredis_url = \"{redis_url}\"\nsync_interval_ms = {sync_ms}\n\
         [[domain]]\nname = \"p.test\"\norigins = [\"{origin}\"]\n{domain_extra}",
        dir.display()
    );
    edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A node that joined the cluster.
pub struct Member {
    pub node: RunningNode,
    pub cluster: Cluster,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

/// Starts a node on `cfg` and joins it to its `[cluster]`; waits until Redis answered when `wait_up`.
pub async fn join(cfg: edgeguard_config::Config, wait_up: bool) -> Member {
    let node = Node::start(cfg.clone()).await.unwrap();
    let settings = Settings::new(&cfg.node.name, cfg.cluster.as_ref().unwrap());
    let cluster = Cluster::start(settings, node.protection().clone());
    node.reload(cfg.clone()).unwrap();
    if wait_up {
        for _ in 0..300 {
            if cluster.health().is_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cluster.health().is_up(), "{}", cluster.health().summary());
    }
    Member {
        addr: node.local_addrs()[0],
        node,
        cluster,
        dir: cfg.node.data_dir.clone(),
    }
}

/// A GET of `path` on `p.test` from client `ip`.
pub async fn get_from(addr: SocketAddr, ip: &str, path: &str) -> Reply {
    edgeguard_testkit::get(addr, "p.test", path, &[("x-forwarded-for", ip)]).await
}

pub const RULES: &str = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n";

/// A rule of 100 requests per 10 s per client IP, blocking for 60 s past that.
pub const RULE_100: &str = "[[domain.rate_limiting.rules]]\nname = \"flood100\"\nuri = \"/\"\n\
                            match = \"prefix\"\nobject = \"ip\"\ninterval = 10\n\
                            criteria = '\"count\">100'\naction = \"block\"\nttl = 60\n";
