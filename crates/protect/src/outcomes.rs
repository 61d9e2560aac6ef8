//! Counts of what the challenge verify endpoint answered. A replayed or forged answer can arrive at line rate,
//! so outcomes are counted here (relaxed atomics, read at scrape time) rather than logged one line each.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use edgeguard_challenge::{Clearance, VerifyError};

/// The outcome labels, in the order of [`VerifyCounts::snapshot`]: a pass, then each [`VerifyError::code`].
pub const VERIFY_OUTCOMES: [&str; 9] = [
    "passed",
    "malformed",
    "forged",
    "expired",
    "wrong_ip",
    "wrong_domain",
    "wrong_answer",
    "replayed",
    "busy",
];

/// Node-wide counters of verify outcomes.
#[derive(Debug, Default)]
pub struct VerifyCounts {
    by_outcome: [AtomicU64; 9],
}

impl VerifyCounts {
    /// Counts one answer. Hot path of the verify endpoint: one relaxed add.
    pub fn record(&self, result: &Result<Clearance, VerifyError>) {
        let code = match result {
            Ok(_) => "passed",
            Err(e) => e.code(),
        };
        let i = VERIFY_OUTCOMES.iter().position(|&c| c == code).unwrap_or(0);
        self.by_outcome[i].fetch_add(1, Relaxed);
    }

    /// Counts so far, in the order of [`VERIFY_OUTCOMES`].
    pub fn snapshot(&self) -> [u64; 9] {
        std::array::from_fn(|i| self.by_outcome[i].load(Relaxed))
    }
}
