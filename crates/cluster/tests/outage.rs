//! Redis killed in the middle of a run: every request is still answered (no 5xx from edgeguard), each node
//! holds the limit on its own counts, `/metrics` and the health summary say so; after Redis comes back (empty)
//! the nodes send their counts again and the cluster-wide totals are exact: nothing counted twice.

use std::process::Command;
use std::time::Duration;

mod common;

use common::{Member, RULE_100, RULES, Redis, config, get_from, join, origin};

const SYNC_MS: u64 = 100;

/// The sum over nodes of the rule's counts of `ip` in Redis (the key's hash: the current and previous 10 s
/// windows, one field per window and node).
fn redis_total(redis: &Redis, ip: &str) -> u64 {
    // A rule's `ip` key is the address as text.
    let hex: String = ip.bytes().map(|b| format!("{b:02x}")).collect();
    let pattern = format!("eg:{{p.test/flood100/10000/{hex}}}");
    let port = redis.port.to_string();
    let keys = Command::new("redis-cli")
        .args(["-p", &port, "--scan", "--pattern", &pattern])
        .output()
        .unwrap();
    let mut total = 0;
    for key in String::from_utf8_lossy(&keys.stdout).lines() {
        let vals = Command::new("redis-cli")
            .args(["-p", &port, "hvals", key])
            .output()
            .unwrap();
        total += String::from_utf8_lossy(&vals.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

async fn wait_up(nodes: &[Member], up: bool) -> bool {
    for _ in 0..500 {
        if nodes.iter().all(|n| n.cluster.health().is_up() == up) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_nodes_serve_on_local_limits_and_converge_without_double_counting() {
    let mut redis = Redis::start();
    let origin = origin().await;
    let mut nodes = Vec::new();
    for name in ["edge-a", "edge-b", "edge-c"] {
        let dir = tempfile::tempdir().unwrap().keep();
        let extra = format!("{RULES}{RULE_100}");
        nodes.push(
            join(
                config(name, &dir, origin.addr, &redis.url(), SYNC_MS, &extra),
                true,
            )
            .await,
        );
    }
    let quiet = "198.51.100.50";
    for i in 0..9 {
        assert_eq!(get_from(nodes[i % 3].addr, quiet, "/").await.status, 200);
    }

    redis.kill();
    // A flood of one client while Redis is away: answered, refused by each node on its own counts.
    let flood = "198.51.100.51";
    let (mut served, mut refused) = (0, 0);
    for i in 0..450 {
        let s = get_from(nodes[i % 3].addr, flood, "/")
            .await
            .status
            .as_u16();
        match s {
            200 => served += 1,
            403 => refused += 1,
            other => panic!("request {i} answered {other} while Redis was down"),
        }
    }
    println!("Redis down: {served} served, {refused} refused (limit 100 per node on its own)");
    assert!(served <= 300 && refused >= 150, "{served} served");
    for i in 0..12 {
        assert_eq!(get_from(nodes[i % 3].addr, quiet, "/").await.status, 200);
    }
    assert!(wait_up(&nodes, false).await, "the nodes notice the outage");
    let m = nodes[0].cluster.metrics_text();
    assert!(m.contains("edgeguard_cluster_redis_up 0"), "{m}");
    assert!(
        nodes[0].cluster.health().summary().contains("degraded"),
        "{}",
        nodes[0].cluster.health().summary()
    );

    redis.restart();
    assert!(wait_up(&nodes, true).await, "the nodes reconnect");
    // One periodic round after the reconnect sends every count again.
    tokio::time::sleep(Duration::from_millis(4 * SYNC_MS)).await;
    let quiet_total = redis_total(&redis, quiet);
    let flood_total = redis_total(&redis, flood);
    println!(
        "after the restart: {quiet_total} counted for the quiet client, {flood_total} for the flood"
    );
    assert_eq!(
        quiet_total, 21,
        "9 before the outage and 12 during it, once each"
    );
    // Each node counted 100 served and the one that put its block in force.
    assert_eq!(flood_total, u64::try_from(served).unwrap() + 3);
    // Every counter hash the replay wrote into the empty Redis expires: none is left for ever.
    let port = redis.port.to_string();
    let keys = Command::new("redis-cli")
        .args(["-p", &port, "--scan", "--pattern", "eg:{p.test/*"])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
    assert!(keys.lines().count() >= 2, "{keys}");
    for key in keys.lines() {
        let ttl = Command::new("redis-cli")
            .args(["-p", &port, "pttl", key])
            .output()
            .unwrap();
        let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    assert!(
        nodes[1]
            .cluster
            .metrics_text()
            .contains("edgeguard_cluster_redis_up 1")
    );
}
