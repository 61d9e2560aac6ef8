//! The limit engine: nginx's `limit_req` leaky bucket and `limit_conn` counters, the per-second limit behind
//! the IP access limit, and sliding-window counters for custom rules, all in fixed memory.
//!
//! No I/O and no async runtime: time comes from a [`Clock`], state lives in tables with a byte budget.
