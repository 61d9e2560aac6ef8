//! A domain's protection: the IP access limit (SPEC section 3) and rate limiting with its custom rules (section
//! 4). Each endpoint edits one part of the domain's JSON and goes through the same whole-file validation as
//! every other change; errors are given relative to the part edited (`qps`, `mode`, or a rule's `name`).

use edgeguard_config::Config;
use edgeguard_rules::{RuleSet, RuleSpec};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{State, created, edit_domain_json, strip_prefix};
use crate::edit::{domain_json, find_domain, merge_patch};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::openapi::{IpAccessLimitDoc, RateLimitingDoc, RuleDoc, RuleList};
use crate::reply::{Reply, Req};

/// `GET .../ip-access-limit`: the setting and the default the node recommends from its statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct IpAccessLimitView {
    pub enabled: bool,
    /// As configured; `null` = the recommended default.
    pub qps: Option<u32>,
    /// SPEC section 3's default from the last 30 days of this node's statistics (at least 10); `null` when the
    /// statistics could not be read (see `recommendation_error`).
    pub recommended_qps: Option<u32>,
    /// Five-minute points the recommendation was computed from.
    pub recommendation_points: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation_error: Option<String>,
    /// The limit in force when enabled: `qps`, else `recommended_qps`.
    pub effective_qps: Option<u32>,
}

fn ip_view(state: &State, config: &Config, name: &str) -> Result<IpAccessLimitView, ApiError> {
    let d = &config.domains[find_domain(config, name)?];
    let (recommended, points, error) = match state.control.recommended_qps(&d.name) {
        Ok(r) => (Some(r.qps), r.points, None),
        Err(e) => (None, 0, Some(e)),
    };
    Ok(IpAccessLimitView {
        enabled: d.ip_access_limit.enabled,
        qps: d.ip_access_limit.qps,
        recommended_qps: recommended,
        recommendation_points: points,
        recommendation_error: error,
        effective_qps: d.ip_access_limit.qps.or(recommended),
    })
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/ip-access-limit", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = IpAccessLimitView), (status = 404, body = ErrorBody)))]
pub(crate) fn get_ip_access_limit(state: &State, name: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&ip_view(state, &state.control.config(), name)?))
}

