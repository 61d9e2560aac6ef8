//! The `[[domain]]` tables: upstreams, the nginx limit lists, locations, cache, IP access limit and rate
//! limiting with its custom rules.

use std::collections::HashMap;
use std::path::Path;

use super::{MISSING, S, ZoneNames, edge, opt, positive_duration, req};
use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw::{self, Span};
use crate::values;

pub(super) fn domain(
    sink: &mut Sink<'_>,
    path: &str,
    d: raw::RawDomain,
    zones: &ZoneNames,
    node: &Node,
    base: &Path,
) -> Domain {
    let k = |key: &str| format!("{path}.{key}");
    let name = req(sink, k("name"), &d.span, &d.name, |s| {
        values::host_name(s)?;
        Ok(s.to_ascii_lowercase())
    })
    .unwrap_or_default();
    let origins = match &d.origins {
        None => {
            if !sink.reported(&k("origins")) {
                sink.err(k("origins"), &d.span, MISSING);
            }
            Vec::new()
        }
        Some(list) if list.get_ref().is_empty() => {
            sink.err(
                k("origins"),
                &list.span(),
                "needs at least one origin, e.g. [\"10.0.0.5:80\"]",
            );
            Vec::new()
        }
        Some(list) => upstreams(sink, &k("origins"), list),
    };
    let parents = d
        .parents
        .as_ref()
        .map(|list| upstreams(sink, &k("parents"), list))
        .unwrap_or_default();
    let explain = d
        .explain
        .as_ref()
        .map_or(defaults::EXPLAIN, |b| *b.get_ref());
    let limit_req_status = status(sink, &k("limit_req_status"), &d.limit_req_status);
    let limit_conn_status = status(sink, &k("limit_conn_status"), &d.limit_conn_status);
    let limit_req = d
        .limit_req
        .as_ref()
        .map(|l| limit_reqs(sink, &k("limit_req"), l, zones))
        .unwrap_or_default();
    let limit_conn = d
        .limit_conn
        .as_ref()
        .map(|l| limit_conns(sink, &k("limit_conn"), l, zones))
        .unwrap_or_default();
    let mut locations: Vec<Location> = Vec::new();
    let mut paths: HashMap<String, usize> = HashMap::new();
    for (i, l) in d.location.iter().enumerate() {
        let lp = format!("{path}.location[{i}]");
        let p = req(sink, format!("{lp}.path"), &l.span, &l.path, |s| {
            if !s.starts_with('/') {
                return Err(format!("a location path starts with '/', found {s:?}"));
            }
            Ok(s.clone())
        });
        if let (Some(p), Some(span)) = (&p, l.path.as_ref().map(|s| s.span())) {
            if let Some(first) = paths.get(p) {
                sink.err(
                    format!("{lp}.path"),
                    &span,
                    format!("path {p:?} is already used by {path}.location[{first}]"),
                );
            } else {
                paths.insert(p.clone(), i);
            }
        }
        let limit_req = l
            .limit_req
            .as_ref()
            .map(|list| limit_reqs(sink, &format!("{lp}.limit_req"), list, zones));
        let limit_conn = l
            .limit_conn
            .as_ref()
            .map(|list| limit_conns(sink, &format!("{lp}.limit_conn"), list, zones));
        locations.push(Location {
            path: p.unwrap_or_default(),
            limit_req,
            limit_conn,
        });
    }
    // Longest first, so the first prefix that matches is the longest; stable, so equal lengths keep file order.
    locations.sort_by_key(|l| std::cmp::Reverse(l.path.len()));
    let connect_timeout = opt(
        sink,
        || k("connect_timeout"),
        &d.connect_timeout,
        defaults::CONNECT_TIMEOUT,
        positive_duration,
    );
    let read_timeout = opt(
        sink,
        || k("read_timeout"),
        &d.read_timeout,
        defaults::READ_TIMEOUT,
        positive_duration,
    );
    let cache = d
        .cache
        .as_ref()
        .map(|c| cache(sink, &k("cache"), c))
        .unwrap_or_default();
    let ip_access_limit = d
        .ip_access_limit
        .as_ref()
        .map(|c| IpAccessLimitSpec {
            enabled: c
                .enabled
                .as_ref()
                .map_or(defaults::IP_ACCESS_LIMIT_ENABLED, |b| *b.get_ref()),
            qps: opt(
                sink,
                || k("ip_access_limit.qps"),
                &c.qps,
                None,
                |n| match u32::try_from(*n) {
                    Ok(q) if q >= 1 => Ok(Some(q)),
                    _ => Err(format!(
                        "qps must be 1..={} (leave it out for the recommended default); found {n}",
                        u32::MAX
                    )),
                },
            ),
            scope: opt(
                sink,
                || k("ip_access_limit.scope"),
                &c.scope,
                Scope::Node,
                edge::scope,
            ),
            table_size: opt(
                sink,
                || k("ip_access_limit.table_size"),
                &c.table_size,
                defaults::IP_ACCESS_LIMIT_TABLE_SIZE,
                edge::table_size,
            ),
        })
        .unwrap_or_default();
    let rate_limiting = d
        .rate_limiting
        .map(|r| super::rate_limiting::rate_limiting(sink, &k("rate_limiting"), r))
        .unwrap_or_default();
    let challenge = d
        .challenge
        .as_ref()
        .map(|c| challenge(sink, &k("challenge"), c))
        .unwrap_or_default();
    let https_redirect = edge::https_redirect(sink, path, &d.https_redirect, &node.listen_tls);
    let tls = d
        .tls
        .as_ref()
        .and_then(|t| edge::tls(sink, &k("tls"), t, base));
    let upstream_tls = d
        .upstream_tls
        .as_ref()
        .map(|t| edge::upstream_tls(sink, &k("upstream_tls"), t, base))
        .unwrap_or_default();
    let access_control = d
        .access_control
        .as_ref()
        .map(|a| edge::access_control(sink, &k("access_control"), a))
        .unwrap_or_default();
    let upstream = d
        .upstream
        .as_ref()
        .map(|u| super::reliability::upstream(sink, &k("upstream"), u))
        .unwrap_or_default();
    let health_check = d
        .health_check
        .as_ref()
        .map(|h| super::reliability::health_check(sink, &k("health_check"), h))
        .unwrap_or_default();
    let websocket = d
        .reliability
        .websocket
        .as_ref()
        .map_or(defaults::WEBSOCKET, |b| *b.get_ref());
    let allow_methods = super::reliability::allow_methods(sink, path, &d.reliability.allow_methods);
    Domain {
        upstream,
        health_check,
        websocket,
        allow_methods,
        name,
        origins,
        parents,
        explain,
        limit_req_status,
        limit_conn_status,
        limit_req,
        limit_conn,
        locations,
        connect_timeout,
        read_timeout,
        cache,
        ip_access_limit,
        rate_limiting,
        challenge,
        https_redirect,
        tls,
        upstream_tls,
        access_control,
    }
}

