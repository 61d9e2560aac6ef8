//! `[domain.access_control]`: address ranges never limited, blocked or challenged (`allow`) and ranges always
//! refused (`deny`). Matched against the client address as the limiters see it (after a trusted
//! `X-Forwarded-For`); a range on both lists denies.

use std::net::IpAddr;

use edgeguard_config::{AccessControlSpec, IpNet};

/// What the lists say about one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// On no list: the protection phases decide.
    Unlisted,
    /// On `allow` (and not on `deny`): skips every protection phase and limit.
    Allowed,
    /// On `deny`: 403 before anything else.
    Denied,
}

/// The two lists of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLists {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl AccessLists {
    pub fn new(spec: &AccessControlSpec) -> AccessLists {
        AccessLists {
            allow: spec.allow.clone(),
            deny: spec.deny.clone(),
        }
    }

    /// Hot path: nothing when both lists are empty; otherwise a scan of the ranges (operators list a few).
    #[inline]
    pub fn check(&self, ip: IpAddr) -> Access {
        if self.deny.iter().any(|n| n.contains(ip)) {
            Access::Denied
        } else if self.allow.iter().any(|n| n.contains(ip)) {
            Access::Allowed
        } else {
            Access::Unlisted
        }
    }
}
