//! The challenge page: one small HTML document with its style inline and its scripts as files of this origin
//! ([`crate::assets`]), nothing from elsewhere.
//!
//! The style and the scripts are the same bytes on every page (the per-visit values travel in `data-` attributes),
//! so [`content_security_policy`] can allow exactly them by hash (the main script through its `integrity`) and
//! nothing else. The fixed parts are built once into shared bytes: a visit copies or references them and splices
//! in its own values, without formatting anything.

use crate::ChallengeToken;
use crate::Difficulty;
use crate::VERIFY_PATH;
use crate::assets::{main_script, worker_script};
use crate::endpoint::{MAX_RETURN_LEN, write_return_path};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

pub(crate) const STYLE: &str = include_str!("page/style.css");

/// What one challenge page shows.
#[derive(Clone, Copy, Debug)]
pub struct ChallengeParams<'a> {
    pub token: &'a ChallengeToken,
    /// The site's name as shown to the visitor.
    pub domain: &'a str,
    /// The URL first asked for, path and query (`/shop?item=3`); anything else is replaced by `/`.
    pub return_to: &'a str,
}

/// `Content-Security-Policy` value for the challenge page: nothing but its own inline style and script (by hash),
/// its main script (by hash, matched through the script's `integrity`), a worker from its own origin, and a fetch to
/// its own origin.
pub fn content_security_policy() -> &'static str {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = |s: &str| STANDARD.encode(Sha256::digest(s.as_bytes()));
        format!(
            "default-src 'none'; script-src '{}'; style-src 'sha256-{}'; worker-src 'self'; \
             connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            main_script().integrity,
            hash(STYLE)
        )
    });
    &CSP
}

/// Everything before the domain in the title.
const HEAD_OPEN: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
    <meta name=\"robots\" content=\"noindex, nofollow\">\n<title>Checking your browser \u{2013} ";
const BODY_OPEN: &str = "\">\n<h1>Checking your browser</h1>\n<p>";
const BODY_TEXT: &str = " is protecting itself from automated traffic. Your browser solves a short computation \
    before the page opens; there is nothing to click.</p>\n\
    <noscript><p class=\"eg-warn\">This check needs JavaScript, which is turned off or not supported \
    in your browser. Please enable JavaScript for this site and reload the page.</p></noscript>\n\
    <div id=\"eg-live\" hidden>\n\
    <p id=\"eg-status\" role=\"status\" aria-live=\"polite\">Starting\u{2026}</p>\n\
    <progress id=\"eg-progress\" max=\"100\" aria-label=\"Progress of the browser check\"></progress>\n\
    <p id=\"eg-stats\" class=\"eg-muted\" aria-live=\"polite\" aria-atomic=\"true\"></p>\n\
    <p><a id=\"eg-retry\" href=\"\" hidden>Try again</a></p>\n</div>\n\
    <p class=\"eg-muted\">Expected work: about ";

/// The parts of the page that no visit changes, built once.
struct Fixed {
    /// From the end of the title to the token's attribute value: the style sheet.
    head_close: String,
    /// From the difficulty to the return path's attribute value.
    verify_attr: String,
    /// From the expected work to the end: the script element.
    tail: String,
    /// Per difficulty (indexed by bits): the bits and the expected hashes as text.
    bits: Vec<String>,
    expected: Vec<String>,
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let mut verify_attr = String::from("\" data-worker=\"");
    escape_into(&mut verify_attr, &worker_script().path);
    verify_attr.push_str("\" data-verify=\"");
    escape_into(&mut verify_attr, VERIFY_PATH);
    verify_attr.push_str("\" data-return=\"");
    let main = main_script();
    let tail = [
        " hashes. Protected by edgeguard.</p>\n</main>\n<script src=\"",
        &main.path,
        "\" integrity=\"",
        &main.integrity,
        "\"></script>\n</body>\n</html>\n",
    ]
    .concat();
    let range = 0..=Difficulty::MAX;
    Fixed {
        head_close: [
            "</title>\n<style>",
            STYLE,
            "</style>\n</head>\n<body>\n<main id=\"eg\" data-token=\"",
        ]
        .concat(),
        verify_attr,
        tail,
        bits: range.clone().map(|b| b.to_string()).collect(),
        expected: range.map(|b| thousands(1u64 << b)).collect(),
    }
});

/// The challenge page of one domain, built once (the style sheet and the scripts as shared bytes) so that a
/// visit only splices in its token, puzzle, difficulty and return path.
///
/// Cheap to clone (reference-counted pieces). The page is byte for byte what [`render_page`] makes.
#[derive(Clone, Debug)]
pub struct ChallengePage {
    /// Up to the token's attribute value: head, title with the domain, style.
    head: Bytes,
    /// After the return path's attribute value up to the expected work: the text naming the domain.
    body: Bytes,
}

