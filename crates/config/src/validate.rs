//! Stage two: the raw file structs checked and turned into the validated [`Config`]. Every check runs even
//! after one fails (placeholders stand in for bad values), so one run reports every error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgeguard_limit::Rate;
use edgeguard_rules::{RuleError, RuleSpec};
use toml::Spanned;

use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw::{self, Span, StrOrInt};
use crate::values;

type S<T> = Spanned<T>;

const MISSING: &str = "required key is missing";

/// Checks `raw`; `None` when any error was reported (they are in `sink`).
pub(crate) fn validate(
    sink: &mut Sink<'_>,
    raw: raw::RawFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Config> {
    let before = sink.errors.len();
    let node = node(sink, raw.node, &raw.span);
    let admin = admin(sink, raw.admin, env);
    let cluster = raw.cluster.map(|c| cluster(sink, c));
    let limit_req_zones = req_zones(sink, raw.limit_req_zone);
    let limit_conn_zones = conn_zones(sink, raw.limit_conn_zone);
    let zones = ZoneNames {
        req: limit_req_zones.iter().map(|z| z.name.clone()).collect(),
        conn: limit_conn_zones.iter().map(|z| z.name.clone()).collect(),
    };
    let mut domains: Vec<Domain> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.domain.into_iter().enumerate() {
        let name_span = d.name.as_ref().map(|n| n.span());
        let domain = domain(sink, &format!("domain[{i}]"), d, &zones);
        if let Some(span) = name_span
            && !domain.name.is_empty()
        {
            if let Some(first) = seen.get(&domain.name) {
                sink.err(
                    format!("domain[{i}].name"),
                    &span,
                    format!(
                        "domain {:?} is already defined by domain[{first}]",
                        domain.name
                    ),
                );
            } else {
                seen.insert(domain.name.clone(), i);
            }
        }
        domains.push(domain);
    }
    if sink.errors.len() > before {
        return None;
    }
    Some(Config {
        node,
        admin,
        cluster,
        limit_req_zones,
        limit_conn_zones,
        domains,
    })
}

/// An optional key: its default when absent, the parsed value when good, the default plus an error when not.
fn opt<T, U>(
    sink: &mut Sink<'_>,
    key: impl FnOnce() -> String,
    v: &Option<S<T>>,
    default: U,
    f: impl FnOnce(&T) -> Result<U, String>,
) -> U {
    match v {
        None => default,
        Some(s) => match f(s.get_ref()) {
            Ok(u) => u,
            Err(m) => {
                sink.err(key(), &s.span(), m);
                default
            }
        },
    }
}

/// A required key: `None` (and an error at the table's header) when absent or bad.
fn req<T, U>(
    sink: &mut Sink<'_>,
    key: String,
    table: &Span,
    v: &Option<S<T>>,
    f: impl FnOnce(&T) -> Result<U, String>,
) -> Option<U> {
    match v {
        None => {
            sink.err(key, table, MISSING);
            None
        }
        Some(s) => match f(s.get_ref()) {
            Ok(u) => Some(u),
            Err(m) => {
                sink.err(key, &s.span(), m);
                None
            }
        },
    }
}

fn positive_duration(v: &StrOrInt) -> Result<Duration, String> {
    let d = values::duration(v)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

fn node(sink: &mut Sink<'_>, raw: Option<raw::RawNode>, file: &Span) -> Node {
    let placeholder = || Node {
        name: String::new(),
        tier: defaults::TIER,
        listen: Vec::new(),
        trusted_proxies: Vec::new(),
        data_dir: PathBuf::from(defaults::DATA_DIR),
        max_header_size: defaults::MAX_HEADER_SIZE,
        max_body_size: defaults::MAX_BODY_SIZE,
        header_timeout: defaults::HEADER_TIMEOUT,
        body_timeout: defaults::BODY_TIMEOUT,
        keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
        access_log: None,
        access_log_format: defaults::ACCESS_LOG_FORMAT,
    };
    let Some(n) = raw else {
        sink.err(
            "node",
            file,
            "required table [node] is missing (it needs at least name and listen)",
        );
        return placeholder();
    };
    let k = |key: &str| format!("node.{key}");
    let name = req(sink, k("name"), &n.span, &n.name, |s| {
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!(
                "{s:?}: a node name may hold only letters, digits, '-', '_' and '.' (it appears in headers and logs)"
            ));
        }
        Ok(s.clone())
    })
    .unwrap_or_default();
    let tier = opt(
        sink,
        || k("tier"),
        &n.tier,
        defaults::TIER,
        |s| match s.as_str() {
            "edge" => Ok(Tier::Edge),
            "parent" => Ok(Tier::Parent),
            other => Err(format!("{other:?}: expected \"edge\" or \"parent\"")),
        },
    );
    let mut listen = Vec::new();
    match &n.listen {
        None => sink.err(k("listen"), &n.span, MISSING),
        Some(list) if list.get_ref().is_empty() => sink.err(
            k("listen"),
            &list.span(),
            "needs at least one address, e.g. [\"0.0.0.0:80\"]",
        ),
        Some(list) => {
            for (i, a) in list.get_ref().iter().enumerate() {
                let key = format!("node.listen[{i}]");
                match a.get_ref().parse::<SocketAddr>() {
                    Ok(addr) if listen.contains(&addr) => {
                        sink.err(key, &a.span(), format!("{addr} is listed twice"))
                    }
                    Ok(addr) => listen.push(addr),
                    Err(_) => sink.err(
                        key,
                        &a.span(),
                        format!(
                            "{:?} is not a socket address; expected e.g. \"0.0.0.0:80\" or \"[::]:443\"",
                            a.get_ref()
                        ),
                    ),
                }
            }
        }
    }
    let mut trusted_proxies = Vec::new();
    if let Some(list) = &n.trusted_proxies {
        for (i, a) in list.get_ref().iter().enumerate() {
            match values::ip_net(a.get_ref()) {
                Ok(net) => trusted_proxies.push(net),
                Err(m) => sink.err(format!("node.trusted_proxies[{i}]"), &a.span(), m),
            }
        }
    }
    let data_dir = opt(
        sink,
        || k("data_dir"),
        &n.data_dir,
        PathBuf::from(defaults::DATA_DIR),
        |s| non_empty(s).map(PathBuf::from),
    );
    let max_header_size = opt(
        sink,
        || k("max_header_size"),
        &n.max_header_size,
        defaults::MAX_HEADER_SIZE,
        |v| {
            let n = values::size(v)?;
            if n < 1024 {
                return Err("must be at least 1k".into());
            }
            usize::try_from(n).map_err(|_| "too large".to_string())
        },
    );
    let max_body_size = opt(
        sink,
        || k("max_body_size"),
        &n.max_body_size,
        defaults::MAX_BODY_SIZE,
        |v| {
            let n = values::size(v)?;
            if n == 0 {
                return Err(
                    "must be at least 1 (nginx's 0 = unlimited is not supported; write a large size)"
                        .into(),
                );
            }
            Ok(n)
        },
    );
    let header_timeout = opt(
        sink,
        || k("header_timeout"),
        &n.header_timeout,
        defaults::HEADER_TIMEOUT,
        positive_duration,
    );
    let body_timeout = opt(
        sink,
        || k("body_timeout"),
        &n.body_timeout,
        defaults::BODY_TIMEOUT,
        positive_duration,
    );
    let keepalive_timeout = opt(
        sink,
        || k("keepalive_timeout"),
        &n.keepalive_timeout,
        defaults::KEEPALIVE_TIMEOUT,
        values::duration,
    );
    let access_log = opt(
        sink,
        || k("access_log"),
        &n.access_log,
        None,
        |s| non_empty(s).map(|s| Some(PathBuf::from(s))),
    );
    let access_log_format = opt(
        sink,
        || k("access_log_format"),
        &n.access_log_format,
        defaults::ACCESS_LOG_FORMAT,
        |s| match s.as_str() {
            "json" => Ok(AccessLogFormat::Json),
            "combined" => Ok(AccessLogFormat::Combined),
            other => Err(format!("{other:?}: expected \"json\" or \"combined\"")),
        },
    );
    Node {
        name,
        tier,
        listen,
        trusted_proxies,
        data_dir,
        max_header_size,
        max_body_size,
        header_timeout,
        body_timeout,
        keepalive_timeout,
        access_log,
        access_log_format,
    }
}

