//! The edgeguard side of a row: a node started in-process from the row's TOML, with `explain = true` so its
//! responses carry `X-Limit-Req-Status` / `X-Limit-Conn-Status`.

use crate::HarnessError;
use crate::origin::TestOrigin;
use crate::row::Row;
use crate::script::Outcome;

/// Starts edgeguard for `row`, runs the script against it and shuts it down.
pub async fn run(_row: &Row, _origin: &TestOrigin) -> Result<Vec<Outcome>, HarnessError> {
    Err(HarnessError::Edgeguard(
        "edgeguard_proxy::Node is not available yet".into(),
    ))
}
