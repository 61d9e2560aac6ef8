//! Rule order, the first matching rule, parameter check, and object keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgeguard_rules::{Action, MatchKind, Object, RequestView, RuleSet, RuleSpec, StatusSel};

fn rule(name: &str, match_: &str, uri: &str, priority: Option<i64>) -> RuleSpec {
    RuleSpec {
        name: name.to_owned(),
        uri: uri.to_owned(),
        match_: match_.to_owned(),
        priority,
        object: "ip".to_owned(),
        interval: 10,
        criteria: r#""count">50"#.to_owned(),
        action: "block".to_owned(),
        ttl: 600,
        scope: None,
    }
}

fn compile(specs: &[RuleSpec], parameter_check: bool) -> RuleSet {
    match RuleSet::compile(specs, parameter_check) {
        Ok(set) => set,
        Err(errs) => panic!("rules should compile: {errs:?}"),
    }
}

fn order(set: &RuleSet) -> Vec<&str> {
    set.rules().iter().map(|r| r.name.as_str()).collect()
}

fn first<'a>(set: &'a RuleSet, path: &str, query: Option<&str>) -> Option<&'a str> {
    set.first_match(path, query).map(|(i, r)| {
        assert_eq!(&set.rules()[i], r);
        r.name.as_str()
    })
}

#[test]
fn default_order_is_exact_prefix_fuzzy_then_list_position() {
    let set = compile(
        &[
            rule("fuzzy1", "fuzzy", "/reg*", None),
            rule("prefix1", "prefix", "/reg", None),
            rule("exact1", "exact", "/register", None),
            rule("prefix2", "prefix", "/register", None),
            rule("fuzzy2", "fuzzy", "/*", None),
        ],
        false,
    );
    assert_eq!(
        order(&set),
        ["exact1", "prefix1", "prefix2", "fuzzy1", "fuzzy2"]
    );
    assert_eq!(first(&set, "/register", None), Some("exact1"));
    assert_eq!(first(&set, "/register.html", None), Some("prefix1"));
    assert_eq!(first(&set, "/regx", None), Some("prefix1"));
    assert_eq!(first(&set, "/re", None), Some("fuzzy2"));
    let kinds: Vec<MatchKind> = set.rules().iter().map(|r| r.matcher.kind()).collect();
    assert_eq!(
        kinds,
        [
            MatchKind::Exact,
            MatchKind::Prefix,
            MatchKind::Prefix,
            MatchKind::Fuzzy,
            MatchKind::Fuzzy
        ]
    );
}

#[test]
fn priorities_come_first_lower_first() {
    let set = compile(
        &[
            rule("exact1", "exact", "/register", None),
            rule("fuzzy1", "fuzzy", "/reg*", Some(2)),
            rule("prefix1", "prefix", "/", Some(1)),
            rule("prefix2", "prefix", "/reg", None),
        ],
        false,
    );
    // Explicit priorities before the rules without one, whatever their kind.
    assert_eq!(order(&set), ["prefix1", "fuzzy1", "exact1", "prefix2"]);
    assert_eq!(first(&set, "/register", None), Some("prefix1"));
    assert_eq!(set.rules()[0].priority, Some(1));
}

#[test]
fn equal_priorities_fall_back_to_kind_then_position() {
    let set = compile(
        &[
            rule("fuzzy1", "fuzzy", "/a*", Some(5)),
            rule("prefix1", "prefix", "/a", Some(5)),
            rule("prefix2", "prefix", "/b", Some(5)),
            rule("exact1", "exact", "/a", Some(5)),
            rule("zero", "fuzzy", "/*", Some(0)),
        ],
        false,
    );
    assert_eq!(
        order(&set),
        ["zero", "exact1", "prefix1", "prefix2", "fuzzy1"]
    );
}

#[test]
fn parameter_check_compares_the_query() {
    let specs = [
        rule("login01", "exact", "/user?action=login", None),
        rule("user01", "prefix", "/user", None),
    ];
    let set = compile(&specs, true);
    assert!(set.parameter_check());
    assert_eq!(first(&set, "/user", Some("action=login")), Some("login01"));
    assert_eq!(
        first(&set, "/user", Some("action=%6cogin")),
        Some("login01")
    );
    assert_eq!(first(&set, "/user", Some("action=logout")), Some("user01"));
    assert_eq!(first(&set, "/user", None), Some("user01"));

    // Without parameter check only the path is compared: an exact rule on a path ignores the query.
    let set = compile(&[rule("exact1", "exact", "/search", None)], false);
    assert_eq!(first(&set, "/search", Some("q=1")), Some("exact1"));
    let set = compile(&[rule("exact1", "exact", "/search", None)], true);
    assert_eq!(first(&set, "/search", Some("q=1")), None);
    assert_eq!(first(&set, "/search", None), Some("exact1"));
    // A fuzzy rule sees `?query` only with parameter check.
    let set = compile(&[rule("fuzzy1", "fuzzy", "/s*q=1", None)], true);
    assert_eq!(first(&set, "/search", Some("q=1")), Some("fuzzy1"));
    let set = compile(&[rule("fuzzy1", "fuzzy", "/s*1", None)], false);
    assert_eq!(first(&set, "/search", Some("q=1")), None);
}

