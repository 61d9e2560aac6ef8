//! The operator's console during an attack, in headless Chromium against a running `edgeguard run`: a burst
//! from one address shows in the live view and the top talkers within ten seconds; blocking it from the top
//! talkers makes its next request 403; the block is listed under Blocks & Challenges and lifting it there
//! serves it again; the "under attack" switch makes a client without JavaScript get the challenge page.
//! Screenshots of each view go to `target/console-screenshots/`. Without `/usr/bin/chromium` the test says why
//! and passes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::{Page, ScreenshotParams};
use edgeguard_testkit::browser::{Chromium, available, js, wait_for};
use edgeguard_testkit::{Origin, get};

mod common;

use common::Node;
const TOKEN: &str = "console-token";
const HOST: &str = "shop.test";
const FLOOD: &str = "198.51.100.7";

fn start_node(dir: &Path, origin: SocketAddr) -> Node {
    let config = dir.join("edgeguard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
name = "edge-console"
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.1/32"]
data_dir = "{data}"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[[domain]]
name = "{HOST}"
origins = ["{origin}"]

[domain.rate_limiting]
enabled = true
mode = "custom"

# Tried on live traffic: triggers are logged, nothing is refused.
[[domain.rate_limiting.rules]]
name = "login01"
uri = "/login"
match = "prefix"
object = "ip"
interval = 10
criteria = '"count">5'
action = "log"
ttl = 60
"#,
            data = dir.join("data").display()
        ),
    )
    .expect("config");
    Node::start(&config)
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
}

async fn shot(page: &Page, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        dir.join(format!("{name}.png")),
    )
    .await
    .expect("screenshot");
}

async fn status_from(node: &Node, ip: &str, path: &str) -> u16 {
    get(node.listen, HOST, path, &[("X-Forwarded-For", ip)])
        .await
        .status
        .as_u16()
}

