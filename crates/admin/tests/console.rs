//! The web console in headless Chromium: log in, switch on a domain's IP access limit with the recommended
//! default, add a custom rule, see the validation message of a bad rule name, read the learned baseline ("what
//! normal looks like here"), find a pre-inserted trigger in the activity log. Screenshots of each page go to `target/console-screenshots/`. Without `/usr/bin/chromium` the
//! test says why and passes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::page::{Page, ScreenshotParams};
use common::{TOKEN, start};
use edgeguard_admin::{
    BaselineMeasure, BaselinePath, BaselineShares, BaselineView, Control, StatusClassShare,
};
use edgeguard_store::ActivityRecord;
use edgeguard_testkit::browser::{CHROMIUM, Chromium, available, fill, js, wait_for};

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_flows_in_chromium() {
    if !available() {
        eprintln!(
            "skipping the console browser test: {CHROMIUM} is not installed (apt-get install chromium)"
        );
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), run())
        .await
        .expect("the browser test finishes within two minutes");
}

fn measure(name: &str, p999: Option<u64>, threshold: u64) -> BaselineMeasure {
    BaselineMeasure {
        measure: name.into(),
        events: 12_000,
        p99: p999.map(|v| v / 2),
        p999,
        threshold,
    }
}

/// A baseline as a node that served the domain for hours would report it.
fn learned_baseline(client_p999: u64) -> BaselineView {
    let classes = [(1, 0), (2, 930), (3, 40), (4, 29), (5, 1)];
    BaselineView {
        warming_up: false,
        measures: vec![
            measure("client_requests_10s", Some(client_p999), client_p999 * 2),
            measure("path_requests_10s", Some(96), 192),
            measure("path_unseen_queries_10s", None, 40),
            measure("new_clients_10s", Some(40), 100),
        ],
        shares: BaselineShares {
            requests: 50_000,
            with_query: 2_000,
            unseen_query: 600,
            unseen_query_per_mille: 12,
            status_classes: classes
                .iter()
                .map(|&(c, pm)| StatusClassShare {
                    class: format!("{c}xx"),
                    responses: pm * 50,
                    per_mille: pm,
                })
                .collect(),
        },
        top_paths: vec![BaselinePath {
            path: "/articles/1/".into(),
            samples: 900,
            requests_10s: 31,
            peak_10s: 88,
        }],
        paths_in_surge: 1,
        networks_flagged: 0,
        findings: Vec::new(),
    }
}