/// Removes members a client may send back from a GET but that are not settings.
fn drop_read_only(body: &mut serde_json::Map<String, Value>, keys: &[&str]) {
    for k in keys {
        body.remove(*k);
    }
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/ip-access-limit", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = IpAccessLimitDoc, content_type = "application/json",
        description = "Members given replace the setting's; `\"qps\": null` returns to the recommended default"),
    responses((status = 200, body = IpAccessLimitView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_ip_access_limit(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let mut body = req.json_object()?;
    drop_read_only(
        &mut body,
        &[
            "recommended_qps",
            "recommendation_points",
            "recommendation_error",
            "effective_qps",
        ],
    );
    let patch = json!({ "ip_access_limit": Value::Object(body) });
    edit_domain_json(state, name, |d| {
        merge_patch(d, &patch);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "ip_access_limit"))?;
    get_ip_access_limit(state, name)
}

/// Names of a domain's rules in the order the data plane tries them.
fn evaluation_order(rules: &[RuleSpec], parameter_check: bool) -> Vec<String> {
    RuleSet::compile(rules, parameter_check)
        .map(|set| set.rules().iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

fn rate_limiting_view(config: &Config, name: &str) -> Result<Value, ApiError> {
    let i = find_domain(config, name)?;
    let r = &config.domains[i].rate_limiting;
    let mut v = domain_json(config, i)?
        .get("rate_limiting")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut v {
        m.entry("rules").or_insert_with(|| json!([]));
        m.insert(
            "evaluation_order".into(),
            json!(evaluation_order(&r.rules, r.parameter_check)),
        );
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/rate-limiting", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = RateLimitingDoc), (status = 404, body = ErrorBody)))]
pub(crate) fn get_rate_limiting(state: &State, name: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(&rate_limiting_view(
        &state.control.config(),
        name,
    )?))
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/rate-limiting", tag = "protection",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = RateLimitingDoc, content_type = "application/json",
        description = "Members given replace the setting's (`rules`, when given, replaces the whole list)"),
    responses((status = 200, body = RateLimitingDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_rate_limiting(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let mut body = req.json_object()?;
    drop_read_only(&mut body, &["evaluation_order"]);
    let patch = json!({ "rate_limiting": Value::Object(body) });
    edit_domain_json(state, name, |d| {
        merge_patch(d, &patch);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "rate_limiting"))?;
    get_rate_limiting(state, name)
}

/// The rules of domain `name` as JSON, with the domain's position.
fn rules_of(d: &Value) -> Vec<Value> {
    d.pointer("/rate_limiting/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn set_rules(d: &mut Value, rules: Vec<Value>) {
    if let Value::Object(m) = d {
        let r = m.entry("rate_limiting").or_insert_with(|| json!({}));
        if let Value::Object(r) = r {
            r.insert("rules".into(), Value::Array(rules));
        }
    }
}

fn rule_position(rules: &[Value], rule: &str) -> Option<usize> {
    rules.iter().position(|r| {
        r.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case(rule))
    })
}

fn no_rule(name: &str, rule: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("domain {name:?} has no rule named {rule:?}"),
    )
}

/// Errors of an edit of the rule at position `j`: that rule's fields by their own name, the rest relative to
/// `rate_limiting`.
fn rule_errors(mut e: ApiError, j: usize) -> ApiError {
    let own = format!("rate_limiting.rules[{j}].");
    for f in &mut e.errors {
        if let Some(field) = &f.field {
            if let Some(rest) = field.strip_prefix(&own) {
                f.field = Some(rest.to_owned());
            } else if let Some(rest) = field.strip_prefix("rate_limiting.") {
                f.field = Some(rest.to_owned());
            }
        }
    }
    // The generated file lists a rule's keys alphabetically; the console's form (and SPEC) go in model order.
    const ORDER: [&str; 9] = [
        "name", "uri", "match", "priority", "object", "interval", "criteria", "action", "ttl",
    ];
    e.errors.sort_by_key(|f| {
        let rank = f
            .field
            .as_deref()
            .and_then(|x| ORDER.iter().position(|o| *o == x))
            .unwrap_or(ORDER.len());
        (f.index.is_some(), rank)
    });
    e
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/rate-limiting/rules", tag = "rules",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = RuleList), (status = 404, body = ErrorBody)))]
pub(crate) fn list_rules(state: &State, name: &str) -> Result<Reply, ApiError> {
    let v = rate_limiting_view(&state.control.config(), name)?;
    Ok(Reply::ok(&json!({
        "rules": v.get("rules").cloned().unwrap_or_else(|| json!([])),
        "evaluation_order": v.get("evaluation_order").cloned().unwrap_or_else(|| json!([])),
    })))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/rate-limiting/rules/{rule}", tag = "rules",
    params(("name" = String, Path, description = "Host name"), ("rule" = String, Path, description = "Rule name")),
    responses((status = 200, body = RuleDoc), (status = 404, body = ErrorBody)))]
pub(crate) fn get_rule(state: &State, name: &str, rule: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let rules = rules_of(&domain_json(&config, find_domain(&config, name)?)?);
    let j = rule_position(&rules, rule).ok_or_else(|| no_rule(name, rule))?;
    Ok(Reply::ok(&rules[j]))
}

#[utoipa::path(post, path = "/api/v1/domains/{name}/rate-limiting/rules", tag = "rules",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = RuleDoc, content_type = "application/json"),
    responses((status = 201, body = RuleDoc),
        (status = 400, description = "Every violation of the rule model at once", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) fn add_rule(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let rule = Value::Object(req.json_object()?);
    let mut position = 0;
    edit_domain_json(state, name, |d| {
        let mut rules = rules_of(d);
        position = rules.len();
        rules.push(rule.clone());
        set_rules(d, rules);
        Ok(())
    })
    .map_err(|e| rule_errors(e, position))?;
    let config = state.control.config();
    let rules = rules_of(&domain_json(&config, find_domain(&config, name)?)?);
    let stored = rules.get(position).cloned().unwrap_or(rule);
    let rule_name = stored.get("name").and_then(Value::as_str).unwrap_or("");
    let location = format!("/api/v1/domains/{name}/rate-limiting/rules/{rule_name}");
    Ok(created(&location, &stored))
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/rate-limiting/rules/{rule}", tag = "rules",
    params(("name" = String, Path, description = "Host name"), ("rule" = String, Path, description = "Rule name")),
    request_body(content = RuleDoc, content_type = "application/json",
        description = "The whole rule; a different `name` renames it"),
    responses((status = 200, body = RuleDoc), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn put_rule(
    state: &State,
    name: &str,
    rule: &str,
    req: &Req,
) -> Result<Reply, ApiError> {
    let mut body = req.json_object()?;
    body.entry("name")
        .or_insert_with(|| Value::String(rule.to_owned()));
    let new = Value::Object(body);
    let mut position = 0;
    edit_domain_json(state, name, |d| {
        let mut rules = rules_of(d);
        position = rule_position(&rules, rule).ok_or_else(|| no_rule(name, rule))?;
        rules[position] = new.clone();
        set_rules(d, rules);
        Ok(())
    })
    .map_err(|e| rule_errors(e, position))?;
    let config = state.control.config();
    let rules = rules_of(&domain_json(&config, find_domain(&config, name)?)?);
    Ok(Reply::ok(&rules.get(position).cloned().unwrap_or(new)))
}

#[utoipa::path(delete, path = "/api/v1/domains/{name}/rate-limiting/rules/{rule}", tag = "rules",
    params(("name" = String, Path, description = "Host name"), ("rule" = String, Path, description = "Rule name")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "E.g. the last rule of an enabled custom mode", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) fn delete_rule(state: &State, name: &str, rule: &str) -> Result<Reply, ApiError> {
    edit_domain_json(state, name, |d| {
        let mut rules = rules_of(d);
        let j = rule_position(&rules, rule).ok_or_else(|| no_rule(name, rule))?;
        rules.remove(j);
        set_rules(d, rules);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "rate_limiting"))?;
    Ok(Reply::no_content())
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/rate-limiting/rules/order", tag = "rules",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = crate::openapi::RuleOrder, content_type = "application/json"),
    responses((status = 200, body = RuleList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) fn order_rules(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let body = req.json_object()?;
    let names: Vec<String> = match body.get("names") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return Err(ApiError::invalid(vec![FieldError::field(
                "names",
                "expected {\"names\": [\"rule1\", \"rule2\", ...]}: every rule of the domain, first to run first",
            )]));
        }
    };
    edit_domain_json(state, name, |d| {
        let rules = rules_of(d);
        let mut ordered = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        for n in &names {
            match rule_position(&rules, n) {
                Some(j) if ordered.iter().any(|(k, _)| *k == j) => {
                    errors.push(FieldError::field("names", format!("{n:?} is listed twice")))
                }
                Some(j) => ordered.push((j, rules[j].clone())),
                None => errors.push(FieldError::field("names", format!("no rule named {n:?}"))),
            }
        }
        if errors.is_empty() && ordered.len() != rules.len() {
            let missing: Vec<&str> = rules
                .iter()
                .enumerate()
                .filter(|(j, _)| !ordered.iter().any(|(k, _)| k == j))
                .filter_map(|(_, r)| r.get("name").and_then(Value::as_str))
                .collect();
            errors.push(FieldError::field(
                "names",
                format!("every rule must be listed; missing: {}", missing.join(", ")),
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        // Priorities make the evaluation order the listed one, whatever each rule's match kind.
        let rules = ordered
            .into_iter()
            .enumerate()
            .map(|(k, (_, mut r))| {
                if let Value::Object(m) = &mut r {
                    m.insert("priority".into(), json!(k + 1));
                }
                r
            })
            .collect();
        set_rules(d, rules);
        Ok(())
    })
    .map_err(|e| strip_prefix(e, "rate_limiting"))?;
    list_rules(state, name)
}
