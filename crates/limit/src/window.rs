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
//! Memory per key is fixed: a 4-byte bucket index and `10 * C` 16-bit counters, where C is 1 (requests only) for a
//! window without selectors, else `2 + K` for K tracked selectors rounded up to 3, 4, 6 or 10, plus the compact
//! table's 8-byte fingerprint and, under frequency-aware eviction (the default), 8 bytes of sketch: 40 bytes per
//! key with no selector, 80 with one, 100 with two ([`WindowTable::bytes_per_state`]). A window without
//! selectors does not count responses (nothing reads them without a status ratio): `responses` stays 0. A bucket
//! counter saturates at `u16::MAX` (65,535 events in one tenth of the window) instead of wrapping, so a count only
//! ever errs low, and only for a key far past any useful threshold. Keys live in the crate's compact table (a keyed
//! fingerprint instead of the key, set-associative buckets, see `compact.rs`); when a key's buckets are full, a new
//! key takes the place of an idle key, or of a live one only if the key is estimated more frequent
//! ([`Eviction::FrequencyAware`]); an evicted key restarts from zero.

use std::fmt;
use std::str::FromStr;

use crate::compact::{CompactState, CompactTable, Zeroable};
use crate::table::Eviction;

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
    #[error("window table of {size} bytes is too small to hold a key")]
    TooSmall { size: usize },
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

    /// Counters per bucket: requests, then (when selectors are tracked) responses and one per selector.
    fn stride(&self) -> usize {
        stride(self.n_tracked)
    }

    fn bucket(&self, now_ms: u64) -> u32 {
        (now_ms / self.width_ms).min(u64::from(u32::MAX)) as u32
    }
}

/// The counts of one key's window at one moment. `Copy`, no heap: `status()` is a slice of an inline array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCounts {
    pub requests: u64,
    pub responses: u64,
    status: [u64; MAX_TRACKED],
    n_tracked: u8,
    stored: bool,
}

impl WindowCounts {
    /// Responses matched by each tracked selector, in the window's `tracked` order.
    pub fn status(&self) -> &[u64] {
        &self.status[..self.n_tracked as usize]
    }

    /// Whether the key's window is in the table after the call. `false` for a new key the table did not
    /// admit (a frequency-aware table refused it, or there was no room): the counts are those of a fresh window
    /// holding only this event, and nothing was stored.
    pub fn stored(&self) -> bool {
        self.stored
    }
}

/// Counters per bucket for `tracked` selectors: requests alone without selectors, else requests, responses and
/// one per selector.
const fn stride(tracked: usize) -> usize {
    if tracked == 0 { 1 } else { 2 + tracked }
}

/// One key's buckets: a pure value, driven with the table's [`Window`] and a time. `C` counters per bucket, at
/// least the window's counters per bucket; [`WindowTable`] picks the smallest of a few sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState<const C: usize> {
    /// Index (`now / width`) of the newest bucket; the ring holds `newest - 9 ..= newest`. Buckets are at least
    /// 1 s wide, so 32 bits last 136 years of clock.
    newest: u32,
    /// Bucket index `i` lives in row `i % BUCKETS`: requests, responses, then the tracked selectors.
    cells: [[u16; C]; BUCKETS],
}

impl<const C: usize> Default for WindowState<C> {
    fn default() -> Self {
        Self {
            newest: 0,
            cells: [[0; C]; BUCKETS],
        }
    }
}

// SAFETY: integers only; zero is an empty window at bucket 0.
unsafe impl<const C: usize> Zeroable for WindowState<C> {}

impl<const C: usize> CompactState for WindowState<C> {
    type Params = Window;

    fn idle(&self, now_ms: u64, w: &Window) -> bool {
        self.is_idle(w, now_ms)
    }

    fn last_ms(&self, w: &Window) -> u64 {
        u64::from(self.newest) * w.width_ms
    }
}