async fn run() {
    let h = start().await;
    h.control
        .set_baseline("www.example.com", learned_baseline(256));
    let now = h.control.now_ms();
    h.control
        .activity_log()
        .record(&ActivityRecord {
            time_ms: now - 60_000,
            node: "edge-1".into(),
            domain: "www.example.com".into(),
            rule: "flood01".into(),
            object_type: "ip".into(),
            object_value: "198.51.100.77".into(),
            action: "block".into(),
            ttl_s: 600,
            detail: "count=51".into(),
        })
        .expect("insert");
    // Some traffic for the chart and the recommendation: 30 QPS at peak from one IP.
    let ip = "203.0.113.5".parse().expect("ip");
    for i in 0..9000 {
        h.control
            .stats()
            .record_request("www.example.com", ip, now - 3_600_000 + i);
    }
    h.control
        .stats()
        .record_request("www.example.com", ip, now - 1_000_000);

    let browser = Chromium::launch(|c| {
        c.window_size(1280, 900)
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(15))
    })
    .await
    .expect("Chromium is installed (checked before the test started)");

    let base = format!("http://{}", h.addr);
    let page = browser
        .new_page(format!("{base}/console/"))
        .await
        .expect("page");

    // Log in.
    wait_for(
        &page,
        "!document.getElementById('view-login').hidden",
        "the login form",
    )
    .await;
    shot(&page, "1-login").await;
    page.find_element("#token")
        .await
        .expect("token field")
        .click()
        .await
        .expect("focus")
        .type_str(TOKEN)
        .await
        .expect("type");
    page.find_element("#login-btn")
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.querySelectorAll('#domain-rows tr').length === 2",
        "the domain list",
    )
    .await;
    shot(&page, "2-domains").await;

    // Domain Management -> Manage -> Access Control -> IP Access Limits: switch on.
    page.find_element("a.manage[data-domain='www.example.com']")
        .await
        .expect("manage link")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.getElementById('ip-source').textContent.includes('30 QPS')",
        "the recommended default",
    )
    .await;
    page.find_element("#ip-switch")
        .await
        .expect("switch")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.getElementById('ip-qps').textContent === '30 QPS'",
        "the limit in force",
    )
    .await;
    for _ in 0..50 {
        if h.control.config().domains[0].ip_access_limit.enabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ip_limit = h.control.config().domains[0].ip_access_limit.clone();
    assert!(ip_limit.enabled, "the switch reached the node");
    assert_eq!(ip_limit.qps, None, "the recommended default is kept");
    shot(&page, "3-access-control").await;

    // Security Settings: add a rule with a bad name, see the message, fix it.
    js(&page, "location.hash = '#/domain/www.example.com/security'").await;
    wait_for(
        &page,
        "!document.getElementById('panel-security').hidden",
        "the security tab",
    )
    .await;
    page.find_element("#add-rule")
        .await
        .expect("add rule")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.getElementById('rule-dialog').open",
        "the rule dialog",
    )
    .await;
    fill(&page, "#rule-name", "ab").await;
    fill(&page, "#rule-uri", "/register").await;
    fill(&page, "#rule-criteria", "\"count\">50").await;
    page.find_element("#rule-ok")
        .await
        .expect("ok")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.getElementById('err-name').textContent.includes('4 to 30 characters')",
        "the name's validation message",
    )
    .await;
    shot(&page, "4-rule-validation").await;
    fill(&page, "#rule-name", "register01").await;
    page.find_element("#rule-ok")
        .await
        .expect("ok")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.querySelector('#rule-rows tr[data-rule=register01]')",
        "the new rule",
    )
    .await;
    assert_eq!(
        h.control.config().domains[0].rate_limiting.rules[0].name,
        "register01"
    );
    shot(&page, "5-security-settings").await;

    // What normal looks like here: the learned values, then a refresh after the node learned more.
    let facts = "document.getElementById('bl-facts').textContent";
    wait_for(
        &page,
        &format!("{facts}.includes('256 requests in 10 s at p99.9 (threshold 512)')"),
        "the learned per-client rate",
    )
    .await;
    for (text, what) in [
        ("4.0/s at p99.9", "the new-client arrival rate"),
        ("1.2% of 50000 requests", "the unseen-query share"),
        (
            "2xx 93.0%, 3xx 4.0%, 4xx 2.9%, 5xx 0.1%",
            "the status classes",
        ),
        ("1 paths in surge", "the flags in force"),
    ] {
        wait_for(&page, &format!("{facts}.includes('{text}')"), what).await;
    }
    wait_for(
        &page,
        "document.querySelector('#bl-paths code')?.textContent === '/articles/1/' \
         && document.querySelector('#bl-paths tr').cells[1].textContent === '31'",
        "the busiest path and its learned rate",
    )
    .await;
    wait_for(
        &page,
        "document.querySelector('#bl-measures tr[data-measure=path_unseen_queries_10s]').cells[3].textContent === '-'",
        "a measure not learned yet",
    )
    .await;
    shot(&page, "5b-baseline").await;
    h.control
        .set_baseline("www.example.com", learned_baseline(300));
    page.find_element("#bl-refresh")
        .await
        .expect("refresh")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        &format!("{facts}.includes('300 requests in 10 s at p99.9 (threshold 600)')"),
        "the refreshed baseline",
    )
    .await;

    // Statistics chart.
    js(&page, "location.hash = '#/domain/www.example.com/stats'").await;
    wait_for(
        &page,
        "document.querySelector('#chart svg path')",
        "the chart",
    )
    .await;
    shot(&page, "6-statistics").await;

    // Activity log with a filter.
    js(&page, "location.hash = '#/activity'").await;
    wait_for(
        &page,
        "!document.getElementById('view-activity').hidden",
        "the activity view",
    )
    .await;
    fill(&page, "#f-domain", "www.example.com").await;
    page.find_element("#f-search")
        .await
        .expect("search")
        .click()
        .await
        .expect("click");
    wait_for(
        &page,
        "document.getElementById('activity-rows').textContent.includes('198.51.100.77')",
        "the pre-inserted trigger",
    )
    .await;
    shot(&page, "7-activity").await;

    browser.close().await;
    h.admin.stop().await;
}
