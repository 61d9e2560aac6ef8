//! Custom rate-limiting rules: the rule model and its validation, URI matchers, the criteria language
//! (lexer, parser, evaluator) and the built-in normal and emergency presets.
//!
//! Pure data and functions: no I/O, no clocks, no counters (those live in `edgeguard-limit`).

mod spec;

pub use spec::{RuleError, RuleSpec, validate_rules};
