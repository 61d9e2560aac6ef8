//! Per-point counting of requests per client IP in fixed memory.
//!
//! [`SpaceSaving`] is the space-saving heavy-hitters summary (Metwally, Agrawal, El Abbadi 2005) with `k` slots
//! kept as an indexed binary min-heap. While at most `k` distinct IPs have been seen every count is exact. Beyond
//! that, a new IP takes over the slot of the smallest count `m` and starts at `m + 1` with error `m`. With `N`
//! requests counted, the smallest count never exceeds `N / k`, so every reported count overestimates its IP by at
//! most `N / k` and any IP with more than `N / k` requests is certainly in the summary. Hence the true maximum
//! per-IP count `f` satisfies `lower <= f <= upper` with `upper = max(count)`, `lower = max(count - error)` and
//! `upper - lower <= N / k`.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::recommend::point_start;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u128,
    count: u64,
    error: u64,
}

/// Fixed-size heavy-hitters summary over IP addresses. Never allocates after construction.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    slots: usize,
    heap: Vec<Slot>,
    /// Heap position of each monitored key; never holds more than `slots` entries.
    index: HashMap<u128, usize, foldhash::fast::RandomState>,
    total: u64,
}

/// The maximum per-IP count of a summary, as bounds (equal when the summary is exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaxCount {
    /// A count that some IP certainly reached.
    pub lower: u64,
    /// No IP exceeded this.
    pub upper: u64,
}

/// IPv4 addresses as their IPv6-mapped form, so that one key type covers both families.
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl SpaceSaving {
    /// `slots` is clamped to at least 1.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        // Twice the slots: the map then never needs to grow, even with tombstones from evictions.
        SpaceSaving {
            slots,
            heap: Vec::with_capacity(slots),
            index: HashMap::with_capacity_and_hasher(slots * 2, Default::default()),
            total: 0,
        }
    }

    /// Hot path: one hash look-up and O(log k) swaps, no allocation.
    pub fn add(&mut self, ip: IpAddr) {
        self.total += 1;
        let key = ip_key(ip);
        if let Some(&pos) = self.index.get(&key) {
            self.heap[pos].count += 1;
            self.sift_down(pos);
        } else if self.heap.len() < self.slots {
            self.heap.push(Slot {
                key,
                count: 1,
                error: 0,
            });
            let pos = self.heap.len() - 1;
            self.index.insert(key, pos);
            self.sift_up(pos);
        } else {
            let min = self.heap[0];
            self.index.remove(&min.key);
            self.heap[0] = Slot {
                key,
                count: min.count + 1,
                error: min.count,
            };
            self.index.insert(key, 0);
            self.sift_down(0);
        }
    }

    /// Requests counted since the last reset.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Distinct IPs currently monitored (at most `slots`).
    pub fn tracked(&self) -> usize {
        self.heap.len()
    }

    /// Whether every count is exact (no IP was ever evicted since the last reset).
    pub fn is_exact(&self) -> bool {
        self.heap.iter().all(|s| s.error == 0)
    }

    pub fn max_count(&self) -> MaxCount {
        self.heap.iter().fold(MaxCount::default(), |m, s| MaxCount {
            lower: m.lower.max(s.count - s.error),
            upper: m.upper.max(s.count),
        })
    }

    /// The summary's estimate for one IP: `(count, error)`, or `None` if it is not monitored (then its true count
    /// is at most the smallest monitored count).
    pub fn estimate(&self, ip: IpAddr) -> Option<(u64, u64)> {
        self.index
            .get(&ip_key(ip))
            .map(|&pos| (self.heap[pos].count, self.heap[pos].error))
    }

    /// Bytes held by the summary's buffers, as the buffers report their capacity: never more than at
    /// construction (the map may report a little less while it holds deletion markers).
    pub fn allocated_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Slot>()
            + self.index.capacity() * (std::mem::size_of::<(u128, usize)>() + 1)
    }

    /// Forgets every count, keeping the allocations.
    pub fn reset(&mut self) {
        self.heap.clear();
        self.index.clear();
        self.total = 0;
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        if let Some(p) = self.index.get_mut(&self.heap[a].key) {
            *p = a;
        }
        if let Some(p) = self.index.get_mut(&self.heap[b].key) {
            *p = b;
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.heap[parent].count <= self.heap[pos].count {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].count < self.heap[left].count {
                right
            } else {
                left
            };
            if self.heap[pos].count <= self.heap[child].count {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }
}

/// What a [`PointCounter`] records besides requests: the outcome of each request, for the console's charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Passed,
    /// 514 of the IP access limit and the nginx-style limit_req / limit_conn rejections.
    Limited,
    Blocked,
    Challenged,
}

