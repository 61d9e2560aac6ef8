//! `[domain.rate_limiting]` and its custom rules: errors of the rule model land on the rule's own lines.

mod common;

use common::*;
use edgeguard_config::Mode;

const RULE: &str = r#"
[[domain.rate_limiting.rules]]
name = "register01"
uri = "/register"
match = "prefix"
object = "ip"
interval = 10
criteria = '"count">50'
action = "block"
ttl = 600
"#;

fn rl(head: &str, rules: &str) -> String {
    with_domain(&format!("[domain.rate_limiting]\n{head}\n{rules}"))
}

#[test]
fn modes() {
    let c = parse(&rl("enabled = true\nmode = \"emergency\"", "")).unwrap();
    assert_eq!(c.domains[0].rate_limiting.mode, Mode::Emergency);
    let c = parse(&with_domain("")).unwrap();
    let r = &c.domains[0].rate_limiting;
    assert!(!r.enabled && r.mode == Mode::Normal && !r.parameter_check && r.rules.is_empty());
    one_error(
        &rl("mode = \"strict\" # here", ""),
        "domain[0].rate_limiting.mode",
        "\"normal\", \"emergency\" or \"custom\"",
    );
    one_error(
        &rl("enabled = true\nmode = \"custom\" # here", ""),
        "domain[0].rate_limiting.rules",
        "no rules",
    );
    // Custom mode switched off may be empty.
    parse(&rl("enabled = false\nmode = \"custom\"", "")).unwrap();
    let c = parse(&rl(
        "enabled = true\nmode = \"custom\"\nparameter_check = true",
        RULE,
    ))
    .unwrap();
    assert_eq!(c.domains[0].rate_limiting.rules[0].name, "register01");
    assert!(c.domains[0].rate_limiting.parameter_check);
}

#[test]
fn rule_shape_errors_name_field_and_line() {
    let text = rl(
        "",
        &RULE.replace("interval = 10", "interval = \"10s\" # here"),
    );
    one_error(
        &text,
        "domain[0].rate_limiting.rules[0].interval",
        "invalid type",
    );
    let text = rl(
        "",
        &RULE.replace("ttl = 600", "ttl = 600\ncolour = \"red\" # here"),
    );
    one_error(
        &text,
        "domain[0].rate_limiting.rules[0].colour",
        "unknown key \"colour\"",
    );
    let text = rl(
        "",
        &RULE.replace("action = \"block\"", "actoin = \"block\" # here"),
    );
    // The typo is reported, and the then-missing `action` is not reported a second time.
    one_error(
        &text,
        "domain[0].rate_limiting.rules[0].actoin",
        "did you mean \"action\"",
    );
    let text = rl(
        "",
        &RULE
            .replace(
                "[[domain.rate_limiting.rules]]",
                "[[domain.rate_limiting.rules]] # here",
            )
            .replace("ttl = 600\n", ""),
    );
    one_error(&text, "domain[0].rate_limiting.rules[0].ttl", "missing");
    // Two bad fields in one rule: both reported.
    let text = rl(
        "",
        &RULE
            .replace("interval = 10", "interval = true")
            .replace("ttl = 600", "ttl = \"x\""),
    );
    let errs = errors(&text);
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "domain[0].rate_limiting.rules[0].interval",
            "domain[0].rate_limiting.rules[0].ttl"
        ]
    );
    assert_eq!(errs[0].line, line_of(&text, "interval = true"));
    assert_eq!(errs[1].line, line_of(&text, "ttl = \"x\""));
}

#[test]
fn rule_model_errors_land_on_the_field_line() {
    // Checked by edgeguard_rules::validate_rules (SPEC section 4): interval 10..=600.
    let text = rl("", &RULE.replace("interval = 10", "interval = 5 # here"));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "domain[0].rate_limiting.rules[0].interval");
    assert_eq!(errs[0].line, line_of(&text, "# here"));
    assert!(!errs[0].message.is_empty());

    let second = RULE.replace(
        "[[domain.rate_limiting.rules]]",
        "[[domain.rate_limiting.rules]]\n# second",
    );
    let text = rl("", &format!("{RULE}{second}"));
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.key == "domain[0].rate_limiting.rules[1].name"
                && e.line == line_of(&text, "# second") + 1),
        "duplicate rule name not on the second rule's name line: {errs:#?}"
    );
}

#[test]
fn too_many_rules_is_a_list_error() {
    let rules: String = (0..6)
        .map(|i| RULE.replace("register01", &format!("rule{i}abc")))
        .collect();
    let text = rl("enabled = true\nmode = \"custom\"", &rules);
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.key == "domain[0].rate_limiting.rules"),
        "{errs:#?}"
    );
}

#[test]
fn a_query_in_a_rule_uri_needs_parameter_check() {
    let rule = RULE.replace("uri = \"/register\"", "uri = \"/user?action=login\" # here");
    one_error(
        &rl("enabled = true\nmode = \"custom\"", &rule),
        "domain[0].rate_limiting.rules[0].uri",
        "parameter_check",
    );
    parse(&rl(
        "enabled = true\nmode = \"custom\"\nparameter_check = true",
        &rule,
    ))
    .unwrap();
}