fn admin(
    sink: &mut Sink<'_>,
    raw: Option<raw::RawAdmin>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Admin {
    let raw = raw.unwrap_or(raw::RawAdmin {
        listen: None,
        token: None,
    });
    let listen = opt(
        sink,
        || "admin.listen".into(),
        &raw.listen,
        defaults::ADMIN_LISTEN,
        |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("{s:?} is not a socket address; expected e.g. \"127.0.0.1:9090\"")
            })
        },
    );
    let token = match &raw.token {
        Some(_) => opt(
            sink,
            || "admin.token".into(),
            &raw.token,
            None,
            |s| non_empty(s).map(Some),
        ),
        None => env(defaults::ADMIN_TOKEN_ENV).filter(|t| !t.is_empty()),
    };
    if token.is_none()
        && !listen.ip().is_loopback()
        && let Some(l) = &raw.listen
    {
        sink.err(
                "admin.listen",
                &l.span(),
                format!(
                    "{listen} is reachable from other hosts, so the admin API needs a token: set admin.token or {}",
                    defaults::ADMIN_TOKEN_ENV
                ),
            );
    }
    Admin { listen, token }
}

fn cluster(sink: &mut Sink<'_>, raw: raw::RawCluster) -> Cluster {
    let redis_url = req(
        sink,
        "cluster.redis_url".into(),
        &raw.span,
        &raw.redis_url,
        |s| {
            let rest = s
                .strip_prefix("redis://")
                .or_else(|| s.strip_prefix("rediss://"));
            match rest {
                Some(r) if !r.is_empty() => Ok(s.clone()),
                _ => Err(format!(
                    "{s:?}: expected a URL starting with redis:// or rediss://, e.g. \"redis://127.0.0.1:6379\""
                )),
            }
        },
    )
    .unwrap_or_default();
    Cluster { redis_url }
}

