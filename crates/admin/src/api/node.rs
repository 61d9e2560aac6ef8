//! What the node knows beyond one domain's settings: back-to-origin addresses, statistics, the activity log,
//! blocks in force, and the configuration file as a whole.

use std::net::{IpAddr, ToSocketAddrs};

use edgeguard_config::Tier;
use edgeguard_store::{ActivityQuery, MAX_PAGE_SIZE, POINT_MS};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::State;
use crate::edit::{export, find_domain, validate};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::openapi::{ActivityPageDoc, BaselineDoc, BlockList, ProtectionTableList, StatsDoc};
use crate::reply::{Reply, Req};

/// `GET .../origin-addresses`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OriginAddresses {
    pub domain: String,
    /// `parents`: the domain's parent nodes go to the origin; `node`: this node does (a parent node, or an edge
    /// for a domain without parents).
    pub via: String,
    /// Every address the origin should allow, without duplicates.
    pub addresses: Vec<String>,
    /// Each parent as configured and what its name resolved to (empty when `via` is `node`).
    pub parents: Vec<ParentAddresses>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParentAddresses {
    pub upstream: String,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/origin-addresses", tag = "domains",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "The addresses an origin must allow for this domain", body = OriginAddresses),
        (status = 404, body = ErrorBody)))]
pub(crate) fn origin_addresses(state: &State, name: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    Ok(Reply::ok(&back_to_origin(
        &config,
        d,
        &state.control.node_addresses(),
    )))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/protection-tables", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "Capacity, use, evictions and admission refusals of each protection \
        table of the domain: the IP access limit's (`ip-access-limit`), then each rule's", body = ProtectionTableList),
        (status = 404, body = ErrorBody)))]
pub(crate) fn protection_tables(state: &State, name: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let tables = state.control.protection_tables(&d.name);
    Ok(Reply::ok(&ProtectionTableList { tables }))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/baseline", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, description = "What normal or emergency mode learned of the domain's traffic \
        (percentiles of each measure, shares, busiest paths), the thresholds in force, and whether it is still \
        warming up", body = BaselineDoc),
        (status = 404, body = ErrorBody)))]
pub(crate) fn baseline(state: &State, name: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let view = state.control.baseline(&d.name);
    let learning = d.rate_limiting.enabled
        && matches!(
            d.rate_limiting.mode,
            edgeguard_config::Mode::Normal | edgeguard_config::Mode::Emergency
        );
    Ok(Reply::ok(&BaselineDoc {
        domain: d.name.clone(),
        learning,
        view,
    }))
}

/// The addresses an origin must allow for domain `d`: its parents' (names resolved now, as the edge will when
/// it connects) when this is an edge with parents, else this node's own `node_addresses`. Shared by the API and
/// `edgeguard origin-allowlist`.
pub fn back_to_origin(
    config: &edgeguard_config::Config,
    d: &edgeguard_config::Domain,
    node_addresses: &[IpAddr],
) -> OriginAddresses {
    let mut addresses: Vec<String> = Vec::new();
    let mut parents = Vec::new();
    let via_node = config.node.tier == Tier::Parent || d.parents.is_empty();
    if via_node {
        for ip in node_addresses {
            push_unique(&mut addresses, ip.to_string());
        }
    } else {
        for p in &d.parents {
            let upstream = format!("{}:{}", p.host, p.port);
            let resolved: Result<Vec<IpAddr>, String> = match p.host.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![ip]),
                Err(_) => (p.host.as_str(), p.port)
                    .to_socket_addrs()
                    .map(|it| it.map(|a| a.ip()).collect())
                    .map_err(|e| format!("cannot resolve {}: {e}", p.host)),
            };
            let (list, error) = match resolved {
                Ok(ips) => (ips.iter().map(IpAddr::to_string).collect(), None),
                Err(e) => (Vec::new(), Some(e)),
            };
            for a in &list {
                push_unique(&mut addresses, a.clone());
            }
            parents.push(ParentAddresses {
                upstream,
                addresses: list,
                error,
            });
        }
    }
    OriginAddresses {
        domain: d.name.clone(),
        via: if via_node { "node" } else { "parents" }.into(),
        addresses,
        parents,
    }
}

fn push_unique(list: &mut Vec<String>, s: String) {
    if !list.contains(&s) {
        list.push(s);
    }
}