fn upstreams(sink: &mut Sink<'_>, path: &str, list: &S<Vec<S<String>>>) -> Vec<Upstream> {
    let mut out: Vec<Upstream> = Vec::new();
    for (i, a) in list.get_ref().iter().enumerate() {
        match values::upstream(a.get_ref()) {
            Ok(u) if out.contains(&u) => sink.err(
                format!("{path}[{i}]"),
                &a.span(),
                format!("{:?} is listed twice", a.get_ref()),
            ),
            Ok(u) => out.push(u),
            Err(m) => sink.err(format!("{path}[{i}]"), &a.span(), m),
        }
    }
    out
}

fn status(sink: &mut Sink<'_>, key: &str, v: &Option<S<i64>>) -> u16 {
    opt(
        sink,
        || key.to_string(),
        v,
        defaults::LIMIT_STATUS,
        |n| match u16::try_from(*n) {
            Ok(s) if (400..=599).contains(&s) => Ok(s),
            _ => Err(format!("the status must be 400..=599, as nginx; found {n}")),
        },
    )
}

fn limit_reqs(
    sink: &mut Sink<'_>,
    path: &str,
    list: &[raw::RawLimitReq],
    zones: &ZoneNames,
) -> Vec<LimitReqSpec> {
    let mut out: Vec<LimitReqSpec> = Vec::new();
    let mut used: HashMap<String, usize> = HashMap::new();
    for (i, l) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let zone = zone_ref(
            sink,
            &p,
            &l.span,
            &l.zone,
            &zones.req,
            "limit_req_zone",
            &mut used,
            path,
            i,
        );
        let burst = opt(
            sink,
            || format!("{p}.burst"),
            &l.burst,
            0,
            |n| match u32::try_from(*n) {
                Ok(b) if b >= 1 => Ok(b),
                _ => Err(format!(
                    "burst must be at least 1 when written (leave it out for no burst), as nginx; found {n}"
                )),
            },
        );
        let nodelay = l.nodelay.as_ref().is_some_and(|b| *b.get_ref());
        let delay = opt(
            sink,
            || format!("{p}.delay"),
            &l.delay,
            None,
            |n| match u32::try_from(*n) {
                Ok(d) if d >= 1 => Ok(Some(d)),
                _ => Err(format!("delay must be at least 1, as nginx; found {n}")),
            },
        );
        let mode = match (nodelay, delay, &l.delay) {
            (true, _, Some(d)) => {
                sink.err(
                    format!("{p}.delay"),
                    &d.span(),
                    "nodelay and delay cannot both be set: nodelay never delays, delay = N delays past N",
                );
                DelayMode::NoDelay
            }
            (true, _, None) => DelayMode::NoDelay,
            (false, Some(d), _) => DelayMode::Delay(d),
            (false, None, _) => DelayMode::Default,
        };
        let dry_run = l.dry_run.as_ref().is_some_and(|b| *b.get_ref());
        out.push(LimitReqSpec {
            zone,
            burst,
            delay: mode,
            dry_run,
        });
    }
    out
}

