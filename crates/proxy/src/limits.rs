//! The seam between the request pipeline and the limit engine (`edgeguard-limit`): zone construction and the
//! two decision functions the `limit_req` and `limit_conn` phases call. Only this file names the engine's
//! types, so an engine change touches nothing else in the proxy.

use std::sync::Arc;

use edgeguard_limit::conn::ConnZoneError;
use edgeguard_limit::{Rate, ReqZoneError};

pub(crate) use edgeguard_limit::conn::{ConnGuard, ConnLimit, ConnStatus, ConnZone, limit_conn};
pub(crate) use edgeguard_limit::{ReqDecision, ReqLimit, ReqStatus, ReqZone, limit_req};

/// Why a zone of the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The size does not fit this machine's address space.
    #[error("zone {name:?}: size {size} does not fit in memory")]
    TooLarge { name: String, size: u64 },
    #[error(transparent)]
    Req(#[from] ReqZoneError),
    #[error(transparent)]
    Conn(#[from] ConnZoneError),
}

fn bytes(name: &str, size: u64) -> Result<usize, ZoneError> {
    usize::try_from(size).map_err(|_| ZoneError::TooLarge {
        name: name.to_owned(),
        size,
    })
}

/// Builds a `limit_conn_zone` of `size` bytes.
pub(crate) fn new_conn_zone(name: &str, size: u64) -> Result<Arc<ConnZone>, ZoneError> {
    Ok(Arc::new(ConnZone::new(name, bytes(name, size)?)?))
}

/// Builds a `limit_req_zone` of `size` bytes.
pub(crate) fn new_req_zone(name: &str, rate: Rate, size: u64) -> Result<Arc<ReqZone>, ZoneError> {
    Ok(Arc::new(ReqZone::new(name, rate, bytes(name, size)?)?))
}
