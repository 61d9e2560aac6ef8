//! `[domain.rate_limiting]`: the mode, the rule tables' budget and the custom rules, validated by
//! `edgeguard-rules` with each error traced back to the rule's field and line.

use edgeguard_rules::{RuleError, RuleSpec};

use super::{edge, opt};
use crate::defaults;
use crate::error::Sink;
use crate::model::*;
use crate::raw;

pub(super) fn rate_limiting(
    sink: &mut Sink<'_>,
    path: &str,
    r: raw::RawRateLimiting,
) -> RateLimitingSpec {
    let enabled = r
        .enabled
        .as_ref()
        .map_or(defaults::RATE_LIMITING_ENABLED, |b| *b.get_ref());
    let mode = opt(
        sink,
        || format!("{path}.mode"),
        &r.mode,
        defaults::MODE,
        |s| match s.as_str() {
            "normal" => Ok(Mode::Normal),
            "emergency" => Ok(Mode::Emergency),
            "custom" => Ok(Mode::Custom),
            other => Err(format!(
                "expected \"normal\", \"emergency\" or \"custom\", found {other:?}"
            )),
        },
    );
    let parameter_check = r
        .parameter_check
        .as_ref()
        .map_or(defaults::PARAMETER_CHECK, |b| *b.get_ref());
    let table_size = opt(
        sink,
        || format!("{path}.table_size"),
        &r.table_size,
        defaults::RATE_LIMITING_TABLE_SIZE,
        edge::table_size,
    );
    let rules_path = format!("{path}.rules");
    if enabled && mode == Mode::Custom && r.rules.is_empty() {
        let at = r.mode.as_ref().map(|m| m.span()).unwrap_or(r.span.clone());
        sink.err(
            &rules_path,
            &at,
            "custom mode is enabled but has no rules: add [[domain.rate_limiting.rules]] or choose another mode",
        );
    }
    let complete = r.rules.iter().all(|rule| rule.spec.is_some());
    let rules: Vec<RuleSpec> = r
        .rules
        .iter()
        .filter_map(|rule| rule.spec.clone())
        .collect();
    // Rule validation looks at the list as a whole (count, unique names), so it runs only on a complete list.
    // Compiling (not just validating) also refuses what can never match, such as a `?` in a rule's URI while
    // parameter_check is off: the data plane would refuse that file.
    if complete && let Err(errors) = edgeguard_rules::RuleSet::compile(&rules, parameter_check) {
        for e in errors {
            rule_error(sink, &rules_path, &r, &e);
        }
    }
    RateLimitingSpec {
        enabled,
        mode,
        parameter_check,
        table_size,
        rules,
    }
}

fn rule_error(sink: &mut Sink<'_>, rules_path: &str, r: &raw::RawRateLimiting, e: &RuleError) {
    match e.index.and_then(|i| r.rules.get(i).map(|rule| (i, rule))) {
        Some((i, rule)) => {
            let span = rule
                .fields
                .iter()
                .find(|(name, _)| name == e.field)
                .map(|(_, s)| s.clone())
                .unwrap_or(rule.span.clone());
            sink.err(
                format!("{rules_path}[{i}].{}", e.field),
                &span,
                e.message.clone(),
            );
        }
        None => {
            // A list-level error (such as too many rules) points at the first rule past the limit, if any.
            let span = r
                .rules
                .get(5)
                .or(r.rules.first())
                .map(|rule| rule.span.clone())
                .unwrap_or(r.span.clone());
            sink.err(rules_path, &span, e.message.clone());
        }
    }
}
