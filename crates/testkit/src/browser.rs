//! Headless Chromium for browser tests (Debian's `/usr/bin/chromium`) and the CDP helpers they poll pages with.
//! A test that finds no Chromium says so and passes: [`Chromium::launch`] returns `None` after printing why.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig, BrowserConfigBuilder};
use chromiumoxide::page::Page;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Time Chromium gets to start, unless a test asks for another.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether Chromium is installed.
pub fn available() -> bool {
    Path::new(CHROMIUM).exists()
}

/// A running Chromium with a profile of its own, deleted when it is dropped. Derefs to the [`Browser`].
pub struct Chromium {
    browser: Browser,
    events: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium with a fresh user-data-dir, or says why not and returns `None`. `customize` adds to the
    /// configuration (arguments, window size, timeouts) before it is built.
    pub async fn launch(
        customize: impl FnOnce(BrowserConfigBuilder) -> BrowserConfigBuilder,
    ) -> Option<Chromium> {
        if !available() {
            eprintln!("skipping: {CHROMIUM} is not installed (apt-get install chromium)");
            return None;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        // chromiumoxide writes each argument as `--KEY` or `--KEY=VALUE`, so keys go without dashes
        // (`--disable-gpu` would reach Chromium as `----disable-gpu` and be ignored); `--headless` and
        // `--no-sandbox` come from the builder.
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path())
            .args([
                "disable-gpu",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "disable-quic",
            ])
            .launch_timeout(LAUNCH_TIMEOUT);
        let config = customize(config).build().expect("browser config");
        let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Some(Chromium {
            browser,
            events,
            _profile: profile,
        })
    }

    /// Closes the browser and waits for its process to end.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.events.abort();
    }
}

impl Deref for Chromium {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl DerefMut for Chromium {
    fn deref_mut(&mut self) -> &mut Browser {
        &mut self.browser
    }
}

/// The page's body text, empty while it navigates.
pub async fn body_text(page: &Page) -> String {
    match page
        .evaluate("document.body ? document.body.innerText : ''")
        .await
    {
        Ok(v) => v.into_value().unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Polls the page until its body text contains `needle` (bounded by `limit`); returns the text.
pub async fn wait_for_text(page: &Page, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = body_text(page).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "page never showed {needle:?}; last text: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `condition` (a JavaScript expression) until it is true, for about ten seconds; `what` names it in the
/// failure, with the page's text.
pub async fn wait_for(page: &Page, condition: &str, what: &str) {
    for _ in 0..100 {
        let ok = page
            .evaluate(format!("!!({condition})"))
            .await
            .ok()
            .and_then(|r| r.into_value::<bool>().ok())
            .unwrap_or(false);
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = page
        .evaluate("document.body.innerText")
        .await
        .ok()
        .and_then(|r| r.into_value::<String>().ok())
        .unwrap_or_default();
    panic!("timed out waiting for {what} ({condition}); page text:\n{body}");
}

/// Runs `script` in the page; a script error fails the test.
pub async fn js(page: &Page, script: &str) {
    page.evaluate(script)
        .await
        .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"));
}

/// Sets the value of the form field `selector` to `value`.
pub async fn fill(page: &Page, selector: &str, value: &str) {
    let v = serde_json::to_string(value).expect("json string");
    js(
        page,
        &format!("document.querySelector({:?}).value = {v}", selector),
    )
    .await;
}
