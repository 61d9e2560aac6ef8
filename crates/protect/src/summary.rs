//! Refusal summaries: every refusal (a limit_req or limit_conn zone, the IP access limit, a rule's trigger, a
//! refused challenge answer) is counted in a [`Tally`] and written as at most one log line per tally per
//! period, with the count and the heaviest keys, instead of one line per refused request: under a flood a line
//! per request costs more than the refusal and fills the disk.
//!
//! Hot path: [`Tally::refuse`] is two relaxed `fetch_add`s and, when the sketch's lock is free, a scan of
//! [`SLOTS`] fixed slots (space-saving heavy hitters); under contention the sketch update is skipped, so the
//! counts stay exact and only the top keys are sampled. No allocation per request. Tallies are created when a
//! configuration is built (so `/metrics` shows them at zero) and found again by kind and name on reload.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How often the summaries are written.
pub const PERIOD: Duration = Duration::from_secs(10);
/// Slots of a tally's heavy-hitter sketch.
pub const SLOTS: usize = 8;
/// Key bytes a slot keeps; longer keys are cut (the count still goes to the cut key).
pub const KEY_BYTES: usize = 64;
/// Top keys a summary line names.
pub const TOP: usize = 5;
/// Lines a tally may write one by one ([`Tally::may_log`]) per period; the rest only count.
pub const LINES_PER_PERIOD: u32 = 10;

#[derive(Clone, Copy)]
struct Slot {
    key: [u8; KEY_BYTES],
    len: u8,
    count: u64,
}

const EMPTY: Slot = Slot {
    key: [0; KEY_BYTES],
    len: 0,
    count: 0,
};

/// Space-saving over [`SLOTS`] slots: a key in the sketch counts up; a new key takes the least counted slot and
/// inherits its count, so a key sent more than `total / SLOTS` times is always held (its count an upper bound).
struct Sketch {
    slots: [Slot; SLOTS],
}

impl Sketch {
    fn offer(&mut self, key: &[u8]) {
        let key = &key[..key.len().min(KEY_BYTES)];
        let mut min = 0;
        for i in 0..SLOTS {
            let s = &mut self.slots[i];
            if s.count > 0 && &s.key[..usize::from(s.len)] == key {
                s.count += 1;
                return;
            }
            if s.count < self.slots[min].count {
                min = i;
            }
        }
        let s = &mut self.slots[min];
        s.key[..key.len()].copy_from_slice(key);
        s.len = u8::try_from(key.len()).unwrap_or(u8::MAX);
        s.count += 1;
    }

    /// The heaviest keys, heaviest first, and empties the sketch.
    fn take(&mut self) -> Vec<Slot> {
        let mut held: Vec<Slot> = self.slots.iter().filter(|s| s.count > 0).copied().collect();
        held.sort_by_key(|s| std::cmp::Reverse(s.count));
        held.truncate(TOP);
        self.slots = [EMPTY; SLOTS];
        held
    }
}

/// How a tally's keys read in a summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyText {
    /// Client addresses as octets (4 or 16 bytes).
    Address,
    /// Limit keys: printable text as it is, 4 or 16 other bytes as an address (`$binary_remote_addr`), else hex.
    Bytes,
}

/// The refusals of one zone, rule or limit: a counter for `/metrics` (never reset), the count of the current
/// period and its heaviest keys.
pub struct Tally {
    kind: &'static str,
    name: String,
    keys: KeyText,
    total: AtomicU64,
    period: AtomicU64,
    lines: AtomicU32,
    sketch: Mutex<Sketch>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("total", &self.total())
            .finish()
    }
}

impl Tally {
    fn new(kind: &'static str, name: &str, keys: KeyText) -> Self {
        Tally {
            kind,
            name: name.to_owned(),
            keys,
            total: AtomicU64::new(0),
            period: AtomicU64::new(0),
            lines: AtomicU32::new(0),
            sketch: Mutex::new(Sketch {
                slots: [EMPTY; SLOTS],
            }),
        }
    }

    /// Counts one refusal of `key`. Never blocks: a busy sketch skips this key (the counts stay exact).
    pub fn refuse(&self, key: &[u8]) {
        self.total.fetch_add(1, Relaxed);
        self.period.fetch_add(1, Relaxed);
        if let Ok(mut s) = self.sketch.try_lock() {
            s.offer(key);
        }
    }

    /// [`Tally::refuse`] keyed by a client address (its octets; shown as the address).
    pub fn refuse_ip(&self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.refuse(&a.octets()),
            IpAddr::V6(a) => self.refuse(&a.octets()),
        }
    }

    /// Whether a line of its own may be written for this event (at most [`LINES_PER_PERIOD`] per period).
    pub fn may_log(&self) -> bool {
        self.lines.fetch_add(1, Relaxed) < LINES_PER_PERIOD
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Refusals since the node started (kept across reloads).
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// Ends the period: its count, the events logged one by one, and the top keys as text
    /// (`10.0.0.7 x120, 10.0.0.9 x80`); `None` if nothing was refused.
    pub fn take_period(&self) -> Option<(u64, u32, String)> {
        let count = self.period.swap(0, Relaxed);
        let lines = self.lines.swap(0, Relaxed).min(LINES_PER_PERIOD);
        let top = self
            .sketch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if count == 0 {
            return None;
        }
        let mut text = String::new();
        for (i, s) in top.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            key_text(&mut text, &s.key[..usize::from(s.len)], self.keys);
            let _ = write!(text, " x{}", s.count);
        }
        Some((count, lines, text))
    }
}

