//! The settings of SPEC section 9 on top of section 8's: HTTPS (listeners, certificates, upstream TLS), the
//! protection tables' budgets and IPv6 prefix, access lists, limit scopes, the cache's disk tier and the cluster.
//!
//! Certificate and key files are checked here as the node would load them (`crate::certs`): readable PEM of
//! the right kind, a supported key that matches the certificate, a certificate not expired. Relative paths are
//! taken from `base`, the configuration file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{MISSING, S, non_empty, opt, req};
use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw::{self, StrOrInt};
use crate::values;

/// A protection table's byte budget: at least 64k.
pub(super) fn table_size(v: &StrOrInt) -> Result<u64, String> {
    let n = values::size(v)?;
    if n < defaults::MIN_TABLE_SIZE {
        return Err(format!(
            "{} is too small: at least {}",
            values::format_size(n),
            values::format_size(defaults::MIN_TABLE_SIZE)
        ));
    }
    Ok(n)
}

#[allow(clippy::ptr_arg)] // `opt` hands over the raw value, a `&String`.
pub(super) fn scope(s: &String) -> Result<Scope, String> {
    Scope::parse(s.as_str())
}

pub(super) fn ipv6_prefix(sink: &mut Sink<'_>, v: &Option<S<i64>>) -> u8 {
    let (lo, hi) = (defaults::IPV6_PREFIX_MIN, defaults::IPV6_PREFIX_MAX);
    opt(
        sink,
        || "node.ipv6_prefix".into(),
        v,
        defaults::IPV6_PREFIX,
        |n| match u8::try_from(*n) {
            Ok(p) if (lo..=hi).contains(&p) => Ok(p),
            _ => Err(format!(
                "ipv6_prefix is the prefix length an IPv6 client is counted by, {lo}..={hi} (64: one \
                 host's network); found {n}"
            )),
        },
    )
}

/// `node.listen_tls`: socket addresses, none twice and none also in `node.listen`.
pub(super) fn listen_tls(
    sink: &mut Sink<'_>,
    v: &Option<S<Vec<S<String>>>>,
    plain: &[SocketAddr],
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let Some(list) = v else {
        return out;
    };
    for (i, a) in list.get_ref().iter().enumerate() {
        let key = format!("node.listen_tls[{i}]");
        match a.get_ref().parse::<SocketAddr>() {
            Ok(addr) if out.contains(&addr) => {
                sink.err(key, &a.span(), format!("{addr} is listed twice"))
            }
            Ok(addr) if addr.port() != 0 && plain.contains(&addr) => sink.err(
                key,
                &a.span(),
                format!("{addr} is also in node.listen; one port speaks either HTTP or HTTPS"),
            ),
            Ok(addr) => out.push(addr),
            Err(_) => sink.err(
                key,
                &a.span(),
                format!(
                    "{:?} is not a socket address; expected e.g. \"0.0.0.0:443\" or \"[::]:443\"",
                    a.get_ref()
                ),
            ),
        }
    }
    out
}

fn resolve(base: &Path, s: &str) -> PathBuf {
    let p = PathBuf::from(s);
    if p.is_absolute() || base == Path::new(".") {
        p
    } else {
        base.join(p)
    }
}

/// A PEM file that must exist and hold at least one block whose label contains `label`.
fn pem_file(base: &Path, s: &str, label: &str, what: &str) -> Result<PathBuf, String> {
    non_empty(s)?;
    let path = resolve(base, s);
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let found = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .any(|l| l.contains(label));
    if !found {
        return Err(format!(
            "{} holds no PEM {what} (-----BEGIN ...{label}...-----)",
            path.display()
        ));
    }
    Ok(path)
}

pub(super) fn tls(
    sink: &mut Sink<'_>,
    path: &str,
    t: &raw::RawTls,
    base: &Path,
) -> Option<TlsSpec> {
    let cert = req(sink, format!("{path}.cert"), &t.span, &t.cert, |s| {
        pem_file(base, s, "CERTIFICATE", "certificate")
    });
    let key = req(sink, format!("{path}.key"), &t.span, &t.key, |s| {
        pem_file(base, s, "PRIVATE KEY", "private key")
    });
    let (cert, key) = (cert?, key?);
    // The files hold PEM of the right kinds; now what the node would refuse at start or reload.
    if let Err(e) = crate::certs::certified_key(&cert, &key, std::time::SystemTime::now()) {
        use crate::certs::CertError;
        let (field, span) = match e {
            CertError::Key { .. } | CertError::Mismatch { .. } => ("key", &t.key),
            _ => ("cert", &t.cert),
        };
        let span = span.as_ref().map_or(t.span.clone(), |s| s.span());
        sink.err(format!("{path}.{field}"), &span, e.to_string());
        return None;
    }
    Some(TlsSpec { cert, key })
}

