//! The clearance cookie handed out after a solved challenge.
//!
//! Value layout (66 bytes, base64url without padding = 88 characters):
//! `version(1)=1 | difficulty(1) | expires_unix_s(8, BE) | ip_scope(16) | domain_tag(8) | hmac(32)`
//! where the HMAC-SHA256 (cookie key) covers the first 34 bytes. `ip_scope` is the IPv4 address (in its IPv6-mapped
//! form) or the IPv6 /64 with the host half zeroed.

use crate::COOKIE_NAME;
use crate::difficulty::Difficulty;
use crate::key::{Challenger, domain_tag, ip_scope};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use std::net::IpAddr;

const VERSION: u8 = 1;
const SIGNED_LEN: usize = 34;
const RAW_LEN: usize = SIGNED_LEN + 32;
const TEXT_LEN: usize = 88;
/// A cookie may claim this much more life than the configured TTL (clock skew between nodes sharing a key).
const CLOCK_SKEW_S: u64 = 60;
/// Cookies of our name looked at in one header; more is junk and not worth the hashing.
const MAX_CANDIDATES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClearanceError {
    #[error("no clearance cookie")]
    Missing,
    #[error("malformed clearance cookie")]
    Malformed,
    #[error("clearance cookie signature does not check")]
    Forged,
    /// Past its expiry, or claiming a longer life than the configured clearance TTL allows.
    #[error("clearance cookie expired")]
    Expired,
    #[error("clearance cookie belongs to another client address")]
    WrongIp,
    #[error("clearance cookie belongs to another domain")]
    WrongDomain,
}

/// A granted clearance: the cookie to set and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clearance {
    cookie_value: String,
    expires_unix_s: u64,
    max_age_s: u64,
    difficulty: Difficulty,
}

impl Clearance {
    /// The cookie value alone (without the name).
    pub fn cookie_value(&self) -> &str {
        &self.cookie_value
    }

    pub fn expires_unix_s(&self) -> u64 {
        self.expires_unix_s
    }

    /// Difficulty of the challenge that was solved.
    pub fn difficulty(&self) -> Difficulty {
        self.difficulty
    }

    /// The `Set-Cookie` header value. `secure` when the request came over TLS: a cookie marked `Secure` is not
    /// sent back over plain HTTP, so it must not be set on plain HTTP sites.
    pub fn set_cookie_header(&self, secure: bool) -> String {
        let mut s = format!(
            "{COOKIE_NAME}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            self.cookie_value, self.max_age_s
        );
        if secure {
            s.push_str("; Secure");
        }
        s
    }
}

impl Challenger {
    pub(crate) fn grant(
        &self,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
        difficulty: Difficulty,
    ) -> Clearance {
        let expires = now_unix_ms / 1000 + self.clearance_ttl_s;
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1] = difficulty.bits();
        raw[2..10].copy_from_slice(&expires.to_be_bytes());
        raw[10..26].copy_from_slice(&ip_scope(client_ip));
        raw[26..34].copy_from_slice(&domain_tag(domain));
        let mut m = self.cookie_mac.clone();
        m.update(&raw[..SIGNED_LEN]);
        raw[SIGNED_LEN..].copy_from_slice(&m.finalize().into_bytes());
        Clearance {
            cookie_value: URL_SAFE_NO_PAD.encode(raw),
            expires_unix_s: expires,
            max_age_s: self.clearance_ttl_s,
            difficulty,
        }
    }

    /// Whether one `Cookie` header value carries a valid clearance for this client and domain. When several
    /// cookies carry our name, any valid one passes; otherwise the first one's fault is returned.
    ///
    /// Hot path (every request of a challenged object): no allocation, a stack decode and two SHA-256
    /// compressions per candidate, at most four candidates.
    pub fn check_clearance(
        &self,
        cookie_header_value: &str,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
    ) -> Result<(), ClearanceError> {
        self.check_clearance_headers([cookie_header_value], client_ip, domain, now_unix_ms)
    }

    /// As [`Challenger::check_clearance`] over every `Cookie` header of a request (HTTP/2 may split them).
    pub fn check_clearance_headers<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
    ) -> Result<(), ClearanceError> {
        let mut first_err = ClearanceError::Missing;
        let candidates = cookie_headers
            .into_iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name.trim() == COOKIE_NAME).then(|| value.trim().trim_matches('"'))
            })
            .take(MAX_CANDIDATES);
        for value in candidates {
            match self.check_value(value, client_ip, domain, now_unix_ms) {
                Ok(()) => return Ok(()),
                Err(e) if first_err == ClearanceError::Missing => first_err = e,
                Err(_) => {}
            }
        }
        Err(first_err)
    }

    fn check_value(
        &self,
        value: &str,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
    ) -> Result<(), ClearanceError> {
        if value.len() != TEXT_LEN {
            return Err(ClearanceError::Malformed);
        }
        let mut raw = [0u8; RAW_LEN + 2];
        let n = URL_SAFE_NO_PAD
            .decode_slice(value.as_bytes(), &mut raw)
            .map_err(|_| ClearanceError::Malformed)?;
        if n != RAW_LEN || raw[0] != VERSION {
            return Err(ClearanceError::Malformed);
        }
        let mut m = self.cookie_mac.clone();
        m.update(&raw[..SIGNED_LEN]);
        m.verify_slice(&raw[SIGNED_LEN..RAW_LEN])
            .map_err(|_| ClearanceError::Forged)?;
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&raw[2..10]);
        let expires = u64::from_be_bytes(expires);
        let now_s = now_unix_ms / 1000;
        if now_s >= expires || expires > now_s.saturating_add(self.clearance_ttl_s + CLOCK_SKEW_S) {
            return Err(ClearanceError::Expired);
        }
        if raw[10..26] != ip_scope(client_ip) {
            return Err(ClearanceError::WrongIp);
        }
        if raw[26..34] != domain_tag(domain) {
            return Err(ClearanceError::WrongDomain);
        }
        Ok(())
    }
}