#[test]
fn no_rule_matches() {
    let set = compile(&[rule("exact1", "exact", "/a", None)], false);
    assert_eq!(first(&set, "/b", None), None);
    assert!(RuleSet::default().first_match("/", None).is_none());
    assert!(RuleSet::default().is_empty());
}

#[test]
fn compiled_fields() {
    let mut spec = rule("login01", "prefix", "/login", Some(3));
    spec.object = "header:X-Api-Key".to_owned();
    spec.criteria = r#""status_ratio|4xx">50% && "status_count|401">5"#.to_owned();
    spec.action = "bot_detection".to_owned();
    spec.interval = 30;
    spec.ttl = 120;
    let set = compile(&[spec], false);
    let r = &set.rules()[0];
    assert_eq!(r.object, Object::Header("x-api-key".to_owned()));
    assert_eq!(r.action, Action::BotDetection);
    assert_eq!(r.action.http_status(), 200);
    assert_eq!(Action::Block.http_status(), 403);
    assert_eq!((r.interval_s, r.ttl_s, r.position), (30, 120, 0));
    assert_eq!(
        r.criteria.tracked(),
        [StatusSel::Class(4), StatusSel::Code(401)]
    );
    assert_eq!(r.matcher.pattern(), "/login");
}

struct Req {
    ip: IpAddr,
    host: &'static str,
    headers: Vec<(&'static str, &'static [u8])>,
    query: Option<&'static str>,
}

impl RequestView for Req {
    fn client_ip(&self) -> IpAddr {
        self.ip
    }
    fn host(&self) -> &str {
        self.host
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
}

fn req() -> Req {
    Req {
        ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        host: "WWW.Example.com:8080",
        headers: vec![("x-api-key", b"k1"), ("x-empty", b"")],
        query: Some("a=1&u%69d=al%69ce+b&uid=second&flag&pct=%zz"),
    }
}

fn key(object: &str, r: &Req) -> Option<String> {
    let object = Object::parse(object).expect("valid object");
    let mut buf = b"stale".to_vec();
    object
        .key_into(r, &mut buf)
        .then(|| String::from_utf8(buf).expect("utf-8 key"))
}

#[test]
fn object_keys() {
    let r = req();
    assert_eq!(key("ip", &r).as_deref(), Some("203.0.113.7"));
    assert_eq!(key("domain", &r).as_deref(), Some("www.example.com"));
    assert_eq!(key("header:X-Api-Key", &r).as_deref(), Some("k1"));
    assert_eq!(key("header:x-empty", &r).as_deref(), Some(""));
    assert_eq!(key("header:x-missing", &r), None);
    // Decoded names and values; the first occurrence wins; `+` is a space.
    assert_eq!(key("param:uid", &r).as_deref(), Some("alice b"));
    assert_eq!(key("param:a", &r).as_deref(), Some("1"));
    assert_eq!(key("param:flag", &r).as_deref(), Some(""));
    assert_eq!(key("param:pct", &r).as_deref(), Some("%zz"));
    assert_eq!(key("param:missing", &r), None);
    assert_eq!(
        key(
            "param:uid",
            &Req {
                query: None,
                ..req()
            }
        ),
        None
    );

    let v6 = Req {
        ip: IpAddr::V6(Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped()),
        host: "[2001:db8::1]:443",
        ..req()
    };
    assert_eq!(key("ip", &v6).as_deref(), Some("198.51.100.1"));
    assert_eq!(key("domain", &v6).as_deref(), Some("2001:db8::1"));
    let v6 = Req {
        ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        host: "example.com",
        ..req()
    };
    assert_eq!(key("ip", &v6).as_deref(), Some("::1"));
    assert_eq!(key("domain", &v6).as_deref(), Some("example.com"));
}

#[test]
fn objects_print_canonically() {
    for (input, shown, kind) in [
        ("ip", "ip", "ip"),
        ("domain", "domain", "domain"),
        ("header:User-Agent", "header:user-agent", "header"),
        ("param:uid", "param:uid", "param"),
    ] {
        let object = Object::parse(input).expect("valid");
        assert_eq!(object.to_string(), shown);
        assert_eq!(object.kind(), kind);
    }
}

proptest::proptest! {
    /// The client key of an IPv4 address is its `Display` text; an IPv6 one is its prefix in CIDR form.
    #[test]
    fn ip_keys_are_display_text(v4 in proptest::prelude::any::<[u8; 4]>(), v6 in proptest::prelude::any::<[u8; 16]>()) {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let mut buf = Vec::new();
        let a = Ipv4Addr::from(v4);
        edgeguard_rules::ip_key_into(IpAddr::V4(a), 64, &mut buf);
        proptest::prop_assert_eq!(&buf, &a.to_string().into_bytes());
        let b = Ipv6Addr::from(v6);
        edgeguard_rules::ip_key_into(IpAddr::V6(b), 128, &mut buf);
        proptest::prop_assert_eq!(&buf, &b.to_string().into_bytes());
    }
}
