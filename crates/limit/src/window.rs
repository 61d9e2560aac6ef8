//! Sliding-window counters for custom rules: requests and response statuses per key over 10-600 s.
//!
//! Per key, over a window of `interval` seconds: the requests seen, the responses seen, and for each tracked
//! status selector (an exact code such as `404` or a class such as `4xx`) the responses it matched.
//!
//! The window is split into [`BUCKETS`] buckets of `interval / 10` seconds each (whole milliseconds: at least
//! 1 s). At time `now` in bucket `c = floor(now / width)`, a count is the sum of buckets `c - 9 ..= c`, i.e. of the
//! events in `[(c - 9) * width, now]`. That span lies inside the exact window `(now - interval, now]` and misses only
//! its oldest part, which falls in the single bucket `c - 10`. So for every counter
//! `exact - events(bucket c - 10) <= count <= exact`: a count never exceeds the exact sliding window and falls short
//! of it by at most one bucket's events (at most the events of `interval / 10` seconds).
//!
//! Memory per key is fixed: an 8-byte bucket index and `10 * (2 + K)` 32-bit counters for K tracked selectors
//! (see [`Window::state_bytes`]). A bucket counter saturates at `u32::MAX` instead of wrapping.

use std::fmt;
use std::str::FromStr;

/// Buckets per window.
pub const BUCKETS: usize = 10;
/// Shortest window, seconds.
pub const MIN_INTERVAL_S: u32 = 10;
/// Longest window, seconds.
pub const MAX_INTERVAL_S: u32 = 600;
/// Most status selectors one window tracks.
pub const MAX_TRACKED: usize = 8;

/// A response status selector: one code, or a class (`4` for `4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSel {
    Code(u16),
    Class(u8),
}

impl StatusSel {
    /// Whether `status` is selected.
    #[inline]
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusSel::Code(c) => c == status,
            StatusSel::Class(k) => status / 100 == u16::from(k),
        }
    }
}

impl FromStr for StatusSel {
    type Err = WindowError;

    /// `404` (100..=599) or `4xx` / `4XX` (1..=5).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WindowError::BadSelector(s.to_string());
        let b = s.as_bytes();
        if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
            return Err(bad());
        }
        if b[1..].eq_ignore_ascii_case(b"xx") {
            return Ok(StatusSel::Class(b[0] - b'0'));
        }
        if b[1..].iter().all(u8::is_ascii_digit) {
            return s.parse().map(StatusSel::Code).map_err(|_| bad());
        }
        Err(bad())
    }
}

impl fmt::Display for StatusSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSel::Code(c) => write!(f, "{c}"),
            StatusSel::Class(k) => write!(f, "{k}xx"),
        }
    }
}

/// Why a window could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window interval {0} s is outside {MIN_INTERVAL_S}..={MAX_INTERVAL_S} s")]
    Interval(u32),
    #[error("{0} tracked statuses; at most {MAX_TRACKED} per window")]
    TooManyTracked(usize),
    #[error(
        "invalid status selector {0:?}: expected a code 100-599 such as 404, or a class such as 4xx"
    )]
    BadSelector(String),
    #[error("window table of {size} bytes cannot hold one key ({per_key} bytes per key and table)")]
    TooSmall { size: usize, per_key: usize },
}

/// What a window counts: its length and the statuses it tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub interval_s: u32,
    pub tracked: Vec<StatusSel>,
}

/// A validated [`WindowSpec`]: the layout every key's state of one table shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    interval_s: u32,
    width_ms: u64,
    tracked: [StatusSel; MAX_TRACKED],
    n_tracked: usize,
}

impl Window {
    /// Checks the interval (10..=600 s) and the number of tracked selectors (<= [`MAX_TRACKED`]).
    pub fn new(spec: &WindowSpec) -> Result<Self, WindowError> {
        if !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&spec.interval_s) {
            return Err(WindowError::Interval(spec.interval_s));
        }
        if spec.tracked.len() > MAX_TRACKED {
            return Err(WindowError::TooManyTracked(spec.tracked.len()));
        }
        let mut tracked = [StatusSel::Code(0); MAX_TRACKED];
        tracked[..spec.tracked.len()].copy_from_slice(&spec.tracked);
        Ok(Self {
            interval_s: spec.interval_s,
            width_ms: u64::from(spec.interval_s) * 1000 / BUCKETS as u64,
            tracked,
            n_tracked: spec.tracked.len(),
        })
    }

    /// The window's length in seconds.
    pub fn interval_s(&self) -> u32 {
        self.interval_s
    }

    /// One bucket's width in milliseconds (`interval / 10`).
    pub fn bucket_ms(&self) -> u64 {
        self.width_ms
    }

    /// The tracked selectors, in the order of [`WindowCounts::status`].
    pub fn tracked(&self) -> &[StatusSel] {
        &self.tracked[..self.n_tracked]
    }

    /// Counters per bucket: requests, responses, then one per tracked selector.
    fn stride(&self) -> usize {
        2 + self.n_tracked
    }

    /// Bytes of one key's [`WindowState`]: the struct and its counters.
    pub fn state_bytes(&self) -> usize {
        size_of::<WindowState>() + BUCKETS * self.stride() * size_of::<u32>()
    }

    fn bucket(&self, now_ms: u64) -> u64 {
        now_ms / self.width_ms
    }
}

