//! The challenge end to end: a tiny hyper server guards a page with this crate, and a real headless Chromium
//! (Debian's `/usr/bin/chromium`) must get through it on its own, while a client without JavaScript never does.
//! When Chromium is not installed the browser tests say so and pass.

use chromiumoxide::cdp::browser_protocol::emulation::SetHardwareConcurrencyOverrideParams;
use edgeguard_challenge::{
    COOKIE_NAME, ChallengeParams, Challenger, Difficulty, MAX_VERIFY_BODY, SHA256_JS, VERIFY_PATH,
    content_security_policy, render_page,
};
use edgeguard_testkit::browser::{Chromium, wait_for_text};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

const TEST_BUDGET: Duration = Duration::from_secs(60);

struct Site {
    challenger: Challenger,
    difficulty: Difficulty,
    /// Serve the challenge even to cleared clients (for timing repeated solves).
    always_challenge: bool,
    challenges: AtomicUsize,
    protected: AtomicUsize,
    passed: AtomicUsize,
    /// Scripts of the page served (a browser keeps them: fetched once per profile).
    assets: AtomicUsize,
    /// (nonce, solve time the page claimed) of each accepted answer.
    solves: Mutex<Vec<(u64, u64)>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn reply(status: u16, headers: &[(&str, &str)], body: String) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(Bytes::from(body)))
        .expect("valid test response")
}

fn form_field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

async fn handle(site: Arc<Site>, peer: IpAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let domain = host.rsplit_once(':').map_or(host, |(h, _)| h).to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if req.uri().path() == VERIFY_PATH && req.method() == hyper::Method::POST {
        let Ok(body) = Limited::new(req.into_body(), MAX_VERIFY_BODY)
            .collect()
            .await
        else {
            return reply(413, &[], String::new());
        };
        let body = body.to_bytes();
        let r = site
            .challenger
            .handle_verify(&body, peer, &domain, now_ms(), false);
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if let Some(c) = &r.set_cookie {
            headers.push(("set-cookie", c));
            site.passed.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(&body);
            let nonce = form_field(&text, "nonce")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            site.solves
                .lock()
                .expect("lock")
                .push((nonce, r.claimed_solve_ms.unwrap_or(0)));
        }
        return reply(r.status, &headers, r.body);
    }
    // The page's scripts, as the data plane serves them.
    if let Some(asset) = edgeguard_challenge::asset(req.uri().path()) {
        site.assets.fetch_add(1, Ordering::SeqCst);
        let body = String::from_utf8(asset.body.to_vec()).expect("script text");
        return reply(
            200,
            &[
                ("content-type", asset.content_type),
                ("cache-control", edgeguard_challenge::ASSET_CACHE_CONTROL),
            ],
            body,
        );
    }
    if req.uri().path() == "/favicon.ico" {
        return reply(404, &[], String::new());
    }
    if req.uri().path() == "/sha256-test" {
        let page = format!(
            "<!doctype html><html lang=\"en\"><title>t</title><script>{SHA256_JS}</script></html>"
        );
        return reply(200, &[("content-type", "text/html; charset=utf-8")], page);
    }
    let cookies: Vec<&str> = req
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let cleared = site
        .challenger
        .check_clearance_headers(cookies, peer, &domain, now_ms())
        .is_ok();
    if cleared && !site.always_challenge {
        site.protected.fetch_add(1, Ordering::SeqCst);
        return reply(
            200,
            &[("content-type", "text/plain")],
            format!("PROTECTED {path_and_query}"),
        );
    }
    site.challenges.fetch_add(1, Ordering::SeqCst);
    let token = site
        .challenger
        .issue(peer, &domain, now_ms(), site.difficulty);
    let page = render_page(&ChallengeParams {
        token: &token,
        domain: &domain,
        return_to: &path_and_query,
    });
    let headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("content-security-policy", content_security_policy()),
    ];
    reply(200, &headers, page)
}