fn limit_conns(
    sink: &mut Sink<'_>,
    path: &str,
    list: &[raw::RawLimitConn],
    zones: &ZoneNames,
) -> Vec<LimitConnSpec> {
    let mut out = Vec::new();
    let mut used: HashMap<String, usize> = HashMap::new();
    for (i, l) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let zone = zone_ref(
            sink,
            &p,
            &l.span,
            &l.zone,
            &zones.conn,
            "limit_conn_zone",
            &mut used,
            path,
            i,
        );
        let conn = req(
            sink,
            format!("{p}.conn"),
            &l.span,
            &l.conn,
            |n| match u32::try_from(*n) {
                Ok(c) if (1..=65535).contains(&c) => Ok(c),
                _ => Err(format!("conn must be 1..=65535, as nginx; found {n}")),
            },
        )
        .unwrap_or(1);
        let dry_run = l.dry_run.as_ref().is_some_and(|b| *b.get_ref());
        out.push(LimitConnSpec {
            zone,
            conn,
            dry_run,
        });
    }
    out
}

/// The `zone` of a limit_req / limit_conn entry: it must name a zone of that kind, once per list.
#[allow(clippy::too_many_arguments)]
fn zone_ref(
    sink: &mut Sink<'_>,
    entry: &str,
    span: &Span,
    zone: &Option<S<String>>,
    known: &[String],
    kind: &str,
    used: &mut HashMap<String, usize>,
    list: &str,
    index: usize,
) -> String {
    let key = format!("{entry}.zone");
    let Some(z) = zone else {
        if !sink.reported(&key) {
            sink.err(key, span, MISSING);
        }
        return String::new();
    };
    let name = z.get_ref();
    if !known.iter().any(|k| k == name) {
        let hint = if known.is_empty() {
            format!(" (no {kind} is defined)")
        } else {
            String::new()
        };
        sink.err(key, &z.span(), format!("no {kind} named {name:?}{hint}"));
    } else if let Some(first) = used.get(name) {
        sink.err(
            key,
            &z.span(),
            format!("zone {name:?} is already used by {list}[{first}]; a zone may appear once per list, as nginx"),
        );
    } else {
        used.insert(name.clone(), index);
    }
    name.clone()
}

