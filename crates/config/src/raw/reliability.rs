//! The keys of the reliability settings as read from the file: `[domain.upstream]`, `[domain.health_check]`,
//! the domain's `websocket` and `allow_methods`, and the node's client connection limits.

use toml::Spanned;
use toml::de::DeValue;

use super::walk::{Tbl, boolean, check_keys, integer, str_or_int, string, string_list, type_name};
use super::{S, StrOrInt};
use crate::error::Sink;

pub(crate) struct RawUpstreamSettings {
    pub(crate) max_fails: Option<S<i64>>,
    pub(crate) fail_timeout: Option<S<StrOrInt>>,
    pub(crate) max_conns: Option<S<i64>>,
    pub(crate) queue: Option<S<i64>>,
    pub(crate) queue_timeout: Option<S<StrOrInt>>,
    pub(crate) resolve_ttl: Option<S<StrOrInt>>,
}

pub(crate) struct RawHealthCheck {
    pub(crate) kind: Option<S<String>>,
    pub(crate) path: Option<S<String>>,
    /// Each entry as written: `200`, `"2xx"` or `"200-399"`.
    pub(crate) statuses: Option<S<Vec<S<String>>>>,
    pub(crate) interval: Option<S<StrOrInt>>,
    pub(crate) fails: Option<S<i64>>,
    pub(crate) passes: Option<S<i64>>,
}

/// The domain keys of this module.
pub(crate) struct RawDomainReliability {
    pub(crate) websocket: Option<S<bool>>,
    pub(crate) allow_methods: Option<S<Vec<S<String>>>>,
}

/// The node keys of this module.
pub(crate) struct RawNodeLimits {
    pub(crate) max_connections: Option<S<i64>>,
    pub(crate) max_connections_per_ip: Option<S<i64>>,
    pub(crate) http2_idle_timeout: Option<S<StrOrInt>>,
    pub(crate) http2_max_streams: Option<S<i64>>,
}

pub(crate) const NODE_KEYS: &[&str] = &[
    "max_connections",
    "max_connections_per_ip",
    "http2_idle_timeout",
    "http2_max_streams",
];

pub(crate) const DOMAIN_KEYS: &[&str] = &["upstream", "health_check", "websocket", "allow_methods"];

pub(super) fn node_limits(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> RawNodeLimits {
    RawNodeLimits {
        max_connections: integer(sink, t, "max_connections"),
        max_connections_per_ip: integer(sink, t, "max_connections_per_ip"),
        http2_idle_timeout: str_or_int(sink, t, "http2_idle_timeout"),
        http2_max_streams: integer(sink, t, "http2_max_streams"),
    }
}

pub(super) fn domain(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> RawDomainReliability {
    RawDomainReliability {
        websocket: boolean(sink, t, "websocket"),
        allow_methods: string_list(sink, t, "allow_methods"),
    }
}

pub(super) fn upstream(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> RawUpstreamSettings {
    check_keys(
        sink,
        t,
        &[
            "max_fails",
            "fail_timeout",
            "max_conns",
            "queue",
            "queue_timeout",
            "resolve_ttl",
        ],
    );
    RawUpstreamSettings {
        max_fails: integer(sink, t, "max_fails"),
        fail_timeout: str_or_int(sink, t, "fail_timeout"),
        max_conns: integer(sink, t, "max_conns"),
        queue: integer(sink, t, "queue"),
        queue_timeout: str_or_int(sink, t, "queue_timeout"),
        resolve_ttl: str_or_int(sink, t, "resolve_ttl"),
    }
}

pub(super) fn health_check(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> RawHealthCheck {
    check_keys(
        sink,
        t,
        &["type", "path", "statuses", "interval", "fails", "passes"],
    );
    RawHealthCheck {
        kind: string(sink, t, "type"),
        path: string(sink, t, "path"),
        statuses: statuses(sink, t),
        interval: str_or_int(sink, t, "interval"),
        fails: integer(sink, t, "fails"),
        passes: integer(sink, t, "passes"),
    }
}

/// `statuses`: a list of integers and strings, every entry kept as text for the validator.
fn statuses(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> Option<S<Vec<S<String>>>> {
    let v = t.get("statuses")?;
    let key = t.key("statuses");
    let DeValue::Array(items) = v.get_ref() else {
        sink.err(
            &key,
            &v.span(),
            format!(
                "expected a list such as [200, \"3xx\"], found {}",
                type_name(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get_ref() {
            DeValue::Integer(n) => out.push(Spanned::new(item.span(), n.as_str().to_string())),
            DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
            other => sink.err(
                format!("{key}[{i}]"),
                &item.span(),
                format!(
                    "expected a status such as 200, \"2xx\" or \"200-399\", found {}",
                    type_name(other)
                ),
            ),
        }
    }
    Some(Spanned::new(v.span(), out))
}
