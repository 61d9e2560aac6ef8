//! The verify endpoint: parses the page's form post, checks it, and builds the response the proxy sends.

use crate::Clearance;
use crate::key::Challenger;
use crate::token::VerifyError;
use std::net::IpAddr;

/// Largest verify request body the proxy should read (the page sends about 300 bytes plus the return path).
pub const MAX_VERIFY_BODY: usize = 8 * 1024;
/// Longest return path kept; a longer one sends the visitor to `/`.
pub(crate) const MAX_RETURN_LEN: usize = 4096;

/// What the proxy sends back for a `POST` to [`crate::VERIFY_PATH`]: `status`, `Content-Type: application/json`,
/// `Cache-Control: no-store`, the `Set-Cookie` header if any, and `body`.
#[derive(Clone, Debug)]
pub struct VerifyResponse {
    /// 200 passed, 400 malformed post, 403 refused (a replayed answer included), 503 busy: the replay cache has no
    /// room right now and the page posts the same answer again after a pause.
    pub status: u16,
    pub set_cookie: Option<String>,
    /// `{"ok":true,"redirect":"/path?query"}` or `{"ok":false,"error":"expired"}`.
    pub body: String,
    pub result: Result<Clearance, VerifyError>,
    /// Solve time the page reports, for the access log only: the client can claim anything.
    pub claimed_solve_ms: Option<u64>,
}

impl Challenger {
    /// Handles the page's `application/x-www-form-urlencoded` post (fields `token`, `nonce`, `elapsed_ms`,
    /// `return_to`). `tls` says whether the request came over TLS, which decides the cookie's `Secure` flag.
    pub fn handle_verify(
        &self,
        body: &[u8],
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
        tls: bool,
    ) -> VerifyResponse {
        let mut token = String::new();
        let mut nonce = String::new();
        let mut return_to = String::new();
        let mut claimed_solve_ms = None;
        if body.len() <= MAX_VERIFY_BODY {
            for (name, value) in form_pairs(body) {
                match name.as_str() {
                    "token" => token = value,
                    "nonce" => nonce = value,
                    "return_to" => return_to = value,
                    "elapsed_ms" => claimed_solve_ms = value.parse().ok(),
                    _ => {}
                }
            }
        }
        let result = if body.len() > MAX_VERIFY_BODY {
            Err(VerifyError::Malformed)
        } else {
            self.verify(&token, &nonce, client_ip, domain, now_unix_ms)
        };
        match &result {
            Ok(clearance) => {
                let redirect = safe_return_path(&return_to);
                VerifyResponse {
                    status: 200,
                    set_cookie: Some(clearance.set_cookie_header(tls)),
                    // safe_return_path leaves no quote, backslash or control character to escape.
                    body: format!("{{\"ok\":true,\"redirect\":\"{redirect}\"}}"),
                    result,
                    claimed_solve_ms,
                }
            }
            Err(e) => VerifyResponse {
                status: match e {
                    VerifyError::Malformed => 400,
                    VerifyError::Busy => 503,
                    _ => 403,
                },
                set_cookie: None,
                body: format!("{{\"ok\":false,\"error\":\"{}\"}}", e.code()),
                result,
                claimed_solve_ms,
            },
        }
    }
}

/// The visitor's original path and query, made safe to redirect to: always a path on this origin (starting with
/// one `/`), with every byte outside the URI character set percent-encoded so browsers cannot reread it as
/// `//other-host` (tab, newline and backslash tricks) and it needs no escaping in JSON or HTML. Anything else,
/// absolute URLs included, becomes `/`.
pub fn safe_return_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_RETURN_LEN));
    write_return_path(raw, |chunk| out.push_str(chunk));
    out
}

/// [`safe_return_path`] handed to `sink` in pieces, so the page can write it without a buffer of its own.
pub(crate) fn write_return_path(raw: &str, mut sink: impl FnMut(&str)) {
    let bytes = raw.as_bytes();
    // Every byte is kept or becomes `%XX`, so the result starts with `//` exactly when the input does.
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') || raw.len() > MAX_RETURN_LEN {
        sink("/");
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut kept = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
        if keep {
            continue;
        }
        // `kept..i` holds ASCII only, so it is a whole `str`.
        sink(raw.get(kept..i).unwrap_or_default());
        let enc = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
        sink(std::str::from_utf8(&enc).unwrap_or_default());
        kept = i + 1;
    }
    sink(raw.get(kept..).unwrap_or_default());
}

fn form_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let name = it.next().unwrap_or_default();
            let value = it.next().unwrap_or_default();
            (form_decode(name), form_decode(value))
        })
}

fn form_decode(s: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
