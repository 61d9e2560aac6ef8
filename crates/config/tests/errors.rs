//! One test per validation error: the key, the line and the message an operator sees.

mod common;

use common::*;

#[test]
fn base_is_valid() {
    let c = parse(BASE).unwrap();
    assert!(c.domains.is_empty());
    parse(&with_domain("")).unwrap();
}

#[test]
fn unknown_keys_are_errors_with_a_hint() {
    let text = BASE.replace("name = \"n1\"", "name = \"n1\"\nlisten_on = [] # here");
    one_error(&text, "node.listen_on", "unknown key \"listen_on\"");
    let text = format!("{BASE}\nbogus = 1 # here\n");
    // A bare key after a table header belongs to that table.
    one_error(&text, "limit_conn_zone[0].bogus", "unknown key");
    let text = format!("[nodes] # here\nname = \"x\"\n{}", BASE);
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.key == "nodes" && e.line == 1),
        "{errs:#?}"
    );
    one_error(
        &with_domain("limt_req = [] # here"),
        "domain[0].limt_req",
        "did you mean \"limit_req\"",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\", brust = 2 }] # here"),
        "domain[0].limit_req[0].brust",
        "did you mean \"burst\"",
    );
    one_error(
        &with_domain("[domain.cache]\nenable = true # here"),
        "domain[0].cache.enable",
        "did you mean \"enabled\"",
    );
}

#[test]
fn wrong_types_name_the_key() {
    one_error(
        &with_domain("explain = \"yes\" # here"),
        "domain[0].explain",
        "expected true or false, found a string",
    );
    one_error(
        &with_domain("limit_req_status = \"503\" # here"),
        "domain[0].limit_req_status",
        "expected an integer",
    );
    one_error(
        &with_domain("parents = [\"127.0.0.1:9\", 5] # here"),
        "domain[0].parents[1]",
        "expected a string",
    );
    let text = BASE.replace("[\"127.0.0.1:8080\"]", "\"127.0.0.1:8080\" # here");
    one_error(&text, "node.listen", "expected an array of strings");
}

#[test]
fn missing_node_table() {
    let text = "[admin]\nlisten = \"127.0.0.1:9090\"\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!((errs[0].key.as_str(), errs[0].line), ("node", 1));
}

#[test]
fn node_keys() {
    let text = BASE.replace("name = \"n1\"\n", "");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].key.as_str(), errs[0].line), ("node.name", 1));
    assert!(errs[0].message.contains("missing"));

    let text = BASE.replace("name = \"n1\"", "name = \"n 1\" # here");
    one_error(&text, "node.name", "letters, digits");
    let text = BASE.replace("name = \"n1\"", "name = \"n1\"\ntier = \"l2\" # here");
    one_error(&text, "node.tier", "expected \"edge\" or \"parent\"");
    let text = BASE.replace("[\"127.0.0.1:8080\"]", "[] # here");
    one_error(&text, "node.listen", "at least one");
    let text = BASE.replace("[\"127.0.0.1:8080\"]", "[\"127.0.0.1\"] # here");
    one_error(&text, "node.listen[0]", "not a socket address");
    let text = BASE.replace(
        "[\"127.0.0.1:8080\"]",
        "[\"127.0.0.1:8080\", \"127.0.0.1:8080\"] # here",
    );
    one_error(&text, "node.listen[1]", "listed twice");
    let text = BASE.replace(
        "name = \"n1\"",
        "name = \"n1\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"] # here",
    );
    one_error(&text, "node.trusted_proxies[1]", "prefix length 40");
    let text = BASE.replace(
        "name = \"n1\"",
        "name = \"n1\"\nheader_timeout = \"10x\" # here",
    );
    one_error(&text, "node.header_timeout", "invalid duration");
    let text = BASE.replace("name = \"n1\"", "name = \"n1\"\nbody_timeout = 0 # here");
    one_error(&text, "node.body_timeout", "longer than zero");
    let text = BASE.replace(
        "name = \"n1\"",
        "name = \"n1\"\nmax_header_size = \"100\" # here",
    );
    one_error(&text, "node.max_header_size", "at least 1k");
    let text = BASE.replace("name = \"n1\"", "name = \"n1\"\nmax_body_size = 0 # here");
    one_error(&text, "node.max_body_size", "at least 1");
    let text = BASE.replace(
        "name = \"n1\"",
        "name = \"n1\"\naccess_log_format = \"apache\" # here",
    );
    one_error(&text, "node.access_log_format", "\"json\" or \"combined\"");
}

