//! How the request path and the admin side wake the sync task (`sync.rs`): at once for what must not wait,
//! or soon, riding with a coalesced round.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// How the request path and the admin side wake the sync task.
#[derive(Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// Something waits that must not wait for coalescing.
    urgent: AtomicBool,
    /// A coalesced round is asked for: later asks need no wake-up of their own.
    pending: AtomicBool,
}

impl Wake {
    /// What the sync task waits on between rounds.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// A round now: a key near its limit, an event, a configuration snapshot. Wakes the task once until the
    /// next round starts ([`Wake::round_starts`]).
    pub fn now(&self) {
        if !self.urgent.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// A round soon: a key far from its limit is due; it rides with the next round, at most a quarter of
    /// the sync interval after the last one. Only the first ask before a round wakes the task: under many
    /// clients the request path pays an atomic swap, not a task wake-up per request.
    pub fn soon(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// Whether a round was asked for now (not only soon).
    pub(crate) fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::Acquire)
    }

    /// A round starts: it takes everything asked for so far; what is asked for during it wakes the next one.
    pub(crate) fn round_starts(&self) {
        self.urgent.store(false, Ordering::Release);
        self.pending.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// Counts the wake-ups of a task waiting as the sync task does, after `asks` from the request path.
    async fn wakeups(wake: &Arc<Wake>, asks: impl Fn(&Wake)) -> u32 {
        let count = Arc::new(AtomicU32::new(0));
        let waiter = tokio::spawn({
            let (wake, count) = (wake.clone(), count.clone());
            async move {
                loop {
                    wake.notified().await;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
            asks(wake);
            tokio::task::yield_now().await;
        }
        waiter.abort();
        count.load(Ordering::Relaxed)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn asks_between_two_rounds_wake_the_task_once() {
        let wake = Arc::new(Wake::default());
        assert_eq!(wakeups(&wake, Wake::soon).await, 1);
        assert!(!wake.is_urgent());
        // Asking at once still wakes it while a coalesced round waits, once.
        assert_eq!(wakeups(&wake, Wake::now).await, 1);
        assert!(wake.is_urgent());
        wake.round_starts();
        assert!(!wake.is_urgent());
        assert_eq!(wakeups(&wake, Wake::soon).await, 1);
    }
}
