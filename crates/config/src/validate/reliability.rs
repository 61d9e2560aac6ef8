//! The reliability settings: `[domain.upstream]` (nginx's `max_fails`, `fail_timeout`, `max_conns`, `queue`,
//! and how long resolved names are kept), `[domain.health_check]` (TCP or HTTP probes and the runs of them
//! that change an upstream's state), the domain's
//! `websocket` and `allow_methods`, and the node's client connection limits.

use std::time::Duration;

use super::{S, opt, positive_duration};
use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw::{self, StrOrInt};
use crate::values;

/// A count in `0..=max`.
fn count(max: u32) -> impl Fn(&i64) -> Result<u32, String> {
    move |n| match u32::try_from(*n) {
        Ok(c) if c <= max => Ok(c),
        _ => Err(format!("must be 0..={max}; found {n}")),
    }
}

/// The node's client limits, in the order of [`Node`]'s fields.
pub(super) struct NodeLimits {
    pub(super) max_connections: u32,
    pub(super) max_connections_per_ip: u32,
    pub(super) http2_idle_timeout: Duration,
    pub(super) http2_max_streams: u32,
}

pub(super) fn node_limits(sink: &mut Sink<'_>, n: &raw::RawNodeLimits) -> NodeLimits {
    let k = |key: &str| format!("node.{key}");
    NodeLimits {
        max_connections: opt(
            sink,
            || k("max_connections"),
            &n.max_connections,
            defaults::MAX_CONNECTIONS,
            count(10_000_000),
        ),
        max_connections_per_ip: opt(
            sink,
            || k("max_connections_per_ip"),
            &n.max_connections_per_ip,
            defaults::MAX_CONNECTIONS,
            count(10_000_000),
        ),
        http2_idle_timeout: opt(
            sink,
            || k("http2_idle_timeout"),
            &n.http2_idle_timeout,
            defaults::HTTP2_IDLE_TIMEOUT,
            positive_duration,
        ),
        http2_max_streams: opt(
            sink,
            || k("http2_max_streams"),
            &n.http2_max_streams,
            defaults::HTTP2_MAX_STREAMS,
            |n| match u32::try_from(*n) {
                Ok(c) if (1..=65_535).contains(&c) => Ok(c),
                _ => Err(format!("must be 1..=65535; found {n}")),
            },
        ),
    }
}

pub(super) fn upstream(
    sink: &mut Sink<'_>,
    path: &str,
    u: &raw::RawUpstreamSettings,
) -> UpstreamSpec {
    let k = |key: &str| format!("{path}.{key}");
    UpstreamSpec {
        max_fails: opt(
            sink,
            || k("max_fails"),
            &u.max_fails,
            defaults::MAX_FAILS,
            count(1_000_000),
        ),
        fail_timeout: opt(
            sink,
            || k("fail_timeout"),
            &u.fail_timeout,
            defaults::FAIL_TIMEOUT,
            positive_duration,
        ),
        max_conns: opt(
            sink,
            || k("max_conns"),
            &u.max_conns,
            defaults::MAX_CONNS,
            count(1_000_000),
        ),
        queue: opt(
            sink,
            || k("queue"),
            &u.queue,
            defaults::UPSTREAM_QUEUE,
            count(1_000_000),
        ),
        queue_timeout: opt(
            sink,
            || k("queue_timeout"),
            &u.queue_timeout,
            defaults::QUEUE_TIMEOUT,
            positive_duration,
        ),
        resolve_ttl: opt(
            sink,
            || k("resolve_ttl"),
            &u.resolve_ttl,
            defaults::RESOLVE_TTL,
            values::duration,
        ),
    }
}

