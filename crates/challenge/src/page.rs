//! The challenge page: one self-contained HTML document, inline CSS and JavaScript, no outside resources.
//!
//! The scripts and the style are the same bytes on every page (the per-visit values travel in `data-` attributes),
//! so [`content_security_policy`] can allow exactly them by hash and nothing else.

use crate::ChallengeToken;
use crate::VERIFY_PATH;
use crate::endpoint::safe_return_path;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The SHA-256 implementation the page runs, exposed for tests that check it against known vectors.
pub const SHA256_JS: &str = include_str!("page/sha256.js");
const WORKER_JS: &str = include_str!("page/worker.js");
const MAIN_JS: &str = include_str!("page/challenge.js");
const STYLE: &str = include_str!("page/style.css");

/// What one challenge page shows.
#[derive(Clone, Copy, Debug)]
pub struct ChallengeParams<'a> {
    pub token: &'a ChallengeToken,
    /// The site's name as shown to the visitor.
    pub domain: &'a str,
    /// The URL first asked for, path and query (`/shop?item=3`); anything else is replaced by `/`.
    pub return_to: &'a str,
}

/// The worker's source sits in a `text/plain` script block that the page turns into a Blob URL: it is not run
/// as a script (so needs no CSP allowance), and the main script builds the worker without `eval`.
static WORKER_BLOCK: LazyLock<String> = LazyLock::new(|| format!("\n{SHA256_JS}\n{WORKER_JS}"));

/// `Content-Security-Policy` value for the challenge page: nothing but its own inline style and script (by hash),
/// a worker from a Blob URL, and a fetch to its own origin.
pub fn content_security_policy() -> &'static str {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = |s: &str| STANDARD.encode(Sha256::digest(s.as_bytes()));
        format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; worker-src blob:; \
             connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            hash(MAIN_JS),
            hash(STYLE)
        )
    });
    &CSP
}

/// The HTML body of the challenge response (status 200; the proxy adds `Cache-Control: no-store`,
/// `Content-Type: text/html; charset=utf-8` and, if it wants, [`content_security_policy`]).
pub fn render_page(params: &ChallengeParams<'_>) -> String {
    let token = params.token;
    let domain = escape(params.domain);
    let ret = escape(&safe_return_path(params.return_to));
    let mut html = String::with_capacity(12 * 1024);
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str("<meta name=\"robots\" content=\"noindex, nofollow\">\n");
    html.push_str(&format!(
        "<title>Checking your browser \u{2013} {domain}</title>\n"
    ));
    html.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    html.push_str(&format!(
        "<main id=\"eg\" data-token=\"{}\" data-challenge=\"{}\" data-difficulty=\"{}\" data-verify=\"{}\" \
         data-return=\"{ret}\">\n",
        escape(token.as_str()),
        escape(token.challenge()),
        token.difficulty().bits(),
        escape(VERIFY_PATH),
    ));
    html.push_str("<h1>Checking your browser</h1>\n");
    html.push_str(&format!(
        "<p>{domain} is protecting itself from automated traffic. Your browser solves a short computation \
         before the page opens; there is nothing to click.</p>\n"
    ));
    html.push_str(
        "<noscript><p class=\"eg-warn\">This check needs JavaScript, which is turned off or not supported \
         in your browser. Please enable JavaScript for this site and reload the page.</p></noscript>\n",
    );
    html.push_str("<div id=\"eg-live\" hidden>\n");
    html.push_str(
        "<p id=\"eg-status\" role=\"status\" aria-live=\"polite\">Starting\u{2026}</p>\n",
    );
    html.push_str("<progress id=\"eg-progress\" max=\"100\" aria-label=\"Progress of the browser check\"></progress>\n");
    html.push_str(
        "<p id=\"eg-stats\" class=\"eg-muted\" aria-live=\"polite\" aria-atomic=\"true\"></p>\n",
    );
    html.push_str("<p><a id=\"eg-retry\" href=\"\" hidden>Try again</a></p>\n</div>\n");
    html.push_str(&format!(
        "<p class=\"eg-muted\">Expected work: about {} hashes. Protected by edgeguard.</p>\n</main>\n",
        thousands(token.difficulty().expected_hashes())
    ));
    html.push_str(&format!(
        "<script type=\"text/plain\" id=\"eg-worker\">{}</script>\n",
        *WORKER_BLOCK
    ));
    html.push_str(&format!("<script>{MAIN_JS}</script>\n</body>\n</html>\n"));
    html
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    groups.join(",")
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
