//! A domain's busiest paths and their learned request rates, in [`SLOTS`] slots (Space-Saving: a path not held
//! takes the slot sampled least, inheriting its count, so the paths sampled most stay). Fed by the detector's
//! sampled path measure (at most ten times a second), never per request, so the lock is cold; a path is kept to
//! [`MAX_PATH`] bytes.

use std::sync::{Mutex, PoisonError};

/// Paths kept.
pub const SLOTS: usize = 16;
/// Longest path kept (longer ones are cut on a character boundary).
pub const MAX_PATH: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    path: String,
    /// Samples taken of the path (the Space-Saving count).
    samples: u64,
    /// Moving average of the path's requests in 10 s, times 16.
    avg16: u64,
    /// Highest requests in 10 s sampled.
    peak: u64,
}

/// One path as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRate {
    pub path: String,
    pub samples: u64,
    /// Typical requests in 10 s (moving average over the samples).
    pub requests_10s: u64,
    pub peak_10s: u64,
}

/// The busiest paths of one domain.
#[derive(Debug, Default)]
pub struct TopPaths {
    slots: Mutex<Vec<Slot>>,
}

fn cut(path: &str) -> &str {
    if path.len() <= MAX_PATH {
        return path;
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

impl TopPaths {
    /// Learns one sample: `path` had `requests_10s` requests in the last 10 s. Allocates only when the path
    /// takes a slot.
    pub fn learn(&self, path: &str, requests_10s: u64) {
        // A decoded control character could break the stored file's lines: such a path is not kept.
        if path.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return;
        }
        let path = cut(path);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slots.iter_mut().find(|s| s.path == path) {
            s.samples += 1;
            // An average over about the last 32 samples.
            s.avg16 = s.avg16 - s.avg16 / 32 + requests_10s * 16 / 32;
            s.peak = s.peak.max(requests_10s);
            return;
        }
        let fresh = Slot {
            path: path.to_owned(),
            samples: 1,
            avg16: requests_10s * 16,
            peak: requests_10s,
        };
        if slots.len() < SLOTS {
            slots.push(fresh);
            return;
        }
        if let Some(least) = slots.iter_mut().min_by_key(|s| s.samples) {
            let inherited = least.samples;
            *least = Slot {
                samples: inherited + 1,
                ..fresh
            };
        }
    }

    /// The paths, most sampled first.
    pub fn summary(&self) -> Vec<PathRate> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<PathRate> = slots
            .iter()
            .map(|s| PathRate {
                path: s.path.clone(),
                samples: s.samples,
                requests_10s: s.avg16.div_ceil(16),
                peak_10s: s.peak,
            })
            .collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.path.cmp(&b.path)));
        v
    }

    /// Halves every count (with the histograms' decay), so paths that went quiet give way.
    pub fn fade(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for s in slots.iter_mut() {
            s.samples /= 2;
        }
    }

    /// The slots as text lines: `path SAMPLES AVG16 PEAK PATH`.
    pub fn to_text(&self, out: &mut String) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for s in slots.iter() {
            out.push_str(&format!(
                "path {} {} {} {}\n",
                s.samples, s.avg16, s.peak, s.path
            ));
        }
    }

    /// Reads one line written by [`TopPaths::to_text`] (without the leading `path `); a bad line is skipped.
    pub fn restore_line(&self, rest: &str) {
        let mut parts = rest.splitn(4, ' ');
        let mut num = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let (Some(samples), Some(avg16), Some(peak)) = (num(), num(), num()) else {
            return;
        };
        let Some(path) = parts.next().filter(|p| p.starts_with('/')) else {
            return;
        };
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() < SLOTS && !slots.iter().any(|s| s.path == path) {
            slots.push(Slot {
                path: cut(path).to_owned(),
                samples,
                avg16,
                peak,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_paths_stay_and_round_trip() {
        let t = TopPaths::default();
        for i in 0..1_000u64 {
            t.learn("/", 40);
            t.learn(&format!("/once/{i}"), 1);
        }
        let s = t.summary();
        assert_eq!(s.len(), SLOTS);
        assert_eq!(s[0].path, "/");
        assert_eq!((s[0].requests_10s, s[0].peak_10s), (40, 40));
        let mut text = String::new();
        t.to_text(&mut text);
        let copy = TopPaths::default();
        for line in text.lines() {
            copy.restore_line(line.strip_prefix("path ").unwrap());
        }
        assert_eq!(copy.summary(), s);
    }
}
