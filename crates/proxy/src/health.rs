//! Active upstream health checks. The health of an upstream address lives in its pool
//! ([`crate::upstream::Health`]): read by the forwarding loop to skip upstreams that are down, written by it as
//! requests fail and succeed (passive), and by this background task, which probes every upstream each
//! `[domain.health_check] interval` (active).
//!
//! `type = "tcp"` (default) connects: it says whether something accepts connections at the address, the
//! failure a CDN fails over on (refused, unreachable, silent). `type = "http"` sends `GET path` with the
//! domain's Host and passes when the status is among `statuses` (default 200-399), so an origin that accepts
//! connections but answers 500 from a broken application is taken out of rotation too. `fails` probes failed
//! in a row (default 1) mark an upstream down until `passes` probes in a row pass (default 1) or a request
//! succeeds, as nginx's `health_check fails= passes=` and HAProxy's `fall`/`rise`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeguard_config::HealthCheckKind;
use http::{Request, header};

use crate::request_body::RequestBody;
use crate::shared::Shared;
use crate::upstream::{Failure, UpstreamPool};

/// Longest a check waits for a connection or an answer (the domain's `connect_timeout` when that is shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the background task looks for upstreams whose check is due.
const TICK: Duration = Duration::from_millis(100);

/// One active check of `pool` within `timeout`.
pub(crate) async fn check(pool: &UpstreamPool, timeout: Duration) {
    let result = match pool.settings.check.kind {
        HealthCheckKind::Tcp => pool.connect_tcp(timeout).await.map(drop),
        HealthCheckKind::Http => http_check(pool, timeout).await,
    };
    let check = &pool.settings.check;
    match result {
        Ok(()) => {
            pool.health.check_passed(&pool.label, check.passes);
        }
        Err(f) => {
            pool.health.check_failed(&pool.label, f, check.fails);
        }
    }
}

/// `GET path` on a connection of its own (outside the pool and `max_conns`), the status judged.
async fn http_check(pool: &UpstreamPool, timeout: Duration) -> Result<(), Failure> {
    let mut sender = pool.connect(timeout, None).await?;
    let check = &pool.settings.check;
    let req = Request::get(check.path.as_str())
        .header(header::HOST, pool.settings.check_host.as_str())
        .header(header::USER_AGENT, "edgeguard-health-check")
        .header(header::CONNECTION, "close")
        .body(RequestBody::empty())
        .map_err(|_| Failure::BadResponse)?;
    match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Ok(Ok(resp)) if check.passes(resp.status().as_u16()) => Ok(()),
        Ok(Ok(_)) => Err(Failure::ProbeStatus),
        Ok(Err(e)) if e.is_parse() => Err(Failure::BadResponse),
        Ok(Err(_)) => Err(Failure::Reset),
        Err(_) => Err(Failure::ReadTimeout),
    }
}

/// Checks every upstream of the current configuration once, all at the same time.
pub(crate) async fn check_all(shared: &Shared) {
    let rt = shared.runtime.load_full();
    run(rt.pools_with_timeouts()).await;
}

async fn run(pools: Vec<(Arc<UpstreamPool>, Duration)>) {
    let mut set = tokio::task::JoinSet::new();
    for (pool, timeout) in pools {
        let timeout = timeout.min(CHECK_TIMEOUT);
        set.spawn(async move { check(&pool, timeout).await });
    }
    while set.join_next().await.is_some() {}
}

/// The background task: every [`TICK`], checks the upstreams whose interval has passed since their last
/// check, until aborted. Upstreams start up, so the first check of each waits one interval.
pub(crate) fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Vec<(Arc<UpstreamPool>, Instant)> = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let pools = shared.runtime.load_full().pools_with_timeouts();
            // Pools of an older configuration are forgotten; new ones start their interval now.
            last.retain(|(p, _)| pools.iter().any(|(q, _)| Arc::ptr_eq(p, q)));
            let mut due = Vec::new();
            for (pool, timeout) in pools {
                match last.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &pool)) {
                    None => last.push((pool, now)),
                    Some((_, at)) if now.duration_since(*at) >= pool.settings.check.interval => {
                        *at = now;
                        due.push((pool, timeout));
                    }
                    Some(_) => {}
                }
            }
            if !due.is_empty() {
                run(due).await;
            }
        }
    })
}