fn cache(sink: &mut Sink<'_>, path: &str, c: &raw::RawCache) -> CacheSpec {
    let k = |key: &str| format!("{path}.{key}");
    CacheSpec {
        enabled: c
            .enabled
            .as_ref()
            .map_or(defaults::CACHE_ENABLED, |b| *b.get_ref()),
        default_ttl: opt(
            sink,
            || k("default_ttl"),
            &c.default_ttl,
            defaults::CACHE_DEFAULT_TTL,
            values::duration,
        ),
        ignore_query: c
            .ignore_query
            .as_ref()
            .map_or(defaults::CACHE_IGNORE_QUERY, |b| *b.get_ref()),
        max_size: opt(
            sink,
            || k("max_size"),
            &c.max_size,
            defaults::CACHE_MAX_SIZE,
            |v| {
                let n = values::size(v)?;
                if n == 0 {
                    return Err(
                        "must be larger than zero (set enabled = false to turn the cache off)"
                            .into(),
                    );
                }
                Ok(n)
            },
        ),
        stale_grace: opt(
            sink,
            || k("stale_grace"),
            &c.stale_grace,
            defaults::CACHE_STALE_GRACE,
            values::duration,
        ),
        lock_timeout: opt(
            sink,
            || k("lock_timeout"),
            &c.lock_timeout,
            defaults::CACHE_LOCK_TIMEOUT,
            values::duration,
        ),
        disk_path: edge::disk_path(sink, path, c),
        disk_size: edge::disk_size(sink, path, c),
    }
}

fn challenge(sink: &mut Sink<'_>, path: &str, c: &raw::RawChallenge) -> ChallengeSpec {
    let k = |key: &str| format!("{path}.{key}");
    let (lo, hi) = (
        defaults::CHALLENGE_DIFFICULTY_MIN,
        defaults::CHALLENGE_DIFFICULTY_MAX,
    );
    let difficulty = opt(
        sink,
        || k("difficulty"),
        &c.difficulty,
        defaults::CHALLENGE_DIFFICULTY,
        |n| match u8::try_from(*n) {
            Ok(b) if (lo..=hi).contains(&b) => Ok(b),
            _ => Err(format!(
                "difficulty is {lo}..={hi} bits of proof of work (each bit doubles the work; {} takes a \
                 browser about a second); found {n}",
                defaults::CHALLENGE_DIFFICULTY
            )),
        },
    );
    let (min, max) = (
        defaults::CHALLENGE_CLEARANCE_TTL_MIN,
        defaults::CHALLENGE_CLEARANCE_TTL_MAX,
    );
    let clearance_ttl = opt(
        sink,
        || k("clearance_ttl"),
        &c.clearance_ttl,
        defaults::CHALLENGE_CLEARANCE_TTL,
        |v| {
            let d = values::duration(v)?;
            if d < min || d > max {
                return Err(format!(
                    "clearance_ttl must be 1m..=7d (how long a passed challenge lasts); found {}",
                    values::format_duration(d)
                ));
            }
            Ok(d)
        },
    );
    let enabled = c
        .enabled
        .as_ref()
        .map_or(defaults::CHALLENGE_ENABLED, |b| *b.get_ref());
    let mut paths: Vec<String> = Vec::new();
    if let Some(list) = &c.paths {
        if list.get_ref().len() > defaults::CHALLENGE_MAX_PATHS {
            sink.err(
                k("paths"),
                &list.span(),
                format!(
                    "at most {} path prefixes; found {}",
                    defaults::CHALLENGE_MAX_PATHS,
                    list.get_ref().len()
                ),
            );
        }
        for (i, p) in list.get_ref().iter().enumerate() {
            match challenge_path(p.get_ref()) {
                Ok(s) if paths.contains(&s) => sink.err(
                    format!("{path}.paths[{i}]"),
                    &p.span(),
                    format!("{s:?} is listed twice"),
                ),
                Ok(s) => paths.push(s),
                Err(m) => sink.err(format!("{path}.paths[{i}]"), &p.span(), m),
            }
        }
    }
    ChallengeSpec {
        difficulty,
        clearance_ttl,
        enabled,
        paths,
    }
}

/// Checks a path prefix for `challenge.paths` (and for a timed challenge started through the admin API): starts
/// with `/`, no query, fragment, spaces, control characters, escapes or dot segments, since it is compared with
/// the request's normalised path, which has none of these. Returns it unchanged, or the reason.
pub fn challenge_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("a path prefix starts with '/', found {s:?}"));
    }
    if s.len() > 1024 {
        return Err("a path prefix is at most 1024 bytes".into());
    }
    if s.contains(['?', '#']) {
        return Err(format!(
            "{s:?}: a path prefix is compared with the path only; leave out '?' and '#'"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?}: a path prefix may not contain spaces or control characters"
        ));
    }
    if s.contains('%') || s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!(
            "{s:?}: requests are compared after escapes and dot segments are resolved; write the prefix that \
             way (no '%', '.' or '..' segments)"
        ));
    }
    Ok(s.to_owned())
}
