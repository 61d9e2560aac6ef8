//! Protection through the whole node over HTTP: IP access limit (514), rule blocks with their TTL and across a
//! restart, a status-ratio rule, the bot-detection challenge with a real clearance, and the activity log.
//! Clients are told apart by `X-Forwarded-For` from the trusted 127.0.0.1; time is a fake clock.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use edgeguard_challenge::VERIFY_PATH;
use edgeguard_limit::FakeClock;
use edgeguard_proxy::RunningNode;
use edgeguard_store::ActivityQuery;
use edgeguard_testkit::{Origin, Reply, Route};
use http::StatusCode;

mod common;

use common::protection::{attr, solve, start_on, trusted_config};

const ORIGIN_BODY: &str = "origin says hello";

/// An origin answering 404 under `/missing`, 200 with [`ORIGIN_BODY`] elsewhere.
async fn origin() -> SocketAddr {
    Origin::builder()
        .route_prefix("/missing", Route::text(ORIGIN_BODY).status(404))
        .fallback(Route::text(ORIGIN_BODY))
        .start()
        .await
        .addr
}

fn config(dir: &Path, origin: SocketAddr, domain_extra: &str) -> edgeguard_config::Config {
    trusted_config(
        "edge-p",
        dir,
        origin,
        &format!("explain = true\n{domain_extra}"),
    )
}

async fn start(cfg: edgeguard_config::Config, clock: &FakeClock) -> (RunningNode, SocketAddr) {
    start_on(cfg, clock).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    edgeguard_testkit::send(addr, method, "p.test", path, headers, body).await
}

async fn get_from(addr: SocketAddr, ip: &str, path: &str) -> Reply {
    send(addr, "GET", path, &[("x-forwarded-for", ip)], "").await
}

const RULES: &str = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n";

#[tokio::test]
async fn eleven_requests_in_one_second_get_one_514_and_paced_traffic_none() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(
        dir.path(),
        origin().await,
        "[domain.ip_access_limit]\nenabled = true\nqps = 10\n",
    );
    let (node, addr) = start(cfg, &clock).await;
    let mut refused = Vec::new();
    for _ in 0..11 {
        let r = get_from(addr, "203.0.113.1", "/1.jpg").await;
        if r.status.as_u16() == 514 {
            refused.push(r);
        } else {
            assert_eq!(r.status, StatusCode::OK);
        }
    }
    assert_eq!(refused.len(), 1);
    let r = &refused[0];
    assert!(r.body.contains("10 per second"), "{}", r.body);
    assert_eq!(
        r.headers.get("x-edgeguard-decision").unwrap(),
        "ip_access_limit qps=10"
    );
    // Another client is not affected.
    assert_eq!(
        get_from(addr, "203.0.113.2", "/").await.status,
        StatusCode::OK
    );
    // Paced at 10 per second for 3 seconds: never refused.
    clock.advance(1_000);
    for i in 0..30 {
        let r = get_from(addr, "203.0.113.1", "/1.jpg").await;
        assert_eq!(r.status, StatusCode::OK, "paced request {i}");
        clock.advance(100);
    }
    node.shutdown().await;
}

const LOGIN: &str = "[[domain.rate_limiting.rules]]\nname = \"login01\"\nuri = \"/login\"\nmatch = \"prefix\"\n\
                     object = \"ip\"\ninterval = 10\ncriteria = '\"count\">5'\naction = \"block\"\nttl = 60\n";

