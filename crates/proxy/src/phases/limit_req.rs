//! nginx `limit_req` over the matched location's limits: decide, count in the zone's refusal tally, wait if delayed, answer
//! `limit_req_status` if rejected. Zones of `scope = "cluster"` first charge their buckets with what the other
//! nodes admitted since (as last synchronised), and count what this node admits for them.

use std::time::Duration;

use edgeguard_limit::Clock;
use edgeguard_protect::Others;
use http::{Request, StatusCode};
use hyper::body::Incoming;

use crate::ctx::{Flow, RequestCtx, key_slices, limit_answer};
use crate::limits::{self, ReqStatus};
use crate::runtime::Limits;

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
    let now = clock.now_ms();
    let shared = lim.req_shared.iter().any(Option::is_some);
    if shared && ctx.protect.now_ms == 0 {
        // A domain without a guard: the blocks phase did not read the node's Unix time.
        ctx.protect.now_ms = ctx.rt.protect.node().map_or(0, |n| n.now_ms());
    }
    let decision = {
        let keys = key_slices(&ctx.keys, &ctx.key_ends);
        let unix_ms = ctx.protect.now_ms;
        if shared && !take_others(&lim, &keys, now, unix_ms) {
            // Redis down and `on_redis_failure = "closed"`: the cluster-scoped zone refuses.
            let code = ctx
                .domain
                .as_ref()
                .map_or(StatusCode::SERVICE_UNAVAILABLE, |d| d.limit_req_status);
            return Flow::Answer(limit_answer(code, "request rate limited (limit_req)"));
        }
        let decision = limits::limit_req(now, &lim.req, &keys);
        if shared && !decision.is_rejected() && decision.status != Some(ReqStatus::RejectedDryRun) {
            count_admitted(&lim, &keys, unix_ms);
        }
        decision
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

/// Charges each cluster-scoped zone's bucket with what the other nodes admitted of its key since the last
/// request of it here; `false` when one of them refuses outright (`on_redis_failure = "closed"` while Redis is
/// down). `open` decides on the buckets as they are. `now` is the zones' clock, `unix_ms` the cluster's.
///
/// Hot path: a shard lock per cluster-scoped zone, no allocation.
fn take_others(lim: &Limits, keys: &[&[u8]], now: u64, unix_ms: u64) -> bool {
    for ((l, shared), key) in lim.req.iter().zip(&lim.req_shared).zip(keys) {
        let Some((shared, _)) = shared else { continue };
        if key.is_empty() {
            continue;
        }
        match shared.take_others(key, unix_ms) {
            Others::Count(n) => l.zone.charge(key, now, n, u64::from(l.burst) * 1000),
            Others::Open => {}
            Others::Closed => return false,
        }
    }
    true
}

/// This node admitted the request: every cluster-scoped zone of the list counts it for the others.
fn count_admitted(lim: &Limits, keys: &[&[u8]], unix_ms: u64) {
    for (shared, key) in lim.req_shared.iter().zip(keys) {
        if let Some((shared, cap)) = shared
            && !key.is_empty()
        {
            shared.add(key, unix_ms, 1, Some(*cap));
        }
    }
}
