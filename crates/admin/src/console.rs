//! The web console: static files compiled into the binary (no CDN, no build step). The page calls the same API
//! as any client, with the token the operator types in kept in `sessionStorage` and sent as a bearer header: no
//! cookie carries the authority, so another site cannot make the browser call the API (no CSRF), and
//! `frame-ancestors 'none'` keeps the console out of frames.

use http::StatusCode;

use crate::reply::Reply;

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const CHART_JS: &str = include_str!("console/chart.js");
const LIVE_JS: &str = include_str!("console/live.js");
const BLOCKS_JS: &str = include_str!("console/blocks.js");
const SETTINGS_JS: &str = include_str!("console/settings.js");
const BASELINE_JS: &str = include_str!("console/baseline.js");
const STYLE: &str = include_str!("console/style.css");

/// Only the console's own files: no inline scripts or styles, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The file at `/console/NAME` (`""` = the page itself).
pub fn asset(name: &str) -> Option<Reply> {
    let (content_type, body) = match name {
        "" | "index.html" => ("text/html; charset=utf-8", INDEX),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "chart.js" => ("text/javascript; charset=utf-8", CHART_JS),
        "live.js" => ("text/javascript; charset=utf-8", LIVE_JS),
        "blocks.js" => ("text/javascript; charset=utf-8", BLOCKS_JS),
        "settings.js" => ("text/javascript; charset=utf-8", SETTINGS_JS),
        "baseline.js" => ("text/javascript; charset=utf-8", BASELINE_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    Some(
        Reply::bytes(StatusCode::OK, content_type, body)
            .with_header(http::header::CONTENT_SECURITY_POLICY, CSP)
            .with_header(http::header::REFERRER_POLICY, "no-referrer"),
    )
}