fn zone_name(
    sink: &mut Sink<'_>,
    kind: &str,
    path: &str,
    span: &Span,
    name: &Option<S<String>>,
    seen: &mut HashMap<String, usize>,
    index: usize,
) -> String {
    let Some(name) = req(sink, format!("{path}.name"), span, name, |s| non_empty(s)) else {
        return String::new();
    };
    if let Some(first) = seen.get(&name) {
        sink.err(
            format!("{path}.name"),
            span,
            format!("{kind} {name:?} is already defined by {kind}[{first}]"),
        );
    } else {
        seen.insert(name.clone(), index);
    }
    name
}

fn zone_size(sink: &mut Sink<'_>, path: &str, span: &Span, size: &Option<S<StrOrInt>>) -> u64 {
    req(sink, format!("{path}.size"), span, size, |v| {
        let n = values::size(v)?;
        if n < defaults::MIN_ZONE_SIZE {
            return Err(format!(
                "zone size {} is too small: at least 32k, as nginx",
                values::format_size(n)
            ));
        }
        Ok(n)
    })
    .unwrap_or(defaults::MIN_ZONE_SIZE)
}

fn zone_key(sink: &mut Sink<'_>, path: &str, span: &Span, key: &Option<S<String>>) -> KeyTemplate {
    req(sink, format!("{path}.key"), span, key, |s| {
        values::key_template(s)
    })
    .unwrap_or(KeyTemplate {
        source: String::new(),
        parts: Vec::new(),
    })
}

fn req_zones(sink: &mut Sink<'_>, raw: Vec<raw::RawReqZone>) -> Vec<ReqZoneSpec> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (i, z) in raw.into_iter().enumerate() {
        let path = format!("limit_req_zone[{i}]");
        let name_at = z.name.as_ref().map(|n| n.span()).unwrap_or(z.span.clone());
        let name = zone_name(
            sink,
            "limit_req_zone",
            &path,
            &name_at,
            &z.name,
            &mut seen,
            i,
        );
        let key = zone_key(sink, &path, &z.span, &z.key);
        let size = zone_size(sink, &path, &z.span, &z.size);
        let rate = req(sink, format!("{path}.rate"), &z.span, &z.rate, |s| {
            s.parse::<Rate>().map_err(|e| e.to_string())
        });
        if let Some(rate) = rate {
            out.push(ReqZoneSpec {
                name,
                key,
                size,
                rate,
            });
        }
    }
    out
}

fn conn_zones(sink: &mut Sink<'_>, raw: Vec<raw::RawConnZone>) -> Vec<ConnZoneSpec> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (i, z) in raw.into_iter().enumerate() {
        let path = format!("limit_conn_zone[{i}]");
        let name_at = z.name.as_ref().map(|n| n.span()).unwrap_or(z.span.clone());
        let name = zone_name(
            sink,
            "limit_conn_zone",
            &path,
            &name_at,
            &z.name,
            &mut seen,
            i,
        );
        let key = zone_key(sink, &path, &z.span, &z.key);
        let size = zone_size(sink, &path, &z.span, &z.size);
        out.push(ConnZoneSpec { name, key, size });
    }
    out
}

