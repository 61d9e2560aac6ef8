//! Nodes for the protection tests: clients told apart by `X-Forwarded-For` from the trusted 127.0.0.1, one
//! domain `p.test`, a data directory of the test's own, a fake clock; and the challenge page's proof of work.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use edgeguard_limit::FakeClock;
use edgeguard_proxy::{Node, RunningNode};
use sha2::{Digest, Sha256};

/// Node `name` trusting 127.0.0.1's `X-Forwarded-For`, data in `dir`, domain `p.test` on `origin`, then
/// `domain_extra` (more keys and tables of the domain).
pub fn trusted_config(
    name: &str,
    dir: &Path,
    origin: SocketAddr,
    domain_extra: &str,
) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"{name}\"\nlisten = [\"127.0.0.1:0\"]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         data_dir = \"{}\"\n[[domain]]\nname = \"p.test\"\norigins = [\"{origin}\"]\n{domain_extra}",
        dir.display()
    );
    edgeguard_config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Starts `cfg` on `clock`; the node and its first address.
pub async fn start_on(
    cfg: edgeguard_config::Config,
    clock: &FakeClock,
) -> (RunningNode, SocketAddr) {
    let node = Node::start_with_clock(cfg, Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = node.local_addrs()[0];
    (node, addr)
}

/// The value of attribute `name` in the challenge page.
pub fn attr<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + page[start..].find('"').unwrap();
    &page[start..end]
}

/// The nonce the page's worker would find: SHA-256(challenge || nonce) with `bits` leading zero bits.
pub fn solve(challenge: &str, bits: u32) -> u64 {
    (0..u64::MAX)
        .take(1 << 24)
        .find(|n| {
            let h = Sha256::digest(format!("{challenge}{n}").as_bytes());
            let mut zeros = 0;
            for b in h.iter() {
                if *b == 0 {
                    zeros += 8;
                } else {
                    zeros += b.leading_zeros();
                    break;
                }
            }
            zeros >= bits
        })
        .expect("a nonce within 2^24 tries")
}
