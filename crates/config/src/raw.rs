//! Stage one: the TOML document read into file-shaped structs. Every field is optional and keeps its span;
//! nothing is interpreted yet beyond TOML types. Unknown keys and wrong types are reported here, all of them.
//!
//! The walk over `toml`'s spanned document tree is written out by hand rather than derived with serde because
//! a derived `Deserialize` stops at the first unknown key or wrong type, and an operator should see every
//! mistake in one run. Custom rules are the exception: they are deserialized as `edgeguard_rules::RuleSpec`
//! (that crate owns their shape), one field error at a time until the rule is clean.

use std::ops::Range;

use edgeguard_rules::RuleSpec;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::error::Sink;

mod reliability;
mod walk;

pub(crate) use reliability::{
    RawDomainReliability, RawHealthCheck, RawNodeLimits, RawUpstreamSettings,
};

use walk::{
    Tbl, array_of_tables, boolean, check_keys, contains, integer, join, missing_field, str_or_int,
    string, string_list, string_or_list, sub_table, type_name, unknown_key,
};

pub(crate) type Span = Range<usize>;
type S<T> = Spanned<T>;

/// A value written either as a string with a unit (`"10m"`, `"5s"`) or as a bare integer.
#[derive(Debug, Clone)]
pub(crate) enum StrOrInt {
    Str(String),
    Int(i64),
}

pub(crate) struct RawFile {
    pub(crate) span: Span,
    pub(crate) node: Option<RawNode>,
    pub(crate) admin: Option<RawAdmin>,
    pub(crate) cluster: Option<RawCluster>,
    pub(crate) limit_req_zone: Vec<RawReqZone>,
    pub(crate) limit_conn_zone: Vec<RawConnZone>,
    pub(crate) domain: Vec<RawDomain>,
}

pub(crate) struct RawNode {
    pub(crate) span: Span,
    pub(crate) name: Option<S<String>>,
    pub(crate) tier: Option<S<String>>,
    pub(crate) listen: Option<S<Vec<S<String>>>>,
    pub(crate) listen_tls: Option<S<Vec<S<String>>>>,
    pub(crate) trusted_proxies: Option<S<Vec<S<String>>>>,
    pub(crate) data_dir: Option<S<String>>,
    pub(crate) max_header_size: Option<S<StrOrInt>>,
    pub(crate) max_body_size: Option<S<StrOrInt>>,
    pub(crate) header_timeout: Option<S<StrOrInt>>,
    pub(crate) body_timeout: Option<S<StrOrInt>>,
    pub(crate) keepalive_timeout: Option<S<StrOrInt>>,
    pub(crate) access_log: Option<S<String>>,
    pub(crate) access_log_format: Option<S<String>>,
    pub(crate) ipv6_prefix: Option<S<i64>>,
    pub(crate) blocks_size: Option<S<StrOrInt>>,
    pub(crate) good_crawlers: Option<S<Vec<S<String>>>>,
    pub(crate) limits: RawNodeLimits,
}

pub(crate) struct RawAdmin {
    pub(crate) listen: Option<S<String>>,
    pub(crate) token: Option<S<String>>,
}

pub(crate) struct RawCluster {
    pub(crate) span: Span,
    pub(crate) via: Option<S<String>>,
    pub(crate) redis_url: Option<S<Vec<S<String>>>>,
    pub(crate) sync_interval_ms: Option<S<i64>>,
    pub(crate) on_redis_failure: Option<S<String>>,
    pub(crate) redis_ca: Option<S<String>>,
}

pub(crate) struct RawReqZone {
    pub(crate) span: Span,
    pub(crate) name: Option<S<String>>,
    pub(crate) key: Option<S<String>>,
    pub(crate) size: Option<S<StrOrInt>>,
    pub(crate) rate: Option<S<String>>,
    pub(crate) scope: Option<S<String>>,
}

pub(crate) struct RawConnZone {
    pub(crate) span: Span,
    pub(crate) name: Option<S<String>>,
    pub(crate) key: Option<S<String>>,
    pub(crate) size: Option<S<StrOrInt>>,
}

pub(crate) struct RawLimitReq {
    pub(crate) span: Span,
    pub(crate) zone: Option<S<String>>,
    pub(crate) burst: Option<S<i64>>,
    pub(crate) nodelay: Option<S<bool>>,
    pub(crate) delay: Option<S<i64>>,
    pub(crate) dry_run: Option<S<bool>>,
}

