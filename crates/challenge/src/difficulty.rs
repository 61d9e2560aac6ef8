//! Proof-of-work difficulty and the hash check shared by the server and (in JavaScript) the page.

use sha2::{Digest, Sha256};
use std::fmt;

/// Number of leading zero bits the answer's SHA-256 must have; expected work is 2^bits hashes.
///
/// Bounded to `MIN..=MAX` so a configuration can neither switch the work off nor ask for more than a browser
/// finishes in a day; the page checks only the first 32 bits of the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Difficulty(u8);

impl Difficulty {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 32;
    /// About one second for one core of a current desktop browser (measured figure in docs/challenge.md).
    pub const DEFAULT: Difficulty = Difficulty(20);

    pub const fn new(bits: u8) -> Option<Difficulty> {
        if bits >= Self::MIN && bits <= Self::MAX {
            Some(Difficulty(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Mean number of hashes a solver tries (the count is geometric, so single solves vary a lot).
    pub const fn expected_hashes(self) -> u64 {
        1u64 << self.0
    }
}

impl Default for Difficulty {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bits", self.0)
    }
}

/// Longest answer nonce accepted: the decimal form of any u64 fits, and challenge plus nonce stay within one
/// SHA-256 block, which the page relies on for speed.
pub(crate) const MAX_NONCE_LEN: usize = 20;

/// Whether `nonce` has the form the page produces: 1 to 20 ASCII digits.
pub(crate) fn nonce_well_formed(nonce: &str) -> bool {
    (1..=MAX_NONCE_LEN).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_digit())
}

/// SHA-256(challenge || nonce), both as their ASCII text.
pub(crate) fn pow_hash(challenge: &[u8], nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(challenge);
    h.update(nonce);
    h.finalize().into()
}

pub(crate) fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for &b in hash {
        if b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

pub(crate) fn meets(hash: &[u8; 32], difficulty: Difficulty) -> bool {
    leading_zero_bits(hash) >= u32::from(difficulty.bits())
}