/// The counts of one key's window at one moment. `Copy`, no heap: `status()` is a slice of an inline array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCounts {
    pub requests: u64,
    pub responses: u64,
    status: [u64; MAX_TRACKED],
    n_tracked: u8,
}

impl WindowCounts {
    /// Responses matched by each tracked selector, in the window's `tracked` order.
    pub fn status(&self) -> &[u64] {
        &self.status[..self.n_tracked as usize]
    }
}

/// One key's buckets: a pure value, driven with the table's [`Window`] and a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// Index (`now / width`) of the newest bucket; the ring holds `newest - 9 ..= newest`.
    newest: u64,
    /// `BUCKETS` rows of `stride` counters; bucket index `i` lives in row `i % BUCKETS`.
    cells: Box<[u32]>,
}

impl WindowState {
    /// An empty window for a key first seen at `now_ms`.
    pub fn new(w: &Window, now_ms: u64) -> Self {
        Self {
            newest: w.bucket(now_ms),
            cells: vec![0; BUCKETS * w.stride()].into_boxed_slice(),
        }
    }

    /// Counts a request at `now_ms`; returns the counts including it. Hot path: no allocation.
    pub fn record_request(&mut self, w: &Window, now_ms: u64) -> WindowCounts {
        let row = self.advance(w, now_ms);
        bump(&mut row[0]);
        self.counts(w, now_ms)
    }

    /// Counts a response with `status` at `now_ms`; returns the counts including it. Hot path: no allocation.
    pub fn record_status(&mut self, w: &Window, now_ms: u64, status: u16) -> WindowCounts {
        let row = self.advance(w, now_ms);
        bump(&mut row[1]);
        for (cell, sel) in row[2..].iter_mut().zip(w.tracked()) {
            if sel.matches(status) {
                bump(cell);
            }
        }
        self.counts(w, now_ms)
    }

    /// The counts at `now_ms`, without recording anything.
    pub fn counts(&self, w: &Window, now_ms: u64) -> WindowCounts {
        let now = w.bucket(now_ms).max(self.newest);
        let stride = w.stride();
        let mut out = WindowCounts {
            n_tracked: w.n_tracked as u8,
            ..WindowCounts::default()
        };
        for age in 0..BUCKETS as u64 {
            // Ring rows hold buckets newest-0 ..= newest-9; keep those still inside the window ending at `now`.
            let Some(index) = self.newest.checked_sub(age) else {
                break;
            };
            if index + (BUCKETS as u64) <= now {
                break;
            }
            let r = (index % BUCKETS as u64) as usize * stride;
            let row = &self.cells[r..r + stride];
            out.requests += u64::from(row[0]);
            out.responses += u64::from(row[1]);
            for (sum, &c) in out.status.iter_mut().zip(&row[2..]) {
                *sum += u64::from(c);
            }
        }
        out
    }

    /// Whether every bucket has left the window: the state counts nothing and can be dropped.
    pub fn is_idle(&self, w: &Window, now_ms: u64) -> bool {
        self.newest + BUCKETS as u64 <= w.bucket(now_ms)
    }

    /// Moves the ring to `now_ms`'s bucket, zeroing the rows it reuses, and returns that bucket's row. A time older
    /// than the newest bucket (another thread's slightly older clock read) is counted in the newest bucket.
    fn advance(&mut self, w: &Window, now_ms: u64) -> &mut [u32] {
        let stride = w.stride();
        let now = w.bucket(now_ms);
        if now > self.newest {
            let fresh = (now - self.newest).min(BUCKETS as u64);
            for i in 0..fresh {
                let r = ((now - i) % BUCKETS as u64) as usize * stride;
                self.cells[r..r + stride].fill(0);
            }
            self.newest = now;
        }
        let r = (self.newest % BUCKETS as u64) as usize * stride;
        &mut self.cells[r..r + stride]
    }
}

#[inline]
fn bump(c: &mut u32) {
    *c = c.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!("404".parse(), Ok(StatusSel::Code(404)));
        assert_eq!("4xx".parse(), Ok(StatusSel::Class(4)));
        assert_eq!("5XX".parse(), Ok(StatusSel::Class(5)));
        for bad in ["", "40", "4040", "6xx", "0xx", "x04", "4x4", "099"] {
            assert!(bad.parse::<StatusSel>().is_err(), "{bad}");
        }
        assert!(StatusSel::Class(4).matches(404) && !StatusSel::Class(4).matches(500));
        assert_eq!(StatusSel::Class(4).to_string(), "4xx");
    }

    #[test]
    fn spec_bounds() {
        let spec = |interval_s, n| WindowSpec {
            interval_s,
            tracked: vec![StatusSel::Code(404); n],
        };
        assert!(Window::new(&spec(9, 0)).is_err());
        assert!(Window::new(&spec(601, 0)).is_err());
        assert!(Window::new(&spec(10, MAX_TRACKED + 1)).is_err());
        let w = Window::new(&spec(600, MAX_TRACKED)).unwrap();
        assert_eq!(w.bucket_ms(), 60_000);
    }
}
