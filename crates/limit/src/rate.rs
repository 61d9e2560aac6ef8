//! nginx's `rate=` and `size` values.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// A `limit_req_zone` rate in milli-requests per second, as nginx stores it: `floor(N * 1000 / scale)`,
/// scale 1 for `Nr/s`, 60 for `Nr/m`. Never zero (`0r/s` and `1r/m`'s 16 both parse; only the former fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    milli_per_sec: NonZeroU64,
    /// As written, for display and export.
    requests: u64,
    per_minute: bool,
}

impl Rate {
    /// `n` requests per second.
    pub fn per_second(n: NonZeroU64) -> Self {
        Self::build(n.get(), false).expect("n >= 1 gives a non-zero rate")
    }

    /// `n` requests per minute.
    pub fn per_minute(n: NonZeroU64) -> Self {
        Self::build(n.get(), true).expect("n >= 1 gives a non-zero rate")
    }

    fn build(requests: u64, per_minute: bool) -> Option<Self> {
        let scale = if per_minute { 60 } else { 1 };
        let milli = requests.checked_mul(1000)? / scale;
        Some(Self {
            milli_per_sec: NonZeroU64::new(milli)?,
            requests,
            per_minute,
        })
    }

    /// Milli-requests per second, nginx's `ctx->rate`.
    #[inline]
    pub fn milli_per_sec(&self) -> u64 {
        self.milli_per_sec.get()
    }
}

/// Why a rate did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {0:?}: expected N r/s or N r/m with N a whole number >= 1, e.g. \"10r/s\" or \"30r/m\""
)]
pub struct RateError(pub String);

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RateError(s.to_string());
        let (digits, per_minute) = if let Some(d) = s.strip_suffix("r/s") {
            (d, false)
        } else if let Some(d) = s.strip_suffix("r/m") {
            (d, true)
        } else {
            (s, false)
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: u64 = digits.parse().map_err(|_| err())?;
        if n == 0 {
            return Err(err());
        }
        Self::build(n, per_minute).ok_or_else(err)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}r/{}",
            self.requests,
            if self.per_minute { "m" } else { "s" }
        )
    }
}

/// Parses an nginx size: bytes, or a number with `k`/`K` or `m`/`M` (1024-based), e.g. `32k`, `10m`.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_nginx_stores_them() {
        let m = |s: &str| s.parse::<Rate>().unwrap().milli_per_sec();
        assert_eq!(m("1r/m"), 16);
        assert_eq!(m("7r/m"), 116);
        assert_eq!(m("30r/m"), 500);
        assert_eq!(m("2r/s"), 2000);
        assert_eq!(m("5"), 5000);
        for bad in ["0r/s", "1.5r/s", "5r/h", "r/s", "", "-1r/s", "10 r/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!("30r/m".parse::<Rate>().unwrap().to_string(), "30r/m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32k"), Some(32 * 1024));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("1.5m"), None);
    }
}
