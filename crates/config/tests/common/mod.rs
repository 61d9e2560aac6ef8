//! Helpers shared by the configuration tests.
#![allow(dead_code)]

use edgeguard_config::{Config, ConfigError, ConfigErrors, parse_with_env};

/// A valid file without domains: one node, one zone of each kind.
pub const BASE: &str = r#"[node]
name = "n1"
listen = ["127.0.0.1:8080"]

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "10m"
rate = "10r/s"

[[limit_conn_zone]]
name = "addr"
key = "$binary_remote_addr"
size = "10m"
"#;

/// `BASE` plus a domain whose body is `body` (after `name` and `origins`).
pub fn with_domain(body: &str) -> String {
    format!("{BASE}\n[[domain]]\nname = \"a.example\"\norigins = [\"127.0.0.1:8081\"]\n{body}")
}

pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_with_env(text, |_| None)
}

pub fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(_) => panic!("accepted, expected errors:\n{text}"),
        Err(e) => e.errors,
    }
}

/// 1-based line of the first line of `text` holding `marker`.
pub fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("marker {marker:?} not in:\n{text}"))
        + 1
}

/// Asserts that `text` fails with exactly one error, at `key`, on the line marked `# here`, whose message
/// contains `needle`.
pub fn one_error(text: &str, key: &str, needle: &str) {
    let errs = errors(text);
    assert_eq!(
        errs.len(),
        1,
        "expected one error, got:\n{errs:#?}\n---\n{text}"
    );
    let e = &errs[0];
    assert_eq!(e.key, key, "{e:?}");
    assert_eq!(e.line, line_of(text, "# here"), "{e:?}\n---\n{text}");
    assert!(
        e.message.contains(needle),
        "message {:?} lacks {needle:?}",
        e.message
    );
}
