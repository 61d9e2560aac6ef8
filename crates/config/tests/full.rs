//! `examples/full.toml` (SPEC section 8) is accepted as is and reads as written.

use std::path::Path;
use std::time::Duration;

use edgeguard_config::*;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full.toml");
    std::fs::read_to_string(path).expect("examples/full.toml is in the repository")
}

#[test]
fn full_example_reads_as_written() {
    let c = match parse_with_env(&example(), |_| None) {
        Ok(c) => c,
        Err(e) => panic!("full.toml rejected:\n{e}"),
    };
    assert_eq!(c.node.name, "edge-1");
    assert_eq!(c.node.tier, Tier::Edge);
    assert_eq!(c.node.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(c.node.trusted_proxies.len(), 1);
    assert!(c.node.trusted_proxies[0].contains("127.1.2.3".parse().unwrap()));
    assert!(!c.node.trusted_proxies[0].contains("10.0.0.1".parse().unwrap()));
    assert_eq!(c.node.data_dir, Path::new("./data"));
    assert_eq!(c.node.max_header_size, 16 * 1024);
    assert_eq!(c.node.max_body_size, 10 << 20);
    assert_eq!(c.node.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.admin.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.admin.token.as_deref(), Some("change-me"));
    assert_eq!(
        c.cluster.as_ref().unwrap().redis_urls,
        vec!["redis://127.0.0.1:6379".to_owned()]
    );

    assert_eq!(c.limit_req_zones.len(), 1);
    let z = &c.limit_req_zones[0];
    assert_eq!(z.name, "perip");
    assert_eq!(z.key.parts, vec![KeyPart::BinaryRemoteAddr]);
    assert_eq!(z.size, 10 << 20);
    assert_eq!(z.rate.milli_per_sec(), 10_000);
    let z = &c.limit_conn_zones[0];
    assert_eq!((z.name.as_str(), z.size), ("addr", 10 << 20));

    assert_eq!(c.domains.len(), 1);
    let d = &c.domains[0];
    assert_eq!(d.name, "www.example.com");
    assert_eq!(
        d.origins,
        vec![Upstream {
            host: "127.0.0.1".into(),
            port: 8081
        }]
    );
    assert!(d.parents.is_empty());
    assert!(!d.explain);
    assert_eq!((d.limit_req_status, d.limit_conn_status), (503, 503));
    assert_eq!(
        d.limit_req,
        vec![LimitReqSpec {
            zone: "perip".into(),
            burst: 5,
            delay: DelayMode::NoDelay,
            dry_run: false
        }]
    );
    assert_eq!(
        d.limit_conn,
        vec![LimitConnSpec {
            zone: "addr".into(),
            conn: 10,
            dry_run: false
        }]
    );
    assert_eq!(d.locations.len(), 1);
    assert_eq!(d.locations[0].path, "/api/");
    assert_eq!(
        d.locations[0].limit_req,
        Some(vec![LimitReqSpec {
            zone: "perip".into(),
            burst: 1,
            delay: DelayMode::Default,
            dry_run: false
        }])
    );
    assert_eq!(d.locations[0].limit_conn, None);
    assert_eq!(d.connect_timeout, Duration::from_secs(5));
    assert_eq!(d.read_timeout, Duration::from_secs(60));
    assert!(d.cache.enabled);
    assert_eq!(d.cache.default_ttl, Duration::from_secs(300));
    assert!(!d.cache.ignore_query);
    assert_eq!(d.cache.max_size, defaults::CACHE_MAX_SIZE);
    assert_eq!(d.cache.stale_grace, defaults::CACHE_STALE_GRACE);
    assert_eq!(
        d.ip_access_limit,
        IpAccessLimitSpec {
            enabled: true,
            qps: Some(10),
            ..IpAccessLimitSpec::default()
        }
    );
    // No [domain.challenge] table: the defaults apply.
    assert_eq!(d.challenge, ChallengeSpec::default());
    assert_eq!(d.challenge.difficulty, 20);
    assert!(!d.challenge.enabled);
    let r = &d.rate_limiting;
    assert!(r.enabled);
    assert_eq!(r.mode, Mode::Custom);
    assert!(!r.parameter_check);
    assert_eq!(r.rules.len(), 1);
    let rule = &r.rules[0];
    assert_eq!(rule.name, "register01");
    assert_eq!(rule.uri, "/register");
    assert_eq!(rule.match_, "prefix");
    assert_eq!(rule.priority, Some(1));
    assert_eq!(rule.object, "ip");
    assert_eq!(rule.interval, 10);
    assert_eq!(rule.criteria, r#""count">50"#);
    assert_eq!(rule.action, "block");
    assert_eq!(rule.ttl, 600);
}

#[test]
fn shared_copy_matches_the_repository_copy() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/full.toml");
    // The shared tree sits beside the repository on developer machines and in CI; skip where it does not.
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert!(parse_with_env(&text, |_| None).is_ok());
    }
}

#[test]
fn full_example_round_trips() {
    let c = parse_with_env(&example(), |_| None).unwrap();
    let text = to_toml(&c);
    match parse_with_env(&text, |_| None) {
        Ok(back) => assert_eq!(back, c, "exported:\n{text}"),
        Err(e) => panic!("export rejected:\n{e}\n---\n{text}"),
    }
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full.toml");
    assert!(load(&path).is_ok());
    let missing = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such-file.toml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.errors[0].line, 0);
    assert!(e.errors[0].key.ends_with("no-such-file.toml"));
    assert!(
        e.to_string().contains("cannot read the configuration file"),
        "{e}"
    );
}
