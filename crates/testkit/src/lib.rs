//! Test support for edgeguard's crates, used as a dev-dependency only (and by the `edgeguard-e2e` test crate):
//! never linked into the node. It holds what several test suites need alike: a configurable HTTP/1.1 origin on
//! 127.0.0.1:0 ([`origin`]), a small client that sends one request per connection and collects the answer
//! ([`client`]), and, with the `browser` feature, a headless-Chromium launcher and the CDP helpers the browser
//! tests poll pages with ([`browser`]). It depends on no edgeguard crate, so the proxy's own tests can use it;
//! fixtures that start a node stay beside the tests of the crate that owns the node.

#[cfg(feature = "browser")]
pub mod browser;
pub mod client;
pub mod origin;
pub mod redis;
pub mod route;

pub use client::{Reply, WAIT, dead_addr, eventually, get, h2, raw, read_all, send, statuses};
pub use origin::{Origin, OriginBuilder};
pub use route::Route;
