//! Random bytes for token puzzles without a system call per token: one ChaCha20 generator per thread, seeded
//! once from the OS random source.
//!
//! The outputs are public (each is a token's puzzle) but must not be predictable, or answers could be computed
//! ahead of the page; ChaCha20 keyed with 256 OS-random bits gives that. The node never forks, so no two
//! processes share a generator state.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static GENERATOR: RefCell<Option<ChaCha20Rng>> = const { RefCell::new(None) };
}

/// Fills `out` from this thread's generator, seeding it first if needed. False, leaving `out` untouched, when the
/// OS random source failed to seed it (it is tried again on the next call) or the thread is shutting down.
///
/// Hot path of every challenge page: no system call once the thread is seeded, no allocation.
pub(crate) fn fill(out: &mut [u8]) -> bool {
    GENERATOR
        .try_with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return false;
            };
            if slot.is_none() {
                let mut seed = [0u8; 32];
                if getrandom::fill(&mut seed).is_err() {
                    return false;
                }
                *slot = Some(ChaCha20Rng::from_seed(seed));
            }
            match slot.as_mut() {
                Some(rng) => {
                    rng.fill_bytes(out);
                    true
                }
                None => false,
            }
        })
        .unwrap_or(false)
}
