//! nginx `limit_req` over the matched location's limits: decide, count in the zone's refusal tally, wait if delayed, answer
//! `limit_req_status` if rejected.

use std::time::Duration;

use edgeguard_limit::Clock;
use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::ctx::{Flow, RequestCtx, key_slices, limit_answer};
use crate::limits::{self, ReqStatus};

/// nginx skips limit_req keys longer than this (and logs them).
const MAX_REQ_KEY: usize = 65_535;

/// nginx `limit_req`: decide, log, wait if delayed, answer `limit_req_status` if rejected.
pub(crate) async fn limit_req(
    ctx: &mut RequestCtx,
    req: &Request<Incoming>,
    clock: &dyn Clock,
) -> Flow {
    let Some(lim) = ctx.limits.clone() else {
        return Flow::Continue;
    };
    if lim.req.is_empty() {
        return Flow::Continue;
    }
    ctx.eval_keys(req, &lim.req_keys, MAX_REQ_KEY);
    let decision = {
        let keys = key_slices(&ctx.keys, &ctx.key_ends);
        limits::limit_req(clock.now_ms(), &lim.req, &keys)
    };
    ctx.req_decision = Some(decision);
    ctx.req_shown = decision.limit.or_else(|| {
        let mut start = 0;
        let mut shown = None;
        for (i, &end) in ctx.key_ends.iter().enumerate() {
            if end > start {
                shown = Some(i);
            }
            start = end;
        }
        shown
    });
    let Some(status) = decision.status else {
        return Flow::Continue;
    };
    // nginx writes a line per rejected or delayed request; here each is counted in its zone's tally and
    // written as one summary line per zone and period (the key is the zone's key for this request).
    let i = decision.limit.unwrap_or(0);
    let key = key_slices(&ctx.keys, &ctx.key_ends)
        .get(i)
        .copied()
        .unwrap_or(b"");
    match status {
        ReqStatus::Passed => Flow::Continue,
        ReqStatus::Rejected | ReqStatus::RejectedDryRun => {
            if let Some(t) = lim.req_refused.get(i) {
                t.refuse(key);
                if decision.no_room && t.may_log() {
                    // nginx logs this at alert: the zone is too small for the keys it sees.
                    tracing::error!(
                        "could not allocate node in limit_req zone \"{}\"",
                        lim.req[i].zone.name()
                    );
                }
            }
            if status == ReqStatus::RejectedDryRun {
                return Flow::Continue;
            }
            let code = ctx
                .domain
                .as_ref()
                .map_or(StatusCode::SERVICE_UNAVAILABLE, |d| d.limit_req_status);
            Flow::Answer(limit_answer(code, "request rate limited (limit_req)"))
        }
        ReqStatus::Delayed | ReqStatus::DelayedDryRun => {
            if let Some(t) = lim.req_delayed.get(i) {
                t.refuse(key);
            }
            if status == ReqStatus::Delayed {
                // The excess is already charged: a client that leaves during the wait has still spent it.
                let wait = Duration::from_millis(decision.delay_ms);
                tokio::time::sleep(wait).await;
                ctx.delayed = wait;
            }
            Flow::Continue
        }
    }
}
