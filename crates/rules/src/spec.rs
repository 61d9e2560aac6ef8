//! A rule as an operator writes it (config file, admin API), before validation.

use serde::{Deserialize, Serialize};

/// One `[[domain.rate_limiting.rules]]` entry exactly as written. Field names are SPEC section 8's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub uri: String,
    /// `exact` | `prefix` | `fuzzy`.
    #[serde(rename = "match")]
    pub match_: String,
    /// 0..=9999, lower runs first; absent = after the rules that have one, in the default order exact, prefix,
    /// fuzzy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `ip` | `header:NAME` | `domain` | `param:NAME`.
    pub object: String,
    /// Seconds, 10..=600.
    pub interval: i64,
    /// e.g. `"status_ratio|404">60% && "count">50`.
    pub criteria: String,
    /// `block` | `bot_detection` | `log`.
    pub action: String,
    /// Seconds, 60..=2592000 (30 days).
    pub ttl: i64,
    /// `node` | `cluster`; absent = cluster when the node is in a cluster, else node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// One violation of the rule model: which rule (by position and name), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// Position of the rule in the list (0-based); `None` for errors about the whole list (more than 5 rules).
    pub index: Option<usize>,
    /// The rule's name as written (may itself be the invalid field).
    pub rule: String,
    /// The field at fault, with SPEC section 8's name (`name`, `uri`, `match`, `priority`, `object`,
    /// `interval`, `criteria`, `action`, `ttl`), or `rules` for list-level errors.
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(_) => write!(f, "rule {:?}: {}: {}", self.rule, self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}
