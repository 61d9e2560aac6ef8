//! The parent's side of tiered counting: the counts its edges post (`wire.rs`), max-merged per edge, key and
//! fixed window as the Redis script does, and answered with the other edges' totals. Fixed memory: at most
//! [`MAX_AGG_KEYS`] keys and [`MAX_EDGES`] edge names; a key is forgotten once its newest window and the one
//! after have ended (its counts can no longer be read as the previous window). A key past the cap is answered
//! with nobody else counting, so the edge decides it on its own counts, as with `scope = "node"`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::counters::{MAX_KEYS, Totals};
use crate::wire::{self, Line, WireError};

/// Keys followed for all edges and tables together.
pub const MAX_AGG_KEYS: usize = MAX_KEYS;
/// Edge names followed; a batch from one more is refused.
pub const MAX_EDGES: usize = 256;
/// How often expired keys are swept (Unix ms between sweeps).
const SWEEP_MS: u64 = 1000;

/// One fixed window of one key: each edge's cumulative count.
#[derive(Debug, Default)]
struct Win {
    index: u64,
    counts: Vec<(u16, u64)>,
}

impl Win {
    fn merge(&mut self, node: u16, n: u64) {
        match self.counts.iter_mut().find(|(id, _)| *id == node) {
            Some((_, c)) => *c = (*c).max(n),
            None => self.counts.push((node, n)),
        }
    }

    /// The others' total and how many edges count, `node` included.
    fn others(&self, node: u16) -> (u64, u64) {
        let others = self
            .counts
            .iter()
            .filter(|(id, _)| *id != node)
            .map(|(_, c)| c)
            .sum();
        (others, self.counts.len() as u64)
    }
}

/// One key: its newest two windows.
#[derive(Debug, Default)]
struct KeyAgg {
    wins: Vec<Win>,
    expires_ms: u64,
}

impl KeyAgg {
    fn win_mut(&mut self, index: u64) -> Option<&mut Win> {
        let newest = self.wins.iter().map(|w| w.index).max().unwrap_or(0);
        if index + 1 < newest {
            return None;
        }
        if index > newest {
            self.wins.retain(|w| w.index + 1 >= index);
        }
        match self.wins.iter().position(|w| w.index == index) {
            Some(i) => Some(&mut self.wins[i]),
            None => {
                self.wins.push(Win {
                    index,
                    counts: Vec::new(),
                });
                self.wins.last_mut()
            }
        }
    }

    fn get(&self, index: u64) -> Option<&Win> {
        self.wins.iter().find(|w| w.index == index)
    }
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<Box<str>, u16>,
    /// By table id, then key.
    tables: HashMap<Box<str>, HashMap<Box<[u8]>, KeyAgg>>,
    keys: usize,
    next_sweep_ms: u64,
}

impl State {
    fn node_id(&mut self, node: &str) -> Result<u16, WireError> {
        if let Some(id) = self.nodes.get(node) {
            return Ok(*id);
        }
        if self.nodes.len() >= MAX_EDGES {
            return Err(WireError::Malformed("more edges than a parent follows"));
        }
        let id = self.nodes.len() as u16;
        self.nodes.insert(node.into(), id);
        Ok(id)
    }

    fn sweep(&mut self, now_ms: u64) {
        self.next_sweep_ms = now_ms + SWEEP_MS;
        let mut keys = 0;
        self.tables.retain(|_, t| {
            t.retain(|_, k| k.expires_ms > now_ms);
            keys += t.len();
            !t.is_empty()
        });
        self.keys = keys;
    }

    fn merge(&mut self, node: u16, l: &Line<'_>, now_ms: u64) -> Totals {
        let alone = Totals {
            others: 0,
            others_prev: 0,
            nodes: 1,
        };
        let expires_ms = (l.win + 2).saturating_mul(l.window_ms) + 1000;
        if expires_ms <= now_ms {
            return alone;
        }
        let known = self
            .tables
            .get(l.table)
            .is_some_and(|t| t.contains_key(l.key.as_slice()));
        if !known && self.keys >= MAX_AGG_KEYS {
            self.sweep(now_ms);
            if self.keys >= MAX_AGG_KEYS {
                return alone;
            }
        }
        let table = match self.tables.get_mut(l.table) {
            Some(t) => t,
            None => self.tables.entry(l.table.into()).or_default(),
        };
        let key = match table.get_mut(l.key.as_slice()) {
            Some(k) => k,
            None => {
                self.keys += 1;
                table.entry(l.key.as_slice().into()).or_default()
            }
        };
        key.expires_ms = key.expires_ms.max(expires_ms);
        // As the Redis script: a count of 0 adds no field (a node that only reads is not counted as counting).
        if l.own > 0
            && let Some(w) = key.win_mut(l.win)
        {
            w.merge(node, l.own);
        }
        if l.own_prev > 0
            && l.win > 0
            && let Some(w) = key.win_mut(l.win - 1)
        {
            w.merge(node, l.own_prev);
        }
        let (others, nodes) = key.get(l.win).map_or((0, 0), |w| w.others(node));
        let (others_prev, _) = l
            .win
            .checked_sub(1)
            .and_then(|p| key.get(p))
            .map_or((0, 0), |w| w.others(node));
        Totals {
            others,
            others_prev,
            nodes: nodes.max(1),
        }
    }
}

/// What a parent keeps of its edges' counts.
#[derive(Debug)]
pub struct Aggregator {
    state: Mutex<State>,
    /// Named in every answer: an edge that sees another one knows this parent holds none of its counts.
    instance: u64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    pub fn new() -> Self {
        // Distinct per start: the clock's nanoseconds and the process id, mixed.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let instance = (nanos ^ u64::from(std::process::id()).rotate_left(32))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Aggregator {
            state: Mutex::default(),
            instance,
        }
    }

    /// Merges an edge's batch (the body of its POST) at `now_ms` (Unix ms) and returns the answer's body.
    /// Called by the data plane for a trusted peer; memory work only, under one lock.
    pub fn exchange(&self, body: &[u8], now_ms: u64) -> Result<Vec<u8>, WireError> {
        let (node, lines) = wire::decode_batch(body)?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now_ms >= s.next_sweep_ms {
            s.sweep(now_ms);
        }
        let id = s.node_id(node)?;
        let totals: Vec<Totals> = lines.iter().map(|l| s.merge(id, l, now_ms)).collect();
        Ok(wire::encode_totals(self.instance, &totals))
    }

    /// Keys followed now.
    pub fn keys(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).keys
    }
}

#[cfg(test)]
mod tests;
