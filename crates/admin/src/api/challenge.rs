//! A domain's bot-detection challenge: its settings (`[domain.challenge]`, edited through the configuration like
//! every other setting) and the timed challenges an operator starts for the whole domain or a path prefix, which
//! are kept by the node like blocks in force (listed and lifted under `/api/v1/blocks`).

use edgeguard_config::Config;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{State, created, edit_domain_json, strip_prefix};
use crate::control::{BlockInfo, StartError, TIMED_CHALLENGE_TTL_S};
use crate::edit::{domain_json, find_domain, merge_patch};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::openapi::ChallengeDoc;
use crate::reply::{Reply, Req};

/// Rule name of a timed challenge started through this API, as the node lists it.
const OPERATOR_RULE: &str = "admin-api";

/// `GET .../challenge`: the settings, plus the timed challenges of the domain in force now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeView {
    pub enabled: bool,
    pub difficulty: u8,
    /// e.g. `"1h"`.
    pub clearance_ttl: String,
    pub paths: Vec<String>,
    /// Read only: timed challenges in force on this domain (started through `.../challenge/start`).
    pub timed: Vec<BlockInfo>,
}

fn view(state: &State, config: &Config, name: &str) -> Result<Value, ApiError> {
    let i = find_domain(config, name)?;
    let d = &config.domains[i];
    let mut v = domain_json(config, i)?
        .get("challenge")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let timed: Vec<BlockInfo> = state
        .control
        .blocks()
        .into_iter()
        .filter(|b| b.domain.eq_ignore_ascii_case(&d.name) && b.rule == OPERATOR_RULE)
        .collect();
    if let Value::Object(m) = &mut v {
        m.insert("timed".into(), json!(timed));
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/challenge", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = ChallengeView), (status = 404, body = ErrorBody)))]
pub(crate) fn get_challenge(state: &State, name: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&view(state, &state.control.config(), name)?))
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/challenge", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = ChallengeDoc, content_type = "application/json",
        description = "Members given replace the setting's; `null` returns a member to its default"),
    responses((status = 200, body = ChallengeView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_challenge(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let mut body = req.json_object()?;
    body.remove("timed");
    let patch = json!({ "challenge": Value::Object(body) });
    edit_domain_json(state, name, |d| {
        merge_patch(d, &patch);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "challenge"))?;
    get_challenge(state, name)
}

/// `POST .../challenge/start`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartChallenge {
    /// Seconds, 1..=2592000 (30 days).
    #[schema(example = 600)]
    pub ttl: u64,
    /// A path prefix (starting with `/`); absent = the whole domain.
    #[schema(example = "/login")]
    pub path: Option<String>,
}

fn start_body(req: &Req) -> Result<StartChallenge, ApiError> {
    let body = req.json_object()?;
    let mut errors = Vec::new();
    for k in body.keys().filter(|k| *k != "ttl" && *k != "path") {
        errors.push(FieldError::field(
            k.as_str(),
            format!("unknown member {k:?}; expected ttl and an optional path"),
        ));
    }
    let (lo, hi) = (TIMED_CHALLENGE_TTL_S.start(), TIMED_CHALLENGE_TTL_S.end());
    let ttl = match body.get("ttl") {
        Some(v) => match v.as_u64() {
            Some(t) if TIMED_CHALLENGE_TTL_S.contains(&t) => Some(t),
            _ => {
                errors.push(FieldError::field(
                    "ttl",
                    format!("ttl is a number of seconds, {lo}..={hi} (30 days); found {v}"),
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::field(
                "ttl",
                "missing: how many seconds the challenge lasts, e.g. 600",
            ));
            None
        }
    };
    let path = match body.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => match edgeguard_config::challenge_path(p) {
            Ok(p) => Some(p),
            Err(m) => {
                errors.push(FieldError::field("path", m));
                None
            }
        },
        Some(v) => {
            errors.push(FieldError::field(
                "path",
                format!("path is a string such as \"/login\"; found {v}"),
            ));
            None
        }
    };
    match ttl {
        Some(ttl) if errors.is_empty() => Ok(StartChallenge { ttl, path }),
        _ => Err(ApiError::invalid(errors)),
    }
}

#[utoipa::path(post, path = "/api/v1/domains/{name}/challenge/start", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = StartChallenge, content_type = "application/json"),
    responses((status = 201, description = "In force now; listed under /api/v1/blocks (Location), lifted there",
            body = BlockInfo),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A block of the whole domain is in force", body = ErrorBody)))]
pub(crate) fn start_challenge(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let body = start_body(req)?;
    let info = state
        .control
        .start_challenge(&d.name, body.ttl, body.path.as_deref())
        .map_err(|e| match e {
            StartError::NoDomain(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            StartError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StartError::Invalid(m) => ApiError::invalid(vec![FieldError::message(m)]),
        })?;
    Ok(created(&format!("/api/v1/blocks/{}", info.id), &info))
}
