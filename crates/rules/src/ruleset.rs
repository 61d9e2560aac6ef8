//! Compiled rules of one domain, in evaluation order, and the check of a rule list against SPEC section 4.
//!
//! Validation and compilation are one pass: a rule that compiles is valid, and every violation of every rule
//! is collected before returning, so an operator sees all of them at once.

use crate::criteria::Criteria;
use crate::object::Object;
use crate::scope::Scope;
use crate::spec::{RuleError, RuleSpec};
use crate::uri::{MatchKind, RequestUri, UriMatcher};

/// At most this many custom rules per domain.
pub const MAX_RULES: usize = 5;
/// Rule names are this many ASCII letters and digits.
pub const NAME_LEN: std::ops::RangeInclusive<usize> = 4..=30;
/// Accepted `priority` values. Non-negative so that "lower first" reads naturally; four digits leave room to
/// renumber without meaning anything else.
pub const PRIORITY: std::ops::RangeInclusive<i64> = 0..=9999;
/// Accepted `interval`, seconds (the counting window).
pub const INTERVAL_S: std::ops::RangeInclusive<i64> = 10..=600;
/// Accepted `ttl`, seconds: at least a minute (the vendor's floor), at most 30 days, past which a value is far
/// more likely a typo than an intended block.
pub const TTL_S: std::ops::RangeInclusive<i64> = 60..=30 * 24 * 3600;
/// Longest accepted `uri`, in bytes.
pub const MAX_URI_LEN: usize = 2048;

/// What a triggered rule does to the object's requests for `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// HTTP 403 to every request of the object.
    Block,
    /// HTTP 200 challenge page to every request of the object that carries no valid pass.
    BotDetection,
    /// Nothing refused: the trigger is counted and written to the activity log, to try a rule on live traffic.
    Log,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "block" => Some(Action::Block),
            "bot_detection" => Some(Action::BotDetection),
            "log" => Some(Action::Log),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::BotDetection => "bot_detection",
            Action::Log => "log",
        }
    }

    /// The status of the answer while the action is in force (a `log` rule refuses nothing: its requests are
    /// served).
    pub fn http_status(self) -> u16 {
        match self {
            Action::Block => 403,
            Action::BotDetection | Action::Log => 200,
        }
    }

    /// Whether the action refuses or challenges the object's requests while in force.
    pub fn enforces(self) -> bool {
        !matches!(self, Action::Log)
    }
}

/// One valid, compiled rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub matcher: UriMatcher,
    /// As written; `None` = after every rule that has one, in the default order.
    pub priority: Option<u32>,
    pub object: Object,
    pub interval_s: u32,
    pub criteria: Criteria,
    pub action: Action,
    pub ttl_s: u32,
    /// `scope` as written; `None`: the node decides (cluster when it is in one).
    pub scope: Option<Scope>,
    /// Position of the rule in the list it was compiled from (0-based).
    pub position: usize,
}

impl Rule {
    /// Checks one rule, collecting every violation. `parameter_check` is `None` when the domain's setting is not
    /// known (checks that depend on it are skipped).
    fn compile(
        index: usize,
        spec: &RuleSpec,
        parameter_check: Option<bool>,
    ) -> Result<Rule, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &'static str, message: String| {
            errors.push(RuleError {
                index: Some(index),
                rule: spec.name.clone(),
                field,
                message,
            });
        };

        let name_len = spec.name.chars().count();
        if let Some((at, bad)) = spec
            .name
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
        {
            let shown = if bad.is_whitespace() || bad.is_control() {
                format!("{bad:?}")
            } else {
                format!("'{bad}'")
            };
            fail(
                "name",
                format!(
                    "name may contain only ASCII letters and digits; found {shown} at character {}",
                    at + 1
                ),
            );
        } else if !NAME_LEN.contains(&name_len) {
            fail(
                "name",
                format!(
                    "name must be {} to {} characters long; found {name_len}",
                    NAME_LEN.start(),
                    NAME_LEN.end()
                ),
            );
        }

        if let Some(message) = uri_problem(&spec.uri, parameter_check) {
            fail("uri", message);
        }
        let kind = MatchKind::parse(&spec.match_);
        if kind.is_none() {
            fail(
                "match",
                format!(
                    "match must be \"exact\", \"prefix\" or \"fuzzy\"; found \"{}\"",
                    spec.match_
                ),
            );
        }

        let priority = match spec.priority {
            None => None,
            Some(p) if PRIORITY.contains(&p) => u32::try_from(p).ok(),
            Some(p) => {
                fail(
                    "priority",
                    format!(
                        "priority must be between {} and {} (lower runs first); found {p}",
                        PRIORITY.start(),
                        PRIORITY.end()
                    ),
                );
                None
            }
        };

        let object = Object::parse(&spec.object)
            .map_err(|e| fail("object", e.to_string()))
            .ok();

        let interval_s = in_range(spec.interval, &INTERVAL_S).map_err(|()| {
            fail(
                "interval",
                format!(
                    "interval must be between {} and {} seconds; found {}",
                    INTERVAL_S.start(),
                    INTERVAL_S.end(),
                    spec.interval
                ),
            )
        });

        let criteria = Criteria::parse(&spec.criteria)
            .map_err(|e| fail("criteria", e.to_string()))
            .ok();

        let action = Action::parse(&spec.action);
        if action.is_none() {
            fail(
                "action",
                format!(
                    "action must be \"block\", \"bot_detection\" or \"log\"; found \"{}\"",
                    spec.action
                ),
            );
        }

        let scope = match spec.scope.as_deref().map(Scope::parse) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(m)) => {
                fail("scope", m);
                None
            }
        };

        let ttl_s = in_range(spec.ttl, &TTL_S).map_err(|()| {
            let message = if spec.ttl < *TTL_S.start() {
                format!(
                    "ttl must be at least {} seconds; found {}",
                    TTL_S.start(),
                    spec.ttl
                )
            } else {
                format!(
                    "ttl must be at most {} seconds (30 days); found {}",
                    TTL_S.end(),
                    spec.ttl
                )
            };
            fail("ttl", message)
        });

        match (kind, object, interval_s, criteria, action, ttl_s) {
            (Some(kind), Some(object), Ok(interval_s), Some(criteria), Some(action), Ok(ttl_s))
                if errors.is_empty() =>
            {
                Ok(Rule {
                    name: spec.name.clone(),
                    matcher: UriMatcher::new(kind, &spec.uri),
                    priority,
                    object,
                    interval_s,
                    criteria,
                    action,
                    ttl_s,
                    scope,
                    position: index,
                })
            }
            _ => Err(errors),
        }
    }

    /// The evaluation order: rules with a priority first (lower first), then the rest; within equal priority
    /// (or none) exact before prefix before fuzzy; then list position.
    fn order_key(&self) -> (bool, u32, MatchKind, usize) {
        (
            self.priority.is_none(),
            self.priority.unwrap_or(0),
            self.matcher.kind(),
            self.position,
        )
    }
}

