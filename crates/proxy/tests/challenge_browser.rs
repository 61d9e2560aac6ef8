//! The bot-detection challenge through a whole node: a real headless Chromium (Debian's `/usr/bin/chromium`)
//! opens a challenged URL of a domain with `[domain.challenge] enabled = true`, passes on its own and lands on
//! the origin's answer at the same URL; plain HTTP clients never get past the page, and clearances are refused
//! when forged, expired, used from another IP or for another domain. Without Chromium the browser test says why
//! and passes (the README's test command installs it). The same browser passes over HTTPS (a certificate from a
//! test CA, trusted by its key) and gets a `Secure` clearance cookie.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edgeguard_challenge::{COOKIE_NAME, VERIFY_PATH};
use edgeguard_limit::FakeClock;
use edgeguard_proxy::{Node, RunningNode};
use edgeguard_store::ActivityQuery;
use edgeguard_testkit::browser::{Chromium, wait_for_text};
use edgeguard_testkit::{Origin, Reply, Route, send};
use http::StatusCode;
use sha2::{Digest, Sha256};

/// Every test here finishes within this, browser included.
const BUDGET: Duration = Duration::from_secs(60);
/// The browser reaches the node under this name (mapped to 127.0.0.1 by a resolver rule).
const HOST: &str = "challenge.test";

/// An origin answering `ORIGIN <path and query>` and counting what reaches it (the favicon aside).
async fn origin() -> (SocketAddr, Origin) {
    let origin = Origin::builder()
        .route("/favicon.ico", Route::text("").status(404).uncounted())
        .fallback(
            Route::path_and_query("ORIGIN ", "")
                .header("content-type", "text/plain")
                .cache_control("no-store"),
        )
        .start()
        .await;
    (origin.addr, origin)
}

/// A node with `domains` (name, `[domain.challenge]` body), all on `origin`; 127.0.0.1 is a trusted proxy so
/// tests pick the client IP with `X-Forwarded-For`.
async fn node(
    dir: &Path,
    origin: SocketAddr,
    domains: &[(&str, &str)],
    clock: Option<&FakeClock>,
) -> (RunningNode, SocketAddr) {
    let mut text = format!(
        "[node]\nname = \"edge-c\"\nlisten = [\"127.0.0.1:0\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         data_dir = \"{}\"\n",
        dir.display()
    );
    for (name, challenge) in domains {
        text += &format!(
            "[[domain]]\nname = \"{name}\"\norigins = [\"{origin}\"]\n[domain.challenge]\n{challenge}\n"
        );
    }
    let config = edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let node = match clock {
        Some(c) => Node::start_with_clock(config, Arc::new(c.clone())).await,
        None => Node::start(config).await,
    }
    .unwrap();
    let addr = node.local_addrs()[0];
    (node, addr)
}

trait Challenged {
    fn challenged(&self) -> bool;
}

impl Challenged for Reply {
    fn challenged(&self) -> bool {
        self.status == StatusCode::OK
            && self.body.contains("<main id=\"eg\"")
            && self.body.contains("<noscript>")
            && !self.body.contains("ORIGIN")
    }
}

fn attr<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + page[start..].find('"').unwrap();
    &page[start..end]
}

fn zero_bits(h: &[u8]) -> u32 {
    let mut zeros = 0;
    for b in h {
        if *b == 0 {
            zeros += 8;
        } else {
            return zeros + b.leading_zeros();
        }
    }
    zeros
}

/// A nonce that meets (`meets = true`) or misses the page's puzzle, found as the page's worker would.
fn nonce(page: &str, meets: bool) -> u64 {
    let challenge = attr(page, "data-challenge");
    let bits: u32 = attr(page, "data-difficulty").parse().unwrap();
    (0..1u64 << 24)
        .find(|n| (zero_bits(&Sha256::digest(format!("{challenge}{n}"))) >= bits) == meets)
        .expect("a nonce within 2^24 tries")
}

