//! Every validation error of SPEC section 4, with the message an operator sees.

use edgeguard_rules::{RuleError, RuleSet, RuleSpec, validate_rules};

fn spec(name: &str) -> RuleSpec {
    RuleSpec {
        name: name.to_owned(),
        uri: "/register".to_owned(),
        match_: "prefix".to_owned(),
        priority: Some(1),
        object: "ip".to_owned(),
        interval: 10,
        criteria: r#""count">50"#.to_owned(),
        action: "block".to_owned(),
        ttl: 600,
        scope: None,
    }
}

fn errors(specs: &[RuleSpec]) -> Vec<RuleError> {
    let errs = validate_rules(specs).expect_err("should be rejected");
    // compile reports the same errors (it runs every check validate_rules runs).
    assert_eq!(
        RuleSet::compile(specs, true).expect_err("compile should reject too"),
        errs
    );
    errs
}

/// The single error of a one-rule list built by `edit`: (field, message).
fn one(edit: impl FnOnce(&mut RuleSpec)) -> (&'static str, String) {
    let mut s = spec("register01");
    edit(&mut s);
    let errs = errors(&[s]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].index, Some(0));
    (errs[0].field, errs[0].message.clone())
}

#[test]
fn valid_rules_pass() {
    assert_eq!(validate_rules(&[]), Ok(()));
    let mut specs: Vec<RuleSpec> = ["abcd", "Rule2", "x23456789012345678901234567890"]
        .iter()
        .map(|n| spec(n))
        .collect();
    specs[1].match_ = "fuzzy".to_owned();
    specs[1].uri = "/api/*/v.".to_owned();
    specs[1].priority = None;
    specs[1].object = "header:X-Api-Key".to_owned();
    specs[1].interval = 600;
    specs[1].action = "bot_detection".to_owned();
    specs[1].ttl = 60;
    specs[2].match_ = "exact".to_owned();
    specs[2].object = "param:uid".to_owned();
    specs[2].priority = Some(0);
    specs[2].ttl = 30 * 24 * 3600;
    specs[2].criteria =
        r#""status_ratio|404">60% && "count">50 || ("status_count|5xx">=10)"#.to_owned();
    assert_eq!(validate_rules(&specs), Ok(()));
    let mut domain = spec("domain1");
    domain.object = "domain".to_owned();
    assert_eq!(validate_rules(&[domain]), Ok(()));
}

#[test]
fn at_most_five_rules() {
    let specs: Vec<RuleSpec> = (0..7).map(|i| spec(&format!("rule{i}"))).collect();
    let errs = errors(&specs);
    assert_eq!(
        errs,
        vec![RuleError {
            index: None,
            rule: String::new(),
            field: "rules",
            message: "at most 5 rules per domain; found 7".to_owned(),
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "rules: at most 5 rules per domain; found 7"
    );
    assert!(validate_rules(&specs[..5]).is_ok());
}

#[test]
fn name() {
    let set = |n: &str| {
        let n = n.to_owned();
        move |s: &mut RuleSpec| s.name = n
    };
    assert_eq!(
        one(set("abc")),
        (
            "name",
            "name must be 4 to 30 characters long; found 3".to_owned()
        )
    );
    assert_eq!(
        one(set("")),
        (
            "name",
            "name must be 4 to 30 characters long; found 0".to_owned()
        )
    );
    assert_eq!(
        one(set(&"a".repeat(31))),
        (
            "name",
            "name must be 4 to 30 characters long; found 31".to_owned()
        )
    );
    assert_eq!(
        one(set("reg-01")),
        (
            "name",
            "name may contain only ASCII letters and digits; found '-' at character 4".to_owned()
        )
    );
    assert_eq!(
        one(set("reg 01")),
        (
            "name",
            "name may contain only ASCII letters and digits; found ' ' at character 4".to_owned()
        )
    );
    assert_eq!(
        one(set("régle")),
        (
            "name",
            "name may contain only ASCII letters and digits; found 'é' at character 2".to_owned()
        )
    );
}

#[test]
fn names_are_unique_ignoring_case() {
    let errs = errors(&[spec("login01"), spec("other01"), spec("LOGIN01")]);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].index, errs[0].field, errs[0].rule.as_str()),
        (Some(2), "name", "LOGIN01")
    );
    assert_eq!(
        errs[0].message,
        "name \"LOGIN01\" is already used by rule 1 (\"login01\"); names must be unique within the domain, ignoring case"
    );
    assert_eq!(
        errs[0].to_string(),
        "rule \"LOGIN01\": name: name \"LOGIN01\" is already used by rule 1 (\"login01\"); names must be unique \
         within the domain, ignoring case"
    );
}