/// Clicks through the DOM: the live view rebuilds its tables every few seconds, so an element found by CDP
/// may be gone by the time a synthetic mouse click reaches it.
async fn click(page: &Page, selector: &str) {
    let sel = serde_json::to_string(selector).expect("selector");
    js(page, &format!("document.querySelector({sel}).click()")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_during_an_attack_in_chromium() {
    if !available() {
        eprintln!("skipping the console browser test: Chromium is not installed");
        return;
    }
    tokio::time::timeout(Duration::from_secs(150), run())
        .await
        .expect("the browser test finishes within 150 seconds");
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Origin::builder().start().await;
    let node = start_node(dir.path(), origin.addr());
    assert_eq!(status_from(&node, "203.0.113.9", "/").await, 200);

    let browser = Chromium::launch(|c| {
        c.window_size(1280, 800)
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(15))
    })
    .await
    .expect("Chromium starts");
    let page = browser
        .new_page(format!("http://{}/console/", node.admin))
        .await
        .expect("page");
    wait_for(
        &page,
        "!document.getElementById('view-login').hidden",
        "the login form",
    )
    .await;
    page.find_element("#token")
        .await
        .expect("token")
        .click()
        .await
        .expect("focus")
        .type_str(TOKEN)
        .await
        .expect("type");
    click(&page, "#login-btn").await;
    wait_for(
        &page,
        "document.querySelector('a.live[data-domain=\"shop.test\"]')",
        "the domain list",
    )
    .await;

    // A log-only rule triggers on one client; it is served all the same.
    for _ in 0..8 {
        assert_eq!(status_from(&node, "192.0.2.77", "/login").await, 200);
    }

    // A burst from one address, then the live view: it shows within ten seconds (the view polls every 3 s).
    for _ in 0..60 {
        assert_eq!(status_from(&node, FLOOD, "/burst").await, 200);
    }
    let burst_at = Instant::now();
    click(&page, "a.live[data-domain='shop.test']").await;
    let row = format!("#talkers-addresses tr[data-key='{FLOOD}']");
    wait_for(
        &page,
        &format!("document.querySelector(\"{row}\")"),
        "the flood in the top talkers",
    )
    .await;
    wait_for(
        &page,
        "['hit', 'miss'].map((k) => Number(document.querySelector('#live-legend [data-kind=' + k + ']')\
         ?.textContent.split(': ')[1] || 0)).reduce((a, b) => a + b) >= 61 \
         && document.querySelectorAll('#live-chart rect').length > 0",
        "the burst in the live chart",
    )
    .await;
    assert!(
        burst_at.elapsed() < Duration::from_secs(10),
        "seen within 10 s"
    );
    wait_for(
        &page,
        "document.querySelector('#talkers-paths tr[data-key=\"/burst\"]')",
        "the burst's path",
    )
    .await;
    shot(&page, "live-1-burst").await;

    // One click blocks it: its next request is refused.
    click(&page, &format!("{row} button[data-act=block]")).await;
    wait_for(
        &page,
        "document.getElementById('talkers-msg').textContent.includes('Blocked')",
        "the block",
    )
    .await;
    assert_eq!(status_from(&node, FLOOD, "/burst").await, 403);
    assert_eq!(
        status_from(&node, "203.0.113.9", "/").await,
        200,
        "others still served"
    );

    // Listed under Blocks & Challenges; lifting it there serves it again.
    js(&page, "location.hash = '#/blocks'").await;
    let listed = format!("#block-rows tr[data-object='{FLOOD}']");
    wait_for(
        &page,
        &format!("document.querySelector(\"{listed}\")"),
        "the block in the list",
    )
    .await;
    shot(&page, "live-2-blocks").await;
    click(&page, &format!("{listed} button.lift")).await;
    wait_for(
        &page,
        &format!("!document.querySelector(\"{listed}\")"),
        "the block lifted",
    )
    .await;
    assert_eq!(status_from(&node, FLOOD, "/burst").await, 200);

    // Allow from the top talkers puts the address on the allow list, shown on the Access Control tab.
    js(&page, "location.hash = '#/domain/shop.test/live'").await;
    let other = "#talkers-addresses tr[data-key='203.0.113.9'] button[data-act=allow]";
    wait_for(
        &page,
        &format!("document.querySelector(\"{other}\")"),
        "the other client",
    )
    .await;
    click(&page, other).await;
    wait_for(
        &page,
        "document.getElementById('talkers-msg').textContent.includes('allow list')",
        "the allow",
    )
    .await;
    js(&page, "location.hash = '#/domain/shop.test/access'").await;
    wait_for(
        &page,
        "document.getElementById('acl-allow').value.includes('203.0.113.9/32')",
        "the allow list",
    )
    .await;
    shot(&page, "live-3-access-lists").await;
    js(&page, "location.hash = '#/domain/shop.test/security'").await;
    wait_for(
        &page,
        "document.getElementById('ch-difficulty').value === '20'",
        "the challenge settings",
    )
    .await;
    shot(&page, "live-4-security").await;

    // Under attack: a client without JavaScript gets the challenge page; the banner shows on every page.
    js(&page, "location.hash = '#/domain/shop.test/live'").await;
    wait_for(
        &page,
        "!document.getElementById('panel-live').hidden",
        "the live tab",
    )
    .await;
    click(&page, "#attack-switch").await;
    wait_for(
        &page,
        "document.getElementById('attack-switch').getAttribute('aria-checked') === 'true' \
         && !document.getElementById('attack-banner').hidden",
        "the switch on and the banner",
    )
    .await;
    let r = get(node.listen, HOST, "/", &[("X-Forwarded-For", "192.0.2.50")]).await;
    assert!(
        r.body.contains("data-challenge="),
        "challenge page, got {} {}",
        r.status,
        r.body
    );
    shot(&page, "live-5-under-attack").await;
    js(&page, "location.hash = '#/domains'").await;
    wait_for(&page, "!document.getElementById('view-domains').hidden && !document.getElementById('attack-banner').hidden", "the banner elsewhere").await;

    // Readable on a phone too.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .expect("phone viewport");
    js(&page, "location.hash = '#/domain/shop.test/live'").await;
    wait_for(
        &page,
        "document.querySelectorAll('#live-chart rect').length > 0",
        "the live view on a phone",
    )
    .await;
    shot(&page, "live-6-phone").await;

    // Switching off ends the challenge and brings the custom mode back.
    click(&page, "#attack-switch").await;
    wait_for(
        &page,
        "document.getElementById('attack-switch').getAttribute('aria-checked') === 'false'",
        "the switch off",
    )
    .await;
    assert_eq!(status_from(&node, "192.0.2.51", "/").await, 200);
    let rl = get(
        node.admin,
        "admin",
        "/api/v1/domains/shop.test/rate-limiting",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    let rl: serde_json::Value = serde_json::from_str(&rl.body).expect("json");
    assert_eq!(rl["mode"], "custom", "the mode before the switch is back");

    browser.close().await;
}
