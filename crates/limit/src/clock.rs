//! Time for the limiters: whole milliseconds of a monotonic clock, as nginx's `ngx_current_msec`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of monotonic milliseconds. Production uses [`MonotonicClock`]; tests drive a [`FakeClock`].
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds of a monotonic clock, truncated.
    fn now_ms(&self) -> u64;
}

/// `CLOCK_MONOTONIC` in milliseconds, the clock nginx reads: its origin is the machine's boot, not the process
/// start, so a new state's `last = 0` quirk behaves as in nginx (see `req.rs`). Off Linux, milliseconds since
/// the first read in this process (`std::time::Instant`): same rates and windows, another origin.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    #[cfg(target_os = "linux")]
    #[inline]
    fn now_ms(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }

    #[cfg(not(target_os = "linux"))]
    #[inline]
    fn now_ms(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }
}

/// A clock the tests set and advance by hand. Clones share one time.
#[derive(Debug, Default, Clone)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// A fake clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }
    /// Sets the time to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