#[test]
fn node_defaults() {
    let c = parse(BASE).unwrap();
    let n = &c.node;
    use edgeguard_config::defaults as d;
    assert_eq!(n.tier, d::TIER);
    assert_eq!(n.data_dir, std::path::Path::new(d::DATA_DIR));
    assert_eq!(n.max_header_size, 16 * 1024);
    assert_eq!(n.max_body_size, 10 << 20);
    assert_eq!(n.header_timeout.as_secs(), 10);
    assert_eq!(n.body_timeout.as_secs(), 30);
    assert_eq!(n.keepalive_timeout.as_secs(), 75);
    assert_eq!(n.access_log, None);
    assert_eq!(n.access_log_format, edgeguard_config::AccessLogFormat::Json);
    assert!(n.trusted_proxies.is_empty());
    assert_eq!(c.admin.listen, d::ADMIN_LISTEN);
    assert_eq!(c.admin.token, None);
    assert_eq!(c.cluster, None);
}

#[test]
fn admin_token_and_listen() {
    let c = edgeguard_config::parse_with_env(BASE, |k| {
        (k == "EDGEGUARD_ADMIN_TOKEN").then(|| "from-env".to_string())
    })
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("from-env"));
    // The file wins over the environment.
    let text = format!("{BASE}\n[admin]\ntoken = \"from-file\"\n");
    let c = edgeguard_config::parse_with_env(&text, |_| Some("from-env".into())).unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("from-file"));

    let text = format!("{BASE}\n[admin]\ntoken = \"\" # here\n");
    one_error(&text, "admin.token", "must not be empty");
    let text = format!("{BASE}\n[admin]\nlisten = \"0.0.0.0:9090\" # here\n");
    one_error(&text, "admin.listen", "needs a token");
    let text = format!("{BASE}\n[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = \"t\"\n");
    parse(&text).unwrap();
    let text = format!("{BASE}\n[admin]\nlisten = \"127.0.0.1:8080\" # here\n");
    one_error(&text, "admin.listen", "also in node.listen");
    let text = format!("{BASE}\n[admin]\nlisten = \"localhost:9090\" # here\n");
    one_error(&text, "admin.listen", "not a socket address");
}

#[test]
fn cluster_redis_url() {
    let text = format!("{BASE}\n[cluster]\nredis_url = \"http://127.0.0.1:6379\" # here\n");
    one_error(&text, "cluster.redis_url", "redis:// or rediss://");
    let text = format!("{BASE}\n[cluster] # here\n");
    one_error(&text, "cluster.redis_url", "missing");
    let text = format!("{BASE}\n[cluster]\nredis_url = \"rediss://r.example:6380\"\n");
    assert_eq!(
        parse(&text).unwrap().cluster.unwrap().redis_urls,
        vec!["rediss://r.example:6380".to_owned()]
    );
}

#[test]
fn cluster_via_parents() {
    let text = format!("{BASE}\n[cluster]\nvia = \"parents\"\nsync_interval_ms = 50\n");
    let c = parse(&text).unwrap().cluster.unwrap();
    assert_eq!(c.via, edgeguard_config::ClusterVia::Parents);
    assert!(c.redis_urls.is_empty());
    assert_eq!(c.sync_interval, std::time::Duration::from_millis(50));
    let back = edgeguard_config::to_toml(&parse(&text).unwrap());
    assert_eq!(parse(&back).unwrap().cluster.unwrap().via, c.via);
    let text = format!("{BASE}\n[cluster]\nvia = \"peers\" # here\n");
    one_error(&text, "cluster.via", "expected \"redis\" or \"parents\"");
    let text = format!(
        "{BASE}\n[cluster]\nvia = \"parents\"\nredis_url = \"redis://127.0.0.1:6379\" # here\n"
    );
    one_error(&text, "cluster.redis_url", "not with via = \"parents\"");
    let text = BASE.replace("name = \"n1\"", "name = \"n1\"\ntier = \"parent\"");
    let text = format!("{text}\n[cluster]\nvia = \"parents\" # here\n");
    one_error(&text, "cluster.via", "for edges");
    let text = format!("{BASE}\n[cluster] # here\nvia = \"redis\"\n");
    one_error(&text, "cluster.redis_url", "missing");
}