pub(crate) struct RawLimitConn {
    pub(crate) span: Span,
    pub(crate) zone: Option<S<String>>,
    pub(crate) conn: Option<S<i64>>,
    pub(crate) dry_run: Option<S<bool>>,
}

pub(crate) struct RawDomain {
    pub(crate) span: Span,
    pub(crate) name: Option<S<String>>,
    pub(crate) origins: Option<S<Vec<S<String>>>>,
    pub(crate) parents: Option<S<Vec<S<String>>>>,
    pub(crate) explain: Option<S<bool>>,
    pub(crate) limit_req_status: Option<S<i64>>,
    pub(crate) limit_conn_status: Option<S<i64>>,
    pub(crate) limit_req: Option<Vec<RawLimitReq>>,
    pub(crate) limit_conn: Option<Vec<RawLimitConn>>,
    pub(crate) location: Vec<RawLocation>,
    pub(crate) connect_timeout: Option<S<StrOrInt>>,
    pub(crate) read_timeout: Option<S<StrOrInt>>,
    pub(crate) cache: Option<RawCache>,
    pub(crate) ip_access_limit: Option<RawIpAccessLimit>,
    pub(crate) rate_limiting: Option<RawRateLimiting>,
    pub(crate) challenge: Option<RawChallenge>,
    pub(crate) https_redirect: Option<S<bool>>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) upstream_tls: Option<RawUpstreamTls>,
    pub(crate) access_control: Option<RawAccessControl>,
    pub(crate) upstream: Option<RawUpstreamSettings>,
    pub(crate) health_check: Option<RawHealthCheck>,
    pub(crate) reliability: RawDomainReliability,
}

pub(crate) struct RawTls {
    pub(crate) span: Span,
    pub(crate) cert: Option<S<String>>,
    pub(crate) key: Option<S<String>>,
}

pub(crate) struct RawUpstreamTls {
    pub(crate) enabled: Option<S<bool>>,
    pub(crate) ca: Option<S<String>>,
    pub(crate) server_name: Option<S<String>>,
}

pub(crate) struct RawAccessControl {
    pub(crate) allow: Option<S<Vec<S<String>>>>,
    pub(crate) deny: Option<S<Vec<S<String>>>>,
}

pub(crate) struct RawLocation {
    pub(crate) span: Span,
    pub(crate) path: Option<S<String>>,
    pub(crate) limit_req: Option<Vec<RawLimitReq>>,
    pub(crate) limit_conn: Option<Vec<RawLimitConn>>,
}

pub(crate) struct RawCache {
    pub(crate) enabled: Option<S<bool>>,
    pub(crate) default_ttl: Option<S<StrOrInt>>,
    pub(crate) ignore_query: Option<S<bool>>,
    pub(crate) max_size: Option<S<StrOrInt>>,
    pub(crate) stale_grace: Option<S<StrOrInt>>,
    pub(crate) lock_timeout: Option<S<StrOrInt>>,
    pub(crate) disk_path: Option<S<String>>,
    pub(crate) disk_size: Option<S<StrOrInt>>,
}

pub(crate) struct RawIpAccessLimit {
    pub(crate) enabled: Option<S<bool>>,
    pub(crate) qps: Option<S<i64>>,
    pub(crate) scope: Option<S<String>>,
    pub(crate) table_size: Option<S<StrOrInt>>,
}

pub(crate) struct RawChallenge {
    pub(crate) difficulty: Option<S<i64>>,
    pub(crate) clearance_ttl: Option<S<StrOrInt>>,
    pub(crate) enabled: Option<S<bool>>,
    pub(crate) paths: Option<S<Vec<S<String>>>>,
}

pub(crate) struct RawRateLimiting {
    pub(crate) span: Span,
    pub(crate) enabled: Option<S<bool>>,
    pub(crate) mode: Option<S<String>>,
    pub(crate) parameter_check: Option<S<bool>>,
    pub(crate) table_size: Option<S<StrOrInt>>,
    pub(crate) rules: Vec<RawRule>,
}

pub(crate) struct RawRule {
    pub(crate) span: Span,
    /// `None` when the rule did not deserialize (its errors are already reported).
    pub(crate) spec: Option<RuleSpec>,
    /// Where each field of the rule was written, to give rule-validation errors a line.
    pub(crate) fields: Vec<(String, Span)>,
}

