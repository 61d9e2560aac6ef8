//! Prometheus text exposition, hand-rolled over atomics: per-domain request and decision counters kept in each
//! domain's runtime state (carried across reloads by name), a node-wide latency histogram, and gauges read
//! at scrape time from the zones, the upstream pools and the caches.
//!
//! Label values come from the configuration only (domain names, zone names, upstream addresses), plus the
//! fixed `_unknown` domain for requests that matched none, so the number of series is bounded by the config.
//!
//! Hot path: [`observe`] does three relaxed `fetch_add`s and pushes an access-log record if a log is open.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use edgeguard_store::DecisionKind;
use http::Response;

use crate::access_log::{AccessLog, RequestLine};
use crate::body::ProxyBody;
use crate::ctx::{RequestCtx, Shared};
use crate::limits::{ConnStatus, ReqStatus};
use crate::runtime::Runtime;

/// What the node decided about a request, for the access log and `edgeguard_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Served (from the cache or an upstream), no limit in the way.
    Pass,
    /// Served after a limit_req delay.
    Delay,
    LimitReq,
    LimitConn,
    /// SPEC section 3 (514).
    IpAccessLimit,
    /// A custom rule's block in force (403).
    Block,
    /// A challenge page was sent.
    Challenge,
    /// The node answered on its own: bad request, unknown host, body too large.
    Refused,
}

const DECISIONS: [Decision; 8] = [
    Decision::Pass,
    Decision::Delay,
    Decision::LimitReq,
    Decision::LimitConn,
    Decision::IpAccessLimit,
    Decision::Block,
    Decision::Challenge,
    Decision::Refused,
];

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Delay => "delay",
            Decision::LimitReq => "limit_req",
            Decision::LimitConn => "limit_conn",
            Decision::IpAccessLimit => "ip_access_limit",
            Decision::Block => "block",
            Decision::Challenge => "challenge",
            Decision::Refused => "refused",
        }
    }

    fn index(self) -> usize {
        DECISIONS.iter().position(|&d| d == self).unwrap_or(0)
    }

    /// The decision for a finished request: the one a phase set, else read from the limit outcomes.
    pub(crate) fn of(ctx: &RequestCtx) -> Decision {
        if let Some(d) = ctx.cdn.decision {
            return d;
        }
        if ctx.domain.is_none() {
            return Decision::Refused;
        }
        match ctx.protect.outcome {
            Some(DecisionKind::Blocked) => return Decision::Block,
            Some(DecisionKind::Challenged) => return Decision::Challenge,
            // Protection reports a limit only for the IP access limit (limit_req/limit_conn are read below).
            Some(DecisionKind::Limited) => return Decision::IpAccessLimit,
            _ => {}
        }
        if ctx.conn_status == Some(ConnStatus::Rejected) {
            return Decision::LimitConn;
        }
        match ctx.req_decision.and_then(|d| d.status) {
            Some(ReqStatus::Rejected) => Decision::LimitReq,
            Some(ReqStatus::Delayed) => Decision::Delay,
            _ => Decision::Pass,
        }
    }
}

/// Status classes counted: 1xx to 5xx, and anything else.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters of one domain (or of requests that matched none).
#[derive(Debug, Default)]
pub(crate) struct DomainStats {
    requests: [AtomicU64; 6],
    decisions: [AtomicU64; 8],
}

impl DomainStats {
    fn count(&self, status: u16, decision: Decision) {
        self.requests[class_index(status)].fetch_add(1, Relaxed);
        self.decisions[decision.index()].fetch_add(1, Relaxed);
    }
}

/// Node-wide counters.
#[derive(Debug, Default)]
pub(crate) struct NodeStats {
    /// Requests for no configured domain.
    unknown: DomainStats,
    /// Cumulative per bucket is computed at scrape time; each request bumps one bucket.
    latency: [AtomicU64; 13],
    latency_sum_us: AtomicU64,
}

impl NodeStats {
    fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.latency[i].fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Records a finished request: counters, latency, and the access log line.
///
/// Hot path: atomics and, with an access log open, one channel push (never blocks).
pub(crate) fn observe(
    shared: &Shared,
    ctx: &RequestCtx,
    resp: &Response<ProxyBody>,
    line: Option<RequestLine>,
) {
    let status = resp.status().as_u16();
    let decision = Decision::of(ctx);
    match &ctx.domain {
        Some(d) => d.stats.count(status, decision),
        None => shared.stats.unknown.count(status, decision),
    }
    let elapsed = ctx.started.elapsed();
    shared.stats.observe_latency(elapsed);
    if let Some(line) = line {
        shared
            .access_log
            .push(line.finish(ctx, resp, decision, elapsed));
    }
}

fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Name, type, help and reader of one cache series.
type CacheSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&edgeguard_cache::CacheStats) -> u64,
);

