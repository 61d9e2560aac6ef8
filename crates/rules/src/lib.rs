//! Custom rate-limiting rules: the rule model and its validation, URI matchers, the criteria language
//! (lexer, parser, evaluator) and the built-in normal and emergency presets.
//!
//! Pure data and functions: no I/O, no clocks, no counters (those live in `edgeguard-limit`). The data plane
//! asks a [`RuleSet`] which rule counts a request ([`RuleSet::first_match`]), reads the object's key
//! ([`Object::key_into`]), feeds its own window counters, and asks the rule's [`Criteria`] whether they trigger
//! it. Rule semantics, thresholds and the criteria grammar are documented in `docs/protection.md`.

pub mod criteria;
mod object;
mod preset;
mod ruleset;
mod scope;
mod spec;
mod uri;

pub use criteria::{
    Comparison, Criteria, Op, ParseError, ParseErrorKind, StatusSel, Term, WindowView,
};
pub use object::{Object, ObjectError, RequestView, client_of, ip_key_into, ipv4_text};
pub use preset::{EMERGENCY_CRITERIA, Mode, NORMAL_CRITERIA, preset};
pub use ruleset::{
    Action, INTERVAL_S, MAX_RULES, MAX_URI_LEN, NAME_LEN, PRIORITY, Rule, RuleSet, TTL_S,
    validate_rules,
};
pub use scope::Scope;
pub use spec::{RuleError, RuleSpec};
pub use uri::{MatchKind, RequestUri, UriMatcher};
