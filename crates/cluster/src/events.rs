//! Events every node must see: blocks and challenges put in force, lifts (tombstones that outlive the block
//! they lift), purges. Written to Redis under keys of their own with an expiry and numbered in one log; each
//! node reads the log from the last number it applied every sync interval, and from the start on every
//! reconnect and every few seconds (so nothing missed while disconnected stays missed).

use std::collections::HashMap;

use edgeguard_store::BlockRecord;
use serde_json::{Value, json};

/// A purge to run on every node: `kind` is `urls`, `prefix` or `tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeEvent {
    pub domain: String,
    pub kind: String,
    pub values: Vec<String>,
}

/// One event as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Block(BlockRecord),
    Lift {
        domain: String,
        object_type: String,
        object_value: String,
    },
    Purge(PurgeEvent),
}

/// How long a purge stays in the log: long enough for a node that reconnects to run it, not for one that was
/// down (its cache is empty after a restart anyway).
pub const PURGE_TTL_MS: u64 = 60_000;
/// How long a lift's tombstone outlives the lift at least, so a node that comes back within it does not keep
/// the block it restored from its own store.
pub const LIFT_TTL_MS: u64 = 3_600_000;

impl Event {
    /// The event's key (one per object, so a later block or lift of it replaces the earlier one) and the Unix
    /// ms it expires at.
    pub fn key_and_expiry(&self, now_ms: u64, seq: u64) -> (String, u64) {
        match self {
            Event::Block(b) => (
                object_name(&b.domain, &b.object_type, &b.object_value),
                u64::try_from(b.until_ms).unwrap_or(0).max(now_ms + 1000),
            ),
            Event::Lift {
                domain,
                object_type,
                object_value,
            } => (
                object_name(domain, object_type, object_value),
                now_ms + LIFT_TTL_MS,
            ),
            Event::Purge(_) => (format!("purge:{now_ms}:{seq}"), now_ms + PURGE_TTL_MS),
        }
    }

    pub fn to_json(&self, node: &str) -> String {
        let v = match self {
            Event::Block(b) => json!({
                "node": node, "op": "block", "domain": b.domain, "object_type": b.object_type,
                "object_value": b.object_value, "rule": b.rule, "action": b.action, "until_ms": b.until_ms,
            }),
            Event::Lift {
                domain,
                object_type,
                object_value,
            } => json!({
                "node": node, "op": "lift", "domain": domain, "object_type": object_type,
                "object_value": object_value,
            }),
            Event::Purge(p) => json!({
                "node": node, "op": "purge", "domain": p.domain, "kind": p.kind, "values": p.values,
            }),
        };
        v.to_string()
    }

    /// The node that sent it and the event; `None` for a payload not understood.
    pub fn from_json(text: &str) -> Option<(String, Event)> {
        let v: Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let node = s("node")?;
        let event = match v.get("op")?.as_str()? {
            "block" => Event::Block(BlockRecord {
                domain: s("domain")?,
                object_type: s("object_type")?,
                object_value: s("object_value")?,
                rule: s("rule")?,
                action: s("action")?,
                until_ms: v.get("until_ms")?.as_i64()?,
            }),
            "lift" => Event::Lift {
                domain: s("domain")?,
                object_type: s("object_type")?,
                object_value: s("object_value")?,
            },
            "purge" => Event::Purge(PurgeEvent {
                domain: s("domain")?,
                kind: s("kind")?,
                values: v
                    .get("values")?
                    .as_array()?
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
            }),
            _ => return None,
        };
        Some((node, event))
    }
}

fn object_name(domain: &str, object_type: &str, object_value: &str) -> String {
    format!("obj:{domain}|{object_type}|{object_value}")
}

/// What this node has applied: the last event number read, and per event key the number applied (so a
/// resync from the start applies only what changed).
#[derive(Debug, Default)]
pub struct Applied {
    pub last: u64,
    by_key: HashMap<String, u64>,
}

impl Applied {
    /// Whether event `seq` of `key` is new here; records it.
    pub fn fresh(&mut self, key: &str, seq: u64) -> bool {
        self.last = self.last.max(seq);
        match self.by_key.get(key) {
            Some(&done) if done >= seq => false,
            _ => {
                self.by_key.insert(key.to_owned(), seq);
                true
            }
        }
    }

    /// Forgets keys no longer in the log (after a full resync that listed `alive`).
    pub fn keep_only(&mut self, alive: &[String]) {
        self.by_key.retain(|k, _| alive.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let b = Event::Block(BlockRecord {
            domain: "p.test".into(),
            object_type: "ip".into(),
            object_value: "10.0.0.1".into(),
            rule: "flood1".into(),
            action: "block".into(),
            until_ms: 123,
        });
        let p = Event::Purge(PurgeEvent {
            domain: "p.test".into(),
            kind: "urls".into(),
            values: vec!["/a".into()],
        });
        for e in [b, p] {
            let (node, back) = Event::from_json(&e.to_json("n1")).unwrap();
            assert_eq!((node.as_str(), back), ("n1", e));
        }
        assert!(Event::from_json("{\"op\":\"x\",\"node\":\"n\"}").is_none());
    }

    #[test]
    fn applied_once_per_number() {
        let mut a = Applied::default();
        assert!(a.fresh("k", 3));
        assert!(!a.fresh("k", 3));
        assert!(a.fresh("k", 5));
        assert_eq!(a.last, 5);
    }
}
