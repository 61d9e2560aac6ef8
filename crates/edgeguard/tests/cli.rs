//! The command line as an operator uses it: the built binary, real files, real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_edgeguard");

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn check_accepts_the_full_example() {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(repo_file("examples/full.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_accepts_tiered_counting_on_an_edge_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let text = |tier: &str| {
        format!(
            "[node]\nname = \"x\"\ntier = \"{tier}\"\nlisten = [\"127.0.0.1:8080\"]\n\n[cluster]\n\
             via = \"parents\"\nsync_interval_ms = 100\n\n[[domain]]\nname = \"a.example\"\n\
             parents = [\"10.0.0.2:80\"]\norigins = [\"127.0.0.1:1\"]\n"
        )
    };
    std::fs::write(&path, text("edge")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&path, text("parent")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cluster.via") && err.contains(":7"), "{err}");
}

#[test]
fn check_reports_every_error_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[node]\nname = \"x\"\ntier = \"edg\"\nlisten = [\"127.0.0.1:8080\"]\n\n[[domain]]\nname = \"a.example\"\norigins = [\"127.0.0.1:1\"]\nlimit_req = [{ zone = \"nope\" }]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: node.tier:"), "{err}");
    assert!(err.contains(":9: domain[0].limit_req[0].zone:"), "{err}");
    assert!(err.contains("2 errors"), "{err}");
}

#[test]
fn check_of_a_missing_file_fails_clearly() {
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/edgeguard.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["run", "check", "demo", "recommend", "export"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub} --help"
        );
    }
}

#[test]
fn recommend_prints_the_recommended_qps_last() {
    let log = repo_file("../shared/data/apache_access_2015.log");
    if !log.exists() {
        eprintln!("skipped: {} is not here", log.display());
        return;
    }
    let out = Command::new(BIN)
        .args(["recommend", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("recommended_qps: 10"),
        "{stdout}"
    );
    let out = Command::new(BIN)
        .args(["recommend", "--json", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["qps"], 10);
    assert!(v["points"].as_u64().unwrap() > 0);
    assert!(v["top_points"].is_array());
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn demo_starts_answers_and_stops() {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut port = None;
    while port.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(url) = line.strip_prefix("edge: http://localhost:") {
            port = url.trim_end_matches('/').parse::<u16>().ok();
        }
    }
    let port = port.expect("the demo prints the edge URL");
    let first = get(port, "/");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("Hello from the demo origin"), "{first}");
    // A burst on /api/ (burst=2 nodelay at 5r/s) is limited with the demo's 429.
    let statuses: Vec<String> = (0..8)
        .map(|_| get(port, "/api/time")[9..12].to_owned())
        .collect();
    assert!(statuses.iter().any(|s| s == "429"), "{statuses:?}");
    // SIGTERM stops it cleanly.
    send_sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn send_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}
