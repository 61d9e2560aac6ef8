//! The protection under a large, distributed flood, replayed on a fake clock (the log's own timestamps): table
//! sizes from the configuration, frequency-aware eviction, IPv6 clients counted by prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgeguard_protect::replay::{Line, Replayer, Verdict};

const T0: i64 = 1_700_000_000_000;

/// A custom rule per IP: more than 20 requests in 60 s blocks for 10 minutes.
const RULE: &str = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n{size}\
                    [[domain.rate_limiting.rules]]\nname = \"flood01\"\nuri = \"/\"\nmatch = \"prefix\"\n\
                    object = \"ip\"\ninterval = 60\ncriteria = '\"count\">20'\naction = \"block\"\nttl = 600\n";

fn replayer(node: &str, domain: &str) -> Replayer {
    let text = format!(
        "[node]\nname = \"t\"\nlisten = [\"127.0.0.1:0\"]\n{node}[[domain]]\nname = \"www.example.com\"\n\
         origins = [\"127.0.0.1:9\"]\n{domain}"
    );
    let config = edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    Replayer::new(&config, None, 10).unwrap()
}

fn rule(size: Option<&str>) -> String {
    let size = size.map_or(String::new(), |s| format!("table_size = \"{s}\"\n"));
    RULE.replace("{size}", &size)
}

fn line(client: IpAddr, time_ms: i64) -> Line<'static> {
    Line {
        time_ms,
        client,
        method: "POST",
        uri: "/login",
        status: 200,
        user_agent: None,
    }
}

