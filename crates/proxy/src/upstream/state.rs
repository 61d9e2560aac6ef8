//! The health of one upstream address, as nginx and Envoy keep it: failures are counted within `fail_timeout`,
//! `max_fails` of them mark the upstream down for `fail_timeout` (passive), after which requests try it again;
//! `fails` consecutive failed active checks mark it down until `passes` consecutive checks pass or a request
//! succeeds; a request that succeeds brings it back at once (passive recovery). Whether the last upstream of a domain may be marked down is the caller's choice
//! (`upstream::forward` never marks it down for a request's failure, and always tries it when all are down).
//!
//! Hot path: [`Health::is_up`] is one relaxed load while up; [`Health::succeeded`] two loads while healthy.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Failure;

/// Milliseconds since the first call: the time base of every upstream's health.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `retry_at` of an upstream an active check has down: only a success brings it back.
const UNTIL_SUCCESS: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Health {
    up: AtomicBool,
    /// The failure that marked it down, as a `Failure` index, for the 503 body.
    cause: AtomicU8,
    /// Failures counted since `window_start`.
    fails: AtomicU32,
    window_start: AtomicU64,
    /// While down: when requests may try it again (`now_ms` time), or [`UNTIL_SUCCESS`].
    retry_at: AtomicU64,
    /// Active checks failed in a row (any passing check restarts it).
    check_fails: AtomicU32,
    /// While down: active checks passed in a row.
    check_passes: AtomicU32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            up: AtomicBool::new(true),
            cause: AtomicU8::new(0),
            fails: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            retry_at: AtomicU64::new(0),
            check_fails: AtomicU32::new(0),
            check_passes: AtomicU32::new(0),
        }
    }
}