#[tokio::test]
async fn count_rule_blocks_the_ip_for_its_ttl_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin().await;
    let clock = FakeClock::new(5_000_000);
    let cfg = config(dir.path(), origin, &format!("{RULES}{LOGIN}"));
    let (node, addr) = start(cfg.clone(), &clock).await;
    let bad = "198.51.100.7";
    for i in 0..5 {
        let r = get_from(addr, bad, "/login").await;
        assert_eq!(r.status, StatusCode::OK, "request {}", i + 1);
        clock.advance(100);
    }
    let sixth = get_from(addr, bad, "/login?user=x").await;
    assert_eq!(sixth.status, StatusCode::FORBIDDEN);
    assert!(sixth.body.contains("rule \"login01\""), "{}", sixth.body);
    assert!(sixth.body.contains("60 s from now"), "{}", sixth.body);
    // Every request of that IP to the domain, any path; another IP is served.
    assert_eq!(get_from(addr, bad, "/").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get_from(addr, bad, "/static/a.css").await.status,
        StatusCode::FORBIDDEN
    );
    let other = get_from(addr, "198.51.100.8", "/login").await;
    assert_eq!(
        (other.status, other.body.as_str()),
        (StatusCode::OK, ORIGIN_BODY)
    );

    let blocks = node.blocks_in_force();
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (
            blocks[0].object_type.as_str(),
            blocks[0].object_value.as_str(),
            blocks[0].rule.as_str()
        ),
        ("ip", bad, "login01")
    );
    node.activity_log().sync().unwrap();
    let page = node
        .activity_log()
        .query(&ActivityQuery::default())
        .unwrap();
    assert_eq!(page.total, 1);
    let rec = &page.records[0].record;
    assert_eq!(
        (
            rec.node.as_str(),
            rec.domain.as_str(),
            rec.rule.as_str(),
            rec.object_type.as_str()
        ),
        ("edge-p", "p.test", "login01", "ip")
    );
    assert_eq!(
        (rec.object_value.as_str(), rec.action.as_str(), rec.ttl_s),
        (bad, "block", 60)
    );
    assert!(rec.detail.contains("count"), "{}", rec.detail);
    node.shutdown().await;

    // A restart on the same data_dir: the block is still in force, until its TTL.
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(cfg, &clock).await;
    assert_eq!(get_from(addr, bad, "/").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get_from(addr, "198.51.100.8", "/").await.status,
        StatusCode::OK
    );
    clock.advance(61_000);
    let after = get_from(addr, bad, "/login").await;
    assert_eq!(
        (after.status, after.body.as_str()),
        (StatusCode::OK, ORIGIN_BODY)
    );
    assert!(node.blocks_in_force().is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn lifting_a_block_serves_the_ip_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(dir.path(), origin().await, &format!("{RULES}{LOGIN}"));
    let (node, addr) = start(cfg, &clock).await;
    for _ in 0..6 {
        get_from(addr, "198.51.100.9", "/login").await;
    }
    assert_eq!(
        get_from(addr, "198.51.100.9", "/").await.status,
        StatusCode::FORBIDDEN
    );
    assert!(node.lift_block("p.test", "ip", "198.51.100.9"));
    assert!(!node.lift_block("p.test", "ip", "198.51.100.9"));
    assert_eq!(
        get_from(addr, "198.51.100.9", "/").await.status,
        StatusCode::OK
    );
    node.activity_log().sync().unwrap();
    assert!(
        node.activity_log()
            .find_block("p.test", "ip", "198.51.100.9", 0)
            .unwrap()
            .is_none()
    );
    let lifts = node
        .activity_log()
        .query(&ActivityQuery {
            action: Some("lift".into()),
            ..ActivityQuery::default()
        })
        .unwrap();
    assert_eq!(lifts.total, 1, "only the lift that found a block is logged");
    let rec = &lifts.records[0].record;
    assert_eq!(
        (
            rec.domain.as_str(),
            rec.rule.as_str(),
            rec.object_type.as_str(),
            rec.object_value.as_str()
        ),
        ("p.test", "login01", "ip", "198.51.100.9")
    );
    assert_eq!(
        (rec.ttl_s, rec.detail.as_str()),
        (0, "by=admin-api was=block")
    );
    node.shutdown().await;
}

