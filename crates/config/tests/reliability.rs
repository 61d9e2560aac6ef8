//! `examples/reliability.toml` is accepted and reads as written; the reliability keys (`[domain.upstream]`,
//! `[domain.health_check]`, `websocket`, `allow_methods`, the node's connection limits) have their defaults,
//! round-trip through `to_toml`, and each bad value is refused with its key and line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{BASE, one_error, parse, with_domain};
use edgeguard_config::{HealthCheckKind, UpstreamSpec, to_toml};

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reliability.toml");
    std::fs::read_to_string(path).expect("examples/reliability.toml is in the repository")
}

#[test]
fn reliability_example_reads_as_written() {
    let c = parse(&example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.max_connections, 50_000);
    assert_eq!(c.node.max_connections_per_ip, 256);
    assert_eq!(c.node.http2_idle_timeout, Duration::from_secs(180));
    assert_eq!(c.node.http2_max_streams, 128);
    let d = &c.domains[0];
    assert!(d.websocket);
    assert_eq!(d.allow_methods, ["TRACE"]);
    let u = &d.upstream;
    assert_eq!(u.max_fails, 3);
    assert_eq!(u.fail_timeout, Duration::from_secs(10));
    assert_eq!(u.max_conns, 256);
    assert_eq!(u.queue, 100);
    assert_eq!(u.queue_timeout, Duration::from_secs(5));
    assert_eq!(u.resolve_ttl, Duration::from_secs(30));
    let h = &d.health_check;
    assert_eq!(h.kind, HealthCheckKind::Http);
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.statuses, vec![(200, 200), (300, 399)]);
    assert_eq!(h.interval, Duration::from_secs(2));
    assert_eq!((h.fails, h.passes), (3, 2));
    assert!(h.passes(200) && h.passes(302) && !h.passes(204) && !h.passes(500));
    let back = parse(&to_toml(&c)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, c);
}

#[test]
fn defaults_of_the_reliability_keys() {
    let c = parse(&with_domain("")).unwrap();
    let d = &c.domains[0];
    assert_eq!(d.upstream, UpstreamSpec::default());
    assert_eq!(d.upstream.max_fails, 1);
    assert_eq!(d.upstream.fail_timeout, Duration::from_secs(10));
    assert_eq!(d.upstream.max_conns, 0);
    assert_eq!(d.health_check.kind, HealthCheckKind::Tcp);
    assert_eq!(d.health_check.statuses, vec![(200, 399)]);
    assert_eq!(d.health_check.interval, Duration::from_secs(2));
    assert_eq!((d.health_check.fails, d.health_check.passes), (1, 1));
    assert!(!d.websocket);
    assert!(d.allow_methods.is_empty());
    assert_eq!(c.node.max_connections, 0);
    assert_eq!(c.node.max_connections_per_ip, 0);
    assert_eq!(c.node.http2_idle_timeout, Duration::from_secs(180));
    assert_eq!(c.node.http2_max_streams, 128);
    let with = |d: &str| parse(&with_domain(d)).unwrap().domains[0].clone();
    let d = with("websocket = true\nallow_methods = [\"connect\", \"TRACE\"]");
    assert!(d.websocket);
    assert_eq!(d.allow_methods, ["CONNECT", "TRACE"]);
}

#[test]
fn bad_values_name_their_key_and_line() {
    let domain_cases: &[(&str, &str, &str)] = &[
        (
            "[domain.upstream]\nmax_fails = -1 # here",
            "domain[0].upstream.max_fails",
            "0..=",
        ),
        (
            "[domain.upstream]\nfail_timeout = \"0s\" # here",
            "domain[0].upstream.fail_timeout",
            "longer than zero",
        ),
        (
            "[domain.upstream]\nmax_conns = \"many\" # here",
            "domain[0].upstream.max_conns",
            "integer",
        ),
        (
            "[domain.upstream]\nqueue_timeout = \"soon\" # here",
            "domain[0].upstream.queue_timeout",
            "invalid duration",
        ),
        (
            "[domain.upstream]\nmax_conn = 3 # here",
            "domain[0].upstream.max_conn",
            "max_conns",
        ),
        (
            "[domain.health_check]\ntype = \"icmp\" # here",
            "domain[0].health_check.type",
            "\"tcp\" or \"http\"",
        ),
        (
            "[domain.health_check]\npath = \"health\" # here",
            "domain[0].health_check.path",
            "starts with '/'",
        ),
        (
            "[domain.health_check]\nstatuses = [200, \"6xx\"] # here",
            "domain[0].health_check.statuses[1]",
            "not a status",
        ),
        (
            "[domain.health_check]\nstatuses = [\"399-200\"] # here",
            "domain[0].health_check.statuses[0]",
            "low to high",
        ),
        (
            "[domain.health_check]\ninterval = \"10ms\" # here",
            "domain[0].health_check.interval",
            "at least 100ms",
        ),
        (
            "[domain.health_check]\nfails = 0 # here",
            "domain[0].health_check.fails",
            "1..=1000 (checks in a row)",
        ),
        (
            "[domain.health_check]\npasses = 1001 # here",
            "domain[0].health_check.passes",
            "1..=1000",
        ),
        (
            "[domain.health_check]\npasses = \"two\" # here",
            "domain[0].health_check.passes",
            "integer",
        ),
        (
            "[domain.health_check]\nrise = 2 # here",
            "domain[0].health_check.rise",
            "unknown key",
        ),
        (
            "allow_methods = [\"DELETE\"] # here",
            "domain[0].allow_methods[0]",
            "only \"CONNECT\" and \"TRACE\"",
        ),
        (
            "websocket = \"yes\" # here",
            "domain[0].websocket",
            "true or false",
        ),
    ];
    for (body, key, needle) in domain_cases {
        one_error(&with_domain(body), key, needle);
    }
    let node_cases: &[(&str, &str, &str)] = &[
        (
            "max_connections = -5 # here",
            "node.max_connections",
            "0..=",
        ),
        (
            "max_connections_per_ip = 20000000 # here",
            "node.max_connections_per_ip",
            "0..=",
        ),
        (
            "http2_idle_timeout = 0 # here",
            "node.http2_idle_timeout",
            "longer than zero",
        ),
        (
            "http2_max_streams = 0 # here",
            "node.http2_max_streams",
            "1..=65535",
        ),
    ];
    for (line, key, needle) in node_cases {
        let text = BASE.replacen(
            "listen = [\"127.0.0.1:8080\"]",
            &format!("listen = [\"127.0.0.1:8080\"]\n{line}"),
            1,
        );
        one_error(&text, key, needle);
    }
}
