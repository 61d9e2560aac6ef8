//! What a rule groups requests by (`object`), and how the key is read from a request.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The parts of a request an [`Object`] reads. Implemented by the data plane over its request type.
pub trait RequestView {
    /// The client address as the limiters see it (after `trusted_proxies`).
    fn client_ip(&self) -> IpAddr;
    /// The prefix length an IPv6 client is counted by under `object = "ip"` (`[node] ipv6_prefix`); 128, the
    /// whole address, unless the protection engine says otherwise.
    fn ipv6_prefix(&self) -> u8 {
        128
    }
    /// The request's host, as routed.
    fn host(&self) -> &str;
    /// The first value of header `name` (given in lower case), if the request has it.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The raw query string (after `?`, still percent-encoded), if any.
    fn query(&self) -> Option<&str>;
}

/// `ip` with an IPv6 address cut to its first `ipv6_prefix` bits (48..=128; other bits zero) and an
/// IPv4-mapped IPv6 address as the IPv4 address: the client an IP limit counts.
#[inline]
pub fn client_of(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if ipv6_prefix < 128 => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        other => other,
    }
}

/// Writes the key of an `ip` object into `buf` (cleared first): the IPv4 address, or the IPv6 client cut to
/// `ipv6_prefix` bits as `2001:db8:7:7::/64` (a whole /128 as the plain address). The same text names the
/// object in the activity log, the blocks list and the admin API's lift.
///
/// Hot path: no allocation beyond growing `buf`.
pub fn ip_key_into(ip: IpAddr, ipv6_prefix: u8, buf: &mut Vec<u8>) {
    buf.clear();
    let client = client_of(ip, ipv6_prefix);
    // Writing to a Vec cannot fail.
    let _ = match client {
        IpAddr::V4(v4) => {
            let (text, len) = ipv4_text(v4);
            buf.extend_from_slice(&text[..len]);
            Ok(())
        }
        IpAddr::V6(_) if ipv6_prefix < 128 => write!(buf, "{client}/{ipv6_prefix}"),
        IpAddr::V6(_) => write!(buf, "{client}"),
    };
}

/// An IPv4 address as dotted-quad text (as `Display` writes it) in a stack buffer, and its length.
///
/// Hot path (the client key of every rule and block lookup): digit by digit, without the formatting machinery.
pub fn ipv4_text(v4: Ipv4Addr) -> ([u8; 15], usize) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    (buf, n)
}

/// A rule's `object`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    /// `ip`: one window per client address.
    Ip,
    /// `domain`: one window for the whole domain.
    Domain,
    /// `header:NAME`: one window per value of that header. The name is stored in lower case.
    Header(String),
    /// `param:NAME`: one window per value of that query parameter. The name is stored as written (decoded
    /// names of the request are compared with it byte for byte).
    Param(String),
}

/// Why an `object` string is not valid; the text is shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("object must be \"ip\", \"domain\", \"header:NAME\" or \"param:NAME\"; found \"{0}\"")]
    Unknown(String),
    #[error("\"header:\" needs a header name, as in \"header:User-Agent\"")]
    EmptyHeader,
    #[error(
        "\"{0}\" is not a valid header name: it may contain only letters, digits and !#$%&'*+-.^_`|~"
    )]
    BadHeader(String),
    #[error("\"param:\" needs a query parameter name, as in \"param:uid\"")]
    EmptyParam,
    #[error(
        "\"{0}\" is not a valid parameter name: it may not contain '&', '=', '#', spaces or control characters"
    )]
    BadParam(String),
}

