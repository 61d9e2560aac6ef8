//! The model and the parsers of the harness, without servers.

use crate::diff::analyse;
use crate::model::{Verdict, simulate};
use crate::nginx::parse_limit_req_log;
use crate::scenario::{ReqLimit, Scenario, Site};
use crate::script::{Step, query_arg};

fn one_zone(rate: &str, limit: ReqLimit) -> Scenario {
    Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", rate)
        .site(Site::new("a.test").limit_req(vec![limit]))
}

fn statuses(scenario: &Scenario, times: &[i64]) -> Vec<u16> {
    let steps: Vec<Step> = times.iter().map(|_| Step::get(0, "a.test", "/")).collect();
    let (p, _) = simulate(scenario, &steps, times);
    p.into_iter().map(|p| p.verdict.status).collect()
}

#[test]
fn one_per_minute_drains_at_62500_ms_exactly() {
    let s = one_zone("1r/m", ReqLimit::new("one"));
    assert_eq!(statuses(&s, &[0, 62_500]), vec![200, 200]);
    assert_eq!(statuses(&s, &[0, 62_499]), vec![200, 503]);
}

#[test]
fn leak_remainder_is_lost_when_last_moves() {
    // Twelve requests 50 ms apart at 1r/m: each gap leaks 0.8 milli-requests, truncated to 0.
    let s = one_zone("1r/m", ReqLimit::new("one").burst(20).nodelay());
    let times: Vec<i64> = (0..12).map(|k| k * 50).collect();
    let steps: Vec<Step> = times.iter().map(|_| Step::get(0, "a.test", "/")).collect();
    let (_, log) = simulate(&s, &steps, &times);
    let excess: Vec<u64> = log.iter().map(|l| l.2).collect();
    assert_eq!(excess, (0..12).map(|k| k * 1000).collect::<Vec<u64>>());
}

#[test]
fn default_delay_waits_in_proportion_to_excess() {
    let s = one_zone("2r/s", ReqLimit::new("one").burst(3));
    let steps: Vec<Step> = (0..5).map(|_| Step::get(0, "a.test", "/")).collect();
    let (p, _) = simulate(&s, &steps, &[0; 5]);
    let delays: Vec<u64> = p.iter().map(|p| p.delay_ms).collect();
    assert_eq!(delays, vec![0, 500, 1000, 1500, 0]);
    assert_eq!(p[4].verdict, Verdict::new(503, Some("REJECTED"), None));
}

#[test]
fn close_sends_make_a_unit_ambiguous_and_far_ones_do_not() {
    let s = one_zone("2r/s", ReqLimit::new("one").burst(1).nodelay());
    // Two requests 10 ms apart: which of them is rejected depends on arrival order.
    let close = vec![
        Step::get(0, "a.test", "/"),
        Step::get(0, "a.test", "/"),
        Step::get(10, "a.test", "/"),
    ];
    let a = analyse(&s, &close, &[0, 0, 10]);
    assert!(a.stable.iter().any(Option::is_none));
    let far = vec![Step::get(0, "a.test", "/"), Step::get(100, "a.test", "/")];
    let a = analyse(&s, &far, &[0, 100]);
    assert!(a.stable.iter().all(Option::is_some));
}

#[test]
fn debug_log_lines_parse() {
    let log = "2024/01/01 00:00:00 [debug] 7#7: *3 limit_req[0]: 0 0.000\n\
               2024/01/01 00:00:00 [debug] 7#7: *5 limit_req[1]: -3 12.345\n\
               2024/01/01 00:00:00 [debug] 7#7: *5 http finalize request";
    let lines = parse_limit_req_log(log);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[1].index, lines[1].rc, lines[1].excess_milli),
        (1, -3, 12_345)
    );
}

#[test]
fn query_args_are_raw_and_first_wins() {
    assert_eq!(query_arg("/p?a=1&b=2&a=3", "a"), Some("1"));
    assert_eq!(query_arg("/p?A=x%20y", "a"), Some("x%20y"));
    assert_eq!(query_arg("/p?b", "b"), Some(""));
    assert_eq!(query_arg("/p", "a"), None);
}

#[test]
fn both_renderings_carry_the_same_limits() {
    let s = one_zone("30r/m", ReqLimit::new("one").burst(2).delay(1));
    let origin = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
    let nginx = s.nginx_snippet(origin);
    assert!(nginx.contains("limit_req_zone $binary_remote_addr zone=one:1m rate=30r/m;"));
    assert!(nginx.contains("limit_req zone=one burst=2 delay=1;"));
    let toml = s.edgeguard_toml(origin, std::path::Path::new("/tmp/x"));
    assert!(toml.contains("rate = \"30r/m\""));
    assert!(toml.contains("limit_req = [{ zone = \"one\", burst = 2, delay = 1 }]"));
}
