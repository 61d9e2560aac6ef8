//! Editing the configuration the way the file is edited. A domain's JSON is its `[[domain]]` table of the file
//! (same keys, same value syntax: `"5m"`, `"10.0.0.5:80"`), obtained by writing the running configuration with
//! `to_toml` and reading the table back. A change is made on that table and the whole document is validated by
//! `edgeguard_config::parse`, so the API accepts exactly what the file accepts and reports the same messages;
//! error keys (`domain[2].cache.default_ttl`) are mapped back to the fields of the request.

use edgeguard_config::{Config, ConfigError};
use edgeguard_rules::RuleSet;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// The running configuration as the file's tables.
fn config_table(config: &Config) -> Result<toml::Table, ApiError> {
    let text = edgeguard_config::to_toml(config);
    text.parse::<toml::Table>().map_err(|e| {
        ApiError::internal(format!("the running configuration does not read back: {e}"))
    })
}

fn domain_tables(table: &mut toml::Table) -> Result<&mut Vec<toml::Value>, ApiError> {
    let entry = table
        .entry("domain")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    entry
        .as_array_mut()
        .ok_or_else(|| ApiError::internal("the configuration's `domain` is not a list"))
}

/// Position of the domain named `name` (host names compare without regard to case).
pub fn find_domain(config: &Config, name: &str) -> Result<usize, ApiError> {
    config
        .domains
        .iter()
        .position(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| ApiError::no_domain(name))
}

/// Every domain as JSON, in configuration order.
pub fn domains_json(config: &Config) -> Result<Vec<Value>, ApiError> {
    let mut table = config_table(config)?;
    Ok(domain_tables(&mut table)?
        .iter()
        .map(toml_to_json)
        .collect())
}

/// One domain as JSON.
pub fn domain_json(config: &Config, index: usize) -> Result<Value, ApiError> {
    domains_json(config)?
        .into_iter()
        .nth(index)
        .ok_or_else(|| ApiError::internal("domain index out of range"))
}

/// A change to the list of domains.
pub enum DomainEdit {
    /// Appends a domain.
    Insert(Value),
    /// Replaces the domain at this position.
    Replace(usize, Value),
    /// Removes the domain at this position.
    Remove(usize),
}

/// Applies `edit` to a copy of `config` and validates the result as a whole file. Errors are keyed relative to
/// the edited domain.
pub fn edit_domains(config: &Config, edit: DomainEdit) -> Result<Config, ApiError> {
    let mut table = config_table(config)?;
    let domains = domain_tables(&mut table)?;
    let scope = match &edit {
        DomainEdit::Insert(v) => {
            domains.push(json_to_toml_root(v)?);
            Some((domains.len() - 1, v.clone()))
        }
        DomainEdit::Replace(i, v) => {
            let slot = domains
                .get_mut(*i)
                .ok_or_else(|| ApiError::internal("domain index out of range"))?;
            *slot = json_to_toml_root(v)?;
            Some((*i, v.clone()))
        }
        DomainEdit::Remove(i) => {
            if *i < domains.len() {
                domains.remove(*i);
            }
            None
        }
    };
    let text = toml::to_string(&table)
        .map_err(|e| ApiError::internal(format!("cannot write the configuration: {e}")))?;
    validate(&text).map_err(|errors| {
        ApiError::invalid(
            errors
                .iter()
                .map(|e| scoped(e, scope.as_ref().map(|(i, v)| (*i, v))))
                .collect(),
        )
    })
}

/// Validates a configuration file's text as `edgeguard check` does, plus the check of each domain's rules
/// against its `parameter_check` that the data plane makes when it compiles them, so nothing is accepted here
/// that the node would refuse.
pub fn validate(text: &str) -> Result<Config, Vec<ConfigError>> {
    // The environment is not consulted: the token is whatever the running configuration (or the body) holds.
    let config = edgeguard_config::parse_with_env(text, |_| None).map_err(|e| e.errors)?;
    let mut errors = Vec::new();
    for (i, d) in config.domains.iter().enumerate() {
        let r = &d.rate_limiting;
        if let Err(list) = RuleSet::compile(&r.rules, r.parameter_check) {
            for e in list {
                let key = match e.index {
                    Some(j) => format!("domain[{i}].rate_limiting.rules[{j}].{}", e.field),
                    None => format!("domain[{i}].rate_limiting.rules"),
                };
                errors.push(ConfigError {
                    key,
                    line: 0,
                    message: e.message,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// A configuration error as a field error: relative to domain `scope.0` when it concerns that domain, with the
/// rule's name and position when it concerns one of its rules (names are taken from the domain's JSON `scope.1`).
fn scoped(e: &ConfigError, scope: Option<(usize, &Value)>) -> FieldError {
    let mut out = FieldError::field(e.key.clone(), e.message.clone());
    if e.key.is_empty() {
        out.field = None;
    }
    let Some((index, domain)) = scope else {
        return out;
    };
    let prefix = format!("domain[{index}]");
    let Some(rest) = e.key.strip_prefix(&prefix) else {
        return out;
    };
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    out.field = (!rest.is_empty()).then(|| rest.to_owned());
    if let Some(tail) = rest.strip_prefix("rate_limiting.rules[")
        && let Some((n, _)) = tail.split_once(']')
        && let Ok(j) = n.parse::<usize>()
    {
        out.index = Some(j);
        out.rule = domain
            .pointer(&format!("/rate_limiting/rules/{j}/name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    out
}

/// TOML values as JSON: tables as objects, datetimes (which the configuration never holds) as strings.
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

fn json_to_toml_root(v: &Value) -> Result<toml::Value, ApiError> {
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "a domain is a JSON object, e.g. {\"name\": \"www.example.com\", \"origins\": [\"10.0.0.5:80\"]}",
        ));
    }
    let mut errors = Vec::new();
    let out = json_to_toml(v, "", &mut errors);
    match out {
        Some(t) if errors.is_empty() => Ok(t),
        _ => Err(ApiError::invalid(errors)),
    }
}

/// JSON values as TOML: `null` members are left out (the setting takes its default), which is also how a JSON
/// merge patch removes a member. TOML has no null, so one inside a list is an error.
fn json_to_toml(v: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<toml::Value> {
    Some(match v {
        Value::Null => {
            errors.push(FieldError::field(
                path,
                "null is not allowed here (a list cannot hold null)",
            ));
            return None;
        }
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(_)) if n.is_u64() => {
                errors.push(FieldError::field(path, format!("{n} is too large")));
                return None;
            }
            (None, Some(f)) => toml::Value::Float(f),
            (None, None) => {
                errors.push(FieldError::field(path, format!("{n} is not a number")));
                return None;
            }
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| json_to_toml(item, &format!("{path}[{i}]"), errors))
                .collect(),
        ),
        Value::Object(members) => {
            let mut t = toml::Table::new();
            for (k, item) in members {
                if item.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(value) = json_to_toml(item, &p, errors) {
                    t.insert(k.clone(), value);
                }
            }
            toml::Value::Table(t)
        }
    })
}

/// RFC 7396 JSON merge patch: members of `patch` replace those of `target`, `null` removes, objects merge.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The configuration to export: the admin token left out (it also falls back to the environment, and whoever
/// reads the export need not know it).
pub fn export(config: &Config) -> String {
    let mut c = config.clone();
    c.admin.token = None;
    edgeguard_config::to_toml(&c)
}
