//! The trait behind which keyed limiter state sits, so the algorithms do not care where it lives.
//!
//! [`Table`] (local memory) implements it; a shared backend for cluster mode can implement it later without
//! changing `req.rs`. The shape follows what nginx's limit_req needs: find-or-create a state and decide on it
//! under the store's lock, optionally keep it pinned, then finish (charge or release) a pinned state.

use crate::table::{NoRoom, Table, TableState};

/// Keyed state of type `S`.
pub trait Store<S>: Send + Sync {
    /// A handle to a pinned state, valid until passed to [`Store::finish`].
    type Held: Copy + Send;

    /// Finds the state of `key` (counting as a use for recency) or makes room for `fresh()` and inserts it.
    /// `decide` sees the state and whether it was just created, may change it, and returns its answer and
    /// whether to pin the state. Hot path: must not allocate for short keys.
    fn access<R>(
        &self,
        key: &[u8],
        now_ms: u64,
        fresh: impl FnOnce() -> S,
        decide: impl FnOnce(&mut S, bool) -> (R, bool),
    ) -> Result<(R, Option<Self::Held>), NoRoom>;

    /// Runs `f` on a pinned state, then unpins it.
    fn finish<R>(&self, held: Self::Held, f: impl FnOnce(&mut S) -> R) -> R;

    /// States that fit (with short keys).
    fn capacity(&self) -> usize;

    /// States held now.
    fn in_use(&self) -> usize;
}

impl<S: TableState> Store<S> for Table<S> {
    type Held = crate::table::SlotRef;

    #[inline]
    fn access<R>(
        &self,
        key: &[u8],
        now_ms: u64,
        fresh: impl FnOnce() -> S,
        decide: impl FnOnce(&mut S, bool) -> (R, bool),
    ) -> Result<(R, Option<Self::Held>), NoRoom> {
        let h = self.hash(key);
        let mut g = self.lock(h);
        let (r, new) = match g.find(h, key) {
            Some(r) => (r, false),
            None => (g.insert(h, key, now_ms, fresh())?, true),
        };
        let (out, pin) = decide(g.state_mut(r), new);
        if pin {
            g.pin(r);
            Ok((out, Some(r)))
        } else {
            Ok((out, None))
        }
    }

    #[inline]
    fn finish<R>(&self, held: Self::Held, f: impl FnOnce(&mut S) -> R) -> R {
        let mut g = self.lock_slot(held);
        let out = f(g.state_mut(held));
        g.unpin(held);
        out
    }

    fn capacity(&self) -> usize {
        Table::capacity(self)
    }

    fn in_use(&self) -> usize {
        Table::in_use(self)
    }
}
