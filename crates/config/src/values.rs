//! Parsers for the value syntaxes of the file: durations, sizes, key templates, address ranges, upstreams,
//! host names. Each returns the message an operator sees; the caller adds the key and line.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::model::{IpNet, KeyPart, KeyTemplate, Upstream};
use crate::raw::StrOrInt;

/// `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, nginx-style concatenations such as `"1m30s"`, a bare number
/// string (seconds, as nginx), or an integer of seconds.
pub(crate) fn duration(v: &StrOrInt) -> Result<Duration, String> {
    let s = match v {
        StrOrInt::Int(n) => {
            return u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| format!("a duration cannot be negative (got {n})"));
        }
        StrOrInt::Str(s) => s.as_str(),
    };
    let bad = || {
        format!(
            "invalid duration {s:?}: expected e.g. \"500ms\", \"10s\", \"5m\", \"1h\", \"1d\" or an integer of seconds"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.as_bytes().first() {
                Some(b's') => (1_000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                _ => return Err(bad()),
            }
        };
        rest = &rest[unit_len..];
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// A size in bytes: `"16k"`, `"10m"`, `"1g"` (1024-based, as nginx) or an integer of bytes.
pub(crate) fn size(v: &StrOrInt) -> Result<u64, String> {
    match v {
        StrOrInt::Int(n) => {
            u64::try_from(*n).map_err(|_| format!("a size cannot be negative (got {n})"))
        }
        StrOrInt::Str(s) => edgeguard_limit::parse_size(s).ok_or_else(|| {
            format!(
                "invalid size {s:?}: expected bytes or a number with k, m or g, e.g. \"32k\" or \"10m\""
            )
        }),
    }
}

const KNOWN_VARIABLES: &str =
    "$binary_remote_addr, $remote_addr, $host, $uri, $request_uri, $http_NAME, $arg_NAME";

/// An nginx key: variables (`$name` or `${name}`) and literal text, concatenated.
pub(crate) fn key_template(source: &str) -> Result<KeyTemplate, String> {
    if source.is_empty() {
        return Err(format!(
            "the key is empty; write a key such as \"$binary_remote_addr\" ({KNOWN_VARIABLES})"
        ));
    }
    let mut parts: Vec<KeyPart> = Vec::new();
    let mut literal = String::new();
    let mut rest = source;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let name = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed \"${{\" in key {source:?}"))?;
            rest = &braced[end + 1..];
            &braced[..end]
        } else {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &rest[..len];
            rest = &rest[len..];
            name
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "invalid variable name {name:?} in key {source:?} (a \"$\" must start a variable)"
            ));
        }
        if !literal.is_empty() {
            parts.push(KeyPart::Literal(std::mem::take(&mut literal)));
        }
        // nginx looks variables up case-insensitively.
        let lower = name.to_ascii_lowercase();
        let part = match lower.as_str() {
            "binary_remote_addr" => KeyPart::BinaryRemoteAddr,
            "remote_addr" => KeyPart::RemoteAddr,
            "host" => KeyPart::Host,
            "uri" => KeyPart::Uri,
            "request_uri" => KeyPart::RequestUri,
            other => match (other.strip_prefix("http_"), other.strip_prefix("arg_")) {
                (Some(h), _) if !h.is_empty() => KeyPart::Http(h.to_string()),
                (_, Some(a)) if !a.is_empty() => KeyPart::Arg(a.to_string()),
                _ => {
                    return Err(format!(
                        "unknown variable ${name} in key {source:?}; known: {KNOWN_VARIABLES}"
                    ));
                }
            },
        };
        parts.push(part);
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(KeyPart::Literal(literal));
    }
    Ok(KeyTemplate {
        source: source.to_string(),
        parts,
    })
}

/// `127.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128). Host bits past the prefix are kept as written;
/// [`IpNet::contains`] ignores them.
pub(crate) fn ip_net(s: &str) -> Result<IpNet, String> {
    let bad = || {
        format!(
            "invalid address range {s:?}: expected an address or CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\""
        )
    };
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let p: u8 = p.parse().map_err(|_| bad())?;
            if p > max {
                return Err(format!(
                    "invalid address range {s:?}: prefix length {p} is over {max}"
                ));
            }
            p
        }
    };
    Ok(IpNet { addr, prefix })
}

/// `host:port` with a host name, an IPv4 address or a bracketed IPv6 address. The host is stored without
/// brackets, lower-cased.
pub(crate) fn upstream(s: &str) -> Result<Upstream, String> {
    if s.contains("://") {
        return Err(format!(
            "invalid address {s:?}: write host:port without a scheme, e.g. \"10.0.0.5:8080\""
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("invalid address {s:?}: expected [IPv6]:port"))?;
        h.parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid address {s:?}: {h:?} is not an IPv6 address"))?;
        (h.to_ascii_lowercase(), p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(|| {
            format!("invalid address {s:?}: expected host:port, e.g. \"origin.example.com:80\"")
        })?;
        if h.contains(':') {
            return Err(format!(
                "invalid address {s:?}: put an IPv6 address in brackets, e.g. \"[2001:db8::1]:80\""
            ));
        }
        host_name(h).map_err(|m| format!("invalid address {s:?}: {m}"))?;
        (h.to_ascii_lowercase(), p)
    };
    let port = port_number(port)
        .ok_or_else(|| format!("invalid address {s:?}: the port must be 1..=65535"))?;
    Ok(Upstream { host, port })
}

fn port_number(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

/// A DNS host name (RFC 1123 labels) or an IPv4 address. No port, no wildcard, no trailing dot.
pub(crate) fn host_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the host name is empty".into());
    }
    if s.len() > 253 {
        return Err(format!("host name {s:?} is longer than 253 characters"));
    }
    if s.contains(':') {
        return Err(format!(
            "{s:?} is not a host name (write it without a port)"
        ));
    }
    if s.contains('*') {
        return Err(format!("{s:?}: wildcard host names are not supported"));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(format!("host name {s:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("host name {s:?} has a label over 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "host name {s:?} may hold only letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host name {s:?} has a label starting or ending with '-'"
            ));
        }
    }
    Ok(())
}

/// The shortest exact spelling of a duration in the file's syntax (millisecond precision).
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// The shortest exact spelling of a size (`k`, `m`, `g` when whole, else bytes).
pub(crate) fn format_size(bytes: u64) -> String {
    const K: u64 = 1024;
    if bytes == 0 {
        "0".to_string()
    } else if bytes.is_multiple_of(K * K * K) {
        format!("{}g", bytes / (K * K * K))
    } else if bytes.is_multiple_of(K * K) {
        format!("{}m", bytes / (K * K))
    } else if bytes.is_multiple_of(K) {
        format!("{}k", bytes / K)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests;
