//! SPEC 9.1-9.2 over HTTP: the challenge verify endpoint behind blocks and the IP access limit, single-use
//! answers, and `[domain.access_control]`. Clients are told apart by `X-Forwarded-For` from the trusted
//! 127.0.0.1; time is a fake clock.

use std::net::SocketAddr;
use std::path::Path;

use edgeguard_challenge::VERIFY_PATH;
use edgeguard_limit::FakeClock;
use edgeguard_proxy::RunningNode;
use edgeguard_testkit::{Origin, Reply, Route};
use http::StatusCode;

mod common;

use common::protection::{attr, solve, start_on, trusted_config};

const ORIGIN_BODY: &str = "origin says hello";

async fn start(dir: &Path, domain_extra: &str, clock: &FakeClock) -> (RunningNode, SocketAddr) {
    let origin = Origin::builder()
        .fallback(Route::text(ORIGIN_BODY))
        .start()
        .await
        .addr;
    start_on(trusted_config("edge-v", dir, origin, domain_extra), clock).await
}

async fn send(addr: SocketAddr, method: &str, path: &str, ip: &str, body: &str) -> Reply {
    let headers = [
        ("x-forwarded-for", ip),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    edgeguard_testkit::send(addr, method, "p.test", path, &headers, body).await
}

fn answer(page: &str) -> String {
    let bits: u32 = attr(page, "data-difficulty").parse().unwrap();
    let nonce = solve(attr(page, "data-challenge"), bits);
    format!(
        "token={}&nonce={nonce}&elapsed_ms=7&return_to=%2F",
        attr(page, "data-token")
    )
}

const SETUP: &str = "[domain.challenge]\npaths = [\"/shop\"]\ndifficulty = 8\n\
    [domain.ip_access_limit]\nenabled = true\nqps = 5\n\
    [domain.rate_limiting]\nenabled = true\nmode = \"custom\"\n\
    [[domain.rate_limiting.rules]]\nname = \"trap01\"\nuri = \"/trap\"\nmatch = \"prefix\"\n\
    object = \"ip\"\ninterval = 10\ncriteria = '\"count\">0'\naction = \"block\"\nttl = 600\n";

#[tokio::test]
async fn verify_is_behind_blocks_and_the_ip_access_limit_and_redeems_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(dir.path(), SETUP, &clock).await;

    // A solved answer is redeemed once; the same post again is refused.
    let ok = "192.0.2.10";
    let page = send(addr, "GET", "/shop", ok, "").await.body;
    assert!(page.contains("data-token="), "{page}");
    let form = answer(&page);
    let first = send(addr, "POST", VERIFY_PATH, ok, &form).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.headers.get("set-cookie").is_some());
    let again = send(addr, "POST", VERIFY_PATH, ok, &form).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert!(again.body.contains("replayed"), "{}", again.body);
    assert!(again.headers.get("set-cookie").is_none());

    // A blocked client gets 403 from the verify endpoint, even with a valid answer.
    clock.advance(1000);
    let bad = "192.0.2.20";
    let page = send(addr, "GET", "/shop", bad, "").await.body;
    let form = answer(&page);
    let trap = send(addr, "GET", "/trap", bad, "").await;
    assert_eq!(trap.status, StatusCode::FORBIDDEN, "{}", trap.body);
    let blocked = send(addr, "POST", VERIFY_PATH, bad, &form).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN, "{}", blocked.body);
    assert!(blocked.body.contains("trap01"), "{}", blocked.body);
    assert!(blocked.headers.get("set-cookie").is_none());
    // The page's scripts are behind the block too.
    let script = send(
        addr,
        "GET",
        &edgeguard_challenge::main_script().path,
        bad,
        "",
    )
    .await;
    assert_eq!(script.status, StatusCode::FORBIDDEN, "{}", script.body);
    // Counted in /metrics, not logged one line each.
    let m = node.metrics_text();
    for line in [
        "edgeguard_challenge_verify_total{outcome=\"passed\"} 1",
        "edgeguard_challenge_verify_total{outcome=\"replayed\"} 1",
        "edgeguard_challenge_replay_in_use 1",
        "edgeguard_blocks_in_force 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn verify_answers_514_past_the_ip_access_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(dir.path(), SETUP, &clock).await;
    let ip = "192.0.2.30";
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            send(addr, "POST", VERIFY_PATH, ip, "token=x&nonce=1")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..5], &[400; 5], "{statuses:?}");
    assert_eq!(statuses[5], 514, "{statuses:?}");
    node.shutdown().await;
}

/// SPEC section 3 before the challenge: a challenged client within its IP access limit gets the page, the one
/// request too many in the second gets the short 514 (with a reason phrase, not hyper's `<none>`), and a block
/// still answers 403 before either.
#[tokio::test]
async fn a_challenged_client_over_the_ip_access_limit_gets_514() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let (node, addr) = start(dir.path(), SETUP, &clock).await;
    let ip = "192.0.2.40";
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(send(addr, "GET", "/shop", ip, "").await);
    }
    for r in &replies[..5] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("data-token="), "{}", r.body);
    }
    assert_eq!(replies[5].status.as_u16(), 514, "{}", replies[5].body);
    assert!(
        replies[5].body.contains("allows 5 per second"),
        "{}",
        replies[5].body
    );
    let raw = raw_status_line(addr, ip).await;
    assert_eq!(raw, "HTTP/1.1 514 IP Access Limit", "{raw}");

    // A blocked client is answered 403 even past its IP access limit.
    clock.advance(1000);
    let bad = "192.0.2.41";
    assert_eq!(
        send(addr, "GET", "/trap", bad, "").await.status,
        StatusCode::FORBIDDEN
    );
    for _ in 0..6 {
        let r = send(addr, "GET", "/shop", bad, "").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    node.shutdown().await;
}

/// The status line of one more request from `ip` to `/shop`, as the bytes on the wire say it.
async fn raw_status_line(addr: SocketAddr, ip: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /shop HTTP/1.1\r\nHost: p.test\r\nX-Forwarded-For: {ip}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn allowed_clients_pass_every_limit_and_denied_get_403() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(5_000_000);
    let extra = format!(
        "{SETUP}[domain.access_control]\nallow = [\"192.0.2.0/24\", \"2001:db8:1::/48\"]\n\
         deny = [\"198.51.100.0/24\"]\n"
    );
    let (node, addr) = start(dir.path(), &extra, &clock).await;
    // Allowed: no challenge, no 514, no block, even on the trap.
    for ip in ["192.0.2.1", "2001:db8:1::9"] {
        for path in ["/shop", "/trap", "/trap", "/"].iter().cycle().take(20) {
            let r = send(addr, "GET", path, ip, "").await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (StatusCode::OK, ORIGIN_BODY),
                "{ip} {path}"
            );
        }
    }
    // Denied: 403 naming the list, before the challenge.
    let r = send(addr, "GET", "/shop", "198.51.100.4", "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("access_control.deny"), "{}", r.body);
    let r = send(addr, "POST", VERIFY_PATH, "198.51.100.4", "token=x&nonce=1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Unlisted: challenged as before.
    let r = send(addr, "GET", "/shop", "203.0.113.1", "").await;
    assert!(r.body.contains("data-token="));
    node.shutdown().await;
}