pub(crate) fn int_param<T: std::str::FromStr>(
    key: &str,
    value: &str,
    what: &str,
) -> Result<T, FieldError> {
    value
        .parse::<T>()
        .map_err(|_| FieldError::field(key, format!("{key} must be {what}; found {value:?}")))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/stats", tag = "domains",
    params(("name" = String, Path, description = "Host name"),
        ("from" = Option<i64>, Query, description = "Unix ms; default 24 hours before `to`"),
        ("to" = Option<i64>, Query, description = "Unix ms, exclusive; default now")),
    responses((status = 200, description = "Five-minute points, oldest first", body = StatsDoc),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn stats(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let mut from = None;
    let mut to = None;
    let mut errors = Vec::new();
    for (k, v) in req.query_pairs() {
        let slot = match k.as_str() {
            "from" => &mut from,
            "to" => &mut to,
            _ => {
                errors.push(FieldError::field(
                    &k,
                    format!("unknown parameter {k:?}; expected from, to"),
                ));
                continue;
            }
        };
        match int_param::<i64>(&k, &v, "a Unix time in milliseconds") {
            Ok(n) => *slot = Some(n),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let to = to.unwrap_or_else(|| state.control.now_ms());
    let from = from.unwrap_or(to - 86_400_000);
    let points = state
        .control
        .stats_points(&d.name, from, to)
        .map_err(ApiError::internal)?;
    Ok(Reply::ok(&json!({
        "domain": d.name,
        "from": from,
        "to": to,
        "point_ms": POINT_MS,
        "points": points,
    })))
}

#[utoipa::path(get, path = "/api/v1/activity", tag = "activity",
    params(("domain" = Option<String>, Query, description = "Host name"),
        ("from" = Option<i64>, Query, description = "Unix ms, inclusive"),
        ("to" = Option<i64>, Query, description = "Unix ms, exclusive"),
        ("rule" = Option<String>, Query, description = "Rule name"),
        ("object" = Option<String>, Query, description = "Object value, e.g. an IP"),
        ("action" = Option<String>, Query, description = "block | bot_detection | ..."),
        ("page" = Option<u32>, Query, description = "From 1; default 1"),
        ("page_size" = Option<u32>, Query, description = "1 to 100; default 20")),
    responses((status = 200, description = "Newest first", body = ActivityPageDoc), (status = 400, body = ErrorBody)))]
pub(crate) fn activity(state: &State, req: &Req) -> Result<Reply, ApiError> {
    let mut q = ActivityQuery::default();
    let mut errors = Vec::new();
    for (k, v) in req.query_pairs() {
        // Host names compare without regard to case, as in the configuration.
        let text = || {
            (!v.is_empty()).then(|| {
                if k == "domain" {
                    v.to_ascii_lowercase()
                } else {
                    v.clone()
                }
            })
        };
        let r = match k.as_str() {
            "domain" | "rule" | "object" | "action" => {
                let slot = match k.as_str() {
                    "domain" => &mut q.domain,
                    "rule" => &mut q.rule,
                    "object" => &mut q.object_value,
                    _ => &mut q.action,
                };
                *slot = text();
                Ok(())
            }
            "from" if v.is_empty() => Ok(()),
            "to" if v.is_empty() => Ok(()),
            "from" => int_param(&k, &v, "a Unix time in milliseconds").map(|n| q.from_ms = Some(n)),
            "to" => int_param(&k, &v, "a Unix time in milliseconds").map(|n| q.to_ms = Some(n)),
            "page" => int_param::<u32>(&k, &v, "a page number from 1")
                .and_then(|n| match n {
                    0 => Err(FieldError::field("page", "page starts at 1")),
                    n => Ok(n),
                })
                .map(|n| q.page = n),
            "page_size" => int_param::<u32>(&k, &v, "a number")
                .and_then(|n| match n {
                    1..=MAX_PAGE_SIZE => Ok(n),
                    _ => Err(FieldError::field(
                        "page_size",
                        format!("page_size must be 1 to {MAX_PAGE_SIZE}; found {n}"),
                    )),
                })
                .map(|n| q.page_size = n),
            _ => Err(FieldError::field(
                &k,
                format!(
                    "unknown parameter {k:?}; expected domain, from, to, rule, object, action, page, page_size"
                ),
            )),
        };
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = state.control.activity(&q).map_err(ApiError::internal)?;
    Ok(Reply::ok(&page))
}

#[utoipa::path(get, path = "/api/v1/blocks", tag = "activity",
    responses((status = 200, description = "Blocks and challenges in force", body = BlockList)))]
pub(crate) fn list_blocks(state: &State) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&json!({ "blocks": state.control.blocks() })))
}

#[utoipa::path(delete, path = "/api/v1/blocks/{id}", tag = "activity",
    params(("id" = String, Path, description = "A block's id from GET /api/v1/blocks")),
    responses((status = 204, description = "Lifted"), (status = 404, body = ErrorBody)))]
pub(crate) fn lift_block(state: &State, id: &str) -> Result<Reply, ApiError> {
    if state.control.lift_block(id) {
        Ok(Reply::no_content())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no block with id {id:?} is in force"),
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/config", tag = "config",
    responses((status = 200, description = "The running configuration as a file, without the admin token",
        content_type = "application/toml", body = String)))]
pub(crate) fn get_config(state: &State) -> Result<Reply, ApiError> {
    Ok(Reply::bytes(
        StatusCode::OK,
        "application/toml; charset=utf-8",
        export(&state.control.config()),
    ))
}

#[utoipa::path(put, path = "/api/v1/config", tag = "config",
    request_body(content = String, content_type = "application/toml",
        description = "A whole configuration file; without `admin.token` the running token is kept"),
    responses((status = 200, description = "Applied"),
        (status = 400, description = "Every error, with key and line", body = ErrorBody)))]
pub(crate) fn put_config(state: &State, req: &Req) -> Result<Reply, ApiError> {
    let text = std::str::from_utf8(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the configuration is not UTF-8: {e}")))?;
    let mut next = validate(text).map_err(|errors| {
        ApiError::invalid(
            errors
                .into_iter()
                .map(|e| FieldError {
                    field: (!e.key.is_empty()).then_some(e.key),
                    line: (e.line > 0).then_some(e.line),
                    ..FieldError::message(e.message)
                })
                .collect(),
        )
    })?;
    let domains = next.domains.len();
    state.change(move |current| {
        if next.admin.token.is_none() {
            next.admin.token = current.admin.token.clone();
        }
        Ok((next, ()))
    })?;
    Ok(Reply::ok(&json!({ "applied": true, "domains": domains })))
}
