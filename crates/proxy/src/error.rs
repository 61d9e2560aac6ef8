//! The proxy's error type: what can stop a node from starting or a configuration from being applied.
//! Per-request failures never surface here; they become responses (see `upstream.rs` and the phases in `phases/`).

use std::net::SocketAddr;

/// Why [`crate::Node::start`] or [`crate::RunningNode::reload`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listen address could not be bound (in use, no permission, not local).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The configuration lists no listen address.
    #[error("node.listen is empty: nothing to serve on")]
    NoListener,
    /// The configuration cannot be turned into runtime state (a zone the limit engine refuses, a key it
    /// cannot evaluate). The previous state, if any, stays in force.
    #[error("configuration not applied: {0}")]
    Config(String),
}
