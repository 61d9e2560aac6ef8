//! The blocks budget under attacker-chosen keys, on a fake clock; `[domain.access_control]` in a replay.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use edgeguard_rules::{Action, Object, RequestView};

use super::*;

const T0: u64 = 1_700_000_000_000;

struct Ua<'a> {
    ua: &'a str,
}

impl RequestView for Ua<'_> {
    fn client_ip(&self) -> IpAddr {
        IpAddr::from([192, 0, 2, 1])
    }
    fn host(&self) -> &str {
        "www.example.com"
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        (name == "user-agent").then_some(self.ua.as_bytes())
    }
    fn query(&self) -> Option<&str> {
        None
    }
}

fn config(extra: &str) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"t\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"www.example.com\"\n\
         origins = [\"127.0.0.1:9\"]\n{extra}"
    );
    edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

const UA_RULE: &str = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n\
    [[domain.rate_limiting.rules]]\nname = \"ua01\"\nuri = \"/\"\nmatch = \"prefix\"\n\
    object = \"header:User-Agent\"\ninterval = 10\ncriteria = '\"count\">0'\naction = \"bot_detection\"\nttl = 600";

fn entry(rule: &str, action: Action, until_ms: u64) -> InForce {
    InForce {
        rule: Arc::from(rule),
        action,
        until_ms,
    }
}

#[test]
fn a_million_header_values_stay_within_blocks_size() {
    const BUDGET: u64 = 1 << 20;
    let budget = BlocksBudget::new(BUDGET);
    let d = config(UA_RULE).domains[0].clone();
    let blocks = DomainBlocks::shared(DomainBlocks::with_budget(&d.name, budget.clone()));
    let g = DomainGuard::build(
        &d,
        None,
        blocks.clone(),
        Arc::new(AtomicU32::new(10)),
        Sink::default(),
    )
    .unwrap();
    // Worth more than any challenge of the flood: blocks (shorter TTL), the operator's, the whole domain's.
    let ips: Vec<String> = (0..20).map(|i| format!("198.51.100.{i}")).collect();
    for ip in &ips {
        blocks.insert(
            &Object::Ip,
            ip.as_bytes(),
            entry("r", Action::Block, T0 + 60_000),
            T0,
        );
    }
    let op = entry(RULE_OPERATOR, Action::BotDetection, T0 + 3_600_000);
    blocks
        .replace(&Object::Domain, b"www.example.com", op.clone(), T0)
        .unwrap();

    let mut key = Vec::new();
    let mut ua = String::new();
    let n: u64 = 1_000_000;
    for i in 0..n {
        ua.clear();
        ua.push_str("flood/");
        ua.push_str(&i.to_string());
        let now = T0 + i / 50; // 50,000 values per second of the fake clock: a 20-second burst
        let counted = g.count(&Ua { ua: &ua }, "/", None, now, &mut key);
        let f = counted
            .and_then(|c| c.triggered)
            .expect("first request of a value triggers");
        assert_eq!(f.action, Action::BotDetection);
        if i % 10_000 == 0 {
            let s = budget.stats();
            assert!(s.bytes <= BUDGET, "{s:?} after {i}");
        }
    }
    let now = T0 + n / 50;
    let s = budget.stats();
    assert!(s.bytes <= BUDGET, "{s:?}");
    let per = BlocksBudget::cost("flood/999999".len());
    assert!(s.in_force >= (BUDGET / per) * 9 / 10, "budget used: {s:?}");
    assert!(s.evictions >= n - s.in_force - 1, "{s:?}");
    // The strong and lasting entries are all there, and the most recent challenges.
    for ip in &ips {
        assert_eq!(
            blocks.get(&Object::Ip, ip.as_bytes(), now).unwrap().action,
            Action::Block
        );
    }
    assert_eq!(
        blocks.get(&Object::Domain, b"www.example.com", now),
        Some(op)
    );
    let header = Object::parse("header:User-Agent").unwrap();
    for i in n - 1000..n {
        let v = format!("flood/{i}");
        assert!(
            blocks.get(&header, v.as_bytes(), now).is_some(),
            "{v} evicted"
        );
    }
    assert!(blocks.get(&header, b"flood/0", now).is_none());
}