#[test]
fn zone_size_rate_key_name() {
    let text = BASE.replace("size = \"10m\"\nrate", "size = \"16k\" # here\nrate");
    one_error(&text, "limit_req_zone[0].size", "at least 32k");
    let text = BASE.replace("size = \"10m\"\nrate", "size = \"10mb\" # here\nrate");
    one_error(&text, "limit_req_zone[0].size", "invalid size");
    let text = BASE.replace("size = \"10m\"\nrate", "size = 32768\nrate");
    assert_eq!(parse(&text).unwrap().limit_req_zones[0].size, 32768);
    for bad in ["0r/s", "1.5r/s", "5r/h", "ten"] {
        let text = BASE.replace("rate = \"10r/s\"", &format!("rate = \"{bad}\" # here"));
        one_error(&text, "limit_req_zone[0].rate", "invalid rate");
    }
    let text = BASE.replace("rate = \"10r/s\"", "rate = \"30r/m\"");
    assert_eq!(
        parse(&text).unwrap().limit_req_zones[0]
            .rate
            .milli_per_sec(),
        500
    );
    let text = BASE.replace(
        "key = \"$binary_remote_addr\"\nsize = \"10m\"\nrate",
        "key = \"$server_name\" # here\nsize = \"10m\"\nrate",
    );
    one_error(
        &text,
        "limit_req_zone[0].key",
        "unknown variable $server_name",
    );
    let at = BASE.rfind("key = ").unwrap();
    let text = format!("{}key = \"\" # here\nsize = \"10m\"\n", &BASE[..at]);
    one_error(&text, "limit_conn_zone[0].key", "empty");
    let text = format!(
        "{BASE}\n[[limit_req_zone]]\nname = \"perip\" # here\nkey = \"$host\"\nsize = \"1m\"\nrate = \"1r/s\"\n"
    );
    one_error(
        &text,
        "limit_req_zone[1].name",
        "already defined by limit_req_zone[0]",
    );
    // The same name in the other kind is fine, as nginx (separate namespaces here).
    let text =
        format!("{BASE}\n[[limit_conn_zone]]\nname = \"perip\"\nkey = \"$host\"\nsize = \"1m\"\n");
    parse(&text).unwrap();
    let text = format!("{BASE}\n[[limit_conn_zone]] # here\nkey = \"$host\"\nsize = \"1m\"\n");
    one_error(&text, "limit_conn_zone[1].name", "missing");
}

#[test]
fn limit_req_entries() {
    let text = with_domain("limit_req = [{ zone = \"peri\" }] # here");
    one_error(
        &text,
        "domain[0].limit_req[0].zone",
        "no limit_req_zone named \"peri\"",
    );
    let e = common::errors(&text);
    assert_eq!(
        e[0].to_string(),
        format!(
            "line {}: domain[0].limit_req[0].zone: no limit_req_zone named \"peri\"",
            line_of(&text, "# here")
        )
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"addr\" }] # here"),
        "domain[0].limit_req[0].zone",
        "no limit_req_zone named \"addr\"",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\", burst = 0 }] # here"),
        "domain[0].limit_req[0].burst",
        "at least 1",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\", delay = 0 }] # here"),
        "domain[0].limit_req[0].delay",
        "at least 1",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\", nodelay = true, delay = 2 }] # here"),
        "domain[0].limit_req[0].delay",
        "nodelay and delay cannot both be set",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\" }, { zone = \"perip\" }] # here"),
        "domain[0].limit_req[1].zone",
        "already used by domain[0].limit_req[0]",
    );
    one_error(
        &with_domain("limit_req = [{ zone = \"perip\", dry_run = 1 }] # here"),
        "domain[0].limit_req[0].dry_run",
        "expected true or false",
    );
    one_error(
        &with_domain("limit_req = [{ burst = 1 }] # here"),
        "domain[0].limit_req[0].zone",
        "missing",
    );
    use edgeguard_config::{DelayMode, LimitReqSpec};
    let c = parse(&with_domain(
        "limit_req = [{ zone = \"perip\", burst = 20, delay = 8, dry_run = true }]",
    ))
    .unwrap();
    assert_eq!(
        c.domains[0].limit_req,
        vec![LimitReqSpec {
            zone: "perip".into(),
            burst: 20,
            delay: DelayMode::Delay(8),
            dry_run: true
        }]
    );
}