struct ZoneNames {
    req: Vec<String>,
    conn: Vec<String>,
}

fn domain(sink: &mut Sink<'_>, path: &str, d: raw::RawDomain, zones: &ZoneNames) -> Domain {
    let k = |key: &str| format!("{path}.{key}");
    let name = req(sink, k("name"), &d.span, &d.name, |s| {
        values::host_name(s)?;
        Ok(s.to_ascii_lowercase())
    })
    .unwrap_or_default();
    let origins = match &d.origins {
        None => {
            sink.err(k("origins"), &d.span, MISSING);
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
                return Err(format!("{s:?}: a location path starts with '/'"));
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
                        "{n}: qps must be 1..={} (leave it out for the recommended default)",
                        u32::MAX
                    )),
                },
            ),
        })
        .unwrap_or_default();
    let rate_limiting = d
        .rate_limiting
        .map(|r| rate_limiting(sink, &k("rate_limiting"), r))
        .unwrap_or_default();
    Domain {
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
            _ => Err(format!("{n}: the status must be 400..=599, as nginx")),
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
                    "{n}: burst must be at least 1 when written (leave it out for no burst), as nginx"
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
                _ => Err(format!("{n}: delay must be at least 1, as nginx")),
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
                _ => Err(format!("{n}: conn must be 1..=65535, as nginx")),
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
        sink.err(key, span, MISSING);
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
    }
}

fn rate_limiting(sink: &mut Sink<'_>, path: &str, r: raw::RawRateLimiting) -> RateLimitingSpec {
    let enabled = r
        .enabled
        .as_ref()
        .map_or(defaults::RATE_LIMITING_ENABLED, |b| *b.get_ref());
    let mode = opt(
        sink,
        || format!("{path}.mode"),
        &r.mode,
        defaults::MODE,
        |s| match s.as_str() {
            "normal" => Ok(Mode::Normal),
            "emergency" => Ok(Mode::Emergency),
            "custom" => Ok(Mode::Custom),
            other => Err(format!(
                "{other:?}: expected \"normal\", \"emergency\" or \"custom\""
            )),
        },
    );
    let parameter_check = r
        .parameter_check
        .as_ref()
        .map_or(defaults::PARAMETER_CHECK, |b| *b.get_ref());
    let rules_path = format!("{path}.rules");
    if enabled && mode == Mode::Custom && r.rules.is_empty() {
        let at = r.mode.as_ref().map(|m| m.span()).unwrap_or(r.span.clone());
        sink.err(
            &rules_path,
            &at,
            "custom mode is enabled but has no rules: add [[domain.rate_limiting.rules]] or choose another mode",
        );
    }
    let complete = r.rules.iter().all(|rule| rule.spec.is_some());
    let rules: Vec<RuleSpec> = r
        .rules
        .iter()
        .filter_map(|rule| rule.spec.clone())
        .collect();
    // Rule validation looks at the list as a whole (count, unique names), so it runs only on a complete list.
    if complete && let Err(errors) = edgeguard_rules::validate_rules(&rules) {
        for e in errors {
            rule_error(sink, &rules_path, &r, &e);
        }
    }
    RateLimitingSpec {
        enabled,
        mode,
        parameter_check,
        rules,
    }
}

fn rule_error(sink: &mut Sink<'_>, rules_path: &str, r: &raw::RawRateLimiting, e: &RuleError) {
    match e.index.and_then(|i| r.rules.get(i).map(|rule| (i, rule))) {
        Some((i, rule)) => {
            let span = rule
                .fields
                .iter()
                .find(|(name, _)| name == e.field)
                .map(|(_, s)| s.clone())
                .unwrap_or(rule.span.clone());
            sink.err(
                format!("{rules_path}[{i}].{}", e.field),
                &span,
                e.message.clone(),
            );
        }
        None => {
            // A list-level error (such as too many rules) points at the first rule past the limit, if any.
            let span = r
                .rules
                .get(5)
                .or(r.rules.first())
                .map(|rule| rule.span.clone())
                .unwrap_or(r.span.clone());
            sink.err(rules_path, &span, e.message.clone());
        }
    }
}
