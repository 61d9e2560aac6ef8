//! The test origin both proxies forward to: an edgeguard-testkit origin inside the test process, with the one
//! answer the differential rows need.

use std::net::SocketAddr;
use std::time::Duration;

use edgeguard_testkit::{Origin, Route};

use crate::HarnessError;

/// Size of every origin body, so a test can tell an origin answer from a proxy's own error page.
pub const ORIGIN_BODY_LEN: usize = 100;

/// Longest wait `?ms=N` may ask for: keeps a typo in a script from hanging a test.
const MAX_HOLD: Duration = Duration::from_millis(10_000);

/// Serves every path with a 100-byte body. A query argument `ms=N` delays the answer by N ms (used to hold a
/// request open for limit_conn). Counts the requests it received.
pub struct TestOrigin {
    origin: Origin,
}

impl TestOrigin {
    /// Binds 127.0.0.1:0 and serves until dropped. Needs a running tokio runtime.
    pub async fn start() -> Result<Self, HarnessError> {
        let answer = Route::text(vec![b'o'; ORIGIN_BODY_LEN])
            .header("content-type", "text/plain")
            .cache_control("no-store")
            .delay_from_query("ms", MAX_HOLD);
        let origin = Origin::builder()
            .fallback(answer)
            .try_start()
            .await
            .map_err(HarnessError::Io)?;
        Ok(Self { origin })
    }

    pub fn addr(&self) -> SocketAddr {
        self.origin.addr()
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.origin.hits() as u64
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.origin.stop();
    }
}
