//! `edgeguard replay` through the built binary: the real 2015 Apache log (counts checked against an independent
//! simulation of the same rules, see each test) and generated logs with known answers.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edgeguard");

fn apache_log() -> Option<PathBuf> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/apache_access_2015.log");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("note: {} absent; test skipped", p.display());
        None
    }
}

const NODE: &str = "[node]\nname = \"replay\"\nlisten = [\"127.0.0.1:0\"]\n";

fn replay(dir: &Path, config: &str, log: &Path, extra: &[&str]) -> Value {
    let cfg = dir.join("edgeguard.toml");
    std::fs::write(&cfg, format!("{NODE}{config}")).unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--json", "--config"])
        .arg(&cfg)
        .arg("--log")
        .arg(log)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rule(name: &str, uri: &str, interval: u32, criteria: &str, action: &str, ttl: u32) -> String {
    format!(
        "[[domain.rate_limiting.rules]]\nname = \"{name}\"\nuri = \"{uri}\"\nmatch = \"prefix\"\nobject = \"ip\"\n\
         interval = {interval}\ncriteria = '{criteria}'\naction = \"{action}\"\nttl = {ttl}\n"
    )
}

const SITE: &str = "[[domain]]\nname = \"semicomplete.com\"\norigins = [\"127.0.0.1:9\"]\n";
const CUSTOM: &str = "[domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n";

// The expected numbers below come from a separate script over the same file: lines sorted by time (stable), a
// per-IP count of requests per whole second for the IP access limit (the log has one-second resolution, so
// "any one second" is the second itself), and for rules a per-IP queue of events in ten buckets of interval/10
// seconds, blocked requests not counted, statuses added after each request let through.

#[test]
fn apache_log_ip_access_limit() {
    let Some(log) = apache_log() else { return };
    let dir = tempfile::tempdir().unwrap();
    let qps5 = replay(
        dir.path(),
        &format!("{SITE}[domain.ip_access_limit]\nenabled = true\nqps = 5\n"),
        &log,
        &[],
    );
    assert_eq!(qps5["lines"], 10_000);
    assert_eq!(qps5["replayed"], 10_000);
    assert_eq!(qps5["totals"]["ip_limited"], 3);
    assert_eq!(qps5["recommended_qps"], 10);
    // No qps: the log's own recommendation (10), which no client of this log exceeds.
    let rec = replay(
        dir.path(),
        &format!("{SITE}[domain.ip_access_limit]\nenabled = true\n"),
        &log,
        &[],
    );
    assert_eq!(rec["ip_access_limit_qps"], 10);
    assert_eq!(rec["totals"]["ip_limited"], 0);
}

#[test]
fn apache_log_count_rule() {
    let Some(log) = apache_log() else { return };
    let dir = tempfile::tempdir().unwrap();
    let r = replay(
        dir.path(),
        &format!(
            "{SITE}{CUSTOM}{}",
            rule("busy01", "/", 60, r#""count">40"#, "block", 600)
        ),
        &log,
        &[],
    );
    let busy = &r["rules"]["busy01"];
    assert_eq!(busy["triggers"], 12);
    assert_eq!(busy["objects"], 6);
    assert_eq!(busy["blocked"], 226);
    assert_eq!(r["totals"]["blocked"], 226);
    assert_eq!(r["totals"]["passed"], 10_000 - 226);
    assert_eq!(r["ips"][0]["ip"], "75.97.9.59");
    assert_eq!(r["ips"][0]["blocked"], 116);
}

#[test]
fn apache_log_status_ratio_rule() {
    let Some(log) = apache_log() else { return };
    let dir = tempfile::tempdir().unwrap();
    let criteria = r#""status_ratio|404">50% && "count">5"#;
    let r = replay(
        dir.path(),
        &format!(
            "{SITE}{CUSTOM}{}",
            rule("nf404", "/", 60, criteria, "block", 600)
        ),
        &log,
        &[],
    );
    assert_eq!(r["rules"]["nf404"]["triggers"], 4);
    assert_eq!(r["totals"]["blocked"], 34);
}

/// A generated JSON log: two hosts, a client over the IP access limit, a scanner of missing pages, a bot under
/// bot detection, lines slightly out of order.
#[test]
fn generated_log_known_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let mut text = String::new();
    let t0 = 1_700_000_000.0_f64;
    let mut line = |ts: f64, host: &str, ip: &str, uri: &str, status: u16| {
        text.push_str(&format!(
            "{{\"ts\":{ts:.3},\"host\":\"{host}\",\"client\":\"{ip}\",\"method\":\"GET\",\"uri\":\"{uri}\",\"status\":{status}}}\n"
        ));
    };
    // 12 requests in one second from one client: 2 over qps 10. Written newest first to exercise reordering.
    for i in (0..12).rev() {
        line(t0 + f64::from(i) * 0.05, "gen.test", "192.0.2.1", "/a", 200);
    }
    // The same client on another host: skipped.
    for i in 0..50 {
        line(
            t0 + 1.0 + f64::from(i) * 0.01,
            "other.test",
            "192.0.2.1",
            "/a",
            200,
        );
    }
    // A scanner: 404s at 2 per second from t0 + 10 s; the rule needs count > 10 and 404s over 60%, so its 11th
    // request triggers, and the 9 after it are blocked.
    for i in 0..20 {
        line(
            t0 + 10.0 + f64::from(i) * 0.5,
            "gen.test",
            "192.0.2.2",
            &format!("/missing/{i}"),
            404,
        );
    }
    // A bot on /shop: 8 requests over 4 s; more than 5 triggers bot detection on the 6th: 3 challenged.
    for i in 0..8 {
        line(
            t0 + 40.0 + f64::from(i) * 0.5,
            "gen.test",
            "192.0.2.3",
            "/shop",
            200,
        );
    }
    std::fs::write(&log, text).unwrap();
    let config = format!(
        "[[domain]]\nname = \"gen.test\"\norigins = [\"127.0.0.1:9\"]\n\
         [domain.ip_access_limit]\nenabled = true\nqps = 10\n{CUSTOM}{}{}",
        rule("shop01", "/shop", 10, r#""count">5"#, "bot_detection", 60),
        rule(
            "scan01",
            "/",
            10,
            r#""status_ratio|404">60% && "count">10"#,
            "block",
            600
        ),
    );
    let r = replay(dir.path(), &config, &log, &["--domain", "gen.test"]);
    assert_eq!(r["other_host"], 50);
    assert_eq!(r["replayed"], 40);
    assert_eq!(r["late"], 0);
    let t = &r["totals"];
    assert_eq!(t["ip_limited"], 2);
    assert_eq!(t["blocked"], 10);
    assert_eq!(t["challenged"], 3);
    assert_eq!(t["passed"], 40 - 2 - 10 - 3);
    assert_eq!(r["rules"]["scan01"]["triggers"], 1);
    assert_eq!(r["rules"]["shop01"]["challenged"], 3);
    assert_eq!(r["ips"].as_array().unwrap().len(), 3);
}

/// `[domain.challenge]` challenges every line (`enabled`) or the lines under its `paths`, reported per IP and in
/// the totals under the rules `challenge.enabled` / `challenge.paths`.
#[test]
fn configured_challenges_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.jsonl");
    let mut text = String::new();
    // 192.0.2.10: three lines under /login (one through `..`), one elsewhere; 192.0.2.11: two elsewhere.
    for (i, (ip, uri)) in [
        ("192.0.2.10", "/login"),
        ("192.0.2.10", "/login/step2?x=1"),
        ("192.0.2.10", "/a/../login"),
        ("192.0.2.10", "/shop"),
        ("192.0.2.11", "/"),
        ("192.0.2.11", "/loginx"),
    ]
    .into_iter()
    .enumerate()
    {
        text.push_str(&format!(
            "{{\"ts\":{},\"host\":\"ch.test\",\"client\":\"{ip}\",\"method\":\"GET\",\"uri\":\"{uri}\",\"status\":200}}\n",
            1_700_000_000 + i
        ));
    }
    std::fs::write(&log, text).unwrap();
    let site = "[[domain]]\nname = \"ch.test\"\norigins = [\"127.0.0.1:9\"]\n[domain.challenge]\n";
    let ip = |r: &Value, addr: &str| {
        r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ip"] == addr)
            .map(|i| i["challenged"].clone())
    };

    let paths = replay(
        dir.path(),
        &format!("{site}paths = [\"/login\"]\n"),
        &log,
        &[],
    );
    assert_eq!(paths["totals"]["challenged"], 4, "{paths}");
    assert_eq!(paths["totals"]["passed"], 2);
    assert_eq!(paths["rules"]["challenge.paths"]["challenged"], 4);
    assert_eq!(ip(&paths, "192.0.2.10"), Some(Value::from(3)));
    assert_eq!(ip(&paths, "192.0.2.11"), Some(Value::from(1)));

    let all = replay(dir.path(), &format!("{site}enabled = true\n"), &log, &[]);
    assert_eq!(all["totals"]["challenged"], 6, "{all}");
    assert_eq!(all["totals"]["passed"], 0);
    assert_eq!(all["rules"]["challenge.enabled"]["challenged"], 6);
    assert_eq!(ip(&all, "192.0.2.10"), Some(Value::from(4)));
}