impl<const C: usize> WindowState<C> {
    /// An empty window for a key first seen at `now_ms`.
    ///
    /// # Panics
    /// If `C` is below the window's counters per bucket.
    pub fn new(w: &Window, now_ms: u64) -> Self {
        assert!(
            w.stride() <= C,
            "{C} counters per bucket for a window of {}",
            w.stride()
        );
        Self {
            newest: w.bucket(now_ms),
            cells: [[0; C]; BUCKETS],
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
        // Without selectors the row is the request counter alone.
        if let Some((responses, statuses)) = row[1..].split_first_mut() {
            bump(responses);
            for (cell, sel) in statuses.iter_mut().zip(w.tracked()) {
                if sel.matches(status) {
                    bump(cell);
                }
            }
        }
        self.counts(w, now_ms)
    }

    /// The counts at `now_ms`, without recording anything.
    pub fn counts(&self, w: &Window, now_ms: u64) -> WindowCounts {
        let now = u64::from(w.bucket(now_ms).max(self.newest));
        let newest = u64::from(self.newest);
        let mut out = WindowCounts {
            n_tracked: w.n_tracked as u8,
            stored: true,
            ..WindowCounts::default()
        };
        for age in 0..BUCKETS as u64 {
            // Ring rows hold buckets newest-0 ..= newest-9; keep those still inside the window ending at `now`.
            let Some(index) = newest.checked_sub(age) else {
                break;
            };
            if index + (BUCKETS as u64) <= now {
                break;
            }
            let row = &self.cells[(index % BUCKETS as u64) as usize];
            out.requests += u64::from(row[0]);
            if w.n_tracked > 0 {
                out.responses += u64::from(row[1]);
                for (sum, &c) in out.status.iter_mut().zip(&row[2..w.stride()]) {
                    *sum += u64::from(c);
                }
            }
        }
        out
    }

    /// Whether every bucket has left the window: the state counts nothing and can be dropped.
    pub fn is_idle(&self, w: &Window, now_ms: u64) -> bool {
        u64::from(self.newest) + BUCKETS as u64 <= u64::from(w.bucket(now_ms))
    }

    /// Moves the ring to `now_ms`'s bucket, zeroing the rows it reuses, and returns that bucket's row. A time older
    /// than the newest bucket (another thread's slightly older clock read) is counted in the newest bucket.
    fn advance(&mut self, w: &Window, now_ms: u64) -> &mut [u16] {
        let now = w.bucket(now_ms);
        if now > self.newest {
            let fresh = (now - self.newest).min(BUCKETS as u32);
            for i in 0..fresh {
                self.cells[((now - i) % BUCKETS as u32) as usize] = [0; C];
            }
            self.newest = now;
        }
        &mut self.cells[(self.newest % BUCKETS as u32) as usize][..w.stride()]
    }
}

/// Per-key sliding windows of one [`WindowSpec`] under a byte budget, reserved up front and touched as keys fill
/// it. When a key's buckets are full a new key takes an idle key's place first; after that, under
/// [`Eviction::FrequencyAware`] (the default) it replaces a live key only if it is estimated more frequent, and
/// under [`Eviction::Lru`] the least recently active of the candidates goes. An evicted key restarts from zero.
pub struct WindowTable {
    inner: Inner,
}

/// The table sized for the spec's counters per bucket: 1, or 2 + K rounded up to 3, 4, 6 or 10.
enum Inner {
    C1(CompactTable<WindowState<1>>),
    C3(CompactTable<WindowState<3>>),
    C4(CompactTable<WindowState<4>>),
    C6(CompactTable<WindowState<6>>),
    C10(CompactTable<WindowState<10>>),
}

macro_rules! with_table {
    ($inner:expr, $t:ident => $e:expr) => {
        match $inner {
            Inner::C1($t) => $e,
            Inner::C3($t) => $e,
            Inner::C4($t) => $e,
            Inner::C6($t) => $e,
            Inner::C10($t) => $e,
        }
    };
}

impl std::fmt::Debug for WindowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        with_table!(&self.inner, t => f.debug_struct("WindowTable").field("window", t.params()).field("table", t).finish())
    }
}

impl WindowTable {
    /// A frequency-aware table of at most `size_bytes` bytes for windows of `spec`, all allocated now.
    pub fn new(spec: &WindowSpec, size_bytes: usize) -> Result<Self, WindowError> {
        Self::with_eviction(spec, size_bytes, Eviction::FrequencyAware)
    }

    /// A table of at most `size_bytes` bytes for windows of `spec`, with the given eviction policy.
    pub fn with_eviction(
        spec: &WindowSpec,
        size_bytes: usize,
        eviction: Eviction,
    ) -> Result<Self, WindowError> {
        let w = Window::new(spec)?;
        let too_small = |_| WindowError::TooSmall { size: size_bytes };
        let e = eviction;
        let inner = match w.stride() {
            1 => Inner::C1(CompactTable::new(size_bytes, w, e).map_err(too_small)?),
            ..=3 => Inner::C3(CompactTable::new(size_bytes, w, e).map_err(too_small)?),
            4 => Inner::C4(CompactTable::new(size_bytes, w, e).map_err(too_small)?),
            5..=6 => Inner::C6(CompactTable::new(size_bytes, w, e).map_err(too_small)?),
            _ => Inner::C10(CompactTable::new(size_bytes, w, e).map_err(too_small)?),
        };
        Ok(Self { inner })
    }

