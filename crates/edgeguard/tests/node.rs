//! Whole-node tests through the binary: `edgeguard run` with a real configuration file, the admin API over real
//! HTTP, SIGHUP reloads and restarts on the same data_dir. Ports are chosen by the kernel (`:0`) and read back
//! from the node's log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{Node, Reply, http};
const TOKEN: &str = "test-token";

/// A minimal origin: every request gets `200 ok` (uncacheable).
fn origin() -> SocketAddr {
    common::origin_with(common::ok_answer)
}

fn api(admin: SocketAddr, method: &str, path: &str, json: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let r = http(
        admin,
        method,
        path,
        &[
            ("Host", "admin"),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json,
    );
    // Bodies may be chunked; the JSON object spans from the first `{` to the last `}`.
    let text = match (r.body.find('{'), r.body.rfind('}')) {
        (Some(a), Some(b)) => &r.body[a..=b],
        _ => "null",
    };
    (
        r.status,
        serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
    )
}

impl Node {
    fn get(&self, path: &str, client: &str) -> Reply {
        http(self.listen, "GET", path, &[("X-Forwarded-For", client)], "")
    }
}

fn write_config(dir: &Path, origin: SocketAddr, domain_extra: &str) -> PathBuf {
    let path = dir.join("edgeguard.toml");
    let text = format!(
        r#"[node]
name = "edge-test"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.1/32"]
data_dir = "{data}"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"

# The domain under test.
[[domain]]
name = "d.test"
origins = ["{origin}"]
explain = true # the decision headers
{domain_extra}
[domain.cache]
enabled = false
"#,
        data = dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_rule_added_through_the_api_applies_live_persists_and_logs_its_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let o = origin();
    let config = write_config(dir.path(), o, "");
    let node = Node::start(&config);

    // Custom mode with one rule on /login: the 4th request of an IP within 10 s trips it.
    let (status, body) = api(
        node.admin,
        "PUT",
        "/api/v1/domains/d.test/rate-limiting",
        r#"{"enabled": true, "mode": "custom", "rules": [{"name": "login01", "uri": "/login", "match": "prefix",
            "object": "ip", "interval": 10, "criteria": "\"count\">3", "action": "block", "ttl": 600}]}"#,
    );
    assert_eq!(status, 200, "{body}");

    let statuses: Vec<u16> = (0..4)
        .map(|_| node.get("/login", "10.0.0.1").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 403]);
    // The block covers every request of that IP on the domain; other IPs are served.
    assert_eq!(node.get("/other", "10.0.0.1").status, 403);
    assert_eq!(node.get("/login", "10.0.0.2").status, 200);

    // A validation error is answered with the field and nothing changes.
    let (status, body) = api(
        node.admin,
        "POST",
        "/api/v1/domains/d.test/rate-limiting/rules",
        r#"{"name": "x!", "uri": "/a", "match": "prefix", "object": "ip", "interval": 5,
            "criteria": "\"count\">3", "action": "block", "ttl": 60}"#,
    );
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"interval"),
        "{body}"
    );

    // Twelve more IPs trip the rule: thirteen triggers, paged newest first.
    for i in 0..12 {
        let ip = format!("10.0.1.{i}");
        for _ in 0..4 {
            node.get("/login", &ip);
        }
        assert_eq!(node.get("/", &ip).status, 403, "{ip} blocked");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = api(
            node.admin,
            "GET",
            "/api/v1/activity?domain=d.test&page=3&page_size=5",
            "",
        );
        assert_eq!(status, 200, "{page}");
        if page["total"] == 13 || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(page["total"], 13, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{page}");
    // Newest first: the last page ends with the first trigger.
    assert_eq!(records[2]["object_value"], "10.0.0.1", "{page}");
    assert_eq!(records[2]["rule"], "login01");
    assert_eq!(records[2]["action"], "block");

    let (_, blocks) = api(node.admin, "GET", "/api/v1/blocks", "");
    assert_eq!(blocks["blocks"].as_array().unwrap().len(), 13, "{blocks}");
    node.stop();

    // The API's change was written to the file: a restart runs it, and the blocks in force survive.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("login01"), "{text}");
    // Edited in place: the operator's comments and layout stay, defaults the file left out stay out.
    assert!(text.starts_with("[node]\nname = \"edge-test\"\n"), "{text}");
    assert!(
        text.contains("# The domain under test.\n[[domain]]"),
        "{text}"
    );
    assert!(
        text.contains("explain = true # the decision headers"),
        "{text}"
    );
    assert!(!text.contains("max_body_size"), "{text}");
    let node = Node::start(&config);
    assert_eq!(node.get("/", "10.0.0.1").status, 403);
    assert_eq!(node.get("/", "10.0.0.2").status, 200);
    let (_, rules) = api(
        node.admin,
        "GET",
        "/api/v1/domains/d.test/rate-limiting/rules",
        "",
    );
    assert_eq!(rules["rules"][0]["name"], "login01", "{rules}");

    // Lifting a block through the API serves that IP again at once.
    let (_, blocks) = api(node.admin, "GET", "/api/v1/blocks", "");
    let id = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["object_value"] == "10.0.0.1")
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .unwrap();
    let (status, _) = api(node.admin, "DELETE", &format!("/api/v1/blocks/{id}"), "");
    assert_eq!(status, 204);
    assert_eq!(node.get("/", "10.0.0.1").status, 200);
    node.stop();
}