pub(super) fn health_check(
    sink: &mut Sink<'_>,
    path: &str,
    h: &raw::RawHealthCheck,
) -> HealthCheckSpec {
    let k = |key: &str| format!("{path}.{key}");
    let kind = opt(
        sink,
        || k("type"),
        &h.kind,
        HealthCheckKind::Tcp,
        |s| match s.as_str() {
            "tcp" => Ok(HealthCheckKind::Tcp),
            "http" => Ok(HealthCheckKind::Http),
            other => Err(format!("expected \"tcp\" or \"http\", found {other:?}")),
        },
    );
    let probe_path = opt(
        sink,
        || k("path"),
        &h.path,
        defaults::HEALTH_CHECK_PATH.to_string(),
        |s| {
            if !s.starts_with('/') || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(format!(
                    "a health check path starts with '/' and holds no spaces or control characters; found {s:?}"
                ));
            }
            Ok(s.clone())
        },
    );
    let mut statuses = Vec::new();
    if let Some(list) = &h.statuses {
        if list.get_ref().is_empty() {
            sink.err(
                k("statuses"),
                &list.span(),
                "needs at least one status, e.g. [200]",
            );
        }
        for (i, s) in list.get_ref().iter().enumerate() {
            match status_range(s.get_ref()) {
                Ok(r) => statuses.push(r),
                Err(m) => sink.err(format!("{path}.statuses[{i}]"), &s.span(), m),
            }
        }
    }
    if statuses.is_empty() {
        statuses.push(defaults::HEALTH_CHECK_STATUSES);
    }
    let interval = opt(
        sink,
        || k("interval"),
        &h.interval,
        defaults::HEALTH_CHECK_INTERVAL,
        |v: &StrOrInt| {
            let d = values::duration(v)?;
            if d < Duration::from_millis(100) {
                return Err("must be at least 100ms".into());
            }
            Ok(d)
        },
    );
    let run = |n: &i64| match u32::try_from(*n) {
        Ok(c) if (1..=MAX_CHECK_RUN).contains(&c) => Ok(c),
        _ => Err(format!(
            "must be 1..={MAX_CHECK_RUN} (checks in a row); found {n}"
        )),
    };
    let fails = opt(
        sink,
        || k("fails"),
        &h.fails,
        defaults::HEALTH_CHECK_FAILS,
        run,
    );
    let passes = opt(
        sink,
        || k("passes"),
        &h.passes,
        defaults::HEALTH_CHECK_PASSES,
        run,
    );
    HealthCheckSpec {
        kind,
        path: probe_path,
        statuses,
        interval,
        fails,
        passes,
    }
}

/// The longest run of checks `fails` and `passes` may ask for: at the shortest interval (100ms) that is
/// 100 s, beyond which the threshold is a typo rather than a policy.
const MAX_CHECK_RUN: u32 = 1000;

/// `200`, `"2xx"` or `"200-399"`.
pub(crate) fn status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a status: expected e.g. 200, \"2xx\" or \"200-399\"");
    let one = |t: &str| match t.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(bad()),
    };
    if let Some(class) = s.strip_suffix("xx") {
        return match class.parse::<u16>() {
            Ok(c) if (1..=5).contains(&c) => Ok((c * 100, c * 100 + 99)),
            _ => Err(bad()),
        };
    }
    match s.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo > hi {
                return Err(format!("{s:?}: the range runs from low to high"));
            }
            Ok((lo, hi))
        }
        None => one(s).map(|n| (n, n)),
    }
}

/// `allow_methods`: which of CONNECT and TRACE the domain forwards (every other method always is).
pub(super) fn allow_methods(
    sink: &mut Sink<'_>,
    path: &str,
    v: &Option<S<Vec<S<String>>>>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(list) = v else {
        return out;
    };
    for (i, m) in list.get_ref().iter().enumerate() {
        let upper = m.get_ref().to_ascii_uppercase();
        match upper.as_str() {
            "CONNECT" | "TRACE" if !out.contains(&upper) => out.push(upper),
            "CONNECT" | "TRACE" => {}
            _ => sink.err(
                format!("{path}.allow_methods[{i}]"),
                &m.span(),
                format!(
                    "{:?}: only \"CONNECT\" and \"TRACE\" are refused unless listed here; other methods \
                     are always forwarded",
                    m.get_ref()
                ),
            ),
        }
    }
    out
}
