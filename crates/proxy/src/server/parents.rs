//! An edge's side of tiered counting in the data plane: batches of counts posted to a domain's parents over
//! the pools its misses use (`counts.rs` has the parent's side).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use crate::counts::{COUNTS_PATH, MAX_BATCH};
use crate::request_body::RequestBody;
use crate::shared::Shared;

/// An edge's way to its domains' parents, over the pools its misses use (keep-alive, health, `max_conns`).
#[derive(Clone)]
pub struct ParentClient {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ParentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParentClient")
    }
}

impl ParentClient {
    /// Whether `domain` (lower case) has parents in the running configuration (an edge's domain with `parents`).
    pub fn has_parents(&self, domain: &str) -> bool {
        self.shared
            .runtime
            .load()
            .domains
            .get(domain)
            .is_some_and(|d| d.parents > 0)
    }

    /// POSTs `body` to [`COUNTS_PATH`] on `domain`'s first parent that is up (as a miss would go), within
    /// `timeout` for the answer; the body of a 200.
    pub async fn post_counts(
        &self,
        domain: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let (pools, connect_timeout) = {
            let rt = self.shared.runtime.load();
            let d = rt
                .domains
                .get(domain)
                .ok_or_else(|| format!("no domain {domain}"))?;
            (d.upstreams[..d.parents].to_vec(), d.connect_timeout)
        };
        if pools.is_empty() {
            return Err(format!("domain {domain} has no parents"));
        }
        let req = Request::post(COUNTS_PATH)
            .header(header::HOST, domain)
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::USER_AGENT, "edgeguard-tiered-counts")
            .body(RequestBody::full(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let (resp, pooled) =
                crate::upstream::forward(&pools, req, connect_timeout.min(timeout), timeout)
                    .await
                    .map_err(|f| f.body().trim_end().replace('\n', "; "))?;
            let status = resp.status();
            let label = pooled.pool().label.clone();
            let bytes = Limited::new(resp.into_body(), MAX_BATCH)
                .collect()
                .await
                .map_err(|e| format!("{label}: {e}"))?
                .to_bytes();
            // Read to the end: the connection goes back to the pool for the next request or batch.
            pooled.put_back();
            if status != StatusCode::OK {
                let first = String::from_utf8_lossy(&bytes);
                let why = first.lines().nth(1).unwrap_or_default().to_owned();
                return Err(format!("{label} answered {status}: {why}"));
            }
            Ok(bytes.to_vec())
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
    }
}
