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
    pub(crate) urgent: AtomicBool,
}

impl Wake {
    /// What the sync task waits on between rounds.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// A round now: a key near its limit, an event, a configuration snapshot.
    pub fn now(&self) {
        self.urgent.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// A round soon: a key far from its limit is due; it rides with the next round, at most a quarter of
    /// the sync interval after the last one.
    pub fn soon(&self) {
        self.notify.notify_one();
    }
}
