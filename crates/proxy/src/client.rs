//! Which address a request is from: the TCP peer, or, when the peer is a trusted proxy, the right-most
//! untrusted entry of `X-Forwarded-For` (nginx's realip module with `real_ip_recursive on`).
//!
//! Every `X-Forwarded-For` header counts, in order, each a comma list; entries may carry spaces, an IPv6
//! address may be bracketed. Walking from the right, trusted entries are skipped; the first untrusted one is the
//! client. An entry that is not an address ends the walk and the last good address seen is used (the peer if
//! none), so garbage cannot pick the address. If every entry is trusted, the left-most is the client.

use std::net::IpAddr;

use edgeguard_config::IpNet;
use http::HeaderMap;
use http::HeaderName;

/// `X-Forwarded-For` (not among `http`'s standard names).
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// An IPv4-mapped IPv6 address as IPv4, so limits and trust rules see one form.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client address when it differs from the peer; `None` means "the peer".
pub(crate) fn forwarded_client(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return None;
    }
    let mut found = None;
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        for entry in value.as_bytes().rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(entry) else {
                return found;
            };
            let ip = canonical(ip);
            found = Some(ip);
            if !is_trusted(ip, trusted) {
                return found;
            }
        }
    }
    found
}

fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = entry
        .strip_prefix(b"[")
        .and_then(|e| e.strip_suffix(b"]"))
        .unwrap_or(entry);
    std::str::from_utf8(entry).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
