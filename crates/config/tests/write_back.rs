//! `edit_toml`: a changed configuration written into the operator's file keeps its comments and its order,
//! rewrites only what changed, and reads back as the changed configuration.

use std::path::Path;

use edgeguard_config::*;

const FILE: &str = r#"# Edge node of the Frankfurt POP.
[node]
name = "edge-1"          # shown in the console
listen = ["127.0.0.1:8080"]
keepalive_timeout = "1m" # nginx's default is 75s

# Per-IP request budget.
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "10m"
rate = "10r/s"

# The shop: limited, and its IP access limit.
[[domain]]
name = "shop.test"
origins = ["10.0.0.5:80"]   # the old origin
limit_req = [{ zone = "perip", burst = 20, nodelay = true }]

[domain.ip_access_limit]
enabled = false  # switched on during sales

# The blog, retired soon.
[[domain]]
name = "blog.test"
origins = ["10.0.0.6:80"]

# The docs.
[[domain]]
name = "docs.test"
origins = ["10.0.0.7:80"]
"#;

fn read(text: &str) -> Config {
    parse_with_env(text, |_| None).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn positions(text: &str, needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|n| {
            text.find(n)
                .unwrap_or_else(|| panic!("no {n:?} in\n{text}"))
        })
        .collect()
}

#[test]
fn a_change_keeps_the_comments_and_the_order() {
    let mut c = read(FILE);
    let shop = &mut c.domains[0];
    shop.ip_access_limit.enabled = true;
    shop.ip_access_limit.qps = Some(50);
    shop.origins[0].port = 8080;
    // The blog leaves, a new domain arrives after the docs.
    let mut api = c.domains[2].clone();
    api.name = "api.test".into();
    c.domains.remove(1);
    c.domains.push(api);

    let out = edit_toml(FILE, &c).expect("edited in place");
    assert_eq!(read(&out), c, "reads back as the change\n{out}");

    for comment in [
        "# Edge node of the Frankfurt POP.",
        "# shown in the console",
        "# nginx's default is 75s",
        "# Per-IP request budget.",
        "# The shop: limited, and its IP access limit.",
        "# the old origin",
        "# switched on during sales",
        "# The docs.",
    ] {
        assert!(out.contains(comment), "{comment:?} kept in\n{out}");
    }
    assert!(
        !out.contains("blog.test") && !out.contains("retired soon"),
        "{out}"
    );
    // The changed values, in their old places with their comments.
    assert!(
        out.contains("origins = [\"10.0.0.5:8080\"]   # the old origin"),
        "{out}"
    );
    assert!(
        out.contains("enabled = true  # switched on during sales"),
        "{out}"
    );
    assert!(out.contains("qps = 50"), "{out}");
    // Unchanged settings keep the operator's spelling; defaults the file leaves out stay out.
    assert!(out.contains("keepalive_timeout = \"1m\""), "{out}");
    assert!(out.contains("limit_req = [{ zone = \"perip\", burst = 20, nodelay = true }]"));
    assert!(!out.contains("max_body_size"), "{out}");
    let (kept, added) = out.split_once("name = \"api.test\"").unwrap();
    assert!(!kept.contains("[domain.cache]"), "{out}");
    // A new entry is written in canonical form, every setting spelled out.
    assert!(added.contains("[domain.cache]"), "{out}");
    let order = positions(
        &out,
        &[
            "[node]",
            "name = \"edge-1\"",
            "listen =",
            "keepalive_timeout",
            "[[limit_req_zone]]",
            "name = \"shop.test\"",
            "[domain.ip_access_limit]",
            "enabled = true",
            "qps = 50",
            "name = \"docs.test\"",
            "name = \"api.test\"",
        ],
    );
    assert!(order.is_sorted(), "{order:?}\n{out}");
}

#[test]
fn no_change_leaves_the_file_as_it_is() {
    assert_eq!(edit_toml(FILE, &read(FILE)).as_deref(), Some(FILE));
}

#[test]
fn the_full_example_keeps_every_comment_through_a_change() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut c = read(&text);
    let d = &mut c.domains[0];
    d.explain = !d.explain;
    d.ip_access_limit.qps = Some(123);
    c.node.name = "edge-9".into();
    let out = edit_toml(&text, &c).expect("edited in place");
    assert_eq!(read(&out), c);
    let comments = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.find('#').map(|i| l[i..].to_owned()))
            .filter(|l| !l.contains('"'))
            .collect()
    };
    assert_eq!(comments(&out), comments(&text), "{out}");
    let changed: Vec<&str> = {
        let before: Vec<&str> = text.lines().collect();
        out.lines().filter(|l| !before.contains(l)).collect()
    };
    assert!(
        changed.len() <= 3,
        "only the changed lines differ: {changed:#?}"
    );
}

#[test]
fn a_file_that_does_not_read_is_not_edited() {
    let c = read(FILE);
    assert_eq!(edit_toml("[node", &c), None);
    assert_eq!(edit_toml("[node]\nname = 5\n", &c), None);
}

#[test]
fn canonical_export_is_unchanged() {
    // `edgeguard export` still writes every default out.
    let text = to_toml(&read(FILE));
    assert!(text.contains("max_body_size") && text.contains("[domain.cache]"));
    assert_eq!(read(&text), read(FILE));
}
