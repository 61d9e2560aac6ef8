//! nginx-style limit keys (`$binary_remote_addr`, `$host$uri`, `user-$arg_id`, ...), compiled once per
//! configuration and evaluated per request into a reusable buffer.
//!
//! Hot path: [`CompiledKey::append`] runs for every limit of every request. It must not allocate for the common
//! parts (addresses, host, raw URI, header values, arguments); only `$uri` with escapes or dot segments uses a
//! small stack buffer, spilling to the heap past 256 bytes.
//!
//! `$uri` is the path normalised as nginx does by default ([`edgeguard_protect::path`]: the protection engine
//! sees paths the same way). Paths nginx refuses with 400 (invalid escape, `%00`, `..` above the root) are
//! refused by the route phase the same way.

use std::net::IpAddr;

use bytes::Bytes;
use edgeguard_config::{KeyPart, KeyTemplate};
pub(crate) use edgeguard_protect::path::push_normalized_path;
use http::{HeaderMap, HeaderName, Uri};

/// Evaluated keys of one request, back to back (the buffer normalised paths are written to).
pub(crate) type KeyBuf = edgeguard_protect::path::PathBytes;

/// The request facts a key can use.
pub(crate) struct KeyInput<'a> {
    pub client_ip: IpAddr,
    /// The client address as text, nginx's `$remote_addr`.
    pub client_text: &'a [u8],
    /// The routed host name (lower-case, no port), nginx's `$host`.
    pub host: &'a str,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

#[derive(Debug)]
enum Part {
    Literal(Box<[u8]>),
    BinaryRemoteAddr,
    RemoteAddr,
    Host,
    Uri,
    RequestUri,
    /// `None`: NAME is not a valid header name, so the variable is always empty.
    Http(Option<HeaderName>),
    Arg(Box<[u8]>),
}

/// A key template ready for evaluation.
#[derive(Debug)]
pub(crate) struct CompiledKey {
    parts: Box<[Part]>,
}

impl CompiledKey {
    pub(crate) fn compile(template: &KeyTemplate) -> Self {
        let parts = template
            .parts
            .iter()
            .map(|p| match p {
                KeyPart::Literal(s) => Part::Literal(s.as_bytes().into()),
                KeyPart::BinaryRemoteAddr => Part::BinaryRemoteAddr,
                KeyPart::RemoteAddr => Part::RemoteAddr,
                KeyPart::Host => Part::Host,
                KeyPart::Uri => Part::Uri,
                KeyPart::RequestUri => Part::RequestUri,
                KeyPart::Http(name) => {
                    let name: String = name
                        .chars()
                        .map(|c| {
                            if c == '_' {
                                '-'
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect();
                    Part::Http(HeaderName::from_bytes(name.as_bytes()).ok())
                }
                KeyPart::Arg(name) => Part::Arg(name.as_bytes().into()),
            })
            .collect();
        Self { parts }
    }

    /// Appends this key's value for `input` to `out`.
    pub(crate) fn append(&self, input: &KeyInput<'_>, out: &mut KeyBuf) {
        for part in self.parts.iter() {
            match part {
                Part::Literal(b) => out.extend_from_slice(b),
                Part::BinaryRemoteAddr => match input.client_ip {
                    IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
                },
                Part::RemoteAddr => out.extend_from_slice(input.client_text),
                Part::Host => out.extend_from_slice(input.host.as_bytes()),
                Part::Uri => {
                    // Invalid paths were answered 400 by the route phase before any key is evaluated.
                    let _ = push_normalized_path(input.uri.path().as_bytes(), out);
                }
                Part::RequestUri => match input.uri.path_and_query() {
                    Some(pq) => out.extend_from_slice(pq.as_str().as_bytes()),
                    None => out.push(b'/'),
                },
                Part::Http(Some(name)) => push_header(input.headers, name, out),
                Part::Http(None) => {}
                Part::Arg(name) => {
                    if let Some(v) = input.uri.query().and_then(|q| find_arg(q.as_bytes(), name)) {
                        out.extend_from_slice(v);
                    }
                }
            }
        }
    }
}

/// nginx (1.23+) joins repeated request headers with `, ` (`; ` for Cookie).
fn push_header(headers: &HeaderMap, name: &HeaderName, out: &mut KeyBuf) {
    let sep: &[u8] = if name == http::header::COOKIE {
        b"; "
    } else {
        b", "
    };
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(v.as_bytes());
    }
}

/// The raw value of the first query argument named `name` (ASCII case-insensitive, as nginx's `$arg_`).
pub(crate) fn find_arg<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// `$remote_addr` text of an address taken from `X-Forwarded-For` (the peer's is computed once per connection).
///
/// Hot path (every request behind a trusted proxy): an IPv4 address is written digit by digit into a stack
/// buffer, without the formatting machinery; IPv6 (rarer, and with zero-run rules) keeps `Display`.
pub(crate) fn addr_text(ip: IpAddr) -> Bytes {
    match ip {
        IpAddr::V4(v4) => {
            let (buf, n) = edgeguard_rules::ipv4_text(v4);
            Bytes::copy_from_slice(&buf[..n])
        }
        IpAddr::V6(_) => Bytes::from(ip.to_string()),
    }
}

#[cfg(test)]
mod tests;
