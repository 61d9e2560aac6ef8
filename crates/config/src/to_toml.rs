//! The running configuration written back as a file that [crate::parse] accepts and that reads back equal.

use std::fmt::Write;
use std::path::Path;

use crate::model::*;
use crate::values::{format_duration, format_size};

/// Writes config as TOML in the layout of examples/full.toml, every setting spelled out (defaults too).
///
/// parse(&to_toml(c)) == Ok(c) for every configuration parse produced. Durations are written to the
/// millisecond and key templates as their source, so a hand-built Config round-trips only when it obeys the
/// same rules (millisecond durations, source matching parts, locations longest first). The admin token is
/// written too: callers exporting to a less trusted reader should blank it first.
pub fn to_toml(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_config(&mut out, config);
    out
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn path(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let inner: Vec<String> = items.iter().map(f).collect();
    format!("[{}]", inner.join(", "))
}

fn upstream(u: &Upstream) -> String {
    if u.host.contains(':') {
        q(&format!("[{}]:{}", u.host, u.port))
    } else {
        q(&format!("{}:{}", u.host, u.port))
    }
}

fn limit_req(specs: &[LimitReqSpec]) -> String {
    list(specs, |s| {
        let mut parts = vec![format!("zone = {}", q(&s.zone))];
        if s.burst > 0 {
            parts.push(format!("burst = {}", s.burst));
        }
        match s.delay {
            DelayMode::Default => {}
            DelayMode::NoDelay => parts.push("nodelay = true".into()),
            DelayMode::Delay(d) => parts.push(format!("delay = {d}")),
        }
        if s.dry_run {
            parts.push("dry_run = true".into());
        }
        format!("{{ {} }}", parts.join(", "))
    })
}

fn limit_conn(specs: &[LimitConnSpec]) -> String {
    list(specs, |s| {
        let dry = if s.dry_run { ", dry_run = true" } else { "" };
        format!("{{ zone = {}, conn = {}{dry} }}", q(&s.zone), s.conn)
    })
}

fn write_config(out: &mut String, c: &Config) -> std::fmt::Result {
    let n = &c.node;
    writeln!(out, "[node]")?;
    writeln!(out, "name = {}", q(&n.name))?;
    let tier = match n.tier {
        Tier::Edge => "edge",
        Tier::Parent => "parent",
    };
    writeln!(out, "tier = {}", q(tier))?;
    writeln!(out, "listen = {}", list(&n.listen, |a| q(&a.to_string())))?;
    writeln!(
        out,
        "listen_tls = {}",
        list(&n.listen_tls, |a| q(&a.to_string()))
    )?;
    writeln!(
        out,
        "trusted_proxies = {}",
        list(&n.trusted_proxies, |p| q(&format!(
            "{}/{}",
            p.addr, p.prefix
        )))
    )?;
    writeln!(out, "data_dir = {}", path(&n.data_dir))?;
    writeln!(
        out,
        "max_header_size = {}",
        q(&format_size(n.max_header_size as u64))
    )?;
    writeln!(out, "max_body_size = {}", q(&format_size(n.max_body_size)))?;
    writeln!(
        out,
        "header_timeout = {}",
        q(&format_duration(n.header_timeout))
    )?;
    writeln!(
        out,
        "body_timeout = {}",
        q(&format_duration(n.body_timeout))
    )?;
    writeln!(
        out,
        "keepalive_timeout = {}",
        q(&format_duration(n.keepalive_timeout))
    )?;
    if let Some(log) = &n.access_log {
        writeln!(out, "access_log = {}", path(log))?;
    }
    let format = match n.access_log_format {
        AccessLogFormat::Json => "json",
        AccessLogFormat::Combined => "combined",
    };
    writeln!(out, "access_log_format = {}", q(format))?;
    writeln!(out, "ipv6_prefix = {}", n.ipv6_prefix)?;
    writeln!(out, "blocks_size = {}", q(&format_size(n.blocks_size)))?;
    if !n.good_crawlers.is_empty() {
        let list: Vec<String> = n.good_crawlers.iter().map(|p| path(p)).collect();
        writeln!(out, "good_crawlers = [{}]", list.join(", "))?;
    }
    writeln!(out, "max_connections = {}", n.max_connections)?;
    writeln!(out, "max_connections_per_ip = {}", n.max_connections_per_ip)?;
    writeln!(
        out,
        "http2_idle_timeout = {}",
        q(&format_duration(n.http2_idle_timeout))
    )?;
    writeln!(out, "http2_max_streams = {}", n.http2_max_streams)?;

    writeln!(out, "\n[admin]")?;
    writeln!(out, "listen = {}", q(&c.admin.listen.to_string()))?;
    if let Some(token) = &c.admin.token {
        writeln!(out, "token = {}", q(token))?;
    }

    if let Some(cluster) = &c.cluster {
        writeln!(out, "\n[cluster]")?;
        match (cluster.via, cluster.redis_urls.as_slice()) {
            (ClusterVia::Parents, _) => writeln!(out, "via = {}", q(cluster.via.as_str()))?,
            (ClusterVia::Redis, [one]) => writeln!(out, "redis_url = {}", q(one))?,
            (ClusterVia::Redis, many) => writeln!(out, "redis_url = {}", list(many, |u| q(u)))?,
        }
        if let Some(ca) = &cluster.redis_ca {
            writeln!(out, "redis_ca = {}", q(&ca.display().to_string()))?;
        }
        writeln!(
            out,
            "sync_interval_ms = {}",
            cluster.sync_interval.as_millis()
        )?;
        writeln!(
            out,
            "on_redis_failure = {}",
            q(cluster.on_redis_failure.as_str())
        )?;
    }

    for z in &c.limit_req_zones {
        writeln!(out, "\n[[limit_req_zone]]")?;
        writeln!(out, "name = {}", q(&z.name))?;
        writeln!(out, "key = {}", q(&z.key.source))?;
        writeln!(out, "size = {}", q(&format_size(z.size)))?;
        writeln!(out, "rate = {}", q(&z.rate.to_string()))?;
        writeln!(out, "scope = {}", q(z.scope.as_str()))?;
    }
    for z in &c.limit_conn_zones {
        writeln!(out, "\n[[limit_conn_zone]]")?;
        writeln!(out, "name = {}", q(&z.name))?;
        writeln!(out, "key = {}", q(&z.key.source))?;
        writeln!(out, "size = {}", q(&format_size(z.size)))?;
    }
    for d in &c.domains {
        write_domain(out, d)?;
    }
    Ok(())
}

fn write_domain(out: &mut String, d: &Domain) -> std::fmt::Result {
    writeln!(out, "\n[[domain]]")?;
    writeln!(out, "name = {}", q(&d.name))?;
    writeln!(out, "origins = {}", list(&d.origins, upstream))?;
    writeln!(out, "parents = {}", list(&d.parents, upstream))?;
    writeln!(out, "explain = {}", d.explain)?;
    writeln!(out, "https_redirect = {}", d.https_redirect)?;
    writeln!(out, "limit_req_status = {}", d.limit_req_status)?;
    writeln!(out, "limit_conn_status = {}", d.limit_conn_status)?;
    writeln!(out, "limit_req = {}", limit_req(&d.limit_req))?;
    writeln!(out, "limit_conn = {}", limit_conn(&d.limit_conn))?;
    writeln!(
        out,
        "connect_timeout = {}",
        q(&format_duration(d.connect_timeout))
    )?;
    writeln!(
        out,
        "read_timeout = {}",
        q(&format_duration(d.read_timeout))
    )?;
    writeln!(out, "websocket = {}", d.websocket)?;
    writeln!(out, "allow_methods = {}", list(&d.allow_methods, |m| q(m)))?;
    write_upstream_settings(out, d)?;
    for l in &d.locations {
        writeln!(out, "\n[[domain.location]]")?;
        writeln!(out, "path = {}", q(&l.path))?;
        if let Some(specs) = &l.limit_req {
            writeln!(out, "limit_req = {}", limit_req(specs))?;
        }
        if let Some(specs) = &l.limit_conn {
            writeln!(out, "limit_conn = {}", limit_conn(specs))?;
        }
    }
    if let Some(tls) = &d.tls {
        writeln!(out, "\n[domain.tls]")?;
        writeln!(out, "cert = {}", path(&tls.cert))?;
        writeln!(out, "key = {}", path(&tls.key))?;
    }
    let u = &d.upstream_tls;
    writeln!(out, "\n[domain.upstream_tls]")?;
    writeln!(out, "enabled = {}", u.enabled)?;
    if let Some(ca) = &u.ca {
        writeln!(out, "ca = {}", path(ca))?;
    }
    if let Some(name) = &u.server_name {
        writeln!(out, "server_name = {}", q(name))?;
    }
    let a = &d.access_control;
    let net = |p: &IpNet| q(&format!("{}/{}", p.addr, p.prefix));
    writeln!(out, "\n[domain.access_control]")?;
    writeln!(out, "allow = {}", list(&a.allow, net))?;
    writeln!(out, "deny = {}", list(&a.deny, net))?;
    let c = &d.cache;
    writeln!(out, "\n[domain.cache]")?;
    writeln!(out, "enabled = {}", c.enabled)?;
    writeln!(out, "default_ttl = {}", q(&format_duration(c.default_ttl)))?;
    writeln!(out, "ignore_query = {}", c.ignore_query)?;
    writeln!(out, "max_size = {}", q(&format_size(c.max_size)))?;
    writeln!(out, "stale_grace = {}", q(&format_duration(c.stale_grace)))?;
    writeln!(
        out,
        "lock_timeout = {}",
        q(&format_duration(c.lock_timeout))
    )?;
    if let Some(p) = &c.disk_path {
        writeln!(out, "disk_path = {}", path(p))?;
    }
    writeln!(out, "disk_size = {}", q(&format_size(c.disk_size)))?;

    writeln!(out, "\n[domain.ip_access_limit]")?;
    writeln!(out, "enabled = {}", d.ip_access_limit.enabled)?;
    if let Some(qps) = d.ip_access_limit.qps {
        writeln!(out, "qps = {qps}")?;
    }
    writeln!(out, "scope = {}", q(d.ip_access_limit.scope.as_str()))?;
    writeln!(
        out,
        "table_size = {}",
        q(&format_size(d.ip_access_limit.table_size))
    )?;

    let ch = &d.challenge;
    writeln!(out, "\n[domain.challenge]")?;
    writeln!(out, "enabled = {}", ch.enabled)?;
    writeln!(out, "difficulty = {}", ch.difficulty)?;
    writeln!(
        out,
        "clearance_ttl = {}",
        q(&format_duration(ch.clearance_ttl))
    )?;
    writeln!(out, "paths = {}", list(&ch.paths, |p| q(p)))?;

    let r = &d.rate_limiting;
    writeln!(out, "\n[domain.rate_limiting]")?;
    writeln!(out, "enabled = {}", r.enabled)?;
    let mode = match r.mode {
        Mode::Normal => "normal",
        Mode::Emergency => "emergency",
        Mode::Custom => "custom",
    };
    writeln!(out, "mode = {}", q(mode))?;
    writeln!(out, "parameter_check = {}", r.parameter_check)?;
    writeln!(out, "table_size = {}", q(&format_size(r.table_size)))?;
    for rule in &r.rules {
        writeln!(out, "\n[[domain.rate_limiting.rules]]")?;
        // Through serde, so the rule crate's field names (and any field it adds) are written as it reads them.
        match toml::to_string(rule) {
            Ok(body) => out.push_str(&body),
            Err(e) => writeln!(out, "# rule {:?} could not be written: {e}", rule.name)?,
        }
    }
    Ok(())
}

/// `[domain.upstream]` and `[domain.health_check]`.
fn write_upstream_settings(out: &mut String, d: &Domain) -> std::fmt::Result {
    let u = &d.upstream;
    writeln!(out, "\n[domain.upstream]")?;
    writeln!(out, "max_fails = {}", u.max_fails)?;
    writeln!(
        out,
        "fail_timeout = {}",
        q(&format_duration(u.fail_timeout))
    )?;
    writeln!(out, "max_conns = {}", u.max_conns)?;
    writeln!(out, "queue = {}", u.queue)?;
    writeln!(
        out,
        "queue_timeout = {}",
        q(&format_duration(u.queue_timeout))
    )?;
    writeln!(out, "resolve_ttl = {}", q(&format_duration(u.resolve_ttl)))?;
    let h = &d.health_check;
    writeln!(out, "\n[domain.health_check]")?;
    let kind = match h.kind {
        HealthCheckKind::Tcp => "tcp",
        HealthCheckKind::Http => "http",
    };
    writeln!(out, "type = {}", q(kind))?;
    writeln!(out, "path = {}", q(&h.path))?;
    let range = |&(lo, hi): &(u16, u16)| {
        if lo == hi {
            lo.to_string()
        } else {
            q(&format!("{lo}-{hi}"))
        }
    };
    writeln!(out, "statuses = {}", list(&h.statuses, range))?;
    writeln!(out, "interval = {}", q(&format_duration(h.interval)))?;
    writeln!(out, "fails = {}", h.fails)?;
    writeln!(out, "passes = {}", h.passes)?;
    Ok(())
}
