//! nginx `limit_req`: the leaky bucket in milli-requests, decision for decision.

/// When a limit_req delays: nginx's `nodelay` / `delay=N` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayMode {
    /// Neither written: every request above zero excess is delayed (nginx's `delay = 0`).
    #[default]
    Default,
    /// `nodelay`: never delay.
    NoDelay,
    /// `delay = N`, N >= 1: the first N excess requests pass at once.
    Delay(u32),
}