impl Object {
    /// Parses SPEC section 8's `object` syntax. Keywords are lower case, exactly as documented.
    pub fn parse(s: &str) -> Result<Object, ObjectError> {
        if s == "ip" {
            return Ok(Object::Ip);
        }
        if s == "domain" {
            return Ok(Object::Domain);
        }
        if let Some(name) = s.strip_prefix("header:") {
            if name.is_empty() {
                return Err(ObjectError::EmptyHeader);
            }
            if !name.bytes().all(is_tchar) {
                return Err(ObjectError::BadHeader(name.to_owned()));
            }
            return Ok(Object::Header(name.to_ascii_lowercase()));
        }
        if let Some(name) = s.strip_prefix("param:") {
            if name.is_empty() {
                return Err(ObjectError::EmptyParam);
            }
            if name
                .chars()
                .any(|c| matches!(c, '&' | '=' | '#') || c.is_whitespace() || c.is_control())
            {
                return Err(ObjectError::BadParam(name.to_owned()));
            }
            return Ok(Object::Param(name.to_owned()));
        }
        Err(ObjectError::Unknown(s.to_owned()))
    }

    /// `ip`, `domain`, `header` or `param`: the object type named in the activity log.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Ip => "ip",
            Object::Domain => "domain",
            Object::Header(_) => "header",
            Object::Param(_) => "param",
        }
    }

    /// Appends this object's key for `req` to `buf` (after clearing it). Returns `false` when the request has no
    /// such header or parameter: the rule then does not count the request.
    ///
    /// Keys are readable text, so the activity log can show them as they are: the IP in canonical form
    /// (IPv4-mapped IPv6 shown as IPv4), the host in lower case without port, the header's raw value, the
    /// parameter's percent-decoded value (`+` read as a space). A header or parameter that is present but
    /// empty counts, with an empty key.
    ///
    /// Hot path: no allocation beyond growing `buf`; keep one buffer per connection or task.
    pub fn key_into(&self, req: &impl RequestView, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        match self {
            Object::Ip => {
                ip_key_into(req.client_ip(), req.ipv6_prefix(), buf);
                true
            }
            Object::Domain => {
                let host = req.host();
                let host = strip_port(host);
                buf.extend(host.bytes().map(|b| b.to_ascii_lowercase()));
                true
            }
            Object::Header(name) => match req.header(name) {
                Some(value) => {
                    buf.extend_from_slice(value);
                    true
                }
                None => false,
            },
            Object::Param(name) => match req.query().and_then(|q| find_param(q, name)) {
                Some(value) => {
                    percent_decode_into(value.as_bytes(), buf);
                    true
                }
                None => false,
            },
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Ip => f.write_str("ip"),
            Object::Domain => f.write_str("domain"),
            Object::Header(name) => write!(f, "header:{name}"),
            Object::Param(name) => write!(f, "param:{name}"),
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[v6]:port` keeps its brackets off: the key is the address.
        return rest.split_once(']').map_or(host, |(addr, _)| addr);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The raw value of the first parameter whose decoded name is `name`. Names are compared decoded so that
/// `%75id=1` is the same parameter as `uid=1`, as it is to the origin's application.
fn find_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (raw_name, value) = pair.split_once('=').unwrap_or((pair, ""));
        decoded_eq(raw_name.as_bytes(), name.as_bytes()).then_some(value)
    })
}

/// Compares a percent-encoded string, decoded, with `plain`, without allocating.
fn decoded_eq(encoded: &[u8], plain: &[u8]) -> bool {
    let mut plain = plain.iter();
    let mut i = 0;
    while i < encoded.len() {
        let (b, used) = decode_at(encoded, i);
        if plain.next() != Some(&b) {
            return false;
        }
        i += used;
    }
    plain.next().is_none()
}

fn percent_decode_into(encoded: &[u8], buf: &mut Vec<u8>) {
    let mut i = 0;
    while i < encoded.len() {
        let (b, used) = decode_at(encoded, i);
        buf.push(b);
        i += used;
    }
}

/// One decoded byte at `i` and how many input bytes it used. Malformed escapes are taken literally.
fn decode_at(s: &[u8], i: usize) -> (u8, usize) {
    match s[i] {
        b'+' => (b' ', 1),
        b'%' => match (
            s.get(i + 1).and_then(|&c| hex(c)),
            s.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (Some(hi), Some(lo)) => (hi << 4 | lo, 3),
            _ => (b'%', 1),
        },
        b => (b, 1),
    }
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}