pub(super) fn upstream_tls(
    sink: &mut Sink<'_>,
    path: &str,
    t: &raw::RawUpstreamTls,
    base: &Path,
) -> UpstreamTlsSpec {
    let k = |key: &str| format!("{path}.{key}");
    UpstreamTlsSpec {
        enabled: t.enabled.as_ref().is_some_and(|b| *b.get_ref()),
        ca: opt(
            sink,
            || k("ca"),
            &t.ca,
            None,
            |s| pem_file(base, s, "CERTIFICATE", "certificate").map(Some),
        ),
        server_name: opt(
            sink,
            || k("server_name"),
            &t.server_name,
            None,
            |s| {
                values::host_name(s)?;
                Ok(Some(s.to_ascii_lowercase()))
            },
        ),
    }
}

fn nets(sink: &mut Sink<'_>, key: &str, v: &Option<S<Vec<S<String>>>>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, a) in v.iter().flat_map(|l| l.get_ref().iter()).enumerate() {
        match values::ip_net(a.get_ref()) {
            Ok(net) => out.push(net),
            Err(m) => sink.err(format!("{key}[{i}]"), &a.span(), m),
        }
    }
    out
}

pub(super) fn access_control(
    sink: &mut Sink<'_>,
    path: &str,
    a: &raw::RawAccessControl,
) -> AccessControlSpec {
    AccessControlSpec {
        allow: nets(sink, &format!("{path}.allow"), &a.allow),
        deny: nets(sink, &format!("{path}.deny"), &a.deny),
    }
}

/// `https_redirect = true` needs somewhere to redirect to.
pub(super) fn https_redirect(
    sink: &mut Sink<'_>,
    path: &str,
    v: &Option<S<bool>>,
    listen_tls: &[SocketAddr],
) -> bool {
    let Some(b) = v else {
        return defaults::HTTPS_REDIRECT;
    };
    if *b.get_ref() && listen_tls.is_empty() {
        sink.err(
            format!("{path}.https_redirect"),
            &b.span(),
            "https_redirect = true needs node.listen_tls: without an HTTPS listener the redirect leads nowhere",
        );
    }
    *b.get_ref()
}

pub(super) fn disk_path(sink: &mut Sink<'_>, path: &str, c: &raw::RawCache) -> Option<PathBuf> {
    opt(
        sink,
        || format!("{path}.disk_path"),
        &c.disk_path,
        None,
        |s| non_empty(s).map(|s| Some(PathBuf::from(s))),
    )
}

pub(super) fn disk_size(sink: &mut Sink<'_>, path: &str, c: &raw::RawCache) -> u64 {
    opt(
        sink,
        || format!("{path}.disk_size"),
        &c.disk_size,
        defaults::CACHE_DISK_SIZE,
        |v| {
            let n = values::size(v)?;
            if n < 1024 * 1024 {
                return Err("must be at least 1m".into());
            }
            Ok(n)
        },
    )
}

