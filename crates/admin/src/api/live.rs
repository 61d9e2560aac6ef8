//! The console's live view of a domain: requests per second by outcome, the top talkers, and a block or
//! challenge of one client address started by hand (the one-click actions of the top-talkers list).

use std::net::IpAddr;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::node::int_param;
use super::{State, created};
use crate::control::{BlockInfo, StartError, TIMED_CHALLENGE_TTL_S};
use crate::edit::find_domain;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::live::{LiveView, TopTalkers};
use crate::reply::{Reply, Req};

/// Reads the query parameters `names` (whole numbers within `range`), rejecting any other.
fn params<const N: usize>(
    req: &Req,
    names: [&str; N],
    ranges: [std::ops::RangeInclusive<u64>; N],
) -> Result<[Option<u64>; N], ApiError> {
    let mut out = [None; N];
    let mut errors = Vec::new();
    for (k, v) in req.query_pairs() {
        let Some(i) = names.iter().position(|n| *n == k) else {
            errors.push(FieldError::field(
                &k,
                format!("unknown parameter {k:?}; expected {}", names.join(", ")),
            ));
            continue;
        };
        let r = &ranges[i];
        match int_param::<u64>(
            &k,
            &v,
            &format!("a whole number, {}..={}", r.start(), r.end()),
        ) {
            Ok(n) if r.contains(&n) => out[i] = Some(n),
            Ok(n) => errors.push(FieldError::field(
                &k,
                format!("{k} must be {}..={}; found {n}", r.start(), r.end()),
            )),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::invalid(errors))
    }
}

fn not_kept(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("this node keeps no live counters for {name}"),
    )
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/live", tag = "live",
    params(("name" = String, Path, description = "Host name"),
        ("step" = Option<u64>, Query, description = "Seconds per point, 1..=60 (default 5)")),
    responses((status = 200, description = "The last ten minutes by outcome, oldest first", body = LiveView),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn live(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let [step] = params(req, ["step"], [1..=60])?;
    let view = state
        .control
        .live(&d.name, step.unwrap_or(5))
        .ok_or_else(|| not_kept(&d.name))?;
    Ok(Reply::ok(&view))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/top-talkers", tag = "live",
    params(("name" = String, Path, description = "Host name"),
        ("limit" = Option<u64>, Query, description = "Keys per list, 1..=100 (default 10)")),
    responses((status = 200, description = "Heaviest addresses, networks, paths and user agents of the last minute \
        and the last hour", body = TopTalkers),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn top_talkers(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let [limit] = params(req, ["limit"], [1..=100])?;
    let top = state
        .control
        .top_talkers(&d.name, usize::try_from(limit.unwrap_or(10)).unwrap_or(10))
        .ok_or_else(|| not_kept(&d.name))?;
    Ok(Reply::ok(&top))
}

/// `POST /api/v1/domains/{name}/blocks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBlock {
    /// The client address (an IPv6 address stands for its client prefix, `[node] ipv6_prefix`).
    #[schema(example = "198.51.100.7")]
    pub ip: String,
    /// `block` (403, the default) or `bot_detection` (the challenge page).
    pub action: Option<String>,
    /// Seconds, 1..=2592000.
    #[schema(example = 600)]
    pub ttl: u64,
}

fn start_body(req: &Req) -> Result<(IpAddr, bool, u64), ApiError> {
    let body = req.json_object()?;
    let mut errors = Vec::new();
    for k in body
        .keys()
        .filter(|k| !["ip", "action", "ttl"].contains(&k.as_str()))
    {
        errors.push(FieldError::field(
            k.as_str(),
            format!("unknown member {k:?}; expected ip, action, ttl"),
        ));
    }
    let ip = match body.get("ip") {
        Some(Value::String(s)) => s.parse::<IpAddr>().map_err(|_| s.clone()),
        Some(v) => Err(v.to_string()),
        None => Err("nothing".to_owned()),
    };
    let ip = ip
        .map_err(|found| {
            errors.push(FieldError::field(
                "ip",
                format!("ip is a client address such as \"198.51.100.7\"; found {found}"),
            ))
        })
        .ok();
    let challenge = match body.get("action") {
        None | Some(Value::Null) => Some(false),
        Some(Value::String(a)) if a == "block" => Some(false),
        Some(Value::String(a)) if a == "bot_detection" => Some(true),
        Some(_) => {
            errors.push(FieldError::field(
                "action",
                "action is \"block\" or \"bot_detection\"",
            ));
            None
        }
    };
    let ttl = body
        .get("ttl")
        .and_then(Value::as_u64)
        .filter(|t| TIMED_CHALLENGE_TTL_S.contains(t));
    if ttl.is_none() {
        errors.push(FieldError::field(
            "ttl",
            "ttl is a number of seconds, 1..=2592000 (30 days), e.g. 600",
        ));
    }
    match (ip, challenge, ttl) {
        (Some(ip), Some(c), Some(t)) if errors.is_empty() => Ok((ip, c, t)),
        _ => Err(ApiError::invalid(errors)),
    }
}

#[utoipa::path(post, path = "/api/v1/domains/{name}/blocks", tag = "live",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = StartBlock, content_type = "application/json"),
    responses((status = 201, description = "In force now; listed under /api/v1/blocks (Location), lifted there",
            body = BlockInfo),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A stronger block of the client is in force", body = ErrorBody)))]
pub(crate) fn start_block(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let (ip, challenge, ttl) = start_body(req)?;
    let info = state
        .control
        .start_block(&d.name, ip, challenge, ttl)
        .map_err(|e| match e {
            StartError::NoDomain(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            StartError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StartError::Invalid(m) => ApiError::invalid(vec![FieldError::message(m)]),
        })?;
    Ok(created(&format!("/api/v1/blocks/{}", info.id), &info))
}
