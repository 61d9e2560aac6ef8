//! The access log: one JSON line per request with the fields `edgeguard recommend` reads (and the CDN's
//! own: decision, upstream, cache, times), nginx `combined` when asked, lines readable by the store's log
//! reader, and a reopen after rotation.

mod common;

use std::path::Path;

use common::*;
use edgeguard_proxy::RunningNode;
use edgeguard_store::{LogFormat, LogReader};

fn text(origin: std::net::SocketAddr, log: &Path, format: &str) -> String {
    format!(
        r#"
[node]
name = "edge-l"
listen = ["127.0.0.1:0"]
access_log = "{}"
{format}
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{origin}"]
limit_req = [{{ zone = "perip", burst = 2, nodelay = true }}]
"#,
        log.display()
    )
}

/// Stops the node (the writer flushes and exits) and returns the log's lines.
async fn lines_after(node: RunningNode, log: &Path) -> Vec<String> {
    node.shutdown_within(std::time::Duration::from_secs(1))
        .await;
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn json_lines_with_the_cdn_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let o = test_origin().await;
    let (n, _) = node(&text(o.addr, &log, "")).await;
    let addr = n.local_addrs()[0];
    send(
        addr,
        http::Method::GET,
        "a.test",
        "/p?q=1",
        &[("user-agent", "curl/8 \"x\""), ("referer", "http://r/")],
        "",
    )
    .await;
    get(addr, "a.test", "/p?q=1", &[]).await;
    assert_eq!(get(addr, "a.test", "/p?q=1", &[]).await.status, 200);
    assert_eq!(get(addr, "a.test", "/p?q=1", &[]).await.status, 503);
    get(addr, "nobody.test", "/", &[]).await;

    let lines = lines_after(n, &log).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let first = &v[0];
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["host"], "a.test");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["uri"], "/p?q=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 10);
    assert_eq!(first["user_agent"], "curl/8 \"x\"");
    assert_eq!(first["referer"], "http://r/");
    assert_eq!(first["decision"], "pass");
    assert_eq!(first["upstream"], o.addr.to_string());
    assert_eq!(first["cache"], "MISS");
    assert!(first["request_time"].as_f64().unwrap() >= 0.0);
    assert!(first["upstream_time"].as_f64().is_some());
    let time = first["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");

    assert_eq!(v[1]["cache"], "HIT");
    assert!(v[1].get("upstream").is_none() && v[1].get("upstream_time").is_none());
    assert_eq!(v[3]["status"], 503);
    assert_eq!(v[3]["decision"], "limit_req");
    assert!(v[3].get("cache").is_none());
    assert_eq!(v[4]["host"], "nobody.test");
    assert_eq!(v[4]["status"], 404);
    assert_eq!(v[4]["decision"], "refused");

    // The store's reader (edgeguard recommend) takes them as they are.
    let joined = lines.join("\n");
    let mut reader = LogReader::new(joined.as_bytes(), LogFormat::Json);
    let mut n = 0;
    while let Some(line) = reader.next_line().unwrap() {
        assert_eq!(line.client.to_string(), "127.0.0.1");
        n += 1;
    }
    assert_eq!(n, 5);
}

#[tokio::test]
async fn combined_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let o = test_origin().await;
    let (n, _) = node(&text(o.addr, &log, "access_log_format = \"combined\"")).await;
    let addr = n.local_addrs()[0];
    send(
        addr,
        http::Method::GET,
        "a.test",
        "/c",
        &[("user-agent", "agent \"q\"")],
        "",
    )
    .await;
    let lines = lines_after(n, &log).await;
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
    assert!(
        l.ends_with("] \"GET /c HTTP/1.1\" 200 6 \"-\" \"agent \\x22q\\x22\""),
        "{l}"
    );
    let mut reader = LogReader::new(l.as_bytes(), LogFormat::Combined);
    let line = reader.next_line().unwrap().unwrap();
    assert_eq!((line.status, line.bytes, line.uri.as_str()), (200, 6, "/c"));
}

#[tokio::test]
async fn reopen_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let o = test_origin().await;
    let (n, _) = node(&text(o.addr, &log, "")).await;
    let addr = n.local_addrs()[0];
    get(addr, "a.test", "/before", &[]).await;
    assert!(
        eventually(|| std::fs::read_to_string(&log).is_ok_and(|s| s.contains("/before"))).await,
        "flushed within about a second"
    );
    std::fs::rename(&log, &rotated).unwrap();
    n.reopen_logs();
    assert!(
        eventually(|| log.exists()).await,
        "reopened within about a second"
    );
    get(addr, "a.test", "/after", &[]).await;
    let lines = lines_after(n, &log).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("\"/after\""));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("/before") && !old.contains("/after"));
}