impl Health {
    /// Whether requests may go to it: up, or down for `fail_timeout` and that time is over. Hot path: one load
    /// while up.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Relaxed) || now_ms() >= self.retry_at.load(Relaxed)
    }

    /// Whether it is marked up (for metrics: a down upstream whose retry time came stays down until tried).
    pub(crate) fn marked_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// The failure that marked the upstream down (meaningful while it is down).
    pub(crate) fn cause(&self) -> Failure {
        Failure::from_index(self.cause.load(Relaxed))
    }

    /// A request could not reach it because of `why`. The failure is counted within `fail_timeout`; at
    /// `max_fails` (0: never) it is marked down for `fail_timeout` unless `may_mark_down` is false (the last
    /// upstream of the domain still up). Returns whether it was marked down now.
    pub(crate) fn failed(
        &self,
        label: &str,
        why: Failure,
        max_fails: u32,
        fail_timeout: Duration,
        may_mark_down: bool,
    ) -> bool {
        let now = now_ms();
        let window = u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX);
        let start = self.window_start.load(Relaxed);
        let n = if self.fails.load(Relaxed) == 0 || now.saturating_sub(start) >= window {
            self.window_start.store(now, Relaxed);
            self.fails.store(1, Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Relaxed).saturating_add(1)
        };
        self.cause.store(why.index(), Relaxed);
        if max_fails == 0 || n < max_fails || !may_mark_down {
            return false;
        }
        self.retry_at.store(now.saturating_add(window), Relaxed);
        let was_up = self.up.swap(false, Relaxed);
        if was_up {
            tracing::error!(
                upstream = %label,
                cause = why.describe(),
                fails = n,
                "upstream marked down (max_fails within fail_timeout)"
            );
        }
        was_up
    }

    /// An active check failed: the `fails`-th in a row marks it down until `passes` checks in a row pass or
    /// a request succeeds (nginx's `health_check fails= passes=`, HAProxy's `fall`/`rise`). Returns whether it
    /// was marked down now.
    pub(crate) fn check_failed(&self, label: &str, why: Failure, fails: u32) -> bool {
        self.check_passes.store(0, Relaxed);
        let n = self.check_fails.fetch_add(1, Relaxed).saturating_add(1);
        self.cause.store(why.index(), Relaxed);
        if n < fails.max(1) {
            return false;
        }
        self.retry_at.store(UNTIL_SUCCESS, Relaxed);
        let was_up = self.up.swap(false, Relaxed);
        if was_up {
            tracing::error!(
                upstream = %label,
                cause = why.describe(),
                checks = n,
                "upstream marked down (health checks failed)"
            );
        }
        was_up
    }

    /// An active check passed: the failed-check run is over; a down upstream is up again at the `passes`-th
    /// check in a row that passed. Returns whether it was brought up now.
    pub(crate) fn check_passed(&self, label: &str, passes: u32) -> bool {
        self.check_fails.store(0, Relaxed);
        if self.up.load(Relaxed) {
            self.fails.store(0, Relaxed);
            return false;
        }
        let n = self.check_passes.fetch_add(1, Relaxed).saturating_add(1);
        if n < passes.max(1) {
            return false;
        }
        self.fails.store(0, Relaxed);
        self.check_passes.store(0, Relaxed);
        let came_up = !self.up.swap(true, Relaxed);
        if came_up {
            tracing::warn!(upstream = %label, checks = n, "upstream back up (health checks passed)");
        }
        came_up
    }

    /// A request succeeded: the failure count starts again and a down upstream is up at once, whatever the
    /// active checks said. Hot path: two loads when nothing changes.
    pub(crate) fn succeeded(&self, label: &str) {
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
        }
        if !self.up.load(Relaxed) && !self.up.swap(true, Relaxed) {
            self.check_fails.store(0, Relaxed);
            self.check_passes.store(0, Relaxed);
            tracing::warn!(upstream = %label, "upstream back up (a request succeeded)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_fails_within_fail_timeout_marks_down() {
        let h = Health::default();
        let t = Duration::from_secs(60);
        assert!(!h.failed("o", Failure::Refused, 3, t, true));
        assert!(!h.failed("o", Failure::Refused, 3, t, true));
        assert!(h.is_up());
        assert!(h.failed("o", Failure::Refused, 3, t, true));
        assert!(!h.is_up());
        assert_eq!(h.cause(), Failure::Refused);
        h.succeeded("o");
        assert!(h.is_up() && h.marked_up());
    }

    #[test]
    fn a_success_restarts_the_count() {
        let h = Health::default();
        let t = Duration::from_secs(60);
        assert!(!h.failed("o", Failure::Refused, 2, t, true));
        h.succeeded("o");
        assert!(!h.failed("o", Failure::Refused, 2, t, true));
        assert!(h.is_up());
    }

    #[test]
    fn the_last_upstream_and_max_fails_zero_stay_up() {
        let h = Health::default();
        let t = Duration::from_secs(60);
        assert!(!h.failed("o", Failure::Refused, 1, t, false));
        assert!(!h.failed("o", Failure::Refused, 0, t, true));
        assert!(h.is_up());
    }

    #[test]
    fn down_for_fail_timeout_then_tried_again() {
        let h = Health::default();
        assert!(h.failed("o", Failure::Refused, 1, Duration::ZERO, true));
        // A zero fail_timeout: tried again at once, though still marked down until something succeeds.
        assert!(h.is_up());
        assert!(!h.marked_up());
    }

    #[test]
    fn a_failed_check_holds_until_a_success() {
        let h = Health::default();
        assert!(h.check_failed("o", Failure::ConnectTimeout, 1));
        assert!(!h.is_up());
        assert!(h.check_passed("o", 1));
        assert!(h.is_up());
        assert!(h.check_failed("o", Failure::ConnectTimeout, 1));
        h.succeeded("o");
        assert!(h.is_up());
    }

    #[test]
    fn fails_in_a_row_mark_down_and_passes_in_a_row_bring_back() {
        let h = Health::default();
        // fails = 3: two failed checks, a pass, two more: the run restarted, still up.
        for _ in 0..2 {
            assert!(!h.check_failed("o", Failure::Refused, 3));
        }
        assert!(!h.check_passed("o", 2));
        for _ in 0..2 {
            assert!(!h.check_failed("o", Failure::Refused, 3));
        }
        assert!(h.is_up());
        assert!(h.check_failed("o", Failure::Refused, 3));
        assert!(!h.is_up());
        assert_eq!(h.cause(), Failure::Refused);
        // passes = 2: a pass, a failure (the run restarts), then two passes.
        assert!(!h.check_passed("o", 2));
        assert!(!h.check_failed("o", Failure::Refused, 3));
        assert!(!h.check_passed("o", 2));
        assert!(!h.is_up());
        assert!(h.check_passed("o", 2));
        assert!(h.is_up() && h.marked_up());
    }

    #[test]
    fn a_request_brings_back_what_checks_took_out_and_restarts_their_counts() {
        let h = Health::default();
        for _ in 0..2 {
            h.check_failed("o", Failure::ProbeStatus, 2);
        }
        assert!(!h.is_up());
        assert!(!h.check_passed("o", 3));
        h.succeeded("o");
        assert!(h.is_up());
        // Both runs start again: one failed check is not yet the two that mark it down.
        assert!(!h.check_failed("o", Failure::ProbeStatus, 2));
        assert!(h.is_up());
    }
}
