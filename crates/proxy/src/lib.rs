//! The edgeguard data plane: listeners (HTTP/1.1 and HTTP/2 on one port), routing by Host and path, the
//! per-request pipeline of protection phases (SPEC section 8), and keep-alive forwarding to parents and origins.
//!
//! Not here: parsing configuration files (`edgeguard-config`), limit algorithms (`edgeguard-limit`), rule
//! evaluation (`edgeguard-rules`), the admin API, or process concerns such as signals and logging setup (the
//! binary does those).
//!
//! # Public API (used by the binary and by end-to-end tests)
//! ```no_run
//! # async fn demo(config: edgeguard_config::Config, next: edgeguard_config::Config) -> Result<(), edgeguard_proxy::ProxyError> {
//! use edgeguard_proxy::Node;
//! let node = Node::start(config).await?;          // binds every node.listen address (port 0 allowed)
//! let addr = node.local_addrs()[0];               // the real ports, in node.listen order
//! node.reload(next)?;                             // atomic swap; unchanged zones keep their counters
//! node.shutdown().await;                          // stop accepting, finish requests in flight (bounded)
//! # let _ = addr; Ok(()) }
//! ```
//! [`Node::start_with_clock`] takes the limiters' clock, so tests can drive limit_req with a fake clock;
//! [`RunningNode::shutdown_within`] chooses the grace period ([`DEFAULT_SHUTDOWN_GRACE`] otherwise). Dropping a
//! `RunningNode` stops it without waiting. A reload does not rebind listeners.
//!
//! Responses the node makes itself: 400 (bad request, HTTP/1.1 without Host), 404 (unknown host, body names it),
//! 408 (request body timeout), 413 (body over `max_body_size`), 431 (head over `max_header_size`), the
//! domain's `limit_req_status` / `limit_conn_status`, 502 (upstream refused or reset the connection, or sent an
//! invalid response), 503 (every upstream marked down by health checks) and 504 (upstream connect or read
//! timeout), each with a short text body saying why — or the cached copy with `X-Cache: STALE` when one is
//! within `stale_grace`. Caching, health checks, the access log and metrics: see `docs/cdn.md`.

mod access_log;
mod body;
mod client;
mod client_conns;
mod cookie;
mod counts;
mod ctx;
mod decision;
mod detector_metrics;
mod error;
mod explain;
mod forward;
mod health;
mod key;
mod limits;
pub mod live;
mod metrics;
mod phases;
mod pipeline;
mod protect_metrics;
pub mod replay;
mod request_body;
mod runtime;
mod server;
mod shared;
mod stats;
mod table_metrics;
pub mod talkers;
mod tls;
mod upgrade;
mod upstream;

pub use counts::{COUNTS_PATH, EdgeCounts};
pub use error::ProxyError;
pub use server::parents::ParentClient;
pub use server::purge::Purge;
pub use server::{DEFAULT_SHUTDOWN_GRACE, Node, RunningNode};
