//! Small lists of flags in force (paths in surge, networks flagged for failed logins).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Paths in surge and networks flagged at once (the oldest gives way).
const MAX_FLAGS: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Flag {
    key: u64,
    until_ms: u64,
}

/// Small list of flags (paths in surge, networks) behind a lock taken only when one is in force or being set.
#[derive(Debug, Default)]
pub(super) struct Flags {
    pub(super) live: AtomicUsize,
    list: Mutex<Vec<Flag>>,
}

impl Flags {
    pub(super) fn active(&self, key: u64, now_ms: u64) -> bool {
        if self.live.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        l.retain(|f| f.until_ms > now_ms);
        self.live.store(l.len(), Ordering::Relaxed);
        l.iter().any(|f| f.key == key)
    }

    /// Sets or extends the flag; `true` when it was not in force.
    pub(super) fn set(&self, key: u64, until_ms: u64, now_ms: u64) -> bool {
        let mut l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        l.retain(|f| f.until_ms > now_ms);
        let new = match l.iter_mut().find(|f| f.key == key) {
            Some(f) => {
                f.until_ms = f.until_ms.max(until_ms);
                false
            }
            None => {
                if l.len() >= MAX_FLAGS {
                    l.remove(0);
                }
                l.push(Flag { key, until_ms });
                true
            }
        };
        self.live.store(l.len(), Ordering::Relaxed);
        new
    }

    /// Flags in force now.
    pub(super) fn in_force(&self, now_ms: u64) -> u64 {
        if self.live.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let l = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        l.iter().filter(|f| f.until_ms > now_ms).count() as u64
    }
}
