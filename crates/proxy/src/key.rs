//! nginx-style limit keys (`$binary_remote_addr`, `$host$uri`, `user-$arg_id`, ...), compiled once per
//! configuration and evaluated per request into a reusable buffer.
//!
//! Hot path: [`CompiledKey::append`] runs for every limit of every request. It must not allocate for the common
//! parts (addresses, host, raw URI, header values, arguments); only `$uri` with escapes or dot segments uses a
//! small stack buffer, spilling to the heap past 256 bytes.
//!
//! `$uri` is the path normalised as nginx does by default: `%XX` escapes decoded, runs of `/` merged, `.` and
//! `..` segments resolved. Paths nginx refuses with 400 (invalid escape, `%00`, `..` above the root) are refused
//! by the route phase the same way.
//! `+` is not a space in a path and stays as is.

use std::net::IpAddr;

use bytes::Bytes;
use edgeguard_config::{KeyPart, KeyTemplate};
use http::{HeaderMap, HeaderName, Uri};
use smallvec::SmallVec;

/// Evaluated keys of one request, back to back.
pub(crate) type KeyBuf = SmallVec<[u8; 128]>;

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

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends nginx's `$uri` for the raw `path`. Returns false where nginx answers 400 instead: an invalid `%`
/// escape, an escaped NUL, or `..` above the root (the best-effort result is appended all the same).
pub(crate) fn push_normalized_path(path: &[u8], out: &mut KeyBuf) -> bool {
    let simple = !path.contains(&b'%')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
        && path.first() == Some(&b'/');
    if simple {
        out.extend_from_slice(path);
        return true;
    }
    let mut valid = true;
    let mut decoded: SmallVec<[u8; 256]> = SmallVec::new();
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) {
                let c = h << 4 | l;
                valid &= c != 0;
                decoded.push(c);
                i += 3;
                continue;
            }
            valid = false;
        }
        decoded.push(b);
        i += 1;
    }
    // Resolve segments on the decoded path, keeping the result in `out` after `base`.
    let base = out.len();
    out.push(b'/');
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                // Drop the last segment, never the root slash.
                let tail = &out[base..];
                valid &= tail.len() > 1;
                let keep = tail[..tail.len() - 1]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .map_or(1, |p| p + 1);
                out.truncate(base + keep);
            }
            seg => {
                out.extend_from_slice(seg);
                out.push(b'/');
            }
        }
    }
    // A trailing slash survives only where the path had one (or ended in a dot segment, as nginx).
    let ends_open = decoded.last() == Some(&b'/')
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded.is_empty();
    if !ends_open && out.len() > base + 1 {
        out.pop();
    }
    valid
}

/// `$remote_addr` text of an address taken from `X-Forwarded-For` (the peer's is computed once per connection).
pub(crate) fn addr_text(ip: IpAddr) -> Bytes {
    Bytes::from(ip.to_string())
}

#[cfg(test)]
mod tests;
