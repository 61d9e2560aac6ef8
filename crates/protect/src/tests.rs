//! The engine on a fake clock: no HTTP, no store.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use edgeguard_rules::{Action, Object, RequestView};

use super::*;

const T0: u64 = 1_700_000_000_000;

struct Req {
    ip: IpAddr,
    ua: Option<&'static str>,
    query: Option<&'static str>,
}

impl RequestView for Req {
    fn client_ip(&self) -> IpAddr {
        self.ip
    }
    fn host(&self) -> &str {
        "www.example.com"
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        (name == "user-agent").then_some(self.ua?.as_bytes())
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
}

fn ip(s: &str) -> Req {
    Req {
        ip: s.parse().unwrap(),
        ua: None,
        query: None,
    }
}

fn domain(extra: &str) -> edgeguard_config::Domain {
    let text = format!(
        "[node]\nname = \"t\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"www.example.com\"\n\
         origins = [\"127.0.0.1:9\"]\n{extra}"
    );
    let config = edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    config.domains[0].clone()
}

fn custom(rule: &str) -> String {
    format!(
        "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n[[domain.rate_limiting.rules]]\n{rule}\n"
    )
}

const LOGIN: &str = "name = \"login01\"\nuri = \"/login\"\nmatch = \"prefix\"\nobject = \"ip\"\n\
                     interval = 10\ncriteria = '\"count\">5'\naction = \"block\"\nttl = 60";
const SCAN: &str = "name = \"scan01\"\nuri = \"/\"\nmatch = \"prefix\"\nobject = \"ip\"\ninterval = 10\n\
                    criteria = '\"status_ratio|404\">60% && \"count\">10'\naction = \"block\"\nttl = 600";

fn guard(d: &edgeguard_config::Domain, previous: Option<&DomainGuard>) -> DomainGuard {
    let blocks = previous.map_or_else(
        || Arc::new(DomainBlocks::new(&d.name)),
        |p| p.blocks().clone(),
    );
    DomainGuard::build(
        d,
        previous,
        blocks,
        Arc::new(AtomicU32::new(10)),
        Sink::default(),
    )
    .unwrap()
}

#[test]
fn eleven_in_one_second_refuse_exactly_one() {
    let g = guard(
        &domain("[domain.ip_access_limit]\nenabled = true\nqps = 10\n"),
        None,
    );
    let client: IpAddr = "192.0.2.1".parse().unwrap();
    let refused = (0..11)
        .filter(|i| g.ip_access_limit(client, T0 + i * 50).is_some())
        .count();
    assert_eq!(refused, 1);
    // Another client has its own second.
    assert!(
        g.ip_access_limit("192.0.2.2".parse().unwrap(), T0 + 600)
            .is_none()
    );
}

#[test]
fn paced_at_the_limit_is_never_refused() {
    let g = guard(
        &domain("[domain.ip_access_limit]\nenabled = true\nqps = 10\n"),
        None,
    );
    let client: IpAddr = "2001:db8::1".parse().unwrap();
    for i in 0..200 {
        assert_eq!(g.ip_access_limit(client, T0 + i * 100), None, "request {i}");
    }
}

#[test]
fn absent_qps_uses_the_recommendation() {
    let g = guard(&domain("[domain.ip_access_limit]\nenabled = true\n"), None);
    assert_eq!(g.ip_limit_qps(), Some(10));
    let client: IpAddr = "192.0.2.1".parse().unwrap();
    let refused = (0..12)
        .filter(|i| g.ip_access_limit(client, T0 + i).is_some())
        .count();
    assert_eq!(refused, 2);
}

#[test]
fn count_rule_blocks_on_the_sixth_request_until_the_ttl() {
    let d = domain(&custom(LOGIN));
    let g = guard(&d, None);
    let a = ip("192.0.2.1");
    let mut key = Vec::new();
    for i in 0..5 {
        let c = g.count(&a, "/login", None, T0 + i * 100, &mut key).unwrap();
        assert_eq!(c.triggered, None, "request {}", i + 1);
    }
    let sixth = g.count(&a, "/login/x", None, T0 + 600, &mut key).unwrap();
    let f = sixth.triggered.expect("the sixth request triggers");
    assert_eq!((f.action, &*f.rule), (Action::Block, "login01"));
    assert_eq!(f.until_ms, T0 + 600 + 60_000);
    assert_eq!(key, b"192.0.2.1");
    // In force for every request of that IP, not for another IP; gone after the TTL.
    assert!(g.in_force(&a, T0 + 700, &mut key).is_some());
    assert!(g.in_force(&ip("192.0.2.2"), T0 + 700, &mut key).is_none());
    assert!(g.in_force(&a, T0 + 600 + 60_000, &mut key).is_none());
    // Other paths are not counted by the rule.
    assert!(g.count(&a, "/other", None, T0, &mut key).is_none());
}

#[test]
fn status_ratio_trips_for_a_scanner_not_for_a_good_client() {
    let g = guard(&domain(&custom(SCAN)), None);
    let mut key = Vec::new();
    let scanner = ip("192.0.2.7");
    let good = ip("192.0.2.8");
    let mut tripped_at = None;
    for i in 0..20u64 {
        let now = T0 + i * 200;
        let c = g.count(&scanner, "/missing", None, now, &mut key).unwrap();
        if c.triggered.is_some() {
            tripped_at = Some(i + 1);
            break;
        }
        assert!(g.record_status(c.rule, &key, 404, now).is_none());
    }
    // count > 10 needs an 11th request, which finds the ten 404s before it: it is the one refused.
    assert_eq!(tripped_at, Some(11));
    assert!(g.in_force(&scanner, T0 + 5_000, &mut key).is_some());
    for i in 0..40u64 {
        let now = T0 + i * 200;
        let c = g.count(&good, "/page", None, now, &mut key).unwrap();
        assert_eq!(c.triggered, None);
        let status = if i % 4 == 0 { 404 } else { 200 };
        assert!(g.record_status(c.rule, &key, status, now).is_none());
    }
    assert!(g.in_force(&good, T0 + 8_000, &mut key).is_none());
}

#[test]
fn header_object_counts_only_requests_with_the_header() {
    let rule = LOGIN.replace("object = \"ip\"", "object = \"header:User-Agent\"");
    let g = guard(&domain(&custom(&rule)), None);
    let mut key = Vec::new();
    let bare = ip("192.0.2.1");
    for i in 0..20 {
        assert!(g.count(&bare, "/login", None, T0 + i, &mut key).is_none());
    }
    let bot = Req {
        ip: "192.0.2.9".parse().unwrap(),
        ua: Some("flood/1.0"),
        query: None,
    };
    let fired = (0..6)
        .filter_map(|i| {
            g.count(&bot, "/login", None, T0 + i, &mut key)
                .unwrap()
                .triggered
        })
        .count();
    assert_eq!(fired, 1);
    // Any IP with that user agent is now blocked; the same IP with another agent is not.
    let other_ip = Req {
        ip: "198.51.100.1".parse().unwrap(),
        ua: Some("flood/1.0"),
        query: None,
    };
    assert!(g.in_force(&other_ip, T0 + 10, &mut key).is_some());
    assert!(g.in_force(&bare, T0 + 10, &mut key).is_none());
}

#[test]
fn reload_keeps_windows_of_unchanged_rules_only() {
    let d = domain(&custom(LOGIN));
    let g1 = guard(&d, None);
    let a = ip("192.0.2.1");
    let mut key = Vec::new();
    for i in 0..5 {
        g1.count(&a, "/login", None, T0 + i, &mut key);
    }
    // Same rule, another ttl: the window is the same, so the sixth request still triggers.
    let d2 = domain(&custom(&LOGIN.replace("ttl = 60", "ttl = 120")));
    let g2 = guard(&d2, Some(&g1));
    let f = g2
        .count(&a, "/login", None, T0 + 10, &mut key)
        .unwrap()
        .triggered
        .unwrap();
    assert_eq!(f.until_ms, T0 + 10 + 120_000);
    // A changed criteria starts from zero.
    let d3 = domain(&custom(&LOGIN.replace("\"count\">5", "\"count\">6")));
    let g3 = guard(&d3, Some(&g2));
    let b = ip("192.0.2.2");
    for i in 0..5 {
        g2.count(&b, "/login", None, T0 + i, &mut key);
    }
    for i in 0..6 {
        let c = g3.count(&b, "/login", None, T0 + 20 + i, &mut key).unwrap();
        assert_eq!(c.triggered, None, "request {i} after the change");
    }
}

#[test]
fn presets_follow_the_mode() {
    let normal = guard(
        &domain("[domain.rate_limiting]\nenabled = true\nmode = \"normal\"\n"),
        None,
    );
    assert_eq!(normal.rules()[0].name, "normal");
    let emergency = guard(
        &domain("[domain.rate_limiting]\nenabled = true\nmode = \"emergency\"\n"),
        None,
    );
    assert_eq!(emergency.rules()[0].action, Action::BotDetection);
    let off = guard(&domain(""), None);
    assert!(!off.has_rules() && off.ip_limit_qps().is_none());
}

#[test]
fn block_beats_challenge_and_entries_expire() {
    let b = DomainBlocks::new("www.example.com");
    let a = ip("192.0.2.1");
    let mut key = Vec::new();
    let entry = |action, until_ms| InForce {
        rule: Arc::from("r"),
        action,
        until_ms,
    };
    assert!(b.is_empty());
    assert_eq!(
        b.insert(
            &Object::Ip,
            b"192.0.2.1",
            entry(Action::BotDetection, T0 + 1000),
            T0
        ),
        Inserted::New
    );
    assert_eq!(
        b.insert(
            &Object::Ip,
            b"192.0.2.1",
            entry(Action::BotDetection, T0 + 5000),
            T0
        ),
        Inserted::AlreadyInForce
    );
    b.insert(
        &Object::Domain,
        b"www.example.com",
        entry(Action::Block, T0 + 500),
        T0,
    );
    assert_eq!(b.lookup(&a, T0, &mut key).unwrap().action, Action::Block);
    assert_eq!(
        b.lookup(&a, T0 + 600, &mut key).unwrap().action,
        Action::BotDetection
    );
    assert_eq!(b.list(T0 + 600).len(), 1);
    assert_eq!(b.sweep(T0 + 600), 1);
    assert!(b.remove(&Object::Ip, b"192.0.2.1").is_some());
    assert!(b.is_empty() && b.lookup(&a, T0, &mut key).is_none());
}

#[test]
fn rfc3339_of_known_instants() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
    assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
}