/// Reads the parsed document. Errors go to `sink`; whatever could be read is returned.
pub(crate) fn read(sink: &mut Sink<'_>, doc: &S<DeTable<'_>>) -> RawFile {
    let root = Tbl {
        path: String::new(),
        span: doc.span(),
        table: doc.get_ref(),
    };
    check_keys(
        sink,
        &root,
        &[
            "node",
            "admin",
            "cluster",
            "limit_req_zone",
            "limit_conn_zone",
            "domain",
        ],
    );
    RawFile {
        span: 0..0,
        node: sub_table(sink, &root, "node").map(|t| read_node(sink, &t)),
        admin: sub_table(sink, &root, "admin").map(|t| {
            check_keys(sink, &t, &["listen", "token"]);
            RawAdmin {
                listen: string(sink, &t, "listen"),
                token: string(sink, &t, "token"),
            }
        }),
        cluster: sub_table(sink, &root, "cluster").map(|t| {
            check_keys(
                sink,
                &t,
                &[
                    "via",
                    "redis_url",
                    "redis_ca",
                    "sync_interval_ms",
                    "on_redis_failure",
                ],
            );
            RawCluster {
                span: t.span.clone(),
                via: string(sink, &t, "via"),
                redis_url: string_or_list(sink, &t, "redis_url"),
                sync_interval_ms: integer(sink, &t, "sync_interval_ms"),
                on_redis_failure: string(sink, &t, "on_redis_failure"),
                redis_ca: string(sink, &t, "redis_ca"),
            }
        }),
        limit_req_zone: array_of_tables(sink, &root, "limit_req_zone", |sink, t| {
            check_keys(sink, &t, &["name", "key", "size", "rate", "scope"]);
            RawReqZone {
                span: t.span.clone(),
                name: string(sink, &t, "name"),
                key: string(sink, &t, "key"),
                size: str_or_int(sink, &t, "size"),
                rate: string(sink, &t, "rate"),
                scope: string(sink, &t, "scope"),
            }
        })
        .unwrap_or_default(),
        limit_conn_zone: array_of_tables(sink, &root, "limit_conn_zone", |sink, t| {
            check_keys(sink, &t, &["name", "key", "size"]);
            RawConnZone {
                span: t.span.clone(),
                name: string(sink, &t, "name"),
                key: string(sink, &t, "key"),
                size: str_or_int(sink, &t, "size"),
            }
        })
        .unwrap_or_default(),
        domain: array_of_tables(sink, &root, "domain", read_domain).unwrap_or_default(),
    }
}

