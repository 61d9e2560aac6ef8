//! End-to-end tests of whole nodes: servers started by the tests on ports chosen at run time, everything
//! they write under temporary directories. The main user is the differential suite (`tests/nginx_diff.rs`),
//! which sends the same timed request script to a real nginx and to edgeguard configured alike and compares
//! statuses and `$limit_req_status` / `$limit_conn_status` decision by decision.
//!
//! What is here: a test origin ([`origin`]), an nginx child process ([`nginx`]), a limits configuration
//! rendered for both servers ([`scenario`]), a timed request runner ([`script`]), an independent model of
//! nginx's decisions used to tell timing-robust decisions from timing-sensitive ones ([`model`], [`diff`]),
//! and the row runner tying them together ([`row`]). Not here: unit tests of the limit engine (exact
//! millisecond boundaries belong there, with a fake clock), and load or performance measurement.

pub mod diff;
pub mod edgeguard;
pub mod model;
pub mod nginx;
pub mod origin;
pub mod row;
pub mod scenario;
pub mod script;

/// Why a test server could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
    #[error("nginx: {0}")]
    Nginx(String),
    #[error("edgeguard: {0}")]
    Edgeguard(String),
}

#[cfg(test)]
mod tests;