#[test]
fn a_status_trigger_acts_from_the_next_request() {
    let rule = LOGIN.replace("'\"count\">5'", "'\"status_count|404\">=3'");
    let g = guard(&domain(&custom(&rule)), None);
    let a = ip("192.0.2.1");
    let mut key = Vec::new();
    for i in 0..3u64 {
        let c = g.count(&a, "/login", None, T0 + i, &mut key).unwrap();
        assert_eq!(c.triggered, None);
        let fired = g.record_status(c.rule, &key, 404, T0 + i);
        assert_eq!(fired.is_some(), i == 2, "status {}", i + 1);
    }
    assert_eq!(
        g.in_force(&a, T0 + 3, &mut key).map(|f| f.action),
        Some(Action::Block)
    );
    // A rule whose criteria reads no status ignores statuses.
    let g = guard(&domain(&custom(LOGIN)), None);
    let c = g.count(&a, "/login", None, T0, &mut key).unwrap();
    assert!(g.record_status(c.rule, &key, 404, T0).is_none());
}

#[test]
fn challenge_defaults_agree_with_the_challenge_crate() {
    assert_eq!(
        edgeguard_config::defaults::CHALLENGE_DIFFICULTY,
        edgeguard_challenge::Difficulty::DEFAULT.bits()
    );
    assert_eq!(
        edgeguard_config::defaults::CHALLENGE_CLEARANCE_TTL,
        edgeguard_challenge::DEFAULT_CLEARANCE_TTL
    );
    let g = guard(&domain(""), None);
    assert_eq!(g.challenge().difficulty.bits(), 20);
    assert!(!g.challenge().whole_domain());
    assert!(!g.challenge_needs_path());
    assert_eq!(g.challenge_in_force(None, T0), None);
}

