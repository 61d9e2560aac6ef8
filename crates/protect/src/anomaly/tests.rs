//! The detector's novelty signals on a fake clock: a random-query-string flood below the path threshold, the
//! same traffic without query strings, and a crowd of new clients.

use std::net::{IpAddr, Ipv4Addr};

use edgeguard_rules::Mode;

use super::{Detector, Finding, RULE_SURGE};
use crate::novelty::WARM_MS;

const T0: u64 = 1_700_000_000_000;

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0B00_0000 | n))
}

/// A detector whose novelty filters are warm (one request at `T0`, then the warm-up time).
fn warm() -> (Detector, u64) {
    let d = Detector::new(Mode::Normal, 4 << 20, None).expect("tables");
    d.on_request(ip(1), 64, "/", Some("a=1"), T0);
    (d, T0 + WARM_MS + 1_000)
}

/// `bots` clients each request `path` twice, 100 ms apart in turn; the first finding.
fn flood(d: &Detector, start: u64, bots: u32, path: &str, query: bool) -> Option<Finding> {
    let mut t = start;
    for round in 0..2u32 {
        for b in 0..bots {
            let q = format!("{:x}={round}", 0x1000 + b);
            let (_, f) = d.on_request(ip(1000 + b), 64, path, query.then_some(q.as_str()), t);
            if f.is_some() {
                return f;
            }
            t += 100;
        }
    }
    None
}

#[test]
fn a_random_query_flood_under_the_path_threshold_is_challenged() {
    let (d, start) = warm();
    // 45 clients twice: 90 requests in 10 s, under the path floor of 100, all with new query strings. The
    // surge starts at the 41st; the clients counted from then on are challenged at their second request.
    let f = flood(&d, start, 45, "/search", true).expect("a query-string surge");
    assert_eq!(f.rule, RULE_SURGE);
    assert!(f.on_client);
    assert!(
        f.detail
            .contains("path_requests_10s: observed 86, threshold 100"),
        "{}",
        f.detail
    );
    assert!(
        f.detail
            .contains("path_unseen_queries_10s: observed 86, threshold 40"),
        "{}",
        f.detail
    );
    assert!(
        f.detail.contains("limit 2 during a query-string surge"),
        "{}",
        f.detail
    );
    let r = d.report(start + 10_000);
    assert_eq!(r.paths_in_surge, 1);
    assert_eq!(
        r.findings.iter().find(|(rule, _)| *rule == RULE_SURGE),
        Some(&(RULE_SURGE, 1))
    );
}

#[test]
fn the_same_traffic_without_query_strings_is_left_alone() {
    let (d, start) = warm();
    assert_eq!(flood(&d, start, 45, "/search", false), None);
    // And query strings already seen are not new: the second pass of the same strings finds nothing.
    let (d, start) = warm();
    for pass in 0..2u64 {
        let mut t = start + pass * 30_000;
        for b in 0..45u32 {
            let q = format!("{:x}=0", 0x1000 + b);
            let (_, f) = d.on_request(ip(1000 + b), 64, "/search", Some(&q), t);
            assert_eq!(f, None, "pass {pass}");
            t += 200;
        }
    }
}

#[test]
fn a_crowd_of_new_clients_halves_the_path_threshold() {
    let (d, start) = warm();
    // 120 new clients in 6 s (over the floor of 100), each on its own page.
    for b in 0..120u32 {
        d.on_request(
            ip(5000 + b),
            64,
            &format!("/p/{b}"),
            None,
            start + u64::from(b) * 50,
        );
    }
    // Then 70 requests on one path in 4 s: over half the path floor from the 51st on, when a client starts
    // repeating it every third request.
    let t = start + 6_000;
    let mut found = None;
    for k in 0..70u32 {
        let who = if k > 50 && k % 3 == 0 {
            ip(7)
        } else {
            ip(9000 + k)
        };
        let (_, f) = d.on_request(who, 64, "/news", None, t + u64::from(k) * 50);
        found = found.or(f);
    }
    let f = found.expect("a surge at half the threshold");
    assert_eq!(f.rule, RULE_SURGE);
    assert!(
        f.detail.contains("new_clients_10s: observed"),
        "{}",
        f.detail
    );
    assert!(f.detail.contains("threshold 50"), "{}", f.detail);
}