fn answer_form(page: &str, nonce: u64) -> String {
    format!(
        "token={}&nonce={nonce}&elapsed_ms=5&return_to=%2Fa%3Fb%3D1",
        attr(page, "data-token")
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A node serving `HOST` over HTTPS (its certificate in `dir`) with the challenge on every path.
async fn tls_node(dir: &Path, origin: SocketAddr) -> (RunningNode, SocketAddr) {
    let d = dir.display();
    let text = format!(
        "[node]\nname = \"edge-s\"\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n\
         data_dir = \"{d}/data\"\n[[domain]]\nname = \"{HOST}\"\norigins = [\"{origin}\"]\n\
         [domain.tls]\ncert = \"{d}/site.pem\"\nkey = \"{d}/site.key\"\n\
         [domain.challenge]\nenabled = true\ndifficulty = 12\n"
    );
    let config = edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let node = Node::start(config).await.unwrap();
    let addr = node.local_tls_addrs()[0];
    (node, addr)
}

/// Starts Debian's Chromium with every name of `HOST` resolving to loopback, or says why not.
async fn launch() -> Option<Chromium> {
    Chromium::launch(|c| c.arg(("host-resolver-rules", "MAP challenge.test 127.0.0.1"))).await
}

fn passes(node: &RunningNode) -> Vec<edgeguard_store::ActivityRecord> {
    node.activity_log().sync().unwrap();
    node.activity_log()
        .query(&ActivityQuery::default())
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.record)
        .filter(|r| r.action == "challenge_pass")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_passes_the_node_challenge_and_lands_on_the_origin() {
    let Some(browser) = launch().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (origin, served) = origin().await;
    let (node, addr) = node(
        dir.path(),
        origin,
        &[(HOST, "enabled = true\ndifficulty = 12")],
        None,
    )
    .await;
    let outcome = tokio::time::timeout(BUDGET, async {
        let base = format!("http://{HOST}:{}", addr.port());
        let url = format!("{base}/account/orders?page=2&sort=new%20first");
        let page = browser.new_page("about:blank").await.expect("new tab");
        page.goto(url.as_str()).await.expect("navigate");
        let text = wait_for_text(&page, "ORIGIN", Duration::from_secs(40)).await;
        assert_eq!(
            text.trim(),
            "ORIGIN /account/orders?page=2&sort=new%20first"
        );
        let here: String = page
            .evaluate("location.href")
            .await
            .expect("href")
            .into_value()
            .expect("string");
        assert_eq!(here, url, "back on the URL first asked for");
        assert_eq!(served.hits(), 1, "the origin saw only the cleared request");
        let cookies = page.get_cookies().await.expect("cookies");
        let c = cookies
            .iter()
            .find(|c| c.name == COOKIE_NAME)
            .expect("clearance cookie set");
        assert!(c.http_only, "clearance cookie is HttpOnly");
        let passed = passes(&node);
        assert_eq!(passed.len(), 1, "{passed:?}");
        assert_eq!(passed[0].rule, "challenge.enabled");
        assert_eq!(passed[0].object_value, "127.0.0.1");
        assert!(
            passed[0].detail.starts_with("solve_ms="),
            "{}",
            passed[0].detail
        );

        // Another page of the site: straight through, no second challenge.
        page.goto(format!("{base}/other?x=1").as_str())
            .await
            .expect("navigate");
        let text = wait_for_text(&page, "ORIGIN", Duration::from_secs(10)).await;
        assert_eq!(text.trim(), "ORIGIN /other?x=1");
        assert_eq!(served.hits(), 2);
        assert_eq!(passes(&node).len(), 1, "no second challenge");
    })
    .await;
    browser.close().await;
    node.shutdown().await;
    outcome.expect("browser test finished within its time budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_passes_the_challenge_over_https_and_gets_a_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new("challenge test ca");
    let (_, spki) = ca.issue_with_key(dir.path(), "site", HOST);
    let Some(browser) = Chromium::launch(|c| {
        c.arg(("host-resolver-rules", "MAP challenge.test 127.0.0.1"))
            .arg(("ignore-certificate-errors-spki-list", spki.as_str()))
    })
    .await
    else {
        return;
    };
    let (origin, served) = origin().await;
    let (node, addr) = tls_node(dir.path(), origin).await;
    let outcome = tokio::time::timeout(BUDGET, async {
        let url = format!("https://{HOST}:{}/cart?step=1", addr.port());
        let page = browser.new_page("about:blank").await.expect("new tab");
        page.goto(url.as_str()).await.expect("navigate");
        let text = wait_for_text(&page, "ORIGIN", Duration::from_secs(40)).await;
        assert_eq!(text.trim(), "ORIGIN /cart?step=1");
        let here: String = page
            .evaluate("location.href")
            .await
            .expect("href")
            .into_value()
            .expect("string");
        assert_eq!(here, url, "back on the HTTPS URL first asked for");
        assert_eq!(served.hits(), 1);
        let cookies = page.get_cookies().await.expect("cookies");
        let c = cookies
            .iter()
            .find(|c| c.name == COOKIE_NAME)
            .expect("clearance cookie set");
        assert!(c.secure, "clearance cookie is Secure over HTTPS");
        assert!(c.http_only, "clearance cookie is HttpOnly");
        assert_eq!(passes(&node).len(), 1);
    })
    .await;
    browser.close().await;
    node.shutdown().await;
    outcome.expect("browser test finished within its time budget");
}

#[tokio::test]
async fn a_client_without_javascript_gets_the_page_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, served) = origin().await;
    let (node, addr) = node(
        dir.path(),
        origin,
        &[(HOST, "enabled = true\ndifficulty = 8")],
        None,
    )
    .await;
    tokio::time::timeout(BUDGET, async {
        for cookie in ["", "edgeguard_clearance=AAAA", "theme=dark"] {
            for _ in 0..3 {
                let headers: &[(&str, &str)] = if cookie.is_empty() {
                    &[]
                } else {
                    &[("cookie", cookie)]
                };
                let r = send(addr, "GET", HOST, "/account?id=1", headers, "").await;
                assert!(r.challenged(), "{}: {}", r.status, r.body);
                assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
            }
        }
        let post = send(addr, "POST", HOST, "/account", &[], "a=1").await;
        assert_eq!(post.status, StatusCode::FORBIDDEN);
        assert!(post.body.contains("whole site"), "{}", post.body);

        // Answers: a wrong nonce is refused (403), a made-up token is malformed (400); no cookie either way.
        let page = send(addr, "GET", HOST, "/a?b=1", &[], "").await.body;
        let wrong = send(
            addr,
            "POST",
            HOST,
            VERIFY_PATH,
            &[FORM],
            &answer_form(&page, nonce(&page, false)),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
        assert_eq!(wrong.body, "{\"ok\":false,\"error\":\"wrong_answer\"}");
        assert!(wrong.headers.get("set-cookie").is_none());
        let junk = send(
            addr,
            "POST",
            HOST,
            VERIFY_PATH,
            &[FORM],
            "token=abc&nonce=1",
        )
        .await;
        assert_eq!(junk.status, StatusCode::BAD_REQUEST);
        assert!(junk.headers.get("set-cookie").is_none());
    })
    .await
    .expect("within the time budget");
    assert_eq!(served.hits(), 0, "the origin never saw a request");
    assert!(passes(&node).is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn clearances_are_refused_when_forged_expired_moved_or_for_another_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, served) = origin().await;
    let clock = FakeClock::new(1_000_000);
    let challenge = "enabled = true\ndifficulty = 8\nclearance_ttl = \"2m\"";
    let (node, addr) = node(
        dir.path(),
        origin,
        &[(HOST, challenge), ("other.test", challenge)],
        Some(&clock),
    )
    .await;
    tokio::time::timeout(BUDGET, async {
        let ip = ("x-forwarded-for", "198.51.100.20");
        let page = send(addr, "GET", HOST, "/a?b=1", &[ip], "").await;
        assert!(page.challenged());
        let ok = send(
            addr,
            "POST",
            HOST,
            VERIFY_PATH,
            &[ip, FORM],
            &answer_form(&page.body, nonce(&page.body, true)),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(ok.body, "{\"ok\":true,\"redirect\":\"/a?b=1\"}");
        let set = ok.headers.get("set-cookie").unwrap().to_str().unwrap();
        assert!(set.contains("Max-Age=120; HttpOnly; SameSite=Lax"), "{set}");
        let cookie = set.split(';').next().unwrap().to_owned();

        let with = |ip: &'static str| [("x-forwarded-for", ip), ("cookie", "")];
        let get = |host: &'static str, ip: &'static str, cookie: String| async move {
            let mut h = with(ip);
            h[1].1 = &cookie;
            send(addr, "GET", host, "/a?b=1", &h, "").await
        };
        let through = get(HOST, "198.51.100.20", cookie.clone()).await;
        assert_eq!(through.body, "ORIGIN /a?b=1");
        // Forged: one character of the signature changed.
        let mut forged = cookie.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(get(HOST, "198.51.100.20", forged).await.challenged());
        // Another IP, another domain.
        assert!(
            get(HOST, "198.51.100.21", cookie.clone())
                .await
                .challenged()
        );
        assert!(
            get("other.test", "198.51.100.20", cookie.clone())
                .await
                .challenged()
        );
        // Still good just before its end; expired after.
        clock.advance(119_000);
        assert_eq!(
            get(HOST, "198.51.100.20", cookie.clone()).await.body,
            "ORIGIN /a?b=1"
        );
        clock.advance(1_000);
        assert!(
            get(HOST, "198.51.100.20", cookie.clone())
                .await
                .challenged()
        );

        // A page answered after its token's five minutes is refused as expired.
        let old = send(addr, "GET", HOST, "/", &[ip], "").await.body;
        clock.advance(5 * 60_000 + 1);
        let late = send(
            addr,
            "POST",
            HOST,
            VERIFY_PATH,
            &[ip, FORM],
            &answer_form(&old, nonce(&old, true)),
        )
        .await;
        assert_eq!(late.status, StatusCode::FORBIDDEN);
        assert_eq!(late.body, "{\"ok\":false,\"error\":\"expired\"}");
    })
    .await
    .expect("within the time budget");
    assert_eq!(served.hits(), 2);
    let passed = passes(&node);
    assert_eq!(passed.len(), 1);
    assert_eq!(
        (passed[0].object_value.as_str(), passed[0].ttl_s),
        ("198.51.100.20", 120)
    );
    assert!(
        passed[0].detail.contains("solve_ms=5"),
        "{}",
        passed[0].detail
    );
    node.shutdown().await;
}