#[test]
fn configured_challenges_cover_the_domain_or_its_prefixes() {
    let g = guard(
        &domain("[domain.challenge]\nenabled = true\ndifficulty = 12\nclearance_ttl = \"5m\"\n"),
        None,
    );
    assert_eq!(g.challenge().difficulty.bits(), 12);
    let f = g.challenge_in_force(None, T0).unwrap();
    assert_eq!(
        (&*f.rule, f.action, f.until_ms),
        (RULE_CHALLENGE_ENABLED, Action::BotDetection, u64::MAX)
    );
    let node = edgeguard_challenge::Challenger::from_key([1; 32]);
    let g = g.with_challenger(&node);
    assert_eq!(
        g.challenger().unwrap().clearance_ttl(),
        std::time::Duration::from_secs(300)
    );

    let g = guard(
        &domain("[domain.challenge]\npaths = [\"/login\", \"/api/\"]\n"),
        None,
    );
    assert!(g.challenge_needs_path());
    for (path, hit) in [
        ("/login", true),
        ("/login/x", true),
        ("/api/v1", true),
        ("/api", false),
        ("/", false),
        ("/shop", false),
    ] {
        let f = g.challenge_in_force(Some(path), T0);
        assert_eq!(f.is_some(), hit, "{path}");
        if let Some(f) = f {
            assert_eq!(&*f.rule, RULE_CHALLENGE_PATHS);
        }
    }
}

