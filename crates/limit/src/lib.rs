//! The limit engine: nginx's `limit_req` leaky bucket and `limit_conn` counters, the per-second limit behind
//! the IP access limit, and sliding-window counters for custom rules, all in fixed memory.
//!
//! No I/O and no async runtime: time comes from a [`Clock`], keyed state lives in tables with a byte budget.
//! Not here: parsing configuration files, HTTP, or anything that waits.

pub mod clock;
mod compact;
pub mod conn;
pub mod persec;
pub mod rate;
pub mod req;
pub mod store;
pub mod table;
pub mod window;

/// Clients per node the protection tables' default sizes are meant to hold (SPEC 9.1); see
/// [`window::WindowTable::size_for`] and [`persec::PerSecondTable::size_for`].
pub const DEFAULT_TRACKED_CLIENTS: usize = 1_000_000;

pub use clock::{Clock, FakeClock, MonotonicClock};
pub use rate::{Rate, RateError, parse_size};
pub use req::{
    DelayMode, MIN_ZONE_SIZE, ReqDecision, ReqLimit, ReqState, ReqStatus, ReqZone, ReqZoneError,
    limit_req,
};
pub use store::Store;
pub use table::{Eviction, KeyHash, NoRoom, ShardGuard, SlotRef, Table, TableError, TableState};