#[test]
fn expired_entries_go_first_and_other_domains_give_way() {
    let per = BlocksBudget::cost(8);
    let budget = BlocksBudget::new(per * 4);
    let a = DomainBlocks::shared(DomainBlocks::with_budget("a.example", budget.clone()));
    let b = DomainBlocks::shared(DomainBlocks::with_budget("b.example", budget.clone()));
    // Domain a: two challenges, one about to end; domain b: one log mark.
    a.insert(
        &Object::Ip,
        b"10.0.0.1",
        entry("r", Action::BotDetection, T0 + 10),
        T0,
    );
    a.insert(
        &Object::Ip,
        b"10.0.0.2",
        entry("r", Action::BotDetection, T0 + 9_000),
        T0,
    );
    b.insert(
        &Object::Ip,
        b"10.0.0.3",
        entry("r", Action::Log, T0 + 9_000),
        T0,
    );
    a.insert(
        &Object::Ip,
        b"10.0.0.4",
        entry("r", Action::Block, T0 + 9_000),
        T0,
    );
    assert_eq!(budget.stats().in_force, 4);
    // Full: the expired challenge goes before the weaker log mark of the other domain.
    let new = entry("r", Action::Block, T0 + 9_000);
    assert_eq!(
        a.insert(&Object::Ip, b"10.0.0.5", new.clone(), T0 + 20),
        Inserted::New
    );
    assert!(a.get(&Object::Ip, b"10.0.0.1", T0).is_none());
    assert!(b.get(&Object::Ip, b"10.0.0.3", T0).is_some());
    // Then the other domain's log mark, the least valuable live entry.
    assert_eq!(
        b.insert(&Object::Ip, b"10.0.0.6", new.clone(), T0 + 20),
        Inserted::New
    );
    assert!(b.get(&Object::Ip, b"10.0.0.3", T0).is_none());
    // A log mark finds nothing weaker: not kept.
    let mark = entry("r", Action::Log, T0 + 9_000);
    assert_eq!(
        a.insert(&Object::Ip, b"10.0.0.7", mark, T0 + 20),
        Inserted::NoRoom
    );
    let s = budget.stats();
    assert_eq!(
        (s.in_force, s.bytes, s.evictions, s.refused),
        (4, per * 4, 2, 1)
    );
    drop(b);
    assert_eq!(budget.stats().in_force, 3);
}

#[test]
fn replay_applies_allow_and_deny() {
    let c = config(
        "[domain.ip_access_limit]\nenabled = true\nqps = 1\n[domain.access_control]\n\
         allow = [\"192.0.2.0/24\"]\ndeny = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n",
    );
    let mut r = replay::Replayer::new(&c, None, 10).unwrap();
    let line = |client: &str, i: i64| replay::Line {
        time_ms: 1_700_000_000_000 + i,
        client: client.parse().unwrap(),
        method: "GET",
        uri: "/",
        status: 200,
        user_agent: None,
    };
    for i in 0..20 {
        assert_eq!(
            r.step(&line("192.0.2.9", i)).verdict,
            replay::Verdict::Passed
        );
    }
    for client in ["198.51.100.7", "2001:db8::1", "::ffff:198.51.100.8"] {
        assert_eq!(
            r.step(&line(client, 30)).verdict,
            replay::Verdict::Blocked {
                rule: Arc::from(RULE_ACCESS_DENY)
            }
        );
    }
    assert_eq!(
        r.step(&line("203.0.113.1", 40)).verdict,
        replay::Verdict::Passed
    );
    assert!(matches!(
        r.step(&line("203.0.113.1", 41)).verdict,
        replay::Verdict::IpLimited { .. }
    ));
}