#[test]
fn timed_prefix_challenges_expire_are_listed_and_lifted() {
    let g = guard(&domain(""), None);
    let b = g.blocks();
    let entry = |until_ms| InForce {
        rule: Arc::from(RULE_OPERATOR),
        action: Action::BotDetection,
        until_ms,
    };
    b.set_prefix("/shop", entry(T0 + 1000));
    assert!(!b.is_empty() && b.has_prefixes() && g.challenge_needs_path());
    assert!(g.challenge_in_force(Some("/shop/cart"), T0).is_some());
    assert!(g.challenge_in_force(Some("/"), T0).is_none());
    assert!(g.challenge_in_force(Some("/shop"), T0 + 1000).is_none());
    // A new start replaces the TTL rather than adding an entry.
    b.set_prefix("/shop", entry(T0 + 9000));
    let listed = b.list(T0 + 1000);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].object_type.as_str(),
            listed[0].object_value.as_str()
        ),
        ("prefix:/shop", "www.example.com")
    );
    assert_eq!(listed[0].until_ms, i64::try_from(T0 + 9000).unwrap());
    assert_eq!(b.sweep(T0 + 8999), 0);
    assert_eq!(b.sweep(T0 + 9000), 1);
    assert!(b.is_empty() && !b.has_prefixes());
    b.set_prefix("/a", entry(T0 + 10));
    assert!(b.remove_prefix("/a").is_some() && b.remove_prefix("/a").is_none());
    assert!(b.is_empty());
}

#[test]
fn an_operator_challenge_replaces_a_challenge_but_not_a_block() {
    let b = DomainBlocks::new("www.example.com");
    let entry = |action, until_ms| InForce {
        rule: Arc::from("r"),
        action,
        until_ms,
    };
    let key = b"www.example.com";
    b.replace(
        &Object::Domain,
        key,
        entry(Action::BotDetection, T0 + 5000),
        T0,
    )
    .unwrap();
    // Shorter counts: the operator's new TTL starts now.
    b.replace(
        &Object::Domain,
        key,
        entry(Action::BotDetection, T0 + 100),
        T0,
    )
    .unwrap();
    assert_eq!(b.get(&Object::Domain, key, T0).unwrap().until_ms, T0 + 100);
    b.insert(&Object::Domain, key, entry(Action::Block, T0 + 600), T0);
    let refused = b
        .replace(
            &Object::Domain,
            key,
            entry(Action::BotDetection, T0 + 9000),
            T0,
        )
        .unwrap_err();
    assert_eq!(refused.action, Action::Block);
    assert!(
        b.replace(
            &Object::Domain,
            key,
            entry(Action::BotDetection, T0 + 9000),
            T0 + 600
        )
        .is_ok()
    );
    assert_eq!(b.list(T0 + 700).len(), 1);
}
