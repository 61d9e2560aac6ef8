//! Blocks and challenges in force are cluster-wide: a block a rule put in force on node A holds on node B
//! within one sync interval, lifting it through B lifts it on A, and an operator's timed challenge started on
//! one node is in force on the other.

use std::time::{Duration, Instant};

mod common;

use common::{Member, RULES, Redis, config, get_from, join, origin};

const SYNC_MS: u64 = 200;

/// Five requests to `/login` per 10 s on one node (`scope = "node"`), then a block of the client everywhere.
const LOGIN: &str = "[[domain.rate_limiting.rules]]\nname = \"login01\"\nuri = \"/login\"\nmatch = \"prefix\"\n\
                     object = \"ip\"\ninterval = 10\ncriteria = '\"count\">5'\naction = \"block\"\nttl = 600\n\
                     scope = \"node\"\n";

async fn two(redis: &Redis) -> (Member, Member, edgeguard_testkit::Origin) {
    let origin = origin().await;
    let extra = format!("{RULES}{LOGIN}");
    let mut m = Vec::new();
    for name in ["edge-a", "edge-b"] {
        let dir = tempfile::tempdir().unwrap().keep();
        m.push(
            join(
                config(name, &dir, origin.addr, &redis.url(), SYNC_MS, &extra),
                true,
            )
            .await,
        );
    }
    let b = m.pop().unwrap();
    let a = m.pop().unwrap();
    (a, b, origin)
}

/// Polls `addr` from `ip` until it answers `status`; the time it took.
async fn until_status(addr: std::net::SocketAddr, ip: &str, status: u16) -> Duration {
    let started = Instant::now();
    for _ in 0..300 {
        if get_from(addr, ip, "/").await.status.as_u16() == status {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{addr} never answered {status} to {ip}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_a_holds_on_b_within_one_interval_and_a_lift_on_b_lifts_it_on_a() {
    let redis = Redis::start();
    let (a, b, _origin) = two(&redis).await;
    let ip = "198.51.100.9";
    assert_eq!(get_from(b.addr, ip, "/").await.status, 200);
    let mut blocked_at = None;
    for _ in 0..10 {
        if get_from(a.addr, ip, "/login").await.status == 403 {
            blocked_at = Some(Instant::now());
            break;
        }
    }
    let blocked_at = blocked_at.expect("the rule blocks on A");
    let on_b = until_status(b.addr, ip, 403).await;
    let since = blocked_at.elapsed().min(on_b + Duration::from_millis(5));
    println!("block on A in force on B after {since:?} (sync interval {SYNC_MS} ms)");
    assert!(
        since <= Duration::from_millis(SYNC_MS + 100),
        "block reached B after {since:?}"
    );
    assert!(
        b.node
            .blocks_in_force()
            .iter()
            .any(|r| r.object_value == ip && r.rule == "login01"),
        "B lists the block with its rule"
    );

    assert!(b.node.lift_block("p.test", "ip", ip), "B lifts it");
    assert_eq!(get_from(b.addr, ip, "/").await.status, 200);
    let on_a = until_status(a.addr, ip, 200).await;
    println!("lift on B in force on A after {on_a:?}");
    assert!(on_a <= Duration::from_millis(SYNC_MS + 100), "{on_a:?}");
    assert!(a.node.blocks_in_force().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_challenge_started_on_one_node_is_in_force_on_the_other() {
    let redis = Redis::start();
    let (a, b, _origin) = two(&redis).await;
    a.node
        .start_challenge("p.test", Duration::from_secs(60), None)
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if b.node
            .blocks_in_force()
            .iter()
            .any(|r| r.object_type == "domain" && r.action == "bot_detection")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "B has the challenge: {:?}", b.node.blocks_in_force());
    let page = get_from(b.addr, "198.51.100.10", "/").await;
    assert!(page.body.contains("challenge"), "{}", page.body);
}