#[test]
fn limit_conn_entries() {
    one_error(
        &with_domain("limit_conn = [{ zone = \"perip\", conn = 1 }] # here"),
        "domain[0].limit_conn[0].zone",
        "no limit_conn_zone named \"perip\"",
    );
    for bad in ["0", "65536", "-1"] {
        one_error(
            &with_domain(&format!(
                "limit_conn = [{{ zone = \"addr\", conn = {bad} }}] # here"
            )),
            "domain[0].limit_conn[0].conn",
            "1..=65535",
        );
    }
    one_error(
        &with_domain("limit_conn = [{ zone = \"addr\" }] # here"),
        "domain[0].limit_conn[0].conn",
        "missing",
    );
    one_error(
        &with_domain(
            "limit_conn = [{ zone = \"addr\", conn = 1 }, { zone = \"addr\", conn = 2 }] # here",
        ),
        "domain[0].limit_conn[1].zone",
        "already used",
    );
    let c = parse(&with_domain(
        "limit_conn = [{ zone = \"addr\", conn = 65535, dry_run = true }]",
    ))
    .unwrap();
    assert_eq!(c.domains[0].limit_conn[0].conn, 65535);
    assert!(c.domains[0].limit_conn[0].dry_run);
}

#[test]
fn statuses() {
    for bad in ["399", "600", "0"] {
        one_error(
            &with_domain(&format!("limit_req_status = {bad} # here")),
            "domain[0].limit_req_status",
            "400..=599",
        );
    }
    one_error(
        &with_domain("limit_conn_status = 200 # here"),
        "domain[0].limit_conn_status",
        "400..=599",
    );
    let c = parse(&with_domain(
        "limit_req_status = 429\nlimit_conn_status = 599",
    ))
    .unwrap();
    assert_eq!(
        (
            c.domains[0].limit_req_status,
            c.domains[0].limit_conn_status
        ),
        (429, 599)
    );
}

#[test]
fn domain_names_origins_parents() {
    let text = with_domain("").replace("name = \"a.example\"", "name = \"a_b.example\" # here");
    one_error(&text, "domain[0].name", "letters, digits");
    let text = with_domain("").replace("name = \"a.example\"", "name = \"a.example:80\" # here");
    one_error(&text, "domain[0].name", "without a port");
    let c = parse(&with_domain("").replace("a.example", "WWW.Example.COM")).unwrap();
    assert_eq!(c.domains[0].name, "www.example.com");
    let text = format!(
        "{}\n[[domain]]\nname = \"A.example\" # here\norigins = [\"127.0.0.1:1\"]\n",
        with_domain("")
    );
    one_error(&text, "domain[1].name", "already defined by domain[0]");
    let text = with_domain("").replace("origins = [\"127.0.0.1:8081\"]", "origins = [] # here");
    one_error(&text, "domain[0].origins", "at least one origin");
    let text = with_domain("").replace("origins = [\"127.0.0.1:8081\"]\n", "");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "domain[0].origins");
    assert_eq!(errs[0].line, line_of(&text, "[[domain]]"));
    let text = with_domain("").replace("\"127.0.0.1:8081\"]", "\"::1:8081\"] # here");
    one_error(&text, "domain[0].origins[0]", "brackets");
    one_error(
        &with_domain("parents = [\"p1.example\"] # here"),
        "domain[0].parents[0]",
        "host:port",
    );
    let c = parse(&with_domain(
        "parents = [\"[::1]:8443\", \"P1.example:80\"]",
    ))
    .unwrap();
    let p = &c.domains[0].parents;
    assert_eq!((p[0].host.as_str(), p[0].port), ("::1", 8443));
    assert_eq!((p[1].host.as_str(), p[1].port), ("p1.example", 80));
}

