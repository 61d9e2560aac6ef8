//! The proxy's error type: what can stop a node from starting or a configuration from being applied.
//! Per-request failures never surface here; they become responses (see `upstream.rs` and the phases in
//! `phases/`).

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::limits::ZoneError;

/// Why [`crate::Node::start`] or [`crate::RunningNode::reload`] failed. Every variant but `Bind` and
/// `NoListener` leaves the previous state, if any, in force.
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
    /// `node.name` cannot be sent in a `Via` header.
    #[error("configuration not applied: node.name {0:?} cannot appear in a Via header")]
    ViaName(String),
    /// A `limit_req_status` or `limit_conn_status` that is no HTTP status code.
    #[error("configuration not applied: {what} {code} is not a status code")]
    Status { what: &'static str, code: u16 },
    /// A limit names a zone the configuration does not define.
    #[error("configuration not applied: domain {domain}: {kind} zone {zone:?} is not defined")]
    UndefinedZone {
        domain: String,
        kind: &'static str,
        zone: String,
    },
    /// A zone the limit engine refuses (too small, too large).
    #[error("configuration not applied: {0}")]
    Zone(#[source] ZoneError),
    /// The node's protection services could not open their store or challenge key.
    #[error("configuration not applied: {0}")]
    Protection(#[source] edgeguard_protect::ProtectError),
    /// A domain's protection (rules, tables) could not be built.
    #[error("configuration not applied: {0}")]
    Guard(#[source] edgeguard_protect::GuardError),
    /// `node.access_log` cannot be opened for appending.
    #[error("configuration not applied: node.access_log {}: cannot open: {source}", path.display())]
    AccessLogOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The access log's writer thread could not be started.
    #[error("configuration not applied: cannot start the access log writer: {source}")]
    AccessLogWriter {
        #[source]
        source: std::io::Error,
    },
    /// A `[domain.tls]` certificate or key that cannot be served (unreadable, mismatched, expired).
    #[error("configuration not applied: domain {domain}: [domain.tls]: {source}")]
    Certificate {
        domain: String,
        #[source]
        source: edgeguard_config::certs::CertError,
    },
    /// A `[domain.upstream_tls]` that cannot be set up (unreadable `ca`, no roots, bad `server_name`).
    #[error("configuration not applied: domain {domain}: [domain.upstream_tls]: {why}")]
    UpstreamTls { domain: String, why: String },
    /// The TLS library refused the server settings.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}
