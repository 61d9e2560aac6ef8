//! Redis killed in the middle of a run: every request is still answered (no 5xx from edgeguard), each node
//! holds the limit on its own counts, `/metrics` and the health summary say so; after Redis comes back (empty)
//! the nodes send their counts again and the cluster-wide totals are exact: nothing counted twice. A connection
//! dropped by a Redis that lost nothing does not make the node send every count again.

use std::sync::atomic::Ordering;
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
    let mut total = 0;
    for key in redis.cli(&["--scan", "--pattern", &pattern]).lines() {
        total += redis
            .cli(&["hvals", key])
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
    let keys = redis.cli(&["--scan", "--pattern", "eg:{p.test/*"]);
    assert!(keys.lines().count() >= 2, "{keys}");
    for key in keys.lines() {
        let ttl: i64 = redis.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    assert!(
        nodes[1]
            .cluster
            .metrics_text()
            .contains("edgeguard_cluster_redis_up 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_to_a_redis_that_lost_nothing_sends_only_new_counts() {
    let redis = Redis::start();
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap().keep();
    let extra = format!("{RULES}{RULE_100}");
    let node = join(
        config("edge-a", &dir, origin.addr, &redis.url(), SYNC_MS, &extra),
        true,
    )
    .await;
    // 200 clients, one request each: 200 keys of the rule, sent within a second or so.
    for i in 0..200 {
        let ip = format!("198.51.{}.{}", 100 + i / 100, i % 100 + 1);
        assert_eq!(get_from(node.addr, &ip, "/").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each key a script call carries is read once (HGETALL): the keys sent.
    assert!(redis.calls("hgetall") >= 200, "every key was sent once");
    redis.cli(&["config", "resetstat"]);
    let connects = node.cluster.health().connects.load(Ordering::Relaxed);
    // Redis drops the node's connection (not this redis-cli's); the node's next round fails and it reconnects.
    redis.cli(&["client", "kill", "type", "normal"]);
    for _ in 0..300 {
        if node.cluster.health().connects.load(Ordering::Relaxed) > connects {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        node.cluster.health().connects.load(Ordering::Relaxed) > connects,
        "the node reconnected"
    );
    // Periodic rounds for a second and a half: a key whose counts Redis still holds is not sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resent = redis.calls("hgetall");
    assert!(
        resent < 20,
        "{resent} keys sent again after a reconnect to the same Redis"
    );
    // A new client's first count is still sent at once.
    assert_eq!(get_from(node.addr, "198.51.120.1", "/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(redis.calls("hgetall") > resent, "the new count was sent");
}
