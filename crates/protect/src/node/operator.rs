//! Blocks an operator puts in force by hand (the console's top talkers): one client address blocked or
//! challenged for a while, kept like a rule's block (listed, liftable, stored across a restart, in the activity
//! log under rule `admin-api`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use edgeguard_rules::{Action, Object};
use edgeguard_store::{ActivityRecord, BlockRecord};

use super::{MAX_TIMED_CHALLENGE, MIN_TIMED_CHALLENGE, NodeProtection};
use crate::blocks::{self, InForce};
use crate::engine::RULE_OPERATOR;

/// Why [`NodeProtection::start_block`] put nothing in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartBlockError {
    #[error("{0} is not a domain of this node")]
    UnknownDomain(String),
    #[error("ttl must be 1 to 2592000 seconds; found {0}")]
    Ttl(u64),
    #[error("a stronger block of {object_value} is in force (rule {rule})")]
    Stronger { object_value: String, rule: String },
    #[error("the blocks budget ([node] blocks_size) holds only entries worth more")]
    NoRoom,
}

impl NodeProtection {
    /// Blocks (`Action::Block`, 403) or challenges (`Action::BotDetection`) the client `ip` of `domain` for `ttl`
    /// from now; an IPv6 address is taken as its `[node] ipv6_prefix` client, as the rules count it. A new start
    /// for the same client replaces the entry (and its end) unless a stronger one is in force. The caller checks
    /// that the node serves `domain`.
    pub fn start_block(
        &self,
        domain: &str,
        ip: IpAddr,
        action: Action,
        ttl: Duration,
    ) -> Result<BlockRecord, StartBlockError> {
        if ttl < MIN_TIMED_CHALLENGE || ttl > MAX_TIMED_CHALLENGE {
            return Err(StartBlockError::Ttl(ttl.as_secs()));
        }
        let domain = domain.to_ascii_lowercase();
        let mut key = Vec::new();
        edgeguard_rules::ip_key_into(
            ip,
            self.ipv6_prefix.load(std::sync::atomic::Ordering::Relaxed),
            &mut key,
        );
        let now = self.now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = InForce {
            rule: Arc::from(RULE_OPERATOR),
            action,
            until_ms: now.saturating_add(ttl_ms),
        };
        let domain_blocks = self.domain_blocks(&domain);
        domain_blocks
            .replace(&Object::Ip, &key, entry.clone(), now)
            .map_err(|b| StartBlockError::Stronger {
                object_value: String::from_utf8_lossy(&key).into_owned(),
                rule: b.rule.to_string(),
            })?;
        if domain_blocks.get(&Object::Ip, &key, now).is_none() {
            return Err(StartBlockError::NoRoom);
        }
        let record = blocks::record(&domain, &Object::Ip, &key, &entry);
        let writer = self.log.writer();
        writer.submit(ActivityRecord {
            time_ms: i64::try_from(now).unwrap_or(i64::MAX),
            node: self.node.clone(),
            domain: domain.clone(),
            rule: RULE_OPERATOR.to_owned(),
            object_type: record.object_type.clone(),
            object_value: record.object_value.clone(),
            action: action.as_str().to_owned(),
            ttl_s: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            detail: "started by an operator through the admin API".to_owned(),
        });
        writer.submit_block(record.clone());
        tracing::warn!(
            domain,
            object = %record.object_value,
            action = action.as_str(),
            ttl_s = ttl.as_secs(),
            "block started by an operator"
        );
        Ok(record)
    }
}