#[test]
fn locations() {
    one_error(
        &with_domain("[[domain.location]]\npath = \"api\" # here"),
        "domain[0].location[0].path",
        "starts with '/'",
    );
    one_error(
        &with_domain(
            "[[domain.location]]\npath = \"/a\"\n[[domain.location]]\npath = \"/a\" # here",
        ),
        "domain[0].location[1].path",
        "already used by domain[0].location[0]",
    );
    one_error(
        &with_domain(
            "[[domain.location]]\npath = \"/a\"\nlimit_req = [{ zone = \"nope\" }] # here",
        ),
        "domain[0].location[0].limit_req[0].zone",
        "no limit_req_zone named \"nope\"",
    );
    let c = parse(&with_domain(
        "[[domain.location]]\npath = \"/a\"\n[[domain.location]]\npath = \"/abc/\"\nlimit_req = []\n[[domain.location]]\npath = \"/b\"\n",
    ))
    .unwrap();
    let paths: Vec<&str> = c.domains[0]
        .locations
        .iter()
        .map(|l| l.path.as_str())
        .collect();
    assert_eq!(paths, ["/abc/", "/a", "/b"]);
    assert_eq!(c.domains[0].locations[0].limit_req, Some(vec![]));
    assert_eq!(c.domains[0].locations[1].limit_req, None);
}

#[test]
fn timeouts_and_cache() {
    one_error(
        &with_domain("connect_timeout = \"0s\" # here"),
        "domain[0].connect_timeout",
        "longer than zero",
    );
    one_error(
        &with_domain("read_timeout = -5 # here"),
        "domain[0].read_timeout",
        "negative",
    );
    one_error(
        &with_domain("[domain.cache]\ndefault_ttl = \"5 minutes\" # here"),
        "domain[0].cache.default_ttl",
        "invalid duration",
    );
    one_error(
        &with_domain("[domain.cache]\nmax_size = \"0\" # here"),
        "domain[0].cache.max_size",
        "larger than zero",
    );
    let c = parse(&with_domain(
        "read_timeout = \"500ms\"\n[domain.cache]\nenabled = false\ndefault_ttl = 30\nignore_query = true\nmax_size = \"1g\"\nstale_grace = \"1m30s\"",
    ))
    .unwrap();
    let d = &c.domains[0];
    assert_eq!(d.read_timeout.as_millis(), 500);
    assert!(!d.cache.enabled);
    assert_eq!(d.cache.default_ttl.as_secs(), 30);
    assert!(d.cache.ignore_query);
    assert_eq!(d.cache.max_size, 1 << 30);
    assert_eq!(d.cache.stale_grace.as_secs(), 90);
    // A [domain.cache] table without `enabled` caches, as does a domain without the table.
    let c = parse(&with_domain("[domain.cache]\nignore_query = true")).unwrap();
    assert!(c.domains[0].cache.enabled);
    assert!(parse(&with_domain("")).unwrap().domains[0].cache.enabled);
}

#[test]
fn ip_access_limit() {
    one_error(
        &with_domain("[domain.ip_access_limit]\nenabled = true\nqps = 0 # here"),
        "domain[0].ip_access_limit.qps",
        "1..=",
    );
    let c = parse(&with_domain("[domain.ip_access_limit]\nenabled = true")).unwrap();
    assert_eq!(c.domains[0].ip_access_limit.qps, None);
    assert!(c.domains[0].ip_access_limit.enabled);
    // An explicit qps below the learned floor is taken as written.
    let c = parse(&with_domain(
        "[domain.ip_access_limit]\nenabled = true\nqps = 3",
    ))
    .unwrap();
    assert_eq!(c.domains[0].ip_access_limit.qps, Some(3));
    assert!(
        !parse(&with_domain("")).unwrap().domains[0]
            .ip_access_limit
            .enabled
    );
}
