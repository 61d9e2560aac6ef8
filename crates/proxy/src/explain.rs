//! The explain headers of domains with `explain = true`: `X-Limit-Req-Status`, `X-Limit-Conn-Status` (only when
//! nginx's variable would be set) and `X-Edgeguard-Decision` for the limit phases (the protection phases write
//! their own decision, `phases/protect.rs`).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::ctx::RequestCtx;
use crate::limits::ConnStatus;

static X_LIMIT_REQ_STATUS: HeaderName = HeaderName::from_static("x-limit-req-status");
static X_LIMIT_CONN_STATUS: HeaderName = HeaderName::from_static("x-limit-conn-status");
static X_EDGEGUARD_DECISION: HeaderName = HeaderName::from_static("x-edgeguard-decision");

/// `X-Limit-Req-Status`, `X-Limit-Conn-Status` (only when nginx's variable would be set) and
/// `X-Edgeguard-Decision`. Formats strings: only for domains with `explain = true`.
pub(crate) fn explain(ctx: &RequestCtx, headers: &mut HeaderMap) {
    let req = ctx.req_decision.and_then(|d| d.status.map(|s| (d, s)));
    if let Some((_, s)) = req {
        headers.insert(
            X_LIMIT_REQ_STATUS.clone(),
            HeaderValue::from_static(s.as_str()),
        );
    }
    if let Some(s) = ctx.conn_status {
        headers.insert(
            X_LIMIT_CONN_STATUS.clone(),
            HeaderValue::from_static(s.as_str()),
        );
    }
    let limits = ctx.limits.as_deref();
    let conn_refused = matches!(
        ctx.conn_status,
        Some(ConnStatus::Rejected | ConnStatus::RejectedDryRun)
    );
    let text = match (limits, req, ctx.conn_limit) {
        (Some(l), _, Some(i)) if conn_refused => {
            let c = &l.conn[i];
            format!("limit_conn zone={} conn={}", c.zone.name(), c.conn)
        }
        (Some(l), Some((d, _)), _) => match ctx.req_shown {
            Some(i) => {
                let r = &l.req[i];
                format!(
                    "limit_req zone={} excess={}.{:03} burst={} delay={}ms",
                    r.zone.name(),
                    d.excess_milli / 1000,
                    d.excess_milli % 1000,
                    r.burst,
                    d.delay_ms
                )
            }
            None => "limit_req".to_string(),
        },
        (Some(l), None, _) if ctx.conn_status.is_some() => {
            let names: Vec<&str> = l.conn.iter().map(|c| c.zone.name()).collect();
            format!("limit_conn zone={} passed", names.join(","))
        }
        _ => "none".to_string(),
    };
    if let Ok(v) = HeaderValue::try_from(text) {
        headers.insert(X_EDGEGUARD_DECISION.clone(), v);
    }
}
