//! The challenge page's scripts, served as files of their own under [`ASSET_PREFIX`] instead of inline: the page
//! a challenged request receives is then about 2 KB instead of 13 KB (a flood answered with challenge pages
//! moves a sixth of the bytes), and a browser fetches the scripts once and keeps them.
//!
//! Each file's name carries a digest of its bytes, so a file is never changed under its name: the answer is
//! `Cache-Control: public, max-age=31536000, immutable`, and a new build's page names new files. The page loads
//! the main script with `integrity` set to the same SHA-256 that the page's CSP allows; the worker is loaded
//! from this origin (`worker-src 'self'`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The SHA-256 implementation the worker runs, exposed for tests that check it against known vectors.
pub const SHA256_JS: &str = include_str!("page/sha256.js");
pub(crate) const WORKER_JS: &str = include_str!("page/worker.js");
pub(crate) const MAIN_JS: &str = include_str!("page/challenge.js");

/// Path prefix of the challenge's files on every protected host (the verify endpoint is under it too).
pub const ASSET_PREFIX: &str = "/.edgeguard/challenge/";

/// `Cache-Control` of every asset: the name changes whenever the bytes do.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// One file the challenge page loads.
#[derive(Debug)]
pub struct Asset {
    /// Absolute path, `/.edgeguard/challenge/<name>-<digest>.js`.
    pub path: String,
    pub content_type: &'static str,
    pub body: Bytes,
    /// `sha256-<base64>` of the body: the `integrity` attribute and the CSP source.
    pub integrity: String,
}

impl Asset {
    fn new(name: &str, text: String) -> Asset {
        let digest = Sha256::digest(text.as_bytes());
        let mut hex = String::with_capacity(16);
        for b in &digest[..8] {
            hex.push_str(&format!("{b:02x}"));
        }
        Asset {
            path: format!("{ASSET_PREFIX}{name}-{hex}.js"),
            content_type: "text/javascript; charset=utf-8",
            integrity: format!("sha256-{}", STANDARD.encode(digest)),
            body: Bytes::from(text),
        }
    }
}

struct Assets {
    main: Asset,
    worker: Asset,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    main: Asset::new("check", MAIN_JS.to_owned()),
    worker: Asset::new("worker", format!("{SHA256_JS}\n{WORKER_JS}")),
});

/// The main script: reads the visit's values from the page and runs the workers.
pub fn main_script() -> &'static Asset {
    &ASSETS.main
}

/// The worker: SHA-256 and the nonce search.
pub fn worker_script() -> &'static Asset {
    &ASSETS.worker
}

/// The asset at `path`, if it is one. Hot path of a challenged browser's first visit: two string compares.
pub fn asset(path: &str) -> Option<&'static Asset> {
    if !path.starts_with(ASSET_PREFIX) {
        return None;
    }
    let a = &*ASSETS;
    [&a.main, &a.worker].into_iter().find(|x| x.path == path)
}