#[test]
fn uri() {
    let set = |u: &str| {
        let u = u.to_owned();
        move |s: &mut RuleSpec| s.uri = u
    };
    assert_eq!(
        one(set("")),
        (
            "uri",
            "uri is empty; write a path such as /register".to_owned()
        )
    );
    assert_eq!(
        one(set("register")),
        (
            "uri",
            "uri must start with '/'; found \"register\"".to_owned()
        )
    );
    assert_eq!(
        one(set("/a b")),
        ("uri", "uri may not contain spaces or control characters (found ' '); write them percent-encoded, e.g. %20".to_owned())
    );
    assert_eq!(
        one(set("/a#top")),
        (
            "uri",
            "uri may not contain '#': clients never send the fragment".to_owned()
        )
    );
    assert_eq!(
        one(set(&format!("/{}", "a".repeat(2048)))),
        (
            "uri",
            "uri is too long (2049 bytes; at most 2048)".to_owned()
        )
    );
}

#[test]
fn uri_with_query_needs_parameter_check() {
    let mut s = spec("login01");
    s.uri = "/user?action=login".to_owned();
    // validate_rules does not know the domain's setting; compile does.
    assert!(validate_rules(std::slice::from_ref(&s)).is_ok());
    assert!(RuleSet::compile(std::slice::from_ref(&s), true).is_ok());
    let errs = RuleSet::compile(&[s], false).expect_err("query without parameter_check");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "uri");
    assert_eq!(
        errs[0].message,
        "uri has a query string ('?'), which is only compared when parameter_check is on; turn parameter_check on \
         or remove the query"
    );
}

#[test]
fn match_kind() {
    assert_eq!(
        one(|s| s.match_ = "regex".to_owned()),
        (
            "match",
            "match must be \"exact\", \"prefix\" or \"fuzzy\"; found \"regex\"".to_owned()
        )
    );
    assert_eq!(one(|s| s.match_ = "Exact".to_owned()).0, "match");
}

#[test]
fn priority() {
    assert_eq!(
        one(|s| s.priority = Some(-1)),
        (
            "priority",
            "priority must be between 0 and 9999 (lower runs first); found -1".to_owned()
        )
    );
    assert_eq!(one(|s| s.priority = Some(10_000)).0, "priority");
    assert!(
        validate_rules(&[RuleSpec {
            priority: Some(9999),
            ..spec("abcd")
        }])
        .is_ok()
    );
}

#[test]
fn object() {
    let set = |o: &str| {
        let o = o.to_owned();
        move |s: &mut RuleSpec| s.object = o
    };
    assert_eq!(
        one(set("IP")),
        (
            "object",
            "object must be \"ip\", \"domain\", \"header:NAME\" or \"param:NAME\"; found \"IP\""
                .to_owned()
        )
    );
    assert_eq!(one(set("cookie:sid")).0, "object");
    assert_eq!(
        one(set("header:")),
        (
            "object",
            "\"header:\" needs a header name, as in \"header:User-Agent\"".to_owned()
        )
    );
    assert_eq!(
        one(set("header:X Forwarded")),
        (
            "object",
            "\"X Forwarded\" is not a valid header name: it may contain only letters, digits and !#$%&'*+-.^_`|~"
                .to_owned()
        )
    );
    assert_eq!(one(set("header:a:b")).0, "object");
    assert_eq!(
        one(set("param:")),
        (
            "object",
            "\"param:\" needs a query parameter name, as in \"param:uid\"".to_owned()
        )
    );
    assert_eq!(
        one(set("param:a=b")),
        ("object", "\"a=b\" is not a valid parameter name: it may not contain '&', '=', '#', spaces or control characters".to_owned())
    );
}