fn key_text(out: &mut String, key: &[u8], how: KeyText) {
    let address = |out: &mut String| match key.len() {
        4 => {
            let o: [u8; 4] = key.try_into().unwrap_or([0; 4]);
            let _ = write!(out, "{}", Ipv4Addr::from(o));
            true
        }
        16 => {
            let o: [u8; 16] = key.try_into().unwrap_or([0; 16]);
            let _ = write!(out, "{}", Ipv6Addr::from(o));
            true
        }
        _ => false,
    };
    let printable = !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if how == KeyText::Bytes && printable {
        out.push('"');
        out.push_str(&String::from_utf8_lossy(key));
        out.push('"');
    } else if !address(out) {
        for b in key {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// Every tally of a node, by kind and name. Looked up when a configuration is built (and when a rule
/// triggers, which is rare), never per request.
#[derive(Debug, Default)]
pub struct Summaries {
    tallies: Mutex<Vec<Arc<Tally>>>,
}

impl Summaries {
    /// The tally of `kind` / `name`, created on first use.
    pub fn get(&self, kind: &'static str, name: &str, keys: KeyText) -> Arc<Tally> {
        let mut all = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = all.iter().find(|t| t.kind == kind && t.name == name) {
            return t.clone();
        }
        let t = Arc::new(Tally::new(kind, name, keys));
        all.push(t.clone());
        t
    }

    /// The tally of rule `rule` of `domain` (named `domain/rule`), without allocating when it exists.
    pub fn rule(&self, domain: &str, rule: &str) -> Arc<Tally> {
        let mut all = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        let same = |t: &Tally| {
            t.kind == "rule"
                && t.name.len() == domain.len() + 1 + rule.len()
                && t.name.starts_with(domain)
                && t.name.ends_with(rule)
                && t.name.as_bytes()[domain.len()] == b'/'
        };
        if let Some(t) = all.iter().find(|t| same(t)) {
            return t.clone();
        }
        let t = Arc::new(Tally::new(
            "rule",
            &format!("{domain}/{rule}"),
            KeyText::Bytes,
        ));
        all.push(t.clone());
        t
    }

    /// Every tally, sorted by kind and name (for `/metrics`).
    pub fn all(&self) -> Vec<Arc<Tally>> {
        let mut all = self
            .tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        all.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        all
    }

    /// Writes one line per tally that refused something since the last call; `period_s` is the period's
    /// length as the line reports it. Returns the lines written.
    pub fn write(&self, period_s: u64) -> usize {
        let mut written = 0;
        for t in self.all() {
            if let Some((count, logged, top)) = t.take_period() {
                tracing::warn!(
                    kind = t.kind,
                    name = %t.name,
                    count,
                    logged,
                    period_s,
                    top = %top,
                    "refusal summary"
                );
                written += 1;
            }
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_keys_survive_a_stream_of_one_shot_keys() {
        let t = Tally::new("limit_req", "z", KeyText::Address);
        for i in 0..10_000u32 {
            t.refuse(&[10, 0, 0, 1]);
            if i % 2 == 0 {
                t.refuse(&[10, 0, 0, 2]);
            }
            t.refuse(&(i + 1_000_000).to_be_bytes());
        }
        assert_eq!(t.total(), 25_000);
        let (count, _, top) = t.take_period().unwrap();
        assert_eq!(count, 25_000);
        assert!(top.starts_with("10.0.0.1 x"), "{top}");
        assert!(top.contains("10.0.0.2 x"), "{top}");
        assert!(t.take_period().is_none());
        assert_eq!(t.total(), 25_000);
    }

    #[test]
    fn long_keys_are_cut_and_text_keys_quoted() {
        let t = Tally::new("rule", "d/r", KeyText::Bytes);
        t.refuse(&[b'a'; 200]);
        let (_, _, top) = t.take_period().unwrap();
        assert_eq!(top, format!("\"{}\" x1", "a".repeat(KEY_BYTES)));
    }

    #[test]
    fn lines_of_their_own_are_bounded_per_period() {
        let t = Tally::new("rule", "d/r", KeyText::Bytes);
        let n = (0..100).filter(|_| t.may_log()).count();
        assert_eq!(n, LINES_PER_PERIOD as usize);
        t.refuse(b"k");
        let (_, logged, _) = t.take_period().unwrap();
        assert_eq!(logged, LINES_PER_PERIOD);
        assert!(t.may_log());
    }

    #[test]
    fn tallies_are_found_again_by_kind_and_name() {
        let s = Summaries::default();
        let a = s.get("limit_req", "z", KeyText::Bytes);
        assert!(Arc::ptr_eq(&a, &s.get("limit_req", "z", KeyText::Bytes)));
        assert!(!Arc::ptr_eq(&a, &s.get("limit_conn", "z", KeyText::Bytes)));
        let r = s.rule("example.com", "burst");
        assert!(Arc::ptr_eq(&r, &s.rule("example.com", "burst")));
        assert_eq!(r.name(), "example.com/burst");
        assert_eq!(s.all().len(), 3);
    }
}
