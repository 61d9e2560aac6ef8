//! The built-in `normal` and `emergency` rule sets. Thresholds and the reasons for them are in
//! `docs/protection.md`; change both together.
//!
//! Each preset is a single rule on every path (`prefix /`), because only the first rule whose URI matches counts
//! a request: a second rule on the same paths would never see a request. The flood and the scanner conditions
//! are therefore one criteria expression joined by `||`.

use crate::ruleset::RuleSet;
use crate::spec::RuleSpec;

/// A built-in protection mode. (`custom` is the domain's own rule list, not a preset.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Avoids false positives: blocks only what no human or polite crawler does.
    Normal,
    /// Strict, for a site under attack: challenges (a browser passes without user action) rather than blocks.
    Emergency,
}

/// Normal: per IP over 10 s, more than 500 requests, or at least 80 404s making up at least 80% of responses.
pub const NORMAL_CRITERIA: &str =
    r#""count">500 || ("status_count|404">=80 && "status_ratio|404">=80%)"#;
/// Emergency: per IP over 10 s, more than 150 requests, or at least 20 4xx making up at least 50% of responses.
pub const EMERGENCY_CRITERIA: &str =
    r#""count">150 || ("status_count|4xx">=20 && "status_ratio|4xx">=50%)"#;

/// The rules of a built-in mode, in the same form an operator writes custom rules.
pub fn preset(mode: Mode) -> Vec<RuleSpec> {
    let (name, criteria, action, ttl) = match mode {
        Mode::Normal => ("normal", NORMAL_CRITERIA, "block", 600),
        Mode::Emergency => ("emergency", EMERGENCY_CRITERIA, "bot_detection", 1800),
    };
    vec![RuleSpec {
        name: name.to_owned(),
        uri: "/".to_owned(),
        match_: "prefix".to_owned(),
        priority: None,
        object: "ip".to_owned(),
        interval: 10,
        criteria: criteria.to_owned(),
        action: action.to_owned(),
        ttl,
        scope: None,
    }]
}

impl RuleSet {
    /// The compiled rules of a built-in mode (`parameter_check` is off: it applies to custom mode only).
    pub fn preset(mode: Mode) -> RuleSet {
        // The presets are constants checked by the crate's tests; an empty set is the safe fallback.
        RuleSet::compile(&preset(mode), false).unwrap_or_default()
    }
}