#[test]
fn sighup_reload_keeps_counters_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = origin();
    let limited = r#"limit_req = [{ zone = "perip", nodelay = true }]"#;
    let config = write_config(dir.path(), o, limited);
    let node = Node::start(&config);
    assert_eq!(node.get("/", "10.0.0.1").status, 200);
    assert_eq!(
        node.get("/", "10.0.0.1").status,
        503,
        "1r/m: the second request is over"
    );

    // A broken file is refused with its line, and the node keeps serving with the old configuration.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("rate = \"1r/m\"", "rate = \"fast\"")).unwrap();
    node.signal("HUP");
    let line = node.wait_log("keeping the running one");
    assert!(line.contains("invalid configuration"), "{line}");
    assert_eq!(node.get("/", "10.0.0.2").status, 200);

    // A valid new file (a second domain) is applied; the unchanged zone keeps its counters: no free burst.
    let next = good.clone()
        + &format!(
            "\n[[domain]]\nname = \"e.test\"\norigins = [\"{o}\"]\n[domain.cache]\nenabled = false\n"
        );
    std::fs::write(&config, next).unwrap();
    node.signal("HUP");
    node.wait_log("configuration reloaded");
    assert_eq!(
        node.get("/", "10.0.0.1").status,
        503,
        "counter kept across reload"
    );
    let r = http(node.listen, "GET", "/", &[("Host", "e.test")], "");
    assert_eq!(r.status, 200, "{}", r.body);
    node.stop();
}

#[test]
fn access_log_lines_and_reopen_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let o = origin();
    let config = write_config(dir.path(), o, "");
    let log = dir.path().join("access.log");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[admin]",
        &format!("access_log = \"{}\"\n\n[admin]", log.display()),
    );
    std::fs::write(&config, text).unwrap();
    let node = Node::start(&config);
    assert_eq!(node.get("/first?x=1", "10.0.0.9").status, 200);

    // The line is written off the request path, within about a second.
    let read_until = |path: &Path, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let text = read_until(&log, "/first");
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["client"], "10.0.0.9", "{line}");
    assert_eq!(line["host"], "d.test");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["uri"], "/first?x=1");
    assert_eq!(line["status"], 200);

    // Rotation: move the file away, SIGUSR1, and the next line goes to a new file at the old path.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    node.signal("USR1");
    node.wait_log("access log reopened");
    assert_eq!(node.get("/second", "10.0.0.9").status, 200);
    assert!(read_until(&log, "/second").contains("/second"));
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("/second")
    );
    node.stop();
}