impl ChallengePage {
    pub fn new(domain: &str) -> ChallengePage {
        let fixed = &*FIXED;
        let mut head =
            String::with_capacity(HEAD_OPEN.len() + fixed.head_close.len() + domain.len() * 2);
        head.push_str(HEAD_OPEN);
        escape_into(&mut head, domain);
        head.push_str(&fixed.head_close);
        let mut body = String::with_capacity(BODY_OPEN.len() + BODY_TEXT.len() + domain.len() * 2);
        body.push_str(BODY_OPEN);
        escape_into(&mut body, domain);
        body.push_str(BODY_TEXT);
        ChallengePage {
            head: Bytes::from(head),
            body: Bytes::from(body),
        }
    }

    /// The whole page for one visit, in one buffer: one allocation, copies of the prebuilt pieces.
    ///
    /// Hot path of every challenged request: no formatting, no system call.
    pub fn render(&self, token: &ChallengeToken, return_to: &str) -> Bytes {
        Bytes::from(self.render_vec(token, return_to))
    }

    fn render_vec(&self, token: &ChallengeToken, return_to: &str) -> Vec<u8> {
        let fixed = &*FIXED;
        let mut out = Vec::with_capacity(
            self.head.len() + self.body.len() + fixed.tail.len() + visit_len(return_to),
        );
        out.extend_from_slice(&self.head);
        push_visit(&mut out, token, return_to);
        out.extend_from_slice(&self.body);
        out.put(expected(token));
        out.put(&fixed.tail);
        out
    }

    /// The page for one visit as five pieces to send in order (a vectored write or a body of several frames):
    /// only the second and fourth are made for the visit (about 300 bytes and the expected work); the others,
    /// about 2 KB in all, are shared.
    pub fn render_chunks(&self, token: &ChallengeToken, return_to: &str) -> [Bytes; 5] {
        let fixed: &'static Fixed = &FIXED;
        let mut visit = Vec::with_capacity(visit_len(return_to));
        push_visit(&mut visit, token, return_to);
        [
            self.head.clone(),
            Bytes::from(visit),
            self.body.clone(),
            Bytes::from_static(expected(token).as_bytes()),
            Bytes::from_static(fixed.tail.as_bytes()),
        ]
    }
}

fn expected(token: &ChallengeToken) -> &'static str {
    FIXED.expected[usize::from(token.difficulty().bits())].as_str()
}

/// Room for the per-visit values: the token and puzzle are fixed-size, the return path at most triples (a
/// percent-encoded byte) and rarely more (`&` escaped).
fn visit_len(return_to: &str) -> usize {
    crate::token::TEXT_LEN
        + 32
        + 64
        + FIXED.verify_attr.len()
        + 3 * return_to.len().min(MAX_RETURN_LEN)
        + 16
}

/// From the token's value to the return path's, inclusive. Token and puzzle are base64url and hex: nothing in
/// them needs escaping.
fn push_visit(out: &mut impl Out, token: &ChallengeToken, return_to: &str) {
    let fixed = &*FIXED;
    out.put(token.as_str());
    out.put("\" data-challenge=\"");
    out.put(token.challenge());
    out.put("\" data-difficulty=\"");
    out.put(&fixed.bits[usize::from(token.difficulty().bits())]);
    out.put(&fixed.verify_attr);
    // The safe path's only characters that HTML escapes.
    write_return_path(return_to, |mut chunk| {
        while let Some(i) = chunk.find(['&', '\'']) {
            out.put(&chunk[..i]);
            out.put(if chunk[i..].starts_with('&') {
                "&amp;"
            } else {
                "&#39;"
            });
            chunk = &chunk[i + 1..];
        }
        out.put(chunk);
    });
}

/// Where a page is written: a `String` for [`render_page`], bytes for [`ChallengePage`].
trait Out {
    fn put(&mut self, s: &str);
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// The HTML body of the challenge response (status 200; the proxy adds `Cache-Control: no-store`,
/// `Content-Type: text/html; charset=utf-8` and, if it wants, [`content_security_policy`]).
///
/// The same bytes as [`ChallengePage::render`], escaping the domain on every call (a caller serving many pages
/// for a domain may keep a [`ChallengePage`]). Hot path of every challenged request: one allocation, copies of
/// the prebuilt pieces, no formatting.
pub fn render_page(params: &ChallengeParams<'_>) -> String {
    let fixed = &*FIXED;
    let (token, domain) = (params.token, params.domain);
    let mut out = String::with_capacity(
        HEAD_OPEN.len()
            + fixed.head_close.len()
            + BODY_OPEN.len()
            + BODY_TEXT.len()
            + fixed.tail.len()
            + 2 * domain.len()
            + 32
            + visit_len(params.return_to),
    );
    out.put(HEAD_OPEN);
    escape_into(&mut out, domain);
    out.put(&fixed.head_close);
    push_visit(&mut out, token, params.return_to);
    out.put(BODY_OPEN);
    escape_into(&mut out, domain);
    out.put(BODY_TEXT);
    out.put(expected(token));
    out.put(&fixed.tail);
    out
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
fn escape_into(out: &mut String, s: &str) {
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
}
