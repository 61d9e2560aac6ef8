//! The seam between the request pipeline and the limit engine (`edgeguard-limit`): zone construction and the
//! two decision functions the `limit_req` and `limit_conn` phases call. Only this file names the engine's
//! types, so an engine change touches nothing else in the proxy.

use std::sync::Arc;

use edgeguard_limit::Rate;

pub(crate) use edgeguard_limit::conn::{ConnGuard, ConnLimit, ConnStatus, ConnZone, limit_conn};
pub(crate) use edgeguard_limit::{ReqDecision, ReqLimit, ReqStatus, ReqZone, limit_req};

fn bytes(name: &str, size: u64) -> Result<usize, String> {
    usize::try_from(size).map_err(|_| format!("zone {name:?}: size {size} does not fit in memory"))
}

/// Builds a `limit_conn_zone` of `size` bytes.
pub(crate) fn new_conn_zone(name: &str, size: u64) -> Result<Arc<ConnZone>, String> {
    ConnZone::new(name, bytes(name, size)?)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Builds a `limit_req_zone` of `size` bytes.
pub(crate) fn new_req_zone(name: &str, rate: Rate, size: u64) -> Result<Arc<ReqZone>, String> {
    ReqZone::new(name, rate, bytes(name, size)?)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}
