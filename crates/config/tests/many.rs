//! One run reports every error, in line order; syntax errors give the line too.

mod common;

use common::*;

const BROKEN: &str = r#"[node]
name = "edge-1"
tier = "middle"
listen = ["127.0.0.1:8080", "nowhere"]
trusted_proxies = ["300.0.0.1/8"]

[admin]
listen = "0.0.0.0:9090"

[cluster]
redis_url = "http://r:6379"

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr$nope"
size = "1k"
rate = "0r/s"

[[domain]]
name = "www.example.com"
origins = []
limit_req = [{ zone = "peri", burst = 0 }, { zone = "perip", nodelay = true, delay = 3 }]
limit_conn = [{ zone = "addr", conn = 70000 }]
limit_req_status = 200
colour = "blue"

[[domain.location]]
path = "api"

[domain.rate_limiting]
enabled = true
mode = "custom"
"#;

#[test]
fn every_error_in_one_run() {
    let errs = errors(BROKEN);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
    let want = [
        (3, "node.tier"),
        (4, "node.listen[1]"),
        (5, "node.trusted_proxies[0]"),
        (8, "admin.listen"),
        (11, "cluster.redis_url"),
        (15, "limit_req_zone[0].key"),
        (16, "limit_req_zone[0].size"),
        (17, "limit_req_zone[0].rate"),
        (21, "domain[0].origins"),
        (22, "domain[0].limit_req[0].zone"),
        (22, "domain[0].limit_req[0].burst"),
        (22, "domain[0].limit_req[1].delay"),
        (23, "domain[0].limit_conn[0].zone"),
        (23, "domain[0].limit_conn[0].conn"),
        (24, "domain[0].limit_req_status"),
        (25, "domain[0].colour"),
        (28, "domain[0].location[0].path"),
        (32, "domain[0].rate_limiting.rules"),
    ];
    let mut sorted_want = want.to_vec();
    sorted_want.sort();
    let mut sorted_got = got.clone();
    sorted_got.sort();
    assert_eq!(sorted_got, sorted_want, "\n{errs:#?}");
    // Displayed one per line, in line order.
    let shown = match parse(BROKEN) {
        Err(e) => e.to_string(),
        Ok(_) => unreachable!(),
    };
    assert_eq!(shown.lines().count(), want.len());
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    assert!(
        shown.starts_with("line 3: node.tier: expected \"edge\" or \"parent\", found \"middle\""),
        "{shown}"
    );
}

#[test]
fn syntax_errors_give_the_line() {
    let text = format!("{BASE}\n[[domain]]\nname = \"a.example\norigins = [\"127.0.0.1:1\"]\n");
    let errs = errors(&text);
    assert!(!errs.is_empty());
    assert_eq!(
        errs[0].line,
        line_of(&text, "name = \"a.example"),
        "{errs:#?}"
    );
    assert!(
        errs[0].message.starts_with("TOML syntax error"),
        "{errs:#?}"
    );
    assert!(
        errs[0]
            .to_string()
            .starts_with(&format!("line {}: TOML syntax error", errs[0].line))
    );

    let text = "[node]\nname = \"n\"\nname = \"m\"\nlisten = [\"127.0.0.1:1\"]\n";
    let errs = errors(text);
    assert_eq!(errs[0].line, 3, "duplicate key: {errs:#?}");

    let text = "[node\nname = 1\n";
    assert_eq!(errors(text)[0].line, 1);
}