/// The whole exposition (Prometheus text format 0.0.4).
pub(crate) fn render(rt: &Runtime, stats: &NodeStats, log: &AccessLog) -> String {
    let mut out = String::with_capacity(4096);
    let mut domains: Vec<_> = rt.domains.values().collect();
    domains.sort_by(|a, b| a.name.cmp(&b.name));
    let named = || {
        domains
            .iter()
            .map(|d| (escape_label(&d.name), &*d.stats))
            .chain(std::iter::once(("_unknown".to_string(), &stats.unknown)))
    };

    header(
        &mut out,
        "edgeguard_requests_total",
        "counter",
        "Requests answered, by domain and status class.",
    );
    for (name, s) in named() {
        for (i, class) in CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "edgeguard_requests_total{{domain=\"{name}\",class=\"{class}\"}} {}",
                s.requests[i].load(Relaxed)
            );
        }
    }
    header(
        &mut out,
        "edgeguard_decisions_total",
        "counter",
        "Requests by what the node decided about them.",
    );
    for (name, s) in named() {
        for d in DECISIONS {
            let _ = writeln!(
                out,
                "edgeguard_decisions_total{{domain=\"{name}\",decision=\"{}\"}} {}",
                d.as_str(),
                s.decisions[d.index()].load(Relaxed)
            );
        }
    }

    header(
        &mut out,
        "edgeguard_request_duration_seconds",
        "histogram",
        "Time from the request head to the response head.",
    );
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += stats.latency[i].load(Relaxed);
        let _ = writeln!(
            out,
            "edgeguard_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += stats.latency[BUCKETS.len()].load(Relaxed);
    let _ = writeln!(
        out,
        "edgeguard_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
         edgeguard_request_duration_seconds_sum {}\n\
         edgeguard_request_duration_seconds_count {cumulative}",
        stats.latency_sum_us.load(Relaxed) as f64 / 1e6
    );

    let mut req_zones: Vec<_> = rt.req_zones().collect();
    req_zones.sort_by(|a, b| a.name().cmp(b.name()));
    let mut conn_zones: Vec<_> = rt.conn_zones().collect();
    conn_zones.sort_by(|a, b| a.name().cmp(b.name()));
    header(
        &mut out,
        "edgeguard_zone_capacity",
        "gauge",
        "States a limit zone holds at most (keys of up to 16 bytes).",
    );
    for z in &req_zones {
        let _ = writeln!(
            out,
            "edgeguard_zone_capacity{{kind=\"limit_req\",zone=\"{}\"}} {}",
            escape_label(z.name()),
            z.capacity()
        );
    }
    for z in &conn_zones {
        let _ = writeln!(
            out,
            "edgeguard_zone_capacity{{kind=\"limit_conn\",zone=\"{}\"}} {}",
            escape_label(z.name()),
            z.capacity()
        );
    }
    header(
        &mut out,
        "edgeguard_zone_in_use",
        "gauge",
        "States a limit zone holds now.",
    );
    for z in &req_zones {
        let _ = writeln!(
            out,
            "edgeguard_zone_in_use{{kind=\"limit_req\",zone=\"{}\"}} {}",
            escape_label(z.name()),
            z.in_use()
        );
    }
    for z in &conn_zones {
        let _ = writeln!(
            out,
            "edgeguard_zone_in_use{{kind=\"limit_conn\",zone=\"{}\"}} {}",
            escape_label(z.name()),
            z.in_use()
        );
    }

    header(
        &mut out,
        "edgeguard_upstream_up",
        "gauge",
        "1 if the upstream is up, 0 if health checks have it down.",
    );
    for p in rt.pools() {
        let (kind, addr) = p.label.split_once(' ').unwrap_or(("", &p.label));
        let _ = writeln!(
            out,
            "edgeguard_upstream_up{{kind=\"{kind}\",upstream=\"{}\"}} {}",
            escape_label(addr),
            u8::from(p.health.is_up())
        );
    }

    let caches: Vec<_> = domains
        .iter()
        .filter_map(|d| Some((escape_label(&d.name), d.cache.as_ref()?.stats())))
        .collect();
    let series: [CacheSeries; 8] = [
        (
            "edgeguard_cache_hits_total",
            "counter",
            "Requests answered from the cache.",
            |s| s.hits,
        ),
        (
            "edgeguard_cache_misses_total",
            "counter",
            "Lookups that fetched the object to fill the cache.",
            |s| s.misses,
        ),
        (
            "edgeguard_cache_passes_total",
            "counter",
            "Lookups that went upstream without filling.",
            |s| s.passes,
        ),
        (
            "edgeguard_cache_coalesced_total",
            "counter",
            "Lookups that waited for a fill in flight.",
            |s| s.coalesced,
        ),
        (
            "edgeguard_cache_stale_total",
            "counter",
            "Expired objects served because the upstream failed.",
            |s| s.stale_served,
        ),
        (
            "edgeguard_cache_evictions_total",
            "counter",
            "Objects evicted to stay within the memory budget.",
            |s| s.evictions,
        ),
        (
            "edgeguard_cache_bytes",
            "gauge",
            "Bytes charged against the cache budget.",
            |s| s.bytes,
        ),
        (
            "edgeguard_cache_objects",
            "gauge",
            "Objects held by the cache.",
            |s| s.objects,
        ),
    ];
    for (name, kind, help, get) in series {
        header(&mut out, name, kind, help);
        for (domain, s) in &caches {
            let _ = writeln!(out, "{name}{{domain=\"{domain}\"}} {}", get(s));
        }
    }

    header(
        &mut out,
        "edgeguard_access_log_dropped_total",
        "counter",
        "Access log records dropped because the writer fell behind.",
    );
    let _ = writeln!(out, "edgeguard_access_log_dropped_total {}", log.dropped());
    out
}