#[test]
fn interval() {
    for bad in [9, 601, -10, 0] {
        assert_eq!(
            one(|s| s.interval = bad),
            (
                "interval",
                format!("interval must be between 10 and 600 seconds; found {bad}")
            )
        );
    }
}

#[test]
fn criteria_errors_carry_the_column() {
    assert_eq!(
        one(|s| s.criteria = r#""status_ratio|404">60%&"count">50"#.to_owned()),
        (
            "criteria",
            "column 23: expected '&&', found a single '&'".to_owned()
        )
    );
    assert_eq!(
        one(|s| s.criteria = String::new()),
        (
            "criteria",
            "column 1: criteria is empty; write a condition such as \"count\">50".to_owned()
        )
    );
}

#[test]
fn action() {
    assert_eq!(
        one(|s| s.action = "deny".to_owned()),
        (
            "action",
            "action must be \"block\", \"bot_detection\" or \"log\"; found \"deny\"".to_owned()
        )
    );
}

#[test]
fn ttl() {
    assert_eq!(
        one(|s| s.ttl = 59),
        (
            "ttl",
            "ttl must be at least 60 seconds; found 59".to_owned()
        )
    );
    assert_eq!(
        one(|s| s.ttl = -1),
        (
            "ttl",
            "ttl must be at least 60 seconds; found -1".to_owned()
        )
    );
    assert_eq!(
        one(|s| s.ttl = 2_592_001),
        (
            "ttl",
            "ttl must be at most 2592000 seconds (30 days); found 2592001".to_owned()
        )
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    let bad = RuleSpec {
        name: "x".to_owned(),
        uri: "x".to_owned(),
        match_: "glob".to_owned(),
        priority: Some(-5),
        object: "user".to_owned(),
        interval: 1,
        criteria: "count".to_owned(),
        action: "kill".to_owned(),
        ttl: 1,
        scope: None,
    };
    let mut specs: Vec<RuleSpec> = (0..5).map(|i| spec(&format!("rule{i}"))).collect();
    specs.insert(1, bad);
    let errs = errors(&specs);
    let fields: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.index, e.field)).collect();
    assert_eq!(
        fields,
        vec![
            (None, "rules"),
            (Some(1), "name"),
            (Some(1), "uri"),
            (Some(1), "match"),
            (Some(1), "priority"),
            (Some(1), "object"),
            (Some(1), "interval"),
            (Some(1), "criteria"),
            (Some(1), "action"),
            (Some(1), "ttl"),
        ]
    );
    assert!(errs.iter().skip(1).all(|e| e.rule == "x"));
}

#[test]
fn log_action_and_scope() {
    assert!(
        validate_rules(&[RuleSpec {
            action: "log".to_owned(),
            scope: Some("cluster".to_owned()),
            ..spec("trial")
        }])
        .is_ok()
    );
    let set = RuleSet::compile(
        &[RuleSpec {
            action: "log".to_owned(),
            scope: Some("node".to_owned()),
            ..spec("trial")
        }],
        false,
    )
    .unwrap();
    let rule = set.rules().first().unwrap();
    assert_eq!(rule.action, edgeguard_rules::Action::Log);
    assert!(!rule.action.enforces());
    assert_eq!(rule.scope, Some(edgeguard_rules::Scope::Node));
    assert_eq!(
        one(|s| s.scope = Some("global".to_owned())),
        (
            "scope",
            "expected \"node\" or \"cluster\", found \"global\"".to_owned()
        )
    );
}
