//! IPv6 clients through the whole node (SPEC 9.1): counted by `[node] ipv6_prefix` (64 by default) in the IP
//! access limit, `ip` rules and blocks, named by their prefix in the blocks list and the activity log; and the
//! protection tables' figures in /metrics. Clients are told apart by `X-Forwarded-For` from the trusted
//! 127.0.0.1; time is a fake clock.

use std::net::SocketAddr;
use std::path::Path;

use edgeguard_limit::FakeClock;
use edgeguard_store::ActivityQuery;
use edgeguard_testkit::{Origin, Reply, Route};
use http::StatusCode;

mod common;

use common::protection::{start_on, trusted_config};

async fn origin() -> SocketAddr {
    Origin::builder()
        .fallback(Route::text("origin says hello"))
        .start()
        .await
        .addr
}

fn config(dir: &Path, origin: SocketAddr, domain_extra: &str) -> edgeguard_config::Config {
    trusted_config("edge-6", dir, origin, domain_extra)
}

async fn get_from(addr: SocketAddr, ip: &str) -> Reply {
    edgeguard_testkit::send(addr, "GET", "p.test", "/", &[("x-forwarded-for", ip)], "").await
}

#[tokio::test]
async fn addresses_of_one_64_are_one_client_and_ten_64s_are_ten() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(
        dir.path(),
        origin().await,
        "[domain.ip_access_limit]\nenabled = true\nqps = 10\n",
    );
    let (node, addr) = start_on(cfg, &clock).await;
    let mut refused = 0;
    for n in 1..=30 {
        let r = get_from(addr, &format!("2001:db8:7:7::{n:x}")).await;
        refused += usize::from(r.status.as_u16() == 514);
    }
    assert_eq!(
        refused, 20,
        "30 requests of one /64 in one second, 10 allowed"
    );
    clock.advance(1_000);
    for n in 0..30u32 {
        let r = get_from(addr, &format!("2001:db8:8:{:x}::{:x}", n % 10, n + 1)).await;
        assert_eq!(r.status, StatusCode::OK, "request {n} of ten /64s");
    }
    let metrics = node.metrics_text();
    // Ten keys for the ten /64s, plus the first /64's unless the table has already let its finished second go.
    let in_use = "edgeguard_protect_table_in_use{domain=\"p.test\",table=\"ip-access-limit\"} ";
    let held: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(in_use))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(
        (10..=11).contains(&held),
        "{held} keys for 40 addresses of eleven /64s"
    );
    assert!(
        metrics.contains(&format!(
            "edgeguard_protect_table_bytes{{domain=\"p.test\",table=\"ip-access-limit\"}} {}",
            edgeguard_config::defaults::IP_ACCESS_LIMIT_TABLE_SIZE
        )),
        "{metrics}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn an_ip_rule_blocks_the_64_and_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let rule = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n\
                [[domain.rate_limiting.rules]]\nname = \"flood01\"\nuri = \"/\"\nmatch = \"prefix\"\n\
                object = \"ip\"\ninterval = 10\ncriteria = '\"count\">5'\naction = \"block\"\nttl = 60\n";
    let (node, addr) = start_on(config(dir.path(), origin().await, rule), &clock).await;
    for n in 1..=6 {
        get_from(addr, &format!("2001:db8:7:7:{n:x}::1")).await;
    }
    assert_eq!(
        get_from(addr, "2001:db8:7:7:ffff::2").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_from(addr, "2001:db8:7:8::2").await.status,
        StatusCode::OK
    );
    let blocks = node.blocks_in_force();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(
        (
            blocks[0].object_type.as_str(),
            blocks[0].object_value.as_str()
        ),
        ("ip", "2001:db8:7:7::/64")
    );
    node.activity_log().sync().unwrap();
    let page = node
        .activity_log()
        .query(&ActivityQuery::default())
        .unwrap();
    assert_eq!(page.records[0].record.object_value, "2001:db8:7:7::/64");
    let tables = node.protection_tables("p.test").unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(
        (tables[0].table.as_str(), tables[0].in_use),
        ("flood01", 2),
        "the /64 and 2001:db8:7:8::/64"
    );
    // Lifted by the listed value (the admin API lifts by the listed block's id, which carries it).
    assert!(node.lift_block("p.test", "ip", "2001:db8:7:7::/64"));
    // Past the rule's 10 s window, so the next request does not trigger it again.
    clock.advance(11_000);
    assert_eq!(
        get_from(addr, "2001:db8:7:7:ffff::2").await.status,
        StatusCode::OK
    );
    node.shutdown().await;
}