fn in_range(value: i64, range: &std::ops::RangeInclusive<i64>) -> Result<u32, ()> {
    if range.contains(&value) {
        u32::try_from(value).map_err(|_| ())
    } else {
        Err(())
    }
}

fn uri_problem(uri: &str, parameter_check: Option<bool>) -> Option<String> {
    if uri.is_empty() {
        return Some("uri is empty; write a path such as /register".to_owned());
    }
    if !uri.starts_with('/') {
        return Some(format!("uri must start with '/'; found \"{uri}\""));
    }
    if uri.len() > MAX_URI_LEN {
        return Some(format!(
            "uri is too long ({} bytes; at most {MAX_URI_LEN})",
            uri.len()
        ));
    }
    if let Some(bad) = uri.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "uri may not contain spaces or control characters (found {bad:?}); write them percent-encoded, e.g. %20"
        ));
    }
    if uri.contains('#') {
        return Some("uri may not contain '#': clients never send the fragment".to_owned());
    }
    if parameter_check == Some(false) && uri.contains('?') {
        return Some(
            "uri has a query string ('?'), which is only compared when parameter_check is on; \
             turn parameter_check on or remove the query"
                .to_owned(),
        );
    }
    None
}

/// Checks a domain's rule list against SPEC section 4, reporting every violation at once, in list order.
///
/// The one check that depends on the domain's `parameter_check` (a `uri` with a query string needs it on) is
/// left to [`RuleSet::compile`], which runs every check here as well.
pub fn validate_rules(specs: &[RuleSpec]) -> Result<(), Vec<RuleError>> {
    compile_list(specs, None).map(|_| ())
}

/// Checks a whole list: every rule, the list length, name uniqueness. Returns the compiled rules in list order.
fn compile_list(
    specs: &[RuleSpec],
    parameter_check: Option<bool>,
) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut errors = Vec::new();
    if specs.len() > MAX_RULES {
        errors.push(RuleError {
            index: None,
            rule: String::new(),
            field: "rules",
            message: format!(
                "at most {MAX_RULES} rules per domain; found {}",
                specs.len()
            ),
        });
    }
    let mut rules = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        match Rule::compile(index, spec, parameter_check) {
            Ok(rule) => rules.push(rule),
            Err(mut errs) => errors.append(&mut errs),
        }
        // Case-insensitive: the console and the activity log search names without regard to case, and two
        // rules told apart only by case would read as one there.
        if !spec.name.is_empty()
            && let Some(first) = specs[..index]
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(&spec.name))
        {
            errors.push(RuleError {
                index: Some(index),
                rule: spec.name.clone(),
                field: "name",
                message: format!(
                    "name \"{}\" is already used by rule {} (\"{}\"); names must be unique within the domain, \
                     ignoring case",
                    spec.name,
                    first + 1,
                    specs[first].name
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        // Per rule, in list order, list-level errors first; within a rule, field order as above.
        errors.sort_by_key(|e| e.index.map_or(0, |i| i + 1));
        Err(errors)
    }
}

/// A domain's custom rules, compiled and in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    parameter_check: bool,
}

impl RuleSet {
    /// Validates and compiles a domain's rules. With `parameter_check` the URI compared includes `?query`.
    /// On error, every violation of every rule is returned.
    pub fn compile(specs: &[RuleSpec], parameter_check: bool) -> Result<RuleSet, Vec<RuleError>> {
        let mut rules = compile_list(specs, Some(parameter_check))?;
        rules.sort_by_key(Rule::order_key);
        Ok(RuleSet {
            rules,
            parameter_check,
        })
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn parameter_check(&self) -> bool {
        self.parameter_check
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule that counts `path` (and `query`, with `parameter_check`), with its index in [`RuleSet::rules`]:
    /// the first one in evaluation order whose URI matches. `query` is the raw text after `?`.
    ///
    /// Hot path: allocates only when the URI holds percent-escapes.
    pub fn first_match(&self, path: &str, query: Option<&str>) -> Option<(usize, &Rule)> {
        let uri = RequestUri::new(path, query.filter(|_| self.parameter_check));
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matcher.matches(&uri))
    }
}