    /// Bytes one key of any length costs (state, fingerprint and, when frequency-aware, sketch) in a table of
    /// windows tracking `tracked` selectors.
    pub const fn bytes_per_state(tracked: usize, eviction: Eviction) -> usize {
        match stride(tracked) {
            1 => CompactTable::<WindowState<1>>::bytes_per_state(eviction),
            ..=3 => CompactTable::<WindowState<3>>::bytes_per_state(eviction),
            4 => CompactTable::<WindowState<4>>::bytes_per_state(eviction),
            5..=6 => CompactTable::<WindowState<6>>::bytes_per_state(eviction),
            _ => CompactTable::<WindowState<10>>::bytes_per_state(eviction),
        }
    }

    /// A `size_bytes` whose capacity is at least `keys` keys for windows tracking `tracked` selectors. At that
    /// load about 96 % of as many distinct random keys are stored at once (the rest find both their buckets
    /// full and are treated as the one-shot keys they are until they count more).
    pub const fn size_for(keys: usize, tracked: usize, eviction: Eviction) -> usize {
        keys * Self::bytes_per_state(tracked, eviction) + 64 * 1024
    }

    /// The eviction policy.
    pub fn eviction(&self) -> Eviction {
        with_table!(&self.inner, t => t.eviction())
    }

    /// Live keys evicted to make room for new ones since the table was built (lock-free read).
    pub fn evictions(&self) -> u64 {
        with_table!(&self.inner, t => t.evictions())
    }

    /// New keys not stored since the table was built: refused by frequency-aware admission or no room
    /// (lock-free read). Each such request was counted as a fresh window's first event.
    pub fn admission_refusals(&self) -> u64 {
        with_table!(&self.inner, t => t.admission_refusals())
    }

    /// The validated spec.
    pub fn window(&self) -> &Window {
        with_table!(&self.inner, t => t.params())
    }

    /// Counts a request of `key` at `now_ms` and returns the key's counts including it. A new key that is not
    /// stored (refused by frequency-aware admission) gets the
    /// counts of a window holding only this request, with [`WindowCounts::stored`] false: such a key is never
    /// counted past 1, so a refusal can only delay a block, never cause one.
    ///
    /// Hot path: one shard lock, no allocation.
    pub fn record_request(&self, key: &[u8], now_ms: u64) -> WindowCounts {
        with_table!(&self.inner, t => record_request(t, key, now_ms))
    }

    /// Counts a response with `status` for `key` at `now_ms`; returns the counts after it, or `None` (nothing
    /// recorded) when the key has no window, e.g. it was evicted since its request.
    ///
    /// Hot path: one shard lock, no allocation.
    pub fn record_status(&self, key: &[u8], now_ms: u64, status: u16) -> Option<WindowCounts> {
        with_table!(&self.inner, t => {
            let w = t.params();
            let fp = t.fingerprint(key);
            let mut g = t.lock(fp);
            let i = g.find(fp)?;
            Some(g.state_mut(i).record_status(w, now_ms, status))
        })
    }

    /// The counts of `key` at `now_ms`, or `None` when it has no window. Does not refresh the key's LRU place.
    pub fn counts(&self, key: &[u8], now_ms: u64) -> Option<WindowCounts> {
        with_table!(&self.inner, t => {
            let fp = t.fingerprint(key);
            let g = t.lock(fp);
            let i = g.peek(fp)?;
            Some(g.state(i).counts(t.params(), now_ms))
        })
    }

    /// Keys held now (locks each shard in turn: not for the request path).
    pub fn in_use(&self) -> usize {
        with_table!(&self.inner, t => t.in_use())
    }

    /// Keys the table holds when full (of any length: only a fingerprint is stored).
    pub fn capacity(&self) -> usize {
        with_table!(&self.inner, t => t.capacity())
    }

    /// Bytes allocated; never above the size the table was built with.
    pub fn held_bytes(&self) -> usize {
        with_table!(&self.inner, t => t.held_bytes())
    }

    /// Bytes one key costs (state, fingerprint, sketch) for this table's spec and policy.
    pub fn bytes_per_key(&self) -> usize {
        let w = self.window();
        Self::bytes_per_state(w.n_tracked, self.eviction())
    }

    /// The byte budget given at construction.
    pub fn size_bytes(&self) -> usize {
        with_table!(&self.inner, t => t.size_bytes())
    }
}

fn record_request<const C: usize>(
    t: &CompactTable<WindowState<C>>,
    key: &[u8],
    now_ms: u64,
) -> WindowCounts {
    let w = t.params();
    let fp = t.fingerprint(key);
    let mut g = t.lock(fp);
    if let Some(i) = g.find(fp) {
        return g.state_mut(i).record_request(w, now_ms);
    }
    let mut state = WindowState::<C>::new(w, now_ms);
    let mut counts = state.record_request(w, now_ms);
    counts.stored = g.insert(fp, now_ms, state).is_ok();
    counts
}

#[inline]
fn bump(c: &mut u16) {
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
