//! A domain's `[domain.challenge]` ready for the request path, and the rule names of challenges and refusals
//! that no custom rule made.

use std::sync::Arc;
use std::time::Duration;

use edgeguard_challenge::Difficulty;
use edgeguard_config::ChallengeSpec;
use edgeguard_rules::Action;

use crate::blocks::InForce;

/// The `rule` named by a challenge that `[domain.challenge] enabled = true` puts on the whole domain. Rule names
/// are letters and digits only, so none of these can be mistaken for a custom rule.
pub const RULE_CHALLENGE_ENABLED: &str = "challenge.enabled";
/// The `rule` named by a challenge of one of `[domain.challenge] paths`.
pub const RULE_CHALLENGE_PATHS: &str = "challenge.paths";
/// The `rule` named by a timed challenge an operator started through the admin API.
pub use crate::budget::RULE_OPERATOR;
/// The rule named for a client refused by `[domain.access_control] deny`.
pub const RULE_ACCESS_DENY: &str = "access_control.deny";

/// A domain's `[domain.challenge]`, ready for the request path.
#[derive(Debug, Clone)]
pub struct ChallengeSettings {
    pub difficulty: Difficulty,
    pub clearance_ttl: Duration,
    /// `enabled = true`: an entry for the whole domain that never ends.
    pub(crate) all: Option<InForce>,
    pub(crate) paths: Vec<Box<str>>,
    pub(crate) paths_entry: InForce,
}

impl ChallengeSettings {
    pub fn new(spec: &ChallengeSpec) -> Self {
        let forever = |rule: &str| InForce {
            rule: Arc::from(rule),
            action: Action::BotDetection,
            until_ms: u64::MAX,
        };
        ChallengeSettings {
            difficulty: Difficulty::new(spec.difficulty).unwrap_or(Difficulty::DEFAULT),
            clearance_ttl: spec.clearance_ttl,
            all: spec.enabled.then(|| forever(RULE_CHALLENGE_ENABLED)),
            paths: spec.paths.iter().map(|p| p.as_str().into()).collect(),
            paths_entry: forever(RULE_CHALLENGE_PATHS),
        }
    }

    /// Whether the whole domain is under challenge by configuration.
    pub fn whole_domain(&self) -> bool {
        self.all.is_some()
    }
}
