//! Cluster mode through the binary: three `edgeguard run` nodes sharing a real redis-server of the test's own.
//! A rule added through node A's admin API applies on node C; a purge on A empties the object on B; `/healthz`
//! and `/metrics` tell whether Redis answers; a node started after the change catches up on start.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgeguard_testkit::redis::Redis;

mod common;

use common::{Node, Reply, eventually, http};
const TOKEN: &str = "test-token";

/// An origin whose every answer is cacheable for 10 minutes and names how many requests it has seen.
fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let body = format!("hit {}\n", h.fetch_add(1, Ordering::SeqCst) + 1);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=600\r\n\r\n{body}",
                        body.len()
                    );
                    if out.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, hits)
}

fn api(admin: SocketAddr, method: &str, path: &str, json: &str) -> (u16, String) {
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
    (r.status, r.body)
}

impl Node {
    /// Starts a node; none of its settings may be "accepted but not applied".
    fn start_checked(config: &Path) -> Node {
        let node = Node::start(config);
        for line in &node.startup {
            assert!(!line.contains("accepted but not applied"), "{line}");
        }
        node
    }

    fn get(&self, path: &str, client: &str) -> Reply {
        http(self.listen, "GET", path, &[("X-Forwarded-For", client)], "")
    }

    fn healthz(&self) -> String {
        http(self.admin, "GET", "/healthz", &[("Host", "admin")], "").body
    }
}

fn write_config(dir: &Path, name: &str, origin: SocketAddr, redis: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("edgeguard.toml");
    let text = format!(
        r#"[node]
name = "{name}"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.1/32"]
data_dir = "{data}"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[cluster]
redis_url = "{redis}"
sync_interval_ms = 100

[[domain]]
name = "d.test"
origins = ["{origin}"]
"#,
        data = dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_rule_added_on_a_applies_on_c_and_a_purge_on_a_empties_b() {
    let redis = Redis::start();
    let (o, hits) = origin();
    let root = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["edge-a", "edge-b", "edge-c"]
        .iter()
        .map(|n| write_config(&root.path().join(n), n, o, &redis.url()))
        .collect();
    let a = Node::start_checked(&files[0]);
    let b = Node::start_checked(&files[1]);
    assert!(
        eventually(|| a.healthz().contains("cluster: ok")),
        "{}",
        a.healthz()
    );
    assert!(eventually(|| b.healthz().contains("cluster: ok")));

    // B caches the object; a purge through A's API empties it on B too.
    assert_eq!(b.get("/obj", "10.0.0.1").body, "hit 1\n");
    let second = b.get("/obj", "10.0.0.1");
    assert!(second.head.contains("x-cache: hit"), "{}", second.head);
    let (status, body) = api(
        a.admin,
        "POST",
        "/api/v1/domains/d.test/purge",
        r#"{"urls": ["/obj"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(|| !b.get("/obj", "10.0.0.1").head.contains("x-cache: hit")),
        "B still serves the purged object from its cache"
    );
    assert!(hits.load(Ordering::SeqCst) >= 2);

    // A rule added through A applies on C, including a C started after the change.
    let (status, body) = api(
        a.admin,
        "PUT",
        "/api/v1/domains/d.test/rate-limiting",
        r#"{"enabled": true, "mode": "custom", "rules": [{"name": "login01", "uri": "/login", "match": "prefix",
            "object": "ip", "interval": 10, "criteria": "\"count\">3", "action": "block", "ttl": 600,
            "scope": "node"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let c = Node::start_checked(&files[2]);
    let rules_on = |n: &Node| {
        api(
            n.admin,
            "GET",
            "/api/v1/domains/d.test/rate-limiting/rules",
            "",
        )
        .1
        .contains("login01")
    };
    assert!(eventually(|| rules_on(&c)), "C got the rule");
    assert!(eventually(|| rules_on(&b)), "B got the rule");
    let statuses: Vec<u16> = (0..4).map(|_| c.get("/login", "10.0.0.9").status).collect();
    assert_eq!(statuses, [200, 200, 200, 403]);
    // C wrote it to its own file, its own sections untouched, and kept the snapshot.
    let text = std::fs::read_to_string(&files[2]).unwrap();
    assert!(
        text.contains("login01") && text.contains("name = \"edge-c\""),
        "{text}"
    );
    let kept = root.path().join("edge-c/data/cluster-config.toml");
    assert!(
        std::fs::read_to_string(kept)
            .unwrap()
            .starts_with("# version ")
    );

    let (_, metrics) = api(a.admin, "GET", "/metrics", "");
    assert!(
        metrics.contains("edgeguard_cluster_redis_up 1"),
        "{metrics}"
    );
}