/// One closed five-minute point of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsPoint {
    pub point_start_ms: i64,
    pub requests: u64,
    /// Highest request count of a single IP in the point, a lower bound (exact when the point saw at most as many
    /// distinct IPs as the counter has slots).
    pub max_ip_count: u64,
    /// How much the true maximum may exceed `max_ip_count` (0 when exact).
    pub max_ip_error: u64,
    pub passed: u64,
    pub limited: u64,
    pub blocked: u64,
    pub challenged: u64,
}

/// Counts of the current five-minute point of one domain; rolls over to a new point when time passes a point
/// boundary. Time never goes back: an event stamped before the current point is counted in the current point.
#[derive(Debug, Clone)]
pub struct PointCounter {
    point_start_ms: Option<i64>,
    ips: SpaceSaving,
    decisions: [u64; 4],
}

impl PointCounter {
    pub fn new(slots: usize) -> Self {
        PointCounter {
            point_start_ms: None,
            ips: SpaceSaving::new(slots),
            decisions: [0; 4],
        }
    }

    /// Counts one request of `ip`; returns the previous point if this request opened a new one.
    pub fn record(&mut self, ip: IpAddr, now_ms: i64) -> Option<StatsPoint> {
        let closed = self.roll(now_ms);
        self.ips.add(ip);
        closed
    }

    pub fn record_decision(&mut self, kind: DecisionKind, now_ms: i64) -> Option<StatsPoint> {
        let closed = self.roll(now_ms);
        self.decisions[kind as usize] += 1;
        closed
    }

    /// Moves to the point of `now_ms` if it is later than the current one; returns the closed point if it counted
    /// anything.
    pub fn roll(&mut self, now_ms: i64) -> Option<StatsPoint> {
        let start = point_start(now_ms);
        match self.point_start_ms {
            Some(current) if start <= current => None,
            _ => {
                let closed = self.take();
                self.point_start_ms = Some(start);
                closed
            }
        }
    }

    /// Closes the current point even though it has not ended (shutdown); counting goes on in the same point.
    pub fn take(&mut self) -> Option<StatsPoint> {
        let point = self.current()?;
        self.ips.reset();
        self.decisions = [0; 4];
        Some(point)
    }

    /// The current point so far, if it counted anything.
    pub fn current(&self) -> Option<StatsPoint> {
        let start = self.point_start_ms?;
        if self.ips.total() == 0 && self.decisions.iter().all(|&d| d == 0) {
            return None;
        }
        let max = self.ips.max_count();
        Some(StatsPoint {
            point_start_ms: start,
            requests: self.ips.total(),
            max_ip_count: max.lower,
            max_ip_error: max.upper - max.lower,
            passed: self.decisions[DecisionKind::Passed as usize],
            limited: self.decisions[DecisionKind::Limited as usize],
            blocked: self.decisions[DecisionKind::Blocked as usize],
            challenged: self.decisions[DecisionKind::Challenged as usize],
        })
    }

    pub fn summary(&self) -> &SpaceSaving {
        &self.ips
    }

    pub fn allocated_bytes(&self) -> usize {
        self.ips.allocated_bytes()
    }
}
