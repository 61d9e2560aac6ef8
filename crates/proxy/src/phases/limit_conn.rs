//! nginx `limit_conn` over the matched location's limits: take a count per limit (held by the response body
//! until it is sent) or answer `limit_conn_status`.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::ctx::{Flow, RequestCtx, key_slices, limit_answer};
use crate::limits::{self, ConnStatus};

/// nginx skips limit_conn keys longer than this.
const MAX_CONN_KEY: usize = 255;

/// nginx `limit_conn`: take a count per limit or answer `limit_conn_status`.
pub(crate) fn limit_conn(ctx: &mut RequestCtx, req: &Request<Incoming>) -> Flow {
    let Some(lim) = ctx.limits.clone() else {
        return Flow::Continue;
    };
    if lim.conn.is_empty() {
        return Flow::Continue;
    }
    ctx.eval_keys(req, &lim.conn_keys, MAX_CONN_KEY);
    let decision = {
        let keys = key_slices(&ctx.keys, &ctx.key_ends);
        limits::limit_conn(&lim.conn, &keys)
    };
    ctx.conn_status = decision.status;
    ctx.conn_limit = decision.limit;
    ctx.conn_guard = Some(decision.guard);
    match decision.status {
        Some(s @ (ConnStatus::Rejected | ConnStatus::RejectedDryRun)) => {
            // Counted in the zone's tally, written as a summary line per zone and period (not a line each).
            let i = decision.limit.unwrap_or(0);
            if let Some(t) = lim.conn_refused.get(i) {
                let keys = key_slices(&ctx.keys, &ctx.key_ends);
                t.refuse(keys.get(i).copied().unwrap_or(b""));
            }
            if s == ConnStatus::RejectedDryRun {
                return Flow::Continue;
            }
            let code = ctx
                .domain
                .as_ref()
                .map_or(StatusCode::SERVICE_UNAVAILABLE, |d| d.limit_conn_status);
            Flow::Answer(limit_answer(
                code,
                "too many concurrent requests (limit_conn)",
            ))
        }
        _ => Flow::Continue,
    }
}
