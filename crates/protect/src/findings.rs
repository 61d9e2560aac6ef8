//! Turns the detector's [`Finding`]s into actions in force and activity records: a finding on a client puts the
//! action on its address (object `ip`) for the finding's TTL and logs it once with the learned and observed
//! values; a finding made by a flag in force (a network's login requests) answers that request only.

use std::net::IpAddr;
use std::sync::Arc;

use edgeguard_rules::{Object, ip_key_into};
use edgeguard_store::ActivityRecord;

use crate::anomaly::Finding;
use crate::blocks::{self, DomainBlocks, InForce, Inserted};
use crate::sink::Sink;

/// Object type of a network flagged by the detector, in the activity log.
pub const NET_TYPE: &str = "net";

fn net_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Puts `f` in force for `client` (counted with `ipv6_prefix`) and records it; returns what the request gets.
/// Allocates: only called when something was found.
pub(crate) fn apply(
    f: &Finding,
    domain: &str,
    blocks: &DomainBlocks,
    sink: &Sink,
    client: IpAddr,
    ipv6_prefix: u8,
    now_ms: u64,
) -> Option<InForce> {
    let entry = InForce {
        rule: Arc::from(f.rule),
        action: f.action,
        until_ms: now_ms.saturating_add(u64::from(f.ttl_s.max(1)) * 1000),
    };
    if !f.on_client {
        if f.ttl_s > 0 {
            // A flag was just set (a network): one record for it.
            record(f, domain, sink, NET_TYPE, net_text(client), now_ms);
        }
        return Some(entry);
    }
    let mut key = Vec::with_capacity(40);
    ip_key_into(client, ipv6_prefix, &mut key);
    match blocks.insert(&Object::Ip, &key, entry.clone(), now_ms) {
        Inserted::AlreadyInForce => return None,
        Inserted::NoRoom => return Some(entry),
        Inserted::New => {}
    }
    if let Some(w) = &sink.writer
        && f.action.enforces()
    {
        w.submit_block(blocks::record(domain, &Object::Ip, &key, &entry));
    }
    let value = String::from_utf8_lossy(&key).into_owned();
    let tally = sink.summaries.rule(domain, f.rule);
    tally.refuse(&key);
    record(f, domain, sink, "ip", value, now_ms);
    Some(entry)
}

fn record(f: &Finding, domain: &str, sink: &Sink, object_type: &str, value: String, now_ms: u64) {
    let tally = sink.summaries.rule(domain, f.rule);
    if tally.may_log() {
        tracing::warn!(
            domain = %domain,
            rule = f.rule,
            object = object_type,
            key = %value,
            action = f.action.as_str(),
            ttl_s = f.ttl_s,
            detail = %f.detail,
            "baseline detector triggered"
        );
    }
    if let Some(w) = &sink.writer {
        w.submit(ActivityRecord {
            time_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            node: sink.node.clone(),
            domain: domain.to_owned(),
            rule: f.rule.to_owned(),
            object_type: object_type.to_owned(),
            object_value: value,
            action: f.action.as_str().to_owned(),
            ttl_s: f.ttl_s,
            detail: f.detail.clone(),
        });
    }
}