async fn serve(site: Arc<Site>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let site = site.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let site = site.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(site, peer.ip(), req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    addr
}

fn site(bits: u8, always_challenge: bool) -> Arc<Site> {
    Arc::new(Site {
        challenger: Challenger::from_key([42u8; 32]),
        difficulty: Difficulty::new(bits).expect("difficulty in range"),
        always_challenge,
        challenges: AtomicUsize::new(0),
        assets: AtomicUsize::new(0),
        protected: AtomicUsize::new(0),
        passed: AtomicUsize::new(0),
        solves: Mutex::new(Vec::new()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_passes_the_challenge_and_keeps_the_url() {
    let Some(browser) = Chromium::launch(|c| c).await else {
        return;
    };
    let site = site(12, false);
    let addr = serve(site.clone()).await;
    let outcome = tokio::time::timeout(TEST_BUDGET, async {
        let url = format!("http://{addr}/account/orders?page=2&sort=new%20first");
        let page = browser.new_page("about:blank").await.expect("new tab");
        page.goto(url.as_str()).await.expect("navigate");
        let text = wait_for_text(&page, "PROTECTED", Duration::from_secs(40)).await;
        assert_eq!(text.trim(), "PROTECTED /account/orders?page=2&sort=new%20first");
        let here: String = page.evaluate("location.href").await.expect("href").into_value().expect("string");
        assert_eq!(here, url, "back on the URL first asked for");
        assert_eq!(site.challenges.load(Ordering::SeqCst), 1);
        assert_eq!(site.passed.load(Ordering::SeqCst), 1);
        // The page ran its script and worker from this origin, under the page's CSP.
        assert!(site.assets.load(Ordering::SeqCst) >= 2, "main script and worker fetched");
        let cookies = page.get_cookies().await.expect("cookies");
        let c = cookies.iter().find(|c| c.name == COOKIE_NAME).expect("clearance cookie set");
        assert!(c.http_only, "clearance cookie is HttpOnly");

        // Second load, and another path on the same site: straight through.
        page.goto(format!("http://{addr}/other?x=1").as_str()).await.expect("navigate");
        let text = wait_for_text(&page, "PROTECTED", Duration::from_secs(5)).await;
        assert_eq!(text.trim(), "PROTECTED /other?x=1");
        assert_eq!(site.challenges.load(Ordering::SeqCst), 1, "no second challenge");
        assert_eq!(site.protected.load(Ordering::SeqCst), 2);

        // The page's SHA-256 against the Rust one: standard vectors, every length across the block edges,
        // and the one-block puzzle hash.
        page.goto(format!("http://{addr}/sha256-test").as_str()).await.expect("navigate");
        let mut inputs: Vec<String> = vec![
            String::new(),
            "abc".into(),
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".into(),
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".into(),
        ];
        inputs.extend((0..=130).map(|n| (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect::<String>()));
        let list = inputs.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",");
        let js = format!(
            "[{list}].map(function (s) {{ return egHex(egSha256(new TextEncoder().encode(s))); }})\
             .concat([egHex(egSha256(new Uint8Array(1000000).fill(97)))])"
        );
        let got: Vec<String> = page.evaluate(js).await.expect("evaluate").into_value().expect("strings");
        let mut want: Vec<String> = inputs.iter().map(|s| hex(&Sha256::digest(s.as_bytes()))).collect();
        want.push(hex(&Sha256::digest(vec![b'a'; 1_000_000])));
        assert_eq!(want[1], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(want[2], "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        assert_eq!(got, want);
        let challenge = "0123456789abcdef0123456789abcdef";
        let nonces = [0u64, 9, 10, 99_999, 4_294_967_296, 9_007_199_254_740_991];
        let js = format!(
            "(function () {{ var p = new EgPuzzle('{challenge}'); return [{}].map(function (n) {{ \
             return egHex(p.hash(n)); }}); }})()",
            nonces.map(|n| n.to_string()).join(",")
        );
        let got: Vec<String> = page.evaluate(js).await.expect("evaluate").into_value().expect("strings");
        let want: Vec<String> =
            nonces.iter().map(|n| hex(&Sha256::digest(format!("{challenge}{n}").as_bytes()))).collect();
        assert_eq!(got, want);
    })
    .await;
    browser.close().await;
    outcome.expect("browser test finished within its time budget");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw HTTP/1.1 exchange; returns (status line, whole response).
async fn get(addr: SocketAddr, request: &str) -> (String, String) {
    let text = edgeguard_testkit::raw(addr, request.as_bytes()).await;
    (text.lines().next().unwrap_or_default().to_string(), text)
}

#[tokio::test]
async fn a_client_without_javascript_never_gets_through() {
    let site = site(12, false);
    let addr = serve(site.clone()).await;
    for cookie in [
        "",
        "Cookie: edgeguard_clearance=AAAA\r\n",
        "Cookie: theme=dark\r\n",
    ] {
        for _ in 0..3 {
            let req = format!(
                "GET /account?id=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Connection: close\r\n\r\n"
            );
            let (status, text) = tokio::time::timeout(TEST_BUDGET, get(addr, &req))
                .await
                .expect("in time");
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(text.contains("<main id=\"eg\""), "challenge page served");
            assert!(text.contains("<noscript>"));
            assert!(!text.contains("PROTECTED"));
        }
    }
    // Guessing at the verify endpoint gets no cookie.
    let body = "token=abc&nonce=1&return_to=%2F";
    let req = format!(
        "POST {VERIFY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = get(addr, &req).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(!text.to_ascii_lowercase().contains("set-cookie"));
    assert_eq!(site.protected.load(Ordering::SeqCst), 0);
    assert_eq!(site.challenges.load(Ordering::SeqCst), 9);
}

/// Solve time at the default difficulty with one worker (one core), over several fresh challenges. Not part of
/// the suite: `cargo test -p edgeguard-challenge --test browser -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, takes about half a minute"]
async fn measure_default_difficulty_solve_time() {
    let Some(browser) = Chromium::launch(|c| c).await else {
        return;
    };
    let site = site(Difficulty::DEFAULT.bits(), true);
    let addr = serve(site.clone()).await;
    let rounds = 12;
    let page = browser.new_page("about:blank").await.expect("new tab");
    page.execute(SetHardwareConcurrencyOverrideParams::new(1))
        .await
        .expect("one worker");
    for round in 0..rounds {
        page.goto(format!("http://{addr}/m?round={round}").as_str())
            .await
            .expect("navigate");
        if round == 0 {
            let cores: i64 = page
                .evaluate("navigator.hardwareConcurrency")
                .await
                .expect("eval")
                .into_value()
                .expect("int");
            assert_eq!(
                cores, 1,
                "the page runs one worker, so nonce + 1 counts the hashes tried"
            );
        }
        let start = Instant::now();
        while site.passed.load(Ordering::SeqCst) <= round {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "round {round} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let solves = site.solves.lock().expect("lock").clone();
    let hashes: u64 = solves.iter().map(|(n, _)| n + 1).sum();
    let ms: u64 = solves.iter().map(|(_, ms)| ms).sum();
    let mut times: Vec<u64> = solves.iter().map(|(_, ms)| *ms).collect();
    times.sort_unstable();
    let rate = hashes as f64 / (ms as f64 / 1000.0);
    println!(
        "difficulty {} bits, {rounds} solves on one worker: hash rate {:.2} M/s, expected solve {:.2} s, \
         median {} ms, min {} ms, max {} ms",
        Difficulty::DEFAULT.bits(),
        rate / 1e6,
        Difficulty::DEFAULT.expected_hashes() as f64 / rate,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    browser.close().await;
}
