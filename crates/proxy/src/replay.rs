//! The `limit_req` half of `edgeguard replay`: the protection engine (`edgeguard_protect::replay`) replays
//! blocks, the IP access limit and the rules on its own, and this plugs in the nginx `limit_req` decisions of
//! the domain's (or location's) limits, with the node's own key builder and zones. They stay here because the
//! keys are evaluated over the request's URI and headers (`key.rs`), which the HTTP-free engine does not know.

use std::sync::Arc;

use bytes::Bytes;
use edgeguard_config::Config;
use edgeguard_protect::replay::{LimitReq, Line, Verdict};
use http::{HeaderMap, HeaderValue, Uri};

use crate::error::ProxyError;
use crate::key::{self, KeyBuf, KeyInput};
use crate::limits::{self, ReqStatus};
use crate::runtime::{DomainRt, Runtime};

/// One domain's `limit_req` limits with zones of their own, counting on the replayed lines' time.
pub struct ReplayLimitReq {
    domain: Arc<DomainRt>,
    /// Owns the zones `domain` counts in.
    _runtime: Runtime,
}

impl std::fmt::Debug for ReplayLimitReq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayLimitReq")
            .field("domain", &self.domain.name)
            .finish_non_exhaustive()
    }
}

impl ReplayLimitReq {
    /// The limits of `domain` (any case) of `config`; `None` when the configuration has no such domain.
    pub fn new(config: &Config, domain: &str) -> Result<Option<ReplayLimitReq>, ProxyError> {
        let runtime = Runtime::build(config, None, &Default::default(), None)?;
        let Some(domain) = runtime.domains.get(&domain.to_ascii_lowercase()).cloned() else {
            return Ok(None);
        };
        Ok(Some(ReplayLimitReq {
            domain,
            _runtime: runtime,
        }))
    }
}

impl LimitReq for ReplayLimitReq {
    fn decide(&self, line: &Line<'_>, norm_path: &[u8], now: u64) -> Verdict {
        let lim = self.domain.limits_for(norm_path);
        if lim.req.is_empty() {
            return Verdict::Passed;
        }
        let uri: Uri = line.uri.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&self.domain.name) {
            headers.insert(http::header::HOST, v);
        }
        if let Some(v) = line
            .user_agent
            .and_then(|ua| HeaderValue::from_str(ua).ok())
        {
            headers.insert(http::header::USER_AGENT, v);
        }
        let client_text: Bytes = key::addr_text(line.client);
        let input = KeyInput {
            client_ip: line.client,
            client_text: &client_text,
            host: &self.domain.name,
            uri: &uri,
            headers: &headers,
        };
        let mut buf = KeyBuf::new();
        let mut ends: Vec<usize> = Vec::with_capacity(lim.req_keys.len());
        for k in &lim.req_keys {
            k.append(&input, &mut buf);
            ends.push(buf.len());
        }
        let mut start = 0;
        let keys: Vec<&[u8]> = ends
            .iter()
            .map(|&end| {
                let k = &buf[start..end];
                start = end;
                k
            })
            .collect();
        let d = limits::limit_req(now, &lim.req, &keys);
        let zone = || {
            d.limit
                .map_or_else(String::new, |i| lim.req[i].zone.name().to_owned())
        };
        match d.status {
            Some(ReqStatus::Rejected) => Verdict::LimitReq { zone: zone() },
            Some(ReqStatus::Delayed) => Verdict::Delayed {
                zone: zone(),
                delay_ms: d.delay_ms,
            },
            _ => Verdict::Passed,
        }
    }
}
