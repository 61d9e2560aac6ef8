//! `[domain.challenge]`: defaults, accepted values, every validation error with its key and line, and the
//! round trip through `to_toml`.

mod common;

use std::time::Duration;

use common::*;
use edgeguard_config::{ChallengeSpec, defaults, to_toml};

#[test]
fn absent_table_and_empty_table_give_the_defaults() {
    for body in ["", "[domain.challenge]\n"] {
        let c = parse(&with_domain(body)).unwrap();
        let ch = &c.domains[0].challenge;
        assert_eq!(*ch, ChallengeSpec::default());
        assert_eq!(ch.difficulty, 20);
        assert_eq!(ch.clearance_ttl, Duration::from_secs(3600));
        assert!(!ch.enabled);
        assert!(ch.paths.is_empty());
    }
}

#[test]
fn every_setting_is_read() {
    let c = parse(&with_domain(
        "[domain.challenge]\nenabled = true\ndifficulty = 12\nclearance_ttl = \"10m\"\n\
         paths = [\"/login\", \"/api/\", \"/\"]\n",
    ))
    .unwrap();
    let ch = &c.domains[0].challenge;
    assert!(ch.enabled);
    assert_eq!(ch.difficulty, 12);
    assert_eq!(ch.clearance_ttl, Duration::from_secs(600));
    assert_eq!(ch.paths, ["/login", "/api/", "/"]);
    // Bounds are inclusive; a bare integer is seconds.
    for (d, ttl) in [(1, "60"), (32, "7d")] {
        let text = with_domain(&format!(
            "[domain.challenge]\ndifficulty = {d}\nclearance_ttl = {ttl}\n"
        ));
        let text = text.replace("clearance_ttl = 7d", "clearance_ttl = \"7d\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.domains[0].challenge.difficulty, d);
    }
}

#[test]
fn errors_name_the_key_and_line() {
    let table = "[domain.challenge]\n";
    for bad in ["0", "33", "-1", "1000"] {
        one_error(
            &with_domain(&format!("{table}difficulty = {bad} # here")),
            "domain[0].challenge.difficulty",
            "1..=32 bits",
        );
    }
    one_error(
        &with_domain(&format!("{table}difficulty = \"20\" # here")),
        "domain[0].challenge.difficulty",
        "expected an integer",
    );
    for bad in ["\"59s\"", "\"8d\"", "0"] {
        one_error(
            &with_domain(&format!("{table}clearance_ttl = {bad} # here")),
            "domain[0].challenge.clearance_ttl",
            "1m..=7d",
        );
    }
    one_error(
        &with_domain(&format!("{table}clearance_ttl = \"soon\" # here")),
        "domain[0].challenge.clearance_ttl",
        "invalid duration",
    );
    one_error(
        &with_domain(&format!("{table}enabled = \"yes\" # here")),
        "domain[0].challenge.enabled",
        "expected true or false",
    );
    one_error(
        &with_domain(&format!("{table}enable = true # here")),
        "domain[0].challenge.enable",
        "did you mean \"enabled\"",
    );
    one_error(
        &with_domain(&format!("{table}until = 600 # here")),
        "domain[0].challenge.until",
        "unknown key",
    );
    for (bad, needle) in [
        ("\"login\"", "starts with '/'"),
        ("\"/a?b=1\"", "path only"),
        ("\"/a b\"", "spaces"),
        ("\"/a/../b\"", "dot segments"),
        ("\"/%61\"", "escapes"),
        ("7", "expected a string"),
    ] {
        one_error(
            &with_domain(&format!("{table}paths = [\n\"/ok\",\n{bad} # here\n]")),
            "domain[0].challenge.paths[1]",
            needle,
        );
    }
    one_error(
        &with_domain(&format!("{table}paths = [\n\"/x\",\n\"/x\" # here\n]")),
        "domain[0].challenge.paths[1]",
        "listed twice",
    );
    let many: Vec<String> = (0..=defaults::CHALLENGE_MAX_PATHS)
        .map(|i| format!("\"/p{i}\""))
        .collect();
    one_error(
        &with_domain(&format!("{table}paths = [{}] # here", many.join(", "))),
        "domain[0].challenge.paths",
        "at most 32",
    );
    one_error(
        &with_domain("challenge = 1 # here"),
        "domain[0].challenge",
        "expected a table",
    );
}

#[test]
fn several_bad_settings_are_reported_in_one_run() {
    let errs = errors(&with_domain(
        "[domain.challenge]\ndifficulty = 40\nclearance_ttl = \"1s\"\npaths = [\"x\"]\n",
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "domain[0].challenge.difficulty",
            "domain[0].challenge.clearance_ttl",
            "domain[0].challenge.paths[0]"
        ]
    );
}

#[test]
fn round_trips_through_to_toml() {
    for body in [
        "",
        "[domain.challenge]\nenabled = true\ndifficulty = 12\nclearance_ttl = \"90m\"\npaths = [\"/login\", \"/\u{e9}t\u{e9}/\"]\n",
        "[domain.challenge]\nclearance_ttl = 604800\npaths = []\n",
    ] {
        let c = parse(&with_domain(body)).unwrap();
        let text = to_toml(&c);
        assert!(text.contains("[domain.challenge]"), "{text}");
        let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        assert_eq!(back, c, "exported:\n{text}");
    }
}
