//! Tiered counting on the wire: the batch of counts an edge posts to its parent, and the parent's answer.
//! Text, one line per key, so an operator can read a batch with curl:
//!
//! ```text
//! edgeguard-counts/1 <node>
//! <window ms> <window index> <own count> <own count of the previous window> <key hex> <table id>
//! ...
//! ```
//! and the answer, one line per line of the batch, in its order, after a line naming the parent's instance
//! (a number drawn at its start):
//! ```text
//! edgeguard-counts/1 <instance>
//! <others' total> <others' total of the previous window> <nodes counting>
//! ```
//! The counts are cumulative per node and window, as in the Redis hashes, so a batch sent twice (a retry, a
//! replay after an outage) is merged as one. Another instance in an answer (the parent restarted, or another
//! parent took over) has none of the counts confirmed before: the edge sends them all again.

use thiserror::Error;

use crate::counters::{Item, Totals};

pub const MAGIC: &str = "edgeguard-counts/1";

/// A batch or an answer that does not read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("counts batch: {0}")]
    Malformed(&'static str),
    #[error("counts batch: line {line}: {why}")]
    BadLine { line: usize, why: &'static str },
    #[error("counts answer: {0}")]
    BadAnswer(&'static str),
}

/// One line of a batch as the parent reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub window_ms: u64,
    pub win: u64,
    pub own: u64,
    pub own_prev: u64,
    pub key: Vec<u8>,
    pub table: &'a str,
}

/// The batch of `items` sent by `node`. Items whose table id holds a line break (none the engine makes) are
/// left out by the caller.
pub fn encode_batch<'a>(node: &str, items: impl Iterator<Item = &'a Item>) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::with_capacity(64);
    let _ = writeln!(out, "{MAGIC} {node}");
    for it in items {
        let _ = write!(
            out,
            "{} {} {} {} ",
            it.table.window_ms, it.win, it.own, it.own_prev
        );
        if it.key.is_empty() {
            out.push('-');
        }
        for b in it.key.iter() {
            let _ = write!(out, "{b:02x}");
        }
        out.push(' ');
        out.push_str(&it.table.id);
        out.push('\n');
    }
    out.into_bytes()
}

/// The node that sent `body` and its lines.
pub fn decode_batch(body: &[u8]) -> Result<(&str, Vec<Line<'_>>), WireError> {
    let text = std::str::from_utf8(body).map_err(|_| WireError::Malformed("not UTF-8"))?;
    let mut lines = text.lines();
    let head = lines.next().ok_or(WireError::Malformed("empty"))?;
    let node = head
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .filter(|n| !n.is_empty())
        .ok_or(WireError::Malformed(
            "first line is not \"edgeguard-counts/1 <node>\"",
        ))?;
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let bad = |why| WireError::BadLine { line: i + 2, why };
        let mut f = l.splitn(6, ' ');
        let mut num = || -> Result<u64, WireError> {
            f.next()
                .and_then(|v| v.parse().ok())
                .ok_or(bad("expected a number"))
        };
        let (window_ms, win, own, own_prev) = (num()?, num()?, num()?, num()?);
        if window_ms == 0 {
            return Err(bad("window of 0 ms"));
        }
        let hex = f.next().ok_or(bad("no key"))?;
        let key = if hex == "-" {
            Vec::new()
        } else {
            unhex(hex).ok_or(bad("key is not hex"))?
        };
        let table = f.next().filter(|t| !t.is_empty()).ok_or(bad("no table"))?;
        out.push(Line {
            window_ms,
            win,
            own,
            own_prev,
            key,
            table,
        });
    }
    Ok((node, out))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The answer of parent `instance` to a batch.
pub fn encode_totals(instance: u64, totals: &[Totals]) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::with_capacity(MAGIC.len() + 22 + totals.len() * 12);
    let _ = writeln!(out, "{MAGIC} {instance}");
    for t in totals {
        let _ = writeln!(out, "{} {} {}", t.others, t.others_prev, t.nodes);
    }
    out.into_bytes()
}

/// The answer to a batch of `n` lines: the parent's instance (`None` from a parent that names none) and the
/// totals.
pub fn decode_totals(body: &[u8], n: usize) -> Result<(Option<u64>, Vec<Totals>), WireError> {
    let text = std::str::from_utf8(body).map_err(|_| WireError::BadAnswer("not UTF-8"))?;
    let mut lines = text.lines();
    let instance = match lines.next().and_then(|l| l.strip_prefix(MAGIC)) {
        Some("") => None,
        Some(rest) => Some(
            rest.strip_prefix(' ')
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(WireError::BadAnswer(
                    "the parent's instance is not a number",
                ))?,
        ),
        None => {
            return Err(WireError::BadAnswer(
                "first line is not \"edgeguard-counts/1\"",
            ));
        }
    };
    let mut out = Vec::with_capacity(n);
    for l in lines {
        let mut f = l.split(' ').map(|v| v.parse::<u64>().ok());
        let (Some(Some(others)), Some(Some(others_prev)), Some(Some(nodes))) =
            (f.next(), f.next(), f.next())
        else {
            return Err(WireError::BadAnswer("expected three numbers per line"));
        };
        out.push(Totals {
            others,
            others_prev,
            nodes,
        });
    }
    if out.len() != n {
        return Err(WireError::BadAnswer("not one line per line of the batch"));
    }
    Ok((instance, out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::counters::CounterTable;
    use crate::health::Health;

    #[test]
    fn a_batch_and_its_answer_read_back() {
        let health = Arc::new(Health::new(Default::default(), "parent"));
        let table = Arc::new(CounterTable::new(
            "p.test/flood100/10000".into(),
            10_000,
            health,
            Default::default(),
        ));
        let item = |key: &[u8], own| Item {
            table: table.clone(),
            key: table.key(key),
            win: 17,
            own,
            own_prev: 3,
        };
        let items = [item(&[192, 0, 2, 7], 5), item(&[], 1)];
        let body = encode_batch("edge a", items.iter());
        let (node, lines) = decode_batch(&body).unwrap();
        assert_eq!(node, "edge a");
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (
                lines[0].window_ms,
                lines[0].win,
                lines[0].own,
                lines[0].own_prev
            ),
            (10_000, 17, 5, 3)
        );
        assert_eq!(lines[0].key, [192, 0, 2, 7]);
        assert_eq!(lines[0].table, "p.test/flood100/10000");
        assert!(lines[1].key.is_empty());
        let totals = [Totals {
            others: 9,
            others_prev: 4,
            nodes: 3,
        }];
        assert_eq!(
            decode_totals(&encode_totals(77, &totals), 1).unwrap(),
            (Some(77), totals.to_vec())
        );
        assert!(decode_totals(&encode_totals(77, &totals), 2).is_err());
        assert!(decode_totals(b"502 Bad Gateway\n", 0).is_err());
        // A parent that names no instance, and one whose instance does not read.
        assert_eq!(
            decode_totals(b"edgeguard-counts/1\n", 0).unwrap(),
            (None, Vec::new())
        );
        assert!(decode_totals(b"edgeguard-counts/1 x\n", 0).is_err());
        assert!(decode_totals(b"edgeguard-counts/12\n", 0).is_err());
    }
}