fn attacker(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn blocked(step: &edgeguard_protect::replay::Step) -> bool {
    matches!(step.verdict, Verdict::Blocked { .. })
}

/// Every attacker sends a request every 2 s, phases spread over the 2 s; `between` is called with the time of
/// each attacker request and may replay other lines first. Returns how many attackers were blocked.
fn flood(
    r: &mut Replayer,
    attackers: u32,
    seconds: i64,
    mut between: impl FnMut(&mut Replayer, i64),
) -> usize {
    let mut caught = vec![false; attackers as usize];
    let period_ms = 2_000i64;
    let rounds = seconds * 1000 / period_ms;
    for round in 0..rounds {
        for i in 0..attackers {
            let t = T0 + round * period_ms + i64::from(i) * period_ms / i64::from(attackers);
            between(r, t);
            let step = r.step(&line(attacker(i), t));
            caught[i as usize] |= blocked(&step);
        }
    }
    caught.iter().filter(|&&c| c).count()
}

#[test]
fn forty_thousand_attackers_are_blocked_with_the_default_table_size() {
    let mut r = replayer("", &rule(None));
    let attackers = 40_000;
    // 23 requests each: the 21st, at 40 s, is the first over the threshold.
    let caught = flood(&mut r, attackers, 46, |_, _| {});
    let stats = &r.guard().table_stats()[0];
    assert!(
        caught * 100 >= attackers as usize * 95,
        "{caught} of {attackers} blocked; table {stats:?}"
    );
    assert!(stats.capacity >= u64::from(attackers), "{stats:?}");
}

#[test]
fn one_shot_addresses_do_not_evict_attackers_from_a_small_table() {
    // About 10,000 keys: room for the 2,000 attackers, not for the one-shot stream.
    let mut r = replayer("", &rule(Some("400k")));
    let capacity = r.guard().table_stats()[0].capacity;
    assert!((2_000..20_000).contains(&capacity), "capacity {capacity}");
    let attackers = 2_000u32;
    // Twice the capacity of one-shot addresses per attacker interval (2 s), evenly among the attackers.
    let per_attacker = (2 * capacity).div_ceil(u64::from(attackers));
    let mut next_one_shot = 0u32;
    let mut one_shots_blocked = 0usize;
    let caught = flood(&mut r, attackers, 46, |r, t| {
        for _ in 0..per_attacker {
            // 172.16.0.0/12 and up: never an attacker's address.
            let ip = IpAddr::V4(Ipv4Addr::from(0xac10_0000 + next_one_shot));
            next_one_shot += 1;
            let step = r.step(&line(ip, t));
            one_shots_blocked += usize::from(blocked(&step) || step.trigger.is_some());
        }
    });
    let stats = &r.guard().table_stats()[0];
    assert!(
        caught * 100 >= attackers as usize * 95,
        "{caught} of {attackers} blocked among {next_one_shot} one-shot addresses; table {stats:?}"
    );
    assert_eq!(one_shots_blocked, 0);
    assert!(
        u64::from(next_one_shot) > 20 * capacity,
        "the stream must be far larger than the table"
    );
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn rotating_addresses_of_one_prefix_are_one_client() {
    let mut r = replayer("", "[domain.ip_access_limit]\nenabled = true\nqps = 10\n");
    let limited = (0..30u16)
        .filter(|&n| {
            let ip = v6(&format!("2001:db8:7:7::{:x}", n + 1));
            let step = r.step(&line(ip, T0 + i64::from(n) * 30));
            matches!(step.verdict, Verdict::IpLimited { .. })
        })
        .count();
    assert_eq!(limited, 20);
    // Ten /64s are ten clients: 3 requests each within the same second, none limited.
    let limited = (0..30u16)
        .filter(|&n| {
            let ip = v6(&format!("2001:db8:8:{:x}::{:x}", n % 10, n + 1));
            let step = r.step(&line(ip, T0 + 5_000 + i64::from(n) * 30));
            matches!(step.verdict, Verdict::IpLimited { .. })
        })
        .count();
    assert_eq!(limited, 0);
}

#[test]
fn a_whole_address_prefix_counts_each_address() {
    let mut r = replayer(
        "ipv6_prefix = 128\n",
        "[domain.ip_access_limit]\nenabled = true\nqps = 10\n",
    );
    let limited = (0..30u16)
        .filter(|&n| {
            let ip = v6(&format!("2001:db8:7:7::{:x}", n + 1));
            matches!(
                r.step(&line(ip, T0 + i64::from(n) * 30)).verdict,
                Verdict::IpLimited { .. }
            )
        })
        .count();
    assert_eq!(limited, 0);
}

#[test]
fn an_ip_rule_blocks_the_prefix_and_names_it() {
    let mut r = replayer("", &rule(None));
    let mut trigger = None;
    for n in 0..21u16 {
        let ip = v6(&format!("2001:db8:7:7:{:x}::1", n + 1));
        let step = r.step(&line(ip, T0 + i64::from(n) * 100));
        trigger = trigger.or(step.trigger);
    }
    let trigger = trigger.expect("the 21st request of the /64 triggers the rule");
    assert_eq!(trigger.object_value, "2001:db8:7:7::/64");
    // Another address of the same /64 is blocked; one of the next /64 is not.
    assert!(blocked(
        &r.step(&line(v6("2001:db8:7:7:ffff::2"), T0 + 3_000))
    ));
    assert!(!blocked(&r.step(&line(v6("2001:db8:7:8::2"), T0 + 3_000))));
}

#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address() {
    let mut r = replayer("", &rule(None));
    let mut trigger = None;
    for n in 0..21i64 {
        let ip = if n % 2 == 0 {
            v6("::ffff:192.0.2.7")
        } else {
            "192.0.2.7".parse().unwrap()
        };
        trigger = trigger.or(r.step(&line(ip, T0 + n * 100)).trigger);
    }
    assert_eq!(trigger.expect("triggered").object_value, "192.0.2.7");
}

#[test]
fn default_budgets_hold_a_million_clients_for_the_ip_limit_and_five_rules() {
    let rules: String = (1..=5)
        .map(|n| {
            format!(
                "[[domain.rate_limiting.rules]]\nname = \"rule0{n}\"\nuri = \"/p{n}\"\nmatch = \"prefix\"\n\
                 object = \"ip\"\ninterval = 60\ncriteria = '\"count\">20'\naction = \"block\"\nttl = 600\n"
            )
        })
        .collect();
    let r = replayer(
        "",
        &format!(
            "[domain.ip_access_limit]\nenabled = true\nqps = 10\n[domain.rate_limiting]\nenabled = true\n\
             mode = \"custom\"\n{rules}"
        ),
    );
    let stats = r.guard().table_stats();
    assert_eq!(stats.len(), 6);
    for t in &stats {
        eprintln!(
            "{}: {} bytes, capacity {}",
            t.table, t.size_bytes, t.capacity
        );
        assert!(t.capacity >= 1_000_000, "{t:?}");
    }
    let total: u64 = stats.iter().map(|t| t.size_bytes).sum();
    assert!(total <= 256 << 20, "{total} bytes");
}

/// Resident bytes of this process.
#[cfg(target_os = "linux")]
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[cfg(target_os = "linux")]
#[test]
fn a_detector_budget_is_not_resident_until_used() {
    let before = rss_bytes();
    // Four normal-mode domains at the default budget: the detector (window tables and novelty filters) takes
    // 80 MiB of each.
    let replayers: Vec<Replayer> = (0..4)
        .map(|_| {
            replayer(
                "",
                "[domain.rate_limiting]\nenabled = true\nmode = \"normal\"\n",
            )
        })
        .collect();
    let grown = rss_bytes().saturating_sub(before);
    assert!(replayers.iter().all(|r| r.guard().detector().is_some()));
    // About 4 MiB a domain for the window tables' first pages; the novelty filters (4 MiB a domain once
    // written) add nothing until keys set their bits.
    assert!(
        grown < 24 << 20,
        "{grown} bytes resident after building four detectors"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_table_budget_is_not_resident_until_used() {
    let before = rss_bytes();
    // Four domains' worth of default budgets: 4 x (58 MiB + 192 MiB).
    let replayers: Vec<Replayer> = (0..4)
        .map(|_| {
            replayer(
                "",
                &format!(
                    "[domain.ip_access_limit]\nenabled = true\nqps = 10\n{}",
                    rule(None)
                ),
            )
        })
        .collect();
    let grown = rss_bytes().saturating_sub(before);
    let budget: u64 = replayers
        .iter()
        .flat_map(|r| r.guard().table_stats())
        .map(|t| t.size_bytes)
        .sum();
    assert_eq!(budget, (4 * 250) << 20);
    assert!(
        grown < 32 << 20,
        "{grown} bytes resident after building tables of {budget} bytes"
    );
}
