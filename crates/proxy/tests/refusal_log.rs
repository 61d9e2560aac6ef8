//! A flood of refusals is counted and written as summary lines, not a line per refused request: 2,000
//! requests from 100 addresses (one of them heavier) over a limit_req zone and the IP access limit, with the
//! node's tracing output captured. Clients are told apart by `X-Forwarded-For` from the trusted 127.0.0.1;
//! the fake clock stands still, so every request falls in the same second.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

/// The captured log: every line the node writes through `tracing`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[derive(Default)]
struct Seen {
    passed: u64,
    limited: u64,
    over_ip: u64,
}

async fn send(addr: std::net::SocketAddr, ip: &str, seen: &mut Seen) {
    let r =
        edgeguard_testkit::send(addr, "GET", "a.test", "/", &[("x-forwarded-for", ip)], "").await;
    match r.status.as_u16() {
        200 => seen.passed += 1,
        503 => seen.limited += 1,
        514 => seen.over_ip += 1,
        s => panic!("unexpected {s}"),
    }
}

#[tokio::test]
async fn a_flood_of_refusals_writes_summaries_with_counts_and_top_keys() {
    let log = Capture::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let o = test_origin().await;
    let text = format!(
        r#"
[node]
name = "edge-r"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.1/32"]
[[limit_req_zone]]
name = "perip"
key = "$binary_remote_addr"
size = "1m"
rate = "1r/m"
[[domain]]
name = "a.test"
origins = ["{}"]
limit_req = [{{ zone = "perip", nodelay = true }}]
[domain.ip_access_limit]
enabled = true
qps = 10
"#,
        o.addr
    );
    let (n, _clock) = node(&text).await;
    let addr = n.local_addrs()[0];
    let before = log.0.lock().unwrap().len();

    let mut seen = Seen::default();
    // 99 addresses with 19 requests each, one (10.9.9.9) with 119: 2,000 in all.
    for i in 0..99 {
        let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
        for _ in 0..19 {
            send(addr, &ip, &mut seen).await;
        }
    }
    for _ in 0..119 {
        send(addr, "10.9.9.9", &mut seen).await;
    }
    let Seen {
        passed,
        limited,
        over_ip,
    } = seen;
    assert_eq!(passed + limited + over_ip, 2_000);
    assert_eq!(passed, 100, "one request per address passes limit_req");
    assert!(limited > 500 && over_ip > 500, "{limited} {over_ip}");

    let m = n.metrics_text();
    assert_eq!(
        value(
            &m,
            "edgeguard_refusals_total{kind=\"limit_req\",name=\"perip\"}"
        ),
        limited
    );
    assert_eq!(
        value(
            &m,
            "edgeguard_refusals_total{kind=\"ip_access_limit\",name=\"a.test\"}"
        ),
        over_ip
    );
    // Stopping writes the summary of the period in progress.
    n.shutdown().await;

    let bytes = log.0.lock().unwrap()[before..].to_vec();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() <= 5 && bytes.len() < 4_096,
        "{} lines, {} bytes:\n{text}",
        lines.len(),
        bytes.len()
    );
    let summary = |kind: &str| {
        lines
            .iter()
            .find(|l| l.contains("refusal summary") && l.contains(&format!("kind=\"{kind}\"")))
            .unwrap_or_else(|| panic!("no {kind} summary in\n{text}"))
            .to_string()
    };
    let req = summary("limit_req");
    assert!(req.contains(&format!("count={limited}")), "{req}");
    assert!(req.contains("name=perip"), "{req}");
    let ip = summary("ip_access_limit");
    assert!(ip.contains(&format!("count={over_ip}")), "{ip}");
    assert!(
        ip.contains("top=10.9.9.9 x"),
        "the heaviest address first: {ip}"
    );
}
