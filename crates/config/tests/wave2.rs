//! `examples/wave2.toml` (SPEC section 9) is accepted when the certificate files it names exist, reads as
//! written, round-trips through `to_toml`, and each new key refuses a bad value with its key and line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeguard_config::*;

/// A real self-signed certificate and its key: `check` loads them as the node would.
fn cert_and_key() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wave2.toml");
    std::fs::read_to_string(path).expect("examples/wave2.toml is in the repository")
}

/// A folder with the example and the certificate files it names.
fn folder(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let (cert, key) = cert_and_key();
    std::fs::write(dir.path().join("certs/www.example.com.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("certs/www.example.com.key"), key).unwrap();
    std::fs::write(dir.path().join("certs/origin-ca.pem"), cert).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/crawlers");
    std::fs::create_dir(dir.path().join("crawlers")).unwrap();
    for name in ["googlebot.json", "bingbot.txt"] {
        std::fs::copy(examples.join(name), dir.path().join("crawlers").join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("crawlers/broken.txt"),
        "157.55.39.0/24\n157.55.39.0/99\n",
    )
    .unwrap();
    let file = dir.path().join("edgeguard.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn wave2_example_reads_as_written() {
    let (dir, file) = folder(&example());
    let c = match load(&file) {
        Ok(c) => c,
        Err(e) => panic!("wave2.toml rejected:\n{e}"),
    };
    let n = &c.node;
    assert_eq!(n.listen_tls, vec!["127.0.0.1:8443".parse().unwrap()]);
    assert_eq!(n.ipv6_prefix, 64);
    assert_eq!(n.blocks_size, 8 << 20);
    assert_eq!(n.good_crawlers.len(), 2);
    // Three prefixes in the JSON list, three lines in the plain one.
    assert_eq!(n.good_crawler_nets.len(), 6);
    assert!(
        n.good_crawler_nets
            .iter()
            .any(|r| r.contains("66.249.66.5".parse().unwrap()))
    );
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.redis_urls, vec!["redis://127.0.0.1:6379".to_owned()]);
    assert_eq!(cl.sync_interval, Duration::from_millis(100));
    assert_eq!(cl.on_redis_failure, RedisFailure::Local);
    assert_eq!(c.limit_req_zones[0].scope, Scope::Node);
    let d = &c.domains[0];
    assert!(d.https_redirect);
    let tls = d.tls.as_ref().unwrap();
    assert_eq!(tls.cert, dir.path().join("certs/www.example.com.pem"));
    assert_eq!(tls.key, dir.path().join("certs/www.example.com.key"));
    assert!(d.upstream_tls.enabled);
    assert_eq!(
        d.upstream_tls.ca.as_deref(),
        Some(dir.path().join("certs/origin-ca.pem").as_path())
    );
    assert_eq!(
        d.upstream_tls.server_name.as_deref(),
        Some("origin.example.com")
    );
    assert_eq!(d.access_control.allow.len(), 2);
    assert!(d.access_control.allow[1].contains("2001:db8::1".parse().unwrap()));
    assert!(d.access_control.deny[0].contains("198.51.100.7".parse().unwrap()));
    assert_eq!(
        d.cache.disk_path.as_deref(),
        Some(Path::new("./data/cache"))
    );
    assert_eq!(d.cache.disk_size, 1 << 30);
    assert_eq!(d.ip_access_limit.scope, Scope::Node);
    assert_eq!(d.ip_access_limit.table_size, 16 << 20);
    assert_eq!(d.rate_limiting.table_size, 32 << 20);
    let rule = &d.rate_limiting.rules[0];
    assert_eq!(rule.action, "log");
    assert_eq!(rule.scope.as_deref(), Some("cluster"));

    // Written out and read back (certificate paths are absolute by now), the same model.
    let again = parse_in(&to_toml(&c), dir.path(), |_| None).unwrap();
    assert_eq!(again, c);
}

#[test]
fn defaults_of_the_new_keys() {
    let text = "[node]\nname = \"n\"\nlisten = [\"127.0.0.1:8080\"]\n\n[[domain]]\nname = \"a.example\"\norigins = [\"127.0.0.1:1\"]\n";
    let c = parse_with_env(text, |_| None).unwrap();
    assert!(c.node.listen_tls.is_empty());
    assert_eq!(c.node.ipv6_prefix, defaults::IPV6_PREFIX);
    assert_eq!(c.node.blocks_size, defaults::BLOCKS_SIZE);
    let d = &c.domains[0];
    assert!(!d.https_redirect);
    assert_eq!(d.tls, None);
    assert_eq!(d.upstream_tls, UpstreamTlsSpec::default());
    assert_eq!(d.access_control, AccessControlSpec::default());
    assert_eq!(
        d.ip_access_limit.table_size,
        defaults::IP_ACCESS_LIMIT_TABLE_SIZE
    );
    assert_eq!(
        d.rate_limiting.table_size,
        defaults::RATE_LIMITING_TABLE_SIZE
    );
    // With the defaults, one domain's protection tables stay within SPEC 9.1's 256 MiB and hold 1,000,000
    // clients in the IP access limit and in each of five rules (without status selectors).
    const {
        assert!(
            defaults::IP_ACCESS_LIMIT_TABLE_SIZE + defaults::RATE_LIMITING_TABLE_SIZE <= 256 << 20
        )
    };
    use edgeguard_limit::{DEFAULT_TRACKED_CLIENTS as CLIENTS, Eviction::FrequencyAware as FA};
    use edgeguard_limit::{persec::PerSecondTable, window::WindowTable};
    const {
        assert!(
            defaults::IP_ACCESS_LIMIT_TABLE_SIZE as usize >= PerSecondTable::size_for(CLIENTS, FA)
        );
        assert!(
            defaults::RATE_LIMITING_TABLE_SIZE as usize
                >= 5 * WindowTable::size_for(CLIENTS, 0, FA)
        );
    };
}

/// The error of `text` (one expected) has `key`, the line marked `# here`, and a message containing `what`.
fn one_error(file: &Path, text: &str, key: &str, what: &str) {
    std::fs::write(file, text).unwrap();
    let errors = match load(file) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    let want_line = text
        .lines()
        .position(|l| l.contains("# here"))
        .map(|i| i + 1)
        .expect("marked line");
    let e = errors
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key}: {errors}"));
    assert_eq!(e.line, want_line, "{e}");
    assert!(e.message.contains(what), "{e}");
}

#[test]
fn bad_values_name_their_key_and_line() {
    let base = example();
    let (dir, file) = folder(&base);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "ipv6_prefix = 64",
            "ipv6_prefix = 32 # here",
            "node.ipv6_prefix",
            "48..=128",
        ),
        (
            "blocks_size = \"8m\"",
            "blocks_size = \"1k\" # here",
            "node.blocks_size",
            "too small",
        ),
        (
            "listen_tls = [\"127.0.0.1:8443\"]",
            "listen_tls = [\"127.0.0.1:8080\"] # here",
            "node.listen_tls[0]",
            "also in node.listen",
        ),
        (
            "good_crawlers = [\"crawlers/googlebot.json\", \"crawlers/bingbot.txt\"]",
            "good_crawlers = [\"crawlers/broken.txt\"] # here",
            "node.good_crawlers[0]",
            "line 2: invalid address range",
        ),
        (
            "good_crawlers = [\"crawlers/googlebot.json\", \"crawlers/bingbot.txt\"]",
            "good_crawlers = [\"crawlers/missing.json\"] # here",
            "node.good_crawlers[0]",
            "cannot read",
        ),
        (
            "sync_interval_ms = 100",
            "sync_interval_ms = 0 # here",
            "cluster.sync_interval_ms",
            "10..=10000",
        ),
        (
            "on_redis_failure = \"local\"",
            "on_redis_failure = \"maybe\" # here",
            "cluster.on_redis_failure",
            "\"local\", \"open\" or \"closed\"",
        ),
        (
            "on_redis_failure = \"local\"",
            "on_redis_failure = \"local\"\nredis_ca = \"certs/missing.pem\" # here",
            "cluster.redis_ca",
            "cannot read",
        ),
        (
            "on_redis_failure = \"local\"",
            "on_redis_failure = \"local\"\nredis_ca = \"certs/www.example.com.key\" # here",
            "cluster.redis_ca",
            "certificate",
        ),
        (
            "rate = \"10r/s\"\nscope = \"node\"",
            "rate = \"10r/s\"\nscope = \"global\" # here",
            "limit_req_zone[0].scope",
            "\"node\" or \"cluster\"",
        ),
        (
            "cert = \"certs/www.example.com.pem\"",
            "cert = \"certs/missing.pem\" # here",
            "domain[0].tls.cert",
            "cannot read",
        ),
        (
            "key = \"certs/www.example.com.key\"",
            "key = \"certs/www.example.com.pem\" # here",
            "domain[0].tls.key",
            "no PEM private key",
        ),
        (
            "deny = [\"198.51.100.0/24\"]",
            "deny = [\"198.51.100.0/33\"] # here",
            "domain[0].access_control.deny[0]",
            "",
        ),
        (
            "table_size = \"16m\"",
            "table_size = \"1k\" # here",
            "domain[0].ip_access_limit.table_size",
            "too small",
        ),
        (
            "disk_size = \"1g\"",
            "disk_size = \"1k\" # here",
            "domain[0].cache.disk_size",
            "at least 1m",
        ),
    ];
    for (from, to, key, what) in cases {
        assert!(base.contains(from), "{from}");
        one_error(&file, &base.replacen(from, to, 1), key, what);
    }
    // https_redirect with nowhere to redirect to.
    let text = base
        .replace("listen_tls = [\"127.0.0.1:8443\"]\n", "")
        .replace("https_redirect = true", "https_redirect = true # here");
    one_error(
        &file,
        &text,
        "domain[0].https_redirect",
        "needs node.listen_tls",
    );
    drop(dir);
}

/// `[cluster] redis_ca`: a CA file for `rediss://`, resolved beside the file and kept by `to_toml`.
#[test]
fn redis_ca_names_a_certificate_file() {
    let text = example()
        .replace("redis://127.0.0.1:6379", "rediss://127.0.0.1:6380")
        .replace(
            "on_redis_failure = \"local\"",
            "on_redis_failure = \"local\"\nredis_ca = \"certs/origin-ca.pem\"",
        );
    let (dir, file) = folder(&text);
    let c = load(&file).unwrap_or_else(|e| panic!("{e}"));
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.redis_urls, vec!["rediss://127.0.0.1:6380".to_owned()]);
    assert_eq!(cl.redis_ca, Some(dir.path().join("certs/origin-ca.pem")));
    let written = dir.path().join("again.toml");
    std::fs::write(&written, to_toml(&c)).unwrap();
    let again = load(&written).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.cluster, c.cluster);
}