fn read_node(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> RawNode {
    let keys: Vec<&str> = [
        "name",
        "tier",
        "listen",
        "listen_tls",
        "trusted_proxies",
        "data_dir",
        "max_header_size",
        "max_body_size",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "access_log",
        "access_log_format",
        "ipv6_prefix",
        "blocks_size",
        "good_crawlers",
    ]
    .into_iter()
    .chain(reliability::NODE_KEYS.iter().copied())
    .collect();
    check_keys(sink, t, &keys);
    RawNode {
        span: t.span.clone(),
        name: string(sink, t, "name"),
        tier: string(sink, t, "tier"),
        listen: string_list(sink, t, "listen"),
        listen_tls: string_list(sink, t, "listen_tls"),
        trusted_proxies: string_list(sink, t, "trusted_proxies"),
        data_dir: string(sink, t, "data_dir"),
        max_header_size: str_or_int(sink, t, "max_header_size"),
        max_body_size: str_or_int(sink, t, "max_body_size"),
        header_timeout: str_or_int(sink, t, "header_timeout"),
        body_timeout: str_or_int(sink, t, "body_timeout"),
        keepalive_timeout: str_or_int(sink, t, "keepalive_timeout"),
        access_log: string(sink, t, "access_log"),
        access_log_format: string(sink, t, "access_log_format"),
        ipv6_prefix: integer(sink, t, "ipv6_prefix"),
        blocks_size: str_or_int(sink, t, "blocks_size"),
        good_crawlers: string_list(sink, t, "good_crawlers"),
        limits: reliability::node_limits(sink, t),
    }
}

fn read_domain(sink: &mut Sink<'_>, t: Tbl<'_, '_>) -> RawDomain {
    let keys: Vec<&str> = [
        "name",
        "origins",
        "parents",
        "explain",
        "limit_req_status",
        "limit_conn_status",
        "limit_req",
        "limit_conn",
        "location",
        "connect_timeout",
        "read_timeout",
        "cache",
        "ip_access_limit",
        "rate_limiting",
        "challenge",
        "https_redirect",
        "tls",
        "upstream_tls",
        "access_control",
    ]
    .into_iter()
    .chain(reliability::DOMAIN_KEYS.iter().copied())
    .collect();
    check_keys(sink, &t, &keys);
    RawDomain {
        span: t.span.clone(),
        name: string(sink, &t, "name"),
        origins: string_list(sink, &t, "origins"),
        parents: string_list(sink, &t, "parents"),
        explain: boolean(sink, &t, "explain"),
        limit_req_status: integer(sink, &t, "limit_req_status"),
        limit_conn_status: integer(sink, &t, "limit_conn_status"),
        limit_req: array_of_tables(sink, &t, "limit_req", read_limit_req),
        limit_conn: array_of_tables(sink, &t, "limit_conn", read_limit_conn),
        location: array_of_tables(sink, &t, "location", |sink, t| {
            check_keys(sink, &t, &["path", "limit_req", "limit_conn"]);
            RawLocation {
                span: t.span.clone(),
                path: string(sink, &t, "path"),
                limit_req: array_of_tables(sink, &t, "limit_req", read_limit_req),
                limit_conn: array_of_tables(sink, &t, "limit_conn", read_limit_conn),
            }
        })
        .unwrap_or_default(),
        connect_timeout: str_or_int(sink, &t, "connect_timeout"),
        read_timeout: str_or_int(sink, &t, "read_timeout"),
        cache: sub_table(sink, &t, "cache").map(|t| {
            check_keys(
                sink,
                &t,
                &[
                    "enabled",
                    "default_ttl",
                    "ignore_query",
                    "max_size",
                    "stale_grace",
                    "lock_timeout",
                    "disk_path",
                    "disk_size",
                ],
            );
            RawCache {
                enabled: boolean(sink, &t, "enabled"),
                default_ttl: str_or_int(sink, &t, "default_ttl"),
                ignore_query: boolean(sink, &t, "ignore_query"),
                max_size: str_or_int(sink, &t, "max_size"),
                stale_grace: str_or_int(sink, &t, "stale_grace"),
                lock_timeout: str_or_int(sink, &t, "lock_timeout"),
                disk_path: string(sink, &t, "disk_path"),
                disk_size: str_or_int(sink, &t, "disk_size"),
            }
        }),
        ip_access_limit: sub_table(sink, &t, "ip_access_limit").map(|t| {
            check_keys(sink, &t, &["enabled", "qps", "scope", "table_size"]);
            RawIpAccessLimit {
                enabled: boolean(sink, &t, "enabled"),
                qps: integer(sink, &t, "qps"),
                scope: string(sink, &t, "scope"),
                table_size: str_or_int(sink, &t, "table_size"),
            }
        }),
        rate_limiting: sub_table(sink, &t, "rate_limiting").map(|t| {
            check_keys(
                sink,
                &t,
                &["enabled", "mode", "parameter_check", "table_size", "rules"],
            );
            RawRateLimiting {
                span: t.span.clone(),
                enabled: boolean(sink, &t, "enabled"),
                mode: string(sink, &t, "mode"),
                parameter_check: boolean(sink, &t, "parameter_check"),
                table_size: str_or_int(sink, &t, "table_size"),
                rules: rules(sink, &t),
            }
        }),
        challenge: sub_table(sink, &t, "challenge").map(|t| {
            check_keys(
                sink,
                &t,
                &["difficulty", "clearance_ttl", "enabled", "paths"],
            );
            RawChallenge {
                difficulty: integer(sink, &t, "difficulty"),
                clearance_ttl: str_or_int(sink, &t, "clearance_ttl"),
                enabled: boolean(sink, &t, "enabled"),
                paths: string_list(sink, &t, "paths"),
            }
        }),
        https_redirect: boolean(sink, &t, "https_redirect"),
        tls: sub_table(sink, &t, "tls").map(|t| {
            check_keys(sink, &t, &["cert", "key"]);
            RawTls {
                span: t.span.clone(),
                cert: string(sink, &t, "cert"),
                key: string(sink, &t, "key"),
            }
        }),
        upstream_tls: sub_table(sink, &t, "upstream_tls").map(|t| {
            check_keys(sink, &t, &["enabled", "ca", "server_name"]);
            RawUpstreamTls {
                enabled: boolean(sink, &t, "enabled"),
                ca: string(sink, &t, "ca"),
                server_name: string(sink, &t, "server_name"),
            }
        }),
        access_control: sub_table(sink, &t, "access_control").map(|t| {
            check_keys(sink, &t, &["allow", "deny"]);
            RawAccessControl {
                allow: string_list(sink, &t, "allow"),
                deny: string_list(sink, &t, "deny"),
            }
        }),
        upstream: sub_table(sink, &t, "upstream").map(|t| reliability::upstream(sink, &t)),
        health_check: sub_table(sink, &t, "health_check")
            .map(|t| reliability::health_check(sink, &t)),
        reliability: reliability::domain(sink, &t),
    }
}

fn read_limit_req(sink: &mut Sink<'_>, t: Tbl<'_, '_>) -> RawLimitReq {
    check_keys(sink, &t, &["zone", "burst", "nodelay", "delay", "dry_run"]);
    RawLimitReq {
        span: t.span.clone(),
        zone: string(sink, &t, "zone"),
        burst: integer(sink, &t, "burst"),
        nodelay: boolean(sink, &t, "nodelay"),
        delay: integer(sink, &t, "delay"),
        dry_run: boolean(sink, &t, "dry_run"),
    }
}

fn read_limit_conn(sink: &mut Sink<'_>, t: Tbl<'_, '_>) -> RawLimitConn {
    check_keys(sink, &t, &["zone", "conn", "dry_run"]);
    RawLimitConn {
        span: t.span.clone(),
        zone: string(sink, &t, "zone"),
        conn: integer(sink, &t, "conn"),
        dry_run: boolean(sink, &t, "dry_run"),
    }
}

/// `[[domain.rate_limiting.rules]]`, each deserialized as a `RuleSpec`. A failing field is reported and
/// dropped, and the rule tried again, so one run names every bad field of a rule; bounded by its key count.
fn rules(sink: &mut Sink<'_>, t: &Tbl<'_, '_>) -> Vec<RawRule> {
    let Some(list) = t.get("rules") else {
        return Vec::new();
    };
    let path = t.key("rules");
    let DeValue::Array(items) = list.get_ref() else {
        sink.err(
            &path,
            &list.span(),
            format!(
                "expected an array of tables ([[{path}]] sections), found {}",
                type_name(list.get_ref())
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rule_path = format!("{path}[{i}]");
        let DeValue::Table(table) = item.get_ref() else {
            sink.err(
                &rule_path,
                &item.span(),
                format!("expected a table, found {}", type_name(item.get_ref())),
            );
            continue;
        };
        let fields: Vec<(String, Span)> = table
            .iter()
            .map(|(k, _)| (k.get_ref().to_string(), k.span()))
            .collect();
        let mut table = table.clone();
        let mut dropped: Vec<String> = Vec::new();
        let mut spec = None;
        for _ in 0..=fields.len() {
            let value = Spanned::new(item.span(), DeValue::Table(table.clone()));
            match RuleSpec::deserialize(ValueDeserializer::from(value)) {
                Ok(s) => {
                    if dropped.is_empty() {
                        spec = Some(s);
                    }
                    break;
                }
                Err(e) => {
                    let message = e.message().trim().to_string();
                    if let Some(missing) = missing_field(&message) {
                        let key = join(&rule_path, missing);
                        if !dropped.iter().any(|d| d == missing) && !sink.reported(&key) {
                            sink.err(key, &item.span(), "required key is missing");
                        }
                        break;
                    }
                    let at = e.span().unwrap_or_else(|| item.span());
                    let culprit = table
                        .iter()
                        .find(|(k, v)| {
                            contains(&k.span(), at.start) || contains(&v.span(), at.start)
                        })
                        .map(|(k, _)| k.get_ref().to_string());
                    match culprit {
                        Some(key) => {
                            let message = if message.starts_with("unknown field") {
                                unknown_key(sink, &rule_path, &key, RULE_KEYS)
                            } else {
                                message
                            };
                            sink.err(join(&rule_path, &key), &at, message);
                            table.remove(key.as_str());
                            dropped.push(key);
                        }
                        None => {
                            sink.err(&rule_path, &at, message);
                            break;
                        }
                    }
                }
            }
        }
        out.push(RawRule {
            span: item.span(),
            spec,
            fields,
        });
    }
    out
}

const RULE_KEYS: &[&str] = &[
    "name", "uri", "match", "priority", "object", "interval", "criteria", "action", "ttl", "scope",
];
