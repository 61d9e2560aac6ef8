//! The "under attack" switch of a domain: emergency rate limiting plus a timed challenge of the whole domain,
//! both ending by themselves. Switching on remembers the domain's `rate_limiting.enabled` and `mode`, sets
//! emergency mode (a configuration change like any other: validated, applied live, written back) and starts a
//! timed challenge of the domain (`Control::start_challenge`); when the challenge ends — its TTL, a lift from the
//! blocks list, or switching off — the remembered settings come back, unless someone changed the mode since.
//!
//! Non-goal: surviving an admin restart while on. The challenge (a block in force) survives; the remembered
//! mode does not, so emergency mode stays until changed by hand.

use std::collections::HashMap;
use std::sync::Mutex;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{State, edit_domain_json};
use crate::control::{StartError, TIMED_CHALLENGE_TTL_S};
use crate::edit::{domain_json, find_domain, merge_patch};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::reply::{Reply, Req};

/// One domain under attack.
#[derive(Debug, Clone)]
pub(crate) struct Attack {
    until_ms: i64,
    challenge_id: String,
    /// `{"enabled": …, "mode": …}` of `rate_limiting` before the switch.
    before: Value,
}

/// The domains switched on, by domain name.
#[derive(Debug, Default)]
pub(crate) struct Attacks(Mutex<HashMap<String, Attack>>);

impl Attacks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attack>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET .../under-attack`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnderAttack {
    pub domain: String,
    pub active: bool,
    /// Unix milliseconds when it ends by itself (while active).
    pub until_ms: Option<i64>,
    /// The id of its domain-wide challenge in `GET /api/v1/blocks`.
    pub challenge_id: Option<String>,
    /// `rate_limiting.enabled` and `mode` to come back at the end.
    #[schema(value_type = Object)]
    pub rate_limiting_before: Option<Value>,
}

/// `PUT .../under-attack`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnderAttackSwitch {
    pub enabled: bool,
    /// Seconds it lasts, 1..=2592000, when switching on (default 3600).
    #[schema(example = 3600)]
    pub ttl: Option<u64>,
}

fn view(name: &str, a: Option<&Attack>) -> UnderAttack {
    UnderAttack {
        domain: name.to_owned(),
        active: a.is_some(),
        until_ms: a.map(|a| a.until_ms),
        challenge_id: a.map(|a| a.challenge_id.clone()),
        rate_limiting_before: a.map(|a| a.before.clone()),
    }
}

/// Ends every switch whose challenge is over: brings back the remembered rate-limiting settings. Run every
/// second by the server while any switch is on; blocking (it may apply a configuration).
pub(crate) fn end_attacks(state: &State) {
    if state.attacks.lock().is_empty() {
        return;
    }
    let now = state.control.now_ms();
    let in_force: Vec<String> = state.control.blocks().into_iter().map(|b| b.id).collect();
    let ended: Vec<(String, Attack)> = {
        let mut map = state.attacks.lock();
        let names: Vec<String> = map
            .iter()
            .filter(|(_, a)| a.until_ms <= now || !in_force.contains(&a.challenge_id))
            .map(|(n, _)| n.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|n| map.remove(&n).map(|a| (n, a)))
            .collect()
    };
    for (name, a) in ended {
        restore(state, &name, &a);
    }
}

fn restore(state: &State, name: &str, a: &Attack) {
    let result = edit_domain_json(state, name, |d| {
        // Someone chose another mode meanwhile: theirs stays.
        if d.pointer("/rate_limiting/mode").and_then(Value::as_str) == Some("emergency") {
            merge_patch(d, &json!({ "rate_limiting": a.before }));
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("edgeguard admin: cannot end under-attack mode of {name}: {e:?}");
    }
}

#[utoipa::path(get, path = "/api/v1/under-attack", tag = "live",
    responses((status = 200, description = "The domains under attack now", body = [UnderAttack])))]
pub(crate) fn list_attacks(state: &State) -> Result<Reply, ApiError> {
    end_attacks(state);
    let map = state.attacks.lock();
    let mut list: Vec<UnderAttack> = map.iter().map(|(n, a)| view(n, Some(a))).collect();
    list.sort_by(|a, b| a.domain.cmp(&b.domain));
    Ok(Reply::ok(&json!({ "domains": list })))
}

#[utoipa::path(get, path = "/api/v1/domains/{name}/under-attack", tag = "live",
    params(("name" = String, Path, description = "Host name")),
    responses((status = 200, body = UnderAttack), (status = 404, body = ErrorBody)))]
pub(crate) fn get_attack(state: &State, name: &str) -> Result<Reply, ApiError> {
    let config = state.control.config();
    let d = &config.domains[find_domain(&config, name)?];
    end_attacks(state);
    Ok(Reply::ok(&view(&d.name, state.attacks.lock().get(&d.name))))
}

#[utoipa::path(put, path = "/api/v1/domains/{name}/under-attack", tag = "live",
    params(("name" = String, Path, description = "Host name")),
    request_body(content = UnderAttackSwitch, content_type = "application/json",
        description = "`{\"enabled\": true, \"ttl\": 3600}` switches on (again: a new end), `{\"enabled\": false}` off"),
    responses((status = 200, body = UnderAttack), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A block of the whole domain is in force", body = ErrorBody)))]
pub(crate) fn put_attack(state: &State, name: &str, req: &Req) -> Result<Reply, ApiError> {
    let body: UnderAttackSwitch = serde_json::from_value(Value::Object(req.json_object()?))
        .map_err(|e| ApiError::invalid(vec![FieldError::message(e.to_string())]))?;
    let config = state.control.config();
    let i = find_domain(&config, name)?;
    let name = config.domains[i].name.clone();
    if !body.enabled {
        let a = state.attacks.lock().remove(&name);
        if let Some(a) = a {
            state.control.lift_block(&a.challenge_id);
            restore(state, &name, &a);
        }
        return get_attack(state, &name);
    }
    let ttl = body.ttl.unwrap_or(3600);
    if !TIMED_CHALLENGE_TTL_S.contains(&ttl) {
        return Err(ApiError::invalid(vec![FieldError::field(
            "ttl",
            format!("ttl is a number of seconds, 1..=2592000 (30 days); found {ttl}"),
        )]));
    }
    let rl = domain_json(&config, i)?
        .get("rate_limiting")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let before = json!({
        "enabled": rl.get("enabled").cloned().unwrap_or(Value::Null),
        "mode": rl.get("mode").cloned().unwrap_or(Value::Null),
    });
    let info = state
        .control
        .start_challenge(&name, ttl, None)
        .map_err(|e| match e {
            StartError::NoDomain(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            StartError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StartError::Invalid(m) => ApiError::invalid(vec![FieldError::message(m)]),
        })?;
    edit_domain_json(state, &name, |d| {
        merge_patch(
            d,
            &json!({ "rate_limiting": { "enabled": true, "mode": "emergency" } }),
        );
        Ok(())
    })?;
    let mut map = state.attacks.lock();
    // Switching on again keeps what was there before the first switch.
    let before = map.get(&name).map_or(before, |a| a.before.clone());
    map.insert(
        name.clone(),
        Attack {
            until_ms: info.until_ms,
            challenge_id: info.id,
            before,
        },
    );
    let v = view(&name, map.get(&name));
    Ok(Reply::ok(&v))
}
