//! Stage two: the raw file structs checked and turned into the validated [`Config`]. Every check runs even
//! after one fails (placeholders stand in for bad values), so one run reports every error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeguard_limit::Rate;
use toml::Spanned;

use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw::{self, Span, StrOrInt};
use crate::values;

type S<T> = Spanned<T>;

mod domain;
mod edge;
mod rate_limiting;
mod reliability;

pub use domain::challenge_path;

const MISSING: &str = "required key is missing";

/// Checks `raw`; `None` when any error was reported (they are in `sink`).
pub(crate) fn validate(
    sink: &mut Sink<'_>,
    raw: raw::RawFile,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
) -> Option<Config> {
    let before = sink.errors.len();
    let node = node(sink, raw.node, &raw.span, base);
    let admin = admin(sink, raw.admin, env, &node.listen);
    let cluster = raw.cluster.map(|c| edge::cluster(sink, c, node.tier, base));
    // Names as written, even of zones with other errors, so references to them do not add errors of their own.
    let written = |names: Vec<Option<&S<String>>>| -> Vec<String> {
        names
            .into_iter()
            .flatten()
            .map(|n| n.get_ref().clone())
            .collect()
    };
    let zones = ZoneNames {
        req: written(raw.limit_req_zone.iter().map(|z| z.name.as_ref()).collect()),
        conn: written(
            raw.limit_conn_zone
                .iter()
                .map(|z| z.name.as_ref())
                .collect(),
        ),
    };
    let limit_req_zones = req_zones(sink, raw.limit_req_zone);
    let limit_conn_zones = conn_zones(sink, raw.limit_conn_zone);
    let mut domains: Vec<Domain> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.domain.into_iter().enumerate() {
        let name_span = d.name.as_ref().map(|n| n.span());
        let domain = domain::domain(sink, &format!("domain[{i}]"), d, &zones, &node, base);
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
            if !sink.reported(&key) {
                sink.err(key, table, MISSING);
            }
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

fn node(sink: &mut Sink<'_>, raw: Option<raw::RawNode>, file: &Span, base: &Path) -> Node {
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
        listen_tls: Vec::new(),
        ipv6_prefix: defaults::IPV6_PREFIX,
        blocks_size: defaults::BLOCKS_SIZE,
        good_crawlers: Vec::new(),
        good_crawler_nets: Vec::new(),
        max_connections: defaults::MAX_CONNECTIONS,
        max_connections_per_ip: defaults::MAX_CONNECTIONS,
        http2_idle_timeout: defaults::HTTP2_IDLE_TIMEOUT,
        http2_max_streams: defaults::HTTP2_MAX_STREAMS,
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
            other => Err(format!("expected \"edge\" or \"parent\", found {other:?}")),
        },
    );
    let mut listen = Vec::new();
    match &n.listen {
        None if sink.reported("node.listen") => {}
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
            other => Err(format!(
                "expected \"json\" or \"combined\", found {other:?}"
            )),
        },
    );
    let listen_tls = edge::listen_tls(sink, &n.listen_tls, &listen);
    let ipv6_prefix = edge::ipv6_prefix(sink, &n.ipv6_prefix);
    let blocks_size = opt(
        sink,
        || k("blocks_size"),
        &n.blocks_size,
        defaults::BLOCKS_SIZE,
        edge::table_size,
    );
    let (good_crawlers, good_crawler_nets) = edge::good_crawlers(sink, &n.good_crawlers, base);
    let limits = reliability::node_limits(sink, &n.limits);
    Node {
        good_crawlers,
        good_crawler_nets,
        max_connections: limits.max_connections,
        max_connections_per_ip: limits.max_connections_per_ip,
        http2_idle_timeout: limits.http2_idle_timeout,
        http2_max_streams: limits.http2_max_streams,
        name,
        tier,
        listen,
        listen_tls,
        ipv6_prefix,
        blocks_size,
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
    node_listen: &[SocketAddr],
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
    // Port 0 is "any free port", so two of them do not collide.
    if listen.port() != 0 && node_listen.contains(&listen) {
        let span = raw.listen.as_ref().map(|l| l.span()).unwrap_or(0..0);
        sink.err(
            "admin.listen",
            &span,
            format!("{listen} is also in node.listen; the admin API needs an address of its own"),
        );
    }
    Admin { listen, token }
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
        let scope = opt(
            sink,
            || format!("{path}.scope"),
            &z.scope,
            Scope::Node,
            edge::scope,
        );
        if let Some(rate) = rate {
            out.push(ReqZoneSpec {
                name,
                key,
                size,
                rate,
                scope,
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