#[tokio::test]
async fn status_ratio_rule_trips_for_a_scanner_not_for_a_good_client() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let rule = "[[domain.rate_limiting.rules]]\nname = \"scan01\"\nuri = \"/\"\nmatch = \"prefix\"\n\
                object = \"ip\"\ninterval = 10\ncriteria = '\"status_ratio|404\">60% && \"count\">10'\n\
                action = \"block\"\nttl = 600\n";
    let cfg = config(dir.path(), origin().await, &format!("{RULES}{rule}"));
    let (node, addr) = start(cfg, &clock).await;
    let mut first_403 = None;
    for i in 0..20 {
        let r = get_from(addr, "192.0.2.50", &format!("/missing/{i}")).await;
        if r.status == StatusCode::FORBIDDEN {
            first_403 = Some(i + 1);
            break;
        }
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        clock.advance(200);
    }
    assert_eq!(
        first_403,
        Some(11),
        "ten 404s, then the eleventh request trips the rule"
    );
    for i in 0..40 {
        let path = if i % 5 == 0 { "/missing/x" } else { "/page" };
        let r = get_from(addr, "192.0.2.51", path).await;
        assert_ne!(r.status, StatusCode::FORBIDDEN, "good client, request {i}");
        clock.advance(200);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn bot_detection_challenges_until_a_valid_clearance() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let rule = "[[domain.rate_limiting.rules]]\nname = \"bots01\"\nuri = \"/\"\nmatch = \"prefix\"\n\
                object = \"ip\"\ninterval = 10\ncriteria = '\"count\">2'\naction = \"bot_detection\"\nttl = 600\n";
    let cfg = config(
        dir.path(),
        origin().await,
        &format!("{RULES}{rule}[domain.challenge]\ndifficulty = 8\n"),
    );
    let (node, addr) = start(cfg, &clock).await;
    let ip = "192.0.2.77";
    for _ in 0..2 {
        assert_eq!(get_from(addr, ip, "/shop").await.body, ORIGIN_BODY);
    }
    // The third request triggers the rule; it and every later one without clearance get the page.
    let mut page = String::new();
    for i in 0..5 {
        let r = get_from(addr, ip, "/shop?item=3").await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        assert!(!r.body.contains(ORIGIN_BODY));
        assert!(r.body.contains("data-token="), "request {i}: {}", r.body);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            r.headers.get("content-security-policy").unwrap(),
            edgeguard_challenge::content_security_policy()
        );
        page = r.body;
    }
    let post = send(addr, "POST", "/shop", &[("x-forwarded-for", ip)], "a=1").await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    assert!(post.body.contains("bot detection"), "{}", post.body);
    // The page is small; its scripts come from this origin, to the challenged client too, kept for a year.
    assert!(page.len() < 3_000, "{} bytes", page.len());
    let main = edgeguard_challenge::main_script();
    assert!(page.contains(&format!("src=\"{}\"", main.path)), "{page}");
    for path in [main.path.as_str(), attr(&page, "data-worker")] {
        let r = get_from(addr, ip, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.headers.get("cache-control").unwrap(),
            edgeguard_challenge::ASSET_CACHE_CONTROL
        );
        assert!(
            r.headers
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert!(!r.body.contains(ORIGIN_BODY) && r.body.contains("function"));
    }
    // A name that is not one of them is the site's own URL, challenged like any other.
    let other = get_from(addr, ip, "/.edgeguard/challenge/check-0000000000000000.js").await;
    assert!(other.body.contains("data-token="));

    // Solve the page's puzzle as its script would, and post the answer.
    let bits: u32 = attr(&page, "data-difficulty").parse().unwrap();
    assert_eq!(bits, 8);
    let nonce = solve(attr(&page, "data-challenge"), bits);
    let form = format!(
        "token={}&nonce={nonce}&elapsed_ms=42&return_to=%2Fshop%3Fitem%3D3",
        attr(&page, "data-token")
    );
    let headers = [
        ("x-forwarded-for", ip),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let verified = send(addr, "POST", VERIFY_PATH, &headers, &form).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(verified.body.contains("/shop?item=3"), "{}", verified.body);
    let set_cookie = verified
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // With the cookie the origin answers; a forged cookie or another IP is challenged again.
    let with = send(
        addr,
        "GET",
        "/shop?item=3",
        &[("x-forwarded-for", ip), ("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(
        (with.status, with.body.as_str()),
        (StatusCode::OK, ORIGIN_BODY)
    );
    let post_with = send(
        addr,
        "POST",
        "/shop",
        &[("x-forwarded-for", ip), ("cookie", &cookie)],
        "a=1",
    )
    .await;
    assert_eq!(post_with.body, ORIGIN_BODY);
    let forged = format!("{}x", &cookie[..cookie.len() - 1]);
    let r = send(
        addr,
        "GET",
        "/",
        &[("x-forwarded-for", ip), ("cookie", &forged)],
        "",
    )
    .await;
    assert!(r.body.contains("data-token="));
    // A wrong answer is refused.
    let wrong = send(addr, "POST", VERIFY_PATH, &headers, "token=abc&nonce=1").await;
    assert_ne!(wrong.status, StatusCode::OK);

    node.activity_log().sync().unwrap();
    let page = node
        .activity_log()
        .query(&ActivityQuery::default())
        .unwrap();
    let actions: Vec<&str> = page
        .records
        .iter()
        .map(|r| r.record.action.as_str())
        .collect();
    assert!(actions.contains(&"bot_detection"), "{actions:?}");
    let pass = page
        .records
        .iter()
        .find(|r| r.record.action == "challenge_pass")
        .expect("the pass is logged");
    assert_eq!(pass.record.rule, "bots01");
    assert!(
        pass.record.detail.contains("solve_ms=42"),
        "{}",
        pass.record.detail
    );
    node.shutdown().await;
}

#[tokio::test]
async fn statistics_count_requests_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(
        dir.path(),
        origin().await,
        &format!("[domain.ip_access_limit]\nenabled = true\nqps = 10\n{RULES}{LOGIN}"),
    );
    let (node, addr) = start(cfg, &clock).await;
    for _ in 0..12 {
        get_from(addr, "203.0.113.9", "/a").await;
    }
    for _ in 0..7 {
        get_from(addr, "203.0.113.10", "/login").await;
    }
    let p = node.traffic_stats().current("p.test").expect("a point");
    assert_eq!(p.requests, 19);
    assert_eq!(
        (p.passed, p.limited, p.blocked, p.challenged),
        (15, 2, 2, 0)
    );
    assert_eq!(p.max_ip_count, 12);
    node.shutdown().await;
}

#[tokio::test]
async fn a_reload_keeps_counts_of_unchanged_rules_and_blocks_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin().await;
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(
        config(dir.path(), origin, &format!("{RULES}{LOGIN}")),
        &clock,
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            get_from(addr, "192.0.2.60", "/login").await.status,
            StatusCode::OK
        );
    }
    for _ in 0..6 {
        get_from(addr, "192.0.2.61", "/login").await;
    }
    // Same name, object, interval and criteria; another ttl and the IP access limit switched on.
    let next = format!(
        "[domain.ip_access_limit]\nenabled = true\nqps = 100\n{RULES}{}",
        LOGIN.replace("ttl = 60", "ttl = 120")
    );
    node.reload(config(dir.path(), origin, &next)).unwrap();
    let sixth = get_from(addr, "192.0.2.60", "/login").await;
    assert_eq!(
        sixth.status,
        StatusCode::FORBIDDEN,
        "the count survived the reload"
    );
    assert!(sixth.body.contains("120 s from now"), "{}", sixth.body);
    assert_eq!(
        get_from(addr, "192.0.2.61", "/").await.status,
        StatusCode::FORBIDDEN
    );
    // Rate limiting switched off: blocks in force still end at their own time.
    node.reload(config(dir.path(), origin, "")).unwrap();
    assert_eq!(
        get_from(addr, "192.0.2.61", "/").await.status,
        StatusCode::FORBIDDEN
    );
    clock.advance(61_000);
    assert_eq!(
        get_from(addr, "192.0.2.61", "/").await.status,
        StatusCode::OK
    );
    node.shutdown().await;
}

