//! Challenge tokens: what the page is asked to solve, signed so the verifier needs no memory of what it issued.
//! Only redeemed tokens are remembered, in the replay cache, until they expire.
//!
//! Layout (82 bytes, base64url without padding = 110 characters):
//! `version(1)=1 | difficulty(1) | issued_unix_ms(8, BE) | random(16) | client_ip(16) | domain_tag(8) | hmac(32)`
//! where the HMAC-SHA256 (token key) covers the first 50 bytes. The puzzle is
//! SHA-256(hex(random) || decimal nonce) with `difficulty` leading zero bits.

use crate::Clearance;
use crate::difficulty::{self, Difficulty};
use crate::key::{Challenger, domain_tag, ip_bytes};
use crate::random;
use crate::replay::Redeem;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use std::net::IpAddr;

/// How long an issued token may be answered.
pub const TOKEN_TTL_MS: u64 = 5 * 60 * 1000;
/// Tokens stamped this far in the future still pass: nodes sharing a key may disagree on the time.
const CLOCK_SKEW_MS: u64 = 30_000;

const VERSION: u8 = 1;
const SIGNED_LEN: usize = 50;
const RAW_LEN: usize = SIGNED_LEN + 32;
pub(crate) const TEXT_LEN: usize = 110;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token or answer")]
    Malformed,
    #[error("token signature does not check")]
    Forged,
    #[error("token expired")]
    Expired,
    #[error("token was issued to another client address")]
    WrongIp,
    #[error("token was issued for another domain")]
    WrongDomain,
    #[error("answer does not meet the difficulty")]
    WrongAnswer,
    /// The token was redeemed before: each solved challenge yields one cookie.
    #[error("token was already redeemed")]
    Replayed,
    /// The replay cache has no room for this token now; it stays unredeemed and may be posted again shortly.
    #[error("too many challenges answered at once, retry shortly")]
    Busy,
}

impl VerifyError {
    /// Short stable code for the page and the access log.
    pub fn code(self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::Forged => "forged",
            VerifyError::Expired => "expired",
            VerifyError::WrongIp => "wrong_ip",
            VerifyError::WrongDomain => "wrong_domain",
            VerifyError::WrongAnswer => "wrong_answer",
            VerifyError::Replayed => "replayed",
            VerifyError::Busy => "busy",
        }
    }
}

/// A token as issued: the opaque text the page posts back and the puzzle it solves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeToken {
    text: String,
    challenge: String,
    difficulty: Difficulty,
    issued_unix_ms: u64,
}

impl ChallengeToken {
    /// The signed token, base64url text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The puzzle prefix: 32 lowercase hex characters.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    pub fn difficulty(&self) -> Difficulty {
        self.difficulty
    }

    pub fn issued_unix_ms(&self) -> u64 {
        self.issued_unix_ms
    }
}

fn hex32(random: &[u8]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in random.iter().take(16).enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

impl Challenger {
    /// Issues a token binding `client_ip`, `domain`, the time and the difficulty.
    ///
    /// Hot path of every challenge page: the puzzle comes from a per-thread ChaCha20 generator (no system call),
    /// then one HMAC; the two returned strings are its only allocations.
    pub fn issue(
        &self,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
        difficulty: Difficulty,
    ) -> ChallengeToken {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1] = difficulty.bits();
        raw[2..10].copy_from_slice(&now_unix_ms.to_be_bytes());
        let mut random = [0u8; 16];
        if !random::fill(&mut random) {
            self.fallback_random(now_unix_ms, &mut random);
        }
        raw[10..26].copy_from_slice(&random);
        raw[26..42].copy_from_slice(&ip_bytes(client_ip));
        raw[42..50].copy_from_slice(&domain_tag(domain));
        let mut m = self.token_mac.clone();
        m.update(&raw[..SIGNED_LEN]);
        raw[SIGNED_LEN..].copy_from_slice(&m.finalize().into_bytes());
        let challenge = hex32(&random);
        ChallengeToken {
            text: URL_SAFE_NO_PAD.encode(raw),
            challenge: String::from_utf8_lossy(&challenge).into_owned(),
            difficulty,
            issued_unix_ms: now_unix_ms,
        }
    }

    /// Checks an answer and redeems its token: signature (constant-time), age, client address, domain, the proof
    /// of work, then single use. A token that passes everything else is recorded in the replay cache until it
    /// expires; answering it again is [`VerifyError::Replayed`], and [`VerifyError::Busy`] when the cache has no
    /// room for it (nothing recorded: the same answer may be posted again).
    ///
    /// Hot path for the verify endpoint: constant memory, one base64 decode into a stack buffer and three
    /// SHA-256 compressions, one SipHash and one short shard lock for the replay check, plus the cookie's HMAC;
    /// no allocation until the cookie string is built.
    pub fn verify(
        &self,
        token: &str,
        answer_nonce: &str,
        client_ip: IpAddr,
        domain: &str,
        now_unix_ms: u64,
    ) -> Result<Clearance, VerifyError> {
        if token.len() != TEXT_LEN {
            return Err(VerifyError::Malformed);
        }
        let mut raw = [0u8; RAW_LEN + 2];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token.as_bytes(), &mut raw)
            .map_err(|_| VerifyError::Malformed)?;
        if n != RAW_LEN || raw[0] != VERSION {
            return Err(VerifyError::Malformed);
        }
        let mut m = self.token_mac.clone();
        m.update(&raw[..SIGNED_LEN]);
        m.verify_slice(&raw[SIGNED_LEN..RAW_LEN])
            .map_err(|_| VerifyError::Forged)?;

        // Signed from here on: the fields are ours.
        let difficulty = Difficulty::new(raw[1]).ok_or(VerifyError::Malformed)?;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[2..10]);
        let issued = u64::from_be_bytes(issued);
        if now_unix_ms.saturating_sub(issued) > TOKEN_TTL_MS
            || issued > now_unix_ms.saturating_add(CLOCK_SKEW_MS)
        {
            return Err(VerifyError::Expired);
        }
        if raw[26..42] != ip_bytes(client_ip) {
            return Err(VerifyError::WrongIp);
        }
        if raw[42..50] != domain_tag(domain) {
            return Err(VerifyError::WrongDomain);
        }
        if !difficulty::nonce_well_formed(answer_nonce) {
            return Err(VerifyError::Malformed);
        }
        let hash = difficulty::pow_hash(&hex32(&raw[10..26]), answer_nonce.as_bytes());
        if !difficulty::meets(&hash, difficulty) {
            return Err(VerifyError::WrongAnswer);
        }
        // Live in the cache as long as the age check above lets the token through.
        let expires_unix_s = (issued + TOKEN_TTL_MS) / 1000 + 1;
        match self
            .replay
            .redeem(&raw[SIGNED_LEN..RAW_LEN], expires_unix_s, now_unix_ms)
        {
            Redeem::Fresh => Ok(self.grant(client_ip, domain, now_unix_ms, difficulty)),
            Redeem::Replayed => Err(VerifyError::Replayed),
            Redeem::Busy => Err(VerifyError::Busy),
        }
    }
}
