//! `POST /api/v1/domains/{name}/purge`: removes objects from the domain's cache on this node, by URL, by
//! path prefix or by tag (the origin's `Cache-Tag`/`Surrogate-Key`).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::State;
use crate::control::PurgeTarget;
use crate::edit::find_domain;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::reply::{Reply, Req};

/// Exactly one of `urls`, `prefix`, `tags`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgeRequest {
    /// Paths with their query, or absolute URLs.
    #[schema(example = json!(["/index.html", "/app.js?v=2"]))]
    pub urls: Option<Vec<String>>,
    /// A path prefix starting with `/`.
    #[schema(example = "/img/")]
    pub prefix: Option<String>,
    /// Tags from the origin's `Cache-Tag` or `Surrogate-Key` header.
    #[schema(example = json!(["product-42"]))]
    pub tags: Option<Vec<String>>,
}

/// How many objects a purge removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    pub purged: u64,
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::invalid(vec![FieldError::field(
            field,
            format!("{field} is a list of strings"),
        )])
    };
    let list = v.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

fn target(req: &Req) -> Result<PurgeTarget, ApiError> {
    let body = req.json_object()?;
    let mut found = Vec::new();
    for (k, v) in &body {
        match k.as_str() {
            "urls" => found.push(PurgeTarget::Urls(strings(v, "urls")?)),
            "tags" => found.push(PurgeTarget::Tags(strings(v, "tags")?)),
            "prefix" => match v.as_str() {
                Some(p) if p.starts_with('/') => found.push(PurgeTarget::Prefix(p.to_owned())),
                _ => {
                    return Err(ApiError::invalid(vec![FieldError::field(
                        "prefix",
                        "prefix is a path starting with /, such as \"/img/\"",
                    )]));
                }
            },
            other => {
                return Err(ApiError::invalid(vec![FieldError::field(
                    other,
                    format!("unknown member {other:?}; expected one of urls, prefix, tags"),
                )]));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::invalid(vec![FieldError::message(
            "give exactly one of urls, prefix, tags",
        )])),
    }
}

#[utoipa::path(post, path = "/api/v1/domains/{name}/purge", tag = "cache",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = PurgeRequest, content_type = "application/json"),
    responses((status = 200, description = "Removed from this node's cache", body = PurgeResult),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such domain, or it keeps no cache", body = ErrorBody)))]
pub(crate) fn purge(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    let what = target(req)?;
    let purged = state
        .control
        .purge(&d.name, &what)
        .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, m))?;
    Ok(Reply::json(StatusCode::OK, &PurgeResult { purged }))
}
