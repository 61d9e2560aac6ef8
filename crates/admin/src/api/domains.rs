//! `/api/v1/domains` and `/api/v1/domains/{name}`: a domain as a whole.

use http::StatusCode;
use serde_json::{Value, json};

use super::{State, created};
use crate::edit::{DomainEdit, domain_json, domains_json, edit_domains, find_domain, merge_patch};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::openapi::{DomainDoc, DomainList};
use crate::reply::{Reply, Req};

#[utoipa::path(get, path = "/api/v1/domains", tag = "domains",
    responses((status = 200, description = "Every domain, in configuration order", body = DomainList)))]
pub(crate) fn list_domains(state: &State) -> Result<Reply, ApiError> {
    let config = state.control.config();
    Ok(Reply::ok(&json!({ "domains": domains_json(&config)? })))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = DomainDoc), (status = 404, body = ErrorBody)))]
pub(crate) fn get_domain(state: &State, name: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let i = find_domain(&config, name)?;
    Ok(Reply::ok(&domain_json(&config, i)?))
}

/// The body's `name`, which must be a string; `None` when absent.
fn body_name(v: &Value) -> Result<Option<String>, ApiError> {
    match v.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(vec![FieldError::field(
            "name",
            "name must be a host name string",
        )])),
    }
}

#[utoipa::path(post, path = "/api/v1/domains", tag = "domains",
    request_body(content = DomainDoc, content_type = "application/json"),
    responses((status = 201, description = "Created; the domain as stored", body = DomainDoc),
        (status = 400, body = ErrorBody), (status = 409, description = "A domain of that name exists", body = ErrorBody)))]
pub(crate) fn create_domain(state: &State, req: &Req) -> Result<Reply, ApiError> {
    let body = Value::Object(req.json_object()?);
    let Some(name) = body_name(&body)? else {
        return Err(ApiError::invalid(vec![FieldError::field(
            "name",
            "missing: a new domain needs a name, e.g. \"www.example.com\"",
        )]));
    };
    state.change(|current| {
        if find_domain(current, &name).is_ok() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "a domain named {name:?} exists already; PUT /api/v1/domains/{name} replaces it"
                ),
            ));
        }
        let next = edit_domains(current, DomainEdit::Insert(body.clone()))?;
        Ok((next, ()))
    })?;
    let config = state.control.config();
    let i = find_domain(&config, &name)?;
    let stored = domain_json(&config, i)?;
    let location = format!("/api/v1/domains/{}", config.domains[i].name);
    Ok(created(&location, &stored))
}

fn replace(state: &State, name: &str, body: Value) -> Result<Reply, ApiError> {
    let index = state.change(|current| {
        let i = find_domain(current, name)?;
        let next = edit_domains(current, DomainEdit::Replace(i, body.clone()))?;
        Ok((next, i))
    })?;
    Ok(Reply::ok(&domain_json(&state.control.config(), index)?))
}

/// A body's name must be the URL's: renaming is a delete and a create, so a typo cannot move a domain.
fn same_name(body: &mut Value, name: &str) -> Result<(), ApiError> {
    match body_name(body)? {
        Some(n) if !n.eq_ignore_ascii_case(name) => {
            Err(ApiError::invalid(vec![FieldError::field(
                "name",
                format!(
                    "name {n:?} differs from the domain in the URL ({name:?}); a domain cannot be renamed"
                ),
            )]))
        }
        _ => {
            if let Value::Object(m) = body {
                m.insert("name".into(), Value::String(name.to_owned()));
            }
            Ok(())
        }
    }
}

#[utoipa::path(put, path = "/api/v1/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = DomainDoc, content_type = "application/json",
        description = "The whole domain; settings left out take their defaults"),
    responses((status = 200, body = DomainDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_domain(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let mut body = Value::Object(req.json_object()?);
    same_name(&mut body, name)?;
    replace(state, name, body)
}

#[utoipa::path(patch, path = "/api/v1/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = Object, content_type = "application/merge-patch+json",
        description = "A JSON merge patch (RFC 7396) of the domain: members replace, null removes (back to the default)"),
    responses((status = 200, body = DomainDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn patch_domain(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let patch = Value::Object(req.json_object()?);
    let config = state.control.config();
    let mut body = domain_json(&config, find_domain(&config, name)?)?;
    merge_patch(&mut body, &patch);
    same_name(&mut body, name)?;
    replace(state, name, body)
}

#[utoipa::path(delete, path = "/api/v1/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub(crate) fn delete_domain(state: &State, name: &str) -> Result<Reply, ApiError> {
    state.change(|current| {
        let i = find_domain(current, name)?;
        Ok((edit_domains(current, DomainEdit::Remove(i))?, ()))
    })?;
    Ok(Reply::no_content())
}

/// Applies `f` to the JSON of domain `name` and stores the result; errors are relative to the domain.
pub(crate) fn edit_domain_json(
    state: &State,
    name: &str,
    f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    state.change(|current| {
        let i = find_domain(current, name)?;
        let mut body = domain_json(current, i)?;
        f(&mut body)?;
        Ok((edit_domains(current, DomainEdit::Replace(i, body))?, ()))
    })
}