pub(super) fn cluster(
    sink: &mut Sink<'_>,
    raw: raw::RawCluster,
    tier: Tier,
    base: &Path,
) -> Cluster {
    let via = opt(
        sink,
        || "cluster.via".into(),
        &raw.via,
        ClusterVia::default(),
        |s| {
            match s.as_str() {
            "redis" => Ok(ClusterVia::Redis),
            "parents" if tier == Tier::Parent => Err(
                "via = \"parents\" is for edges (a parent has no parents); a parent aggregates its edges' \
                 counts without it"
                    .into(),
            ),
            "parents" => Ok(ClusterVia::Parents),
            other => Err(format!("expected \"redis\" or \"parents\", found {other:?}")),
        }
        },
    );
    let parents = raw.via.as_ref().is_some_and(|v| v.get_ref() == "parents");
    // A `via` that is neither: its own error is enough.
    let redis = raw.via.as_ref().is_none_or(|v| v.get_ref() == "redis");
    let mut redis_urls = Vec::new();
    match &raw.redis_url {
        Some(list) if parents => sink.err(
            "cluster.redis_url",
            &list.span(),
            "not with via = \"parents\": the counts go to the parents, not to Redis",
        ),
        None if !redis => {}
        None => {
            if !sink.reported("cluster.redis_url") {
                sink.err("cluster.redis_url", &raw.span, MISSING);
            }
        }
        Some(list) if list.get_ref().is_empty() => sink.err(
            "cluster.redis_url",
            &list.span(),
            "needs at least one URL, e.g. \"redis://127.0.0.1:6379\"",
        ),
        Some(list) => {
            let many = list.get_ref().len() > 1;
            for (i, u) in list.get_ref().iter().enumerate() {
                let key = if many {
                    format!("cluster.redis_url[{i}]")
                } else {
                    "cluster.redis_url".to_owned()
                };
                match redis_url(u.get_ref()) {
                    Ok(s) => redis_urls.push(s),
                    Err(m) => sink.err(key, &u.span(), m),
                }
            }
        }
    }
    let (lo, hi) = (
        defaults::SYNC_INTERVAL_MIN_MS,
        defaults::SYNC_INTERVAL_MAX_MS,
    );
    let sync_interval = opt(
        sink,
        || "cluster.sync_interval_ms".into(),
        &raw.sync_interval_ms,
        defaults::SYNC_INTERVAL,
        |n| match u64::try_from(*n) {
            Ok(ms) if (lo..=hi).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(format!("sync_interval_ms must be {lo}..={hi}; found {n}")),
        },
    );
    let on_redis_failure = opt(
        sink,
        || "cluster.on_redis_failure".into(),
        &raw.on_redis_failure,
        RedisFailure::default(),
        |s| match s.as_str() {
            "local" => Ok(RedisFailure::Local),
            "open" => Ok(RedisFailure::Open),
            "closed" => Ok(RedisFailure::Closed),
            other => Err(format!(
                "expected \"local\", \"open\" or \"closed\", found {other:?}"
            )),
        },
    );
    let redis_ca = match &raw.redis_ca {
        Some(ca) if parents => {
            sink.err(
                "cluster.redis_ca",
                &ca.span(),
                "not with via = \"parents\": there is no Redis to verify",
            );
            None
        }
        _ => opt(
            sink,
            || "cluster.redis_ca".into(),
            &raw.redis_ca,
            None,
            |s| pem_file(base, s, "CERTIFICATE", "certificate").map(Some),
        ),
    };
    Cluster {
        via,
        redis_urls,
        sync_interval,
        on_redis_failure,
        redis_ca,
    }
}

fn redis_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("redis://")
        .or_else(|| s.strip_prefix("rediss://"));
    match rest {
        Some(r) if !r.is_empty() => Ok(s.to_owned()),
        _ => Err(format!(
            "expected a URL starting with redis:// or rediss://, e.g. \"redis://127.0.0.1:6379\", found {s:?}"
        )),
    }
}

/// `node.good_crawlers`: list files read now (relative paths from `base`), each a JSON list as Google and Bing
/// publish or one range per line. Errors name the entry, the file and the file's line.
pub(super) fn good_crawlers(
    sink: &mut Sink<'_>,
    v: &Option<S<Vec<S<String>>>>,
    base: &Path,
) -> (Vec<PathBuf>, Vec<IpNet>) {
    let (mut paths, mut nets) = (Vec::new(), Vec::new());
    let Some(list) = v else {
        return (paths, nets);
    };
    for (i, p) in list.get_ref().iter().enumerate() {
        let key = format!("node.good_crawlers[{i}]");
        let written = p.get_ref();
        if written.is_empty() {
            sink.err(
                key,
                &p.span(),
                "empty path; write the path of a crawler list file",
            );
            continue;
        }
        let full = base.join(written);
        match std::fs::read_to_string(&full) {
            Ok(text) => match crate::crawlers::parse_crawler_list(&text) {
                Ok(found) => nets.extend(found),
                Err(e) => sink.err(key, &p.span(), format!("{}: {e}", full.display())),
            },
            Err(e) => sink.err(
                key,
                &p.span(),
                format!("cannot read {}: {e}", full.display()),
            ),
        }
        paths.push(PathBuf::from(written));
    }
    (paths, nets)
}