#[tokio::test]
async fn without_qps_the_node_recommendation_applies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(
        dir.path(),
        origin().await,
        "[domain.ip_access_limit]\nenabled = true\n",
    );
    let (node, addr) = start(cfg, &clock).await;
    // A new node has no history: the floor of 10.
    assert_eq!(node.recommended_qps("p.test").unwrap().qps, 10);
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(get_from(addr, "203.0.113.5", "/").await.status.as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 514).count(), 1);
    node.shutdown().await;
}

/// Answers the challenge page `page` for `ip` as its script would; returns the clearance cookie (`name=value`).
async fn pass(addr: SocketAddr, ip: &str, page: &str) -> String {
    let bits: u32 = attr(page, "data-difficulty").parse().unwrap();
    let nonce = solve(attr(page, "data-challenge"), bits);
    let form = format!(
        "token={}&nonce={nonce}&elapsed_ms=7&return_to=%2F",
        attr(page, "data-token")
    );
    let headers = [
        ("x-forwarded-for", ip),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let v = send(addr, "POST", VERIFY_PATH, &headers, &form).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    let set = v.headers.get("set-cookie").unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

fn challenged(r: &Reply) -> bool {
    r.status == StatusCode::OK && r.body.contains("data-token=") && !r.body.contains(ORIGIN_BODY)
}

#[tokio::test]
async fn configured_challenge_of_paths_or_the_domain_follows_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let origin = origin().await;
    let ch = |extra: &str| format!("[domain.challenge]\ndifficulty = 8\n{extra}");
    let cfg = config(dir.path(), origin, &ch("paths = [\"/login\"]\n"));
    let (node, addr) = start(cfg, &clock).await;
    let ip = "192.0.2.50";
    let page = get_from(addr, ip, "/login?next=%2F").await;
    assert!(challenged(&page), "{}", page.body);
    assert_eq!(attr(&page.body, "data-difficulty"), "8");
    assert!(challenged(&get_from(addr, ip, "/login/form").await));
    assert!(challenged(&get_from(addr, ip, "/static/../login").await));
    assert_eq!(get_from(addr, ip, "/shop").await.body, ORIGIN_BODY);
    let post = send(addr, "POST", "/login", &[("x-forwarded-for", ip)], "u=1").await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    assert!(post.body.contains("this part of the site"), "{}", post.body);

    // The verify endpoint itself is never challenged, even when it falls under a prefix.
    let cookie = pass(addr, ip, &page.body).await;
    let with = [("x-forwarded-for", ip), ("cookie", cookie.as_str())];
    assert_eq!(
        send(addr, "GET", "/login", &with, "").await.body,
        ORIGIN_BODY
    );

    // The whole domain: every path, the cleared client still through.
    let whole = config(dir.path(), origin, &ch("enabled = true\n"));
    node.reload(whole).unwrap();
    assert!(challenged(&get_from(addr, "192.0.2.51", "/shop").await));
    assert_eq!(
        send(addr, "GET", "/shop", &with, "").await.body,
        ORIGIN_BODY
    );
    let post = send(
        addr,
        "POST",
        "/cart",
        &[("x-forwarded-for", "192.0.2.51")],
        "",
    )
    .await;
    assert!(post.body.contains("whole site"), "{}", post.body);
    // A shorter clearance_ttl applies at once to cookies already handed out (this one claims an hour).
    let short = config(
        dir.path(),
        origin,
        &ch("enabled = true\nclearance_ttl = \"1m\"\n"),
    );
    node.reload(short).unwrap();
    assert!(challenged(&send(addr, "GET", "/shop", &with, "").await));
    // Switched off: nobody is challenged.
    node.reload(config(dir.path(), origin, "")).unwrap();
    assert_eq!(
        get_from(addr, "192.0.2.52", "/login").await.body,
        ORIGIN_BODY
    );

    node.activity_log().sync().unwrap();
    let log = node
        .activity_log()
        .query(&ActivityQuery::default())
        .unwrap();
    let pass = log
        .records
        .iter()
        .find(|r| r.record.action == "challenge_pass")
        .expect("pass logged");
    assert_eq!(pass.record.rule, "challenge.paths");
    assert_eq!(pass.record.ttl_s, 3600);
    node.shutdown().await;
}

#[tokio::test]
async fn an_operator_challenge_is_timed_listed_lifted_and_kept_across_a_restart() {
    use edgeguard_protect::StartChallengeError;
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let cfg = config(
        dir.path(),
        origin().await,
        "[domain.challenge]\ndifficulty = 8\n",
    );
    let (node, addr) = start(cfg.clone(), &clock).await;
    let ip = "192.0.2.60";
    assert_eq!(get_from(addr, ip, "/").await.body, ORIGIN_BODY);

    let rec = node
        .start_challenge("P.test", Duration::from_secs(600), None)
        .unwrap();
    assert_eq!(
        (rec.object_type.as_str(), rec.object_value.as_str()),
        ("domain", "p.test")
    );
    assert!(challenged(&get_from(addr, ip, "/").await));
    assert!(challenged(&get_from(addr, "192.0.2.61", "/any?x=1").await));
    let post = send(addr, "POST", "/f", &[("x-forwarded-for", ip)], "").await;
    assert!(post.body.contains("operator"), "{}", post.body);
    let listed = node.blocks_in_force();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].rule.as_str(), listed[0].action.as_str()),
        ("admin-api", "bot_detection")
    );
    clock.advance(600_000);
    assert_eq!(get_from(addr, ip, "/").await.body, ORIGIN_BODY);
    assert!(node.blocks_in_force().is_empty());

    // A prefix: only its paths; kept across a restart; lifted early.
    node.start_challenge("p.test", Duration::from_secs(60), Some("/shop"))
        .unwrap();
    assert!(challenged(&get_from(addr, ip, "/shop/cart?id=2").await));
    assert_eq!(get_from(addr, ip, "/news").await.body, ORIGIN_BODY);
    assert_eq!(node.blocks_in_force()[0].object_type, "prefix:/shop");
    assert_eq!(
        node.start_challenge("nope.test", Duration::from_secs(60), None),
        Err(StartChallengeError::UnknownDomain("nope.test".into()))
    );
    assert_eq!(
        node.start_challenge("p.test", Duration::ZERO, None),
        Err(StartChallengeError::Ttl(0))
    );
    assert!(matches!(
        node.start_challenge("p.test", Duration::from_secs(60), Some("shop")),
        Err(StartChallengeError::Path(_))
    ));
    node.activity_log().sync().unwrap();
    let log = node
        .activity_log()
        .query(&ActivityQuery::default())
        .unwrap();
    let started: Vec<(&str, &str, u32)> = log
        .records
        .iter()
        .filter(|r| r.record.rule == "admin-api")
        .map(|r| {
            (
                r.record.object_type.as_str(),
                r.record.action.as_str(),
                r.record.ttl_s,
            )
        })
        .collect();
    assert_eq!(
        started,
        [
            ("prefix:/shop", "bot_detection", 60),
            ("domain", "bot_detection", 600)
        ]
    );
    node.shutdown().await;

    // The node's wall time follows its clock from the real time at start: bring it back to where it was.
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(cfg, &clock).await;
    clock.advance(600_000);
    assert!(challenged(&get_from(addr, ip, "/shop").await));
    assert_eq!(get_from(addr, ip, "/news").await.body, ORIGIN_BODY);
    assert!(node.lift_block("p.test", "prefix:/shop", "p.test"));
    assert_eq!(get_from(addr, ip, "/shop").await.body, ORIGIN_BODY);
    assert!(node.blocks_in_force().is_empty());
    node.shutdown().await;
}
