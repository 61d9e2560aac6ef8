//! Traffic statistics per domain and five-minute point: counted in memory on the request path, persisted by a
//! periodic [`TrafficStats::flush`], kept for 30 days, and the source of the node's own IP access limit
//! recommendation.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::activity::ActivityLog;
use crate::heavy::{DecisionKind, PointCounter, StatsPoint};
use crate::recommend::{Recommendation, WINDOW_MS, recommend};

/// Sizes of the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsOptions {
    /// Space-saving slots per domain: memory per domain is about `slots * 150` bytes, and the maximum per-IP count
    /// of a point is exact while the point has at most this many distinct IPs.
    pub slots: usize,
    /// Domains counted at most; events for further domains are dropped and counted (hosts come from the
    /// configuration, so this only bites on a misuse).
    pub max_domains: usize,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            slots: 1024,
            max_domains: 10_000,
        }
    }
}

/// Closed points of a domain kept while no flush has taken them (a node without a database keeps 30 days' worth
/// here; so does a node whose flushes fail).
const MAX_UNFLUSHED: usize = 30 * 288;

struct DomainState {
    counter: PointCounter,
    closed: VecDeque<StatsPoint>,
}

impl DomainState {
    fn push_closed(&mut self, point: StatsPoint) {
        if self.closed.len() == MAX_UNFLUSHED {
            self.closed.pop_front();
        }
        self.closed.push_back(point);
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// Statistics of every domain of the node. Share it behind an `Arc`.
pub struct TrafficStats {
    options: StatsOptions,
    /// Routed domains only, at most `max_domains`: the fast hasher is safe here.
    domains: RwLock<HashMap<String, Shared<DomainState>, foldhash::fast::RandomState>>,
    db: Option<Shared<Connection>>,
    /// Points of the last 30 days when there is no database.
    history: Mutex<HashMap<String, VecDeque<StatsPoint>>>,
    dropped_events: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay meaningful after a panic elsewhere; losing statistics over a poisoned lock would be worse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TrafficStats {
    /// Statistics persisted in the node's database (the activity log's file).
    pub fn new(options: StatsOptions, db: &ActivityLog) -> Self {
        Self::build(options, Some(db.shared_connection()))
    }

    /// Statistics kept in memory only (30 days of closed points per domain), for tools and tests.
    pub fn in_memory(options: StatsOptions) -> Self {
        Self::build(options, None)
    }

    fn build(options: StatsOptions, db: Option<Shared<Connection>>) -> Self {
        TrafficStats {
            options,
            domains: RwLock::new(HashMap::default()),
            db,
            history: Mutex::new(HashMap::new()),
            dropped_events: AtomicU64::new(0),
        }
    }

    /// Hot path: counts one request. A read lock and one domain's mutex for a few hundred nanoseconds; no disk,
    /// no allocation except the first time a domain is seen.
    pub fn record_request(&self, domain: &str, ip: IpAddr, now_ms: i64) {
        self.with_domain(domain, |d| {
            if let Some(closed) = d.counter.record(ip, now_ms) {
                d.push_closed(closed);
            }
        });
    }

    /// Hot path: counts one request and its outcome under a single domain lookup and lock (what
    /// [`record_request`](Self::record_request) and [`record_decision`](Self::record_decision) do together).
    pub fn record_outcome(&self, domain: &str, ip: IpAddr, kind: DecisionKind, now_ms: i64) {
        self.with_domain(domain, |d| {
            if let Some(closed) = d.counter.record(ip, now_ms) {
                d.push_closed(closed);
            }
            // Same point as the request just counted: nothing more can close here.
            let _ = d.counter.record_decision(kind, now_ms);
        });
    }

    /// Hot path: counts the outcome of one request.
    pub fn record_decision(&self, domain: &str, kind: DecisionKind, now_ms: i64) {
        self.with_domain(domain, |d| {
            if let Some(closed) = d.counter.record_decision(kind, now_ms) {
                d.push_closed(closed);
            }
        });
    }

    /// Events refused because `max_domains` was reached.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    fn with_domain(&self, domain: &str, f: impl FnOnce(&mut DomainState)) {
        let state = {
            let map = self.domains.read().unwrap_or_else(|p| p.into_inner());
            map.get(domain).cloned()
        };
        let state = match state {
            Some(s) => s,
            None => {
                let mut map = self.domains.write().unwrap_or_else(|p| p.into_inner());
                if !map.contains_key(domain) && map.len() >= self.options.max_domains {
                    self.dropped_events.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Arc::clone(map.entry(domain.to_owned()).or_insert_with(|| {
                    Arc::new(Mutex::new(DomainState {
                        counter: PointCounter::new(self.options.slots),
                        closed: VecDeque::new(),
                    }))
                }))
            }
        };
        f(&mut lock(&state));
    }

    fn all_domains(&self) -> Vec<(String, Shared<DomainState>)> {
        let map = self.domains.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Closes every point that ended by `now_ms` (also for domains that went quiet), persists the closed points and
    /// drops points older than 30 days. Call it from a background task every few seconds to a minute; it does disk
    /// I/O. Returns how many points were persisted.
    pub fn flush(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.flush_inner(now_ms, false)
    }

    /// Like [`flush`](Self::flush) but also persists the unfinished current points (at shutdown). Counting after
    /// it in the same point is merged with what was persisted: requests and decisions add up, the maximum per-IP
    /// count becomes the larger of the two with an error bound that covers their sum.
    pub fn close(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.flush_inner(now_ms, true)
    }

    fn flush_inner(&self, now_ms: i64, unfinished_too: bool) -> Result<usize, StoreError> {
        let mut batch: Vec<(String, StatsPoint)> = Vec::new();
        for (name, state) in self.all_domains() {
            let mut d = lock(&state);
            if let Some(closed) = d.counter.roll(now_ms) {
                d.push_closed(closed);
            }
            let unfinished = if unfinished_too {
                d.counter.take()
            } else {
                None
            };
            if let Some(open) = unfinished {
                d.push_closed(open);
            }
            batch.extend(d.closed.drain(..).map(|p| (name.clone(), p)));
        }
        let written = batch.len();
        let cutoff = now_ms - WINDOW_MS;
        match &self.db {
            Some(db) => {
                if let Err(e) = persist(&mut lock(db), &batch, cutoff) {
                    // Keep the points for the next flush rather than lose them to a transient error.
                    self.requeue(batch);
                    return Err(e);
                }
            }
            None => {
                let mut history = lock(&self.history);
                for (name, point) in batch {
                    history.entry(name).or_default().push_back(point);
                }
                history.retain(|_, points| {
                    points.retain(|p| p.point_start_ms >= cutoff);
                    !points.is_empty()
                });
            }
        }
        Ok(written)
    }

    fn requeue(&self, batch: Vec<(String, StatsPoint)>) {
        let map = self.domains.read().unwrap_or_else(|p| p.into_inner());
        for (name, point) in batch.into_iter().rev() {
            if let Some(state) = map.get(&name) {
                let mut d = lock(state);
                if d.closed.len() < MAX_UNFLUSHED {
                    d.closed.push_front(point);
                }
            }
        }
    }

    /// Closed points of `domain` starting in `[from_ms, to_ms)`, oldest first, persisted or not yet flushed. The
    /// current, unfinished point is not included (see [`current`](Self::current)).
    pub fn points(
        &self,
        domain: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<StatsPoint>, StoreError> {
        let mut points: Vec<StatsPoint> = match &self.db {
            Some(db) => load_points(&lock(db), domain, from_ms, to_ms)?,
            None => lock(&self.history)
                .get(domain)
                .map(|h| {
                    h.iter()
                        .filter(|p| p.point_start_ms >= from_ms && p.point_start_ms < to_ms)
                        .copied()
                        .collect()
                })
                .unwrap_or_default(),
        };
        let state = {
            let map = self.domains.read().unwrap_or_else(|p| p.into_inner());
            map.get(domain).cloned()
        };
        if let Some(state) = state {
            let d = lock(&state);
            for p in d
                .closed
                .iter()
                .filter(|p| p.point_start_ms >= from_ms && p.point_start_ms < to_ms)
            {
                match points
                    .iter_mut()
                    .find(|q| q.point_start_ms == p.point_start_ms)
                {
                    Some(q) => *q = merge(q, p),
                    None => points.push(*p),
                }
            }
        }
        points.sort_by_key(|p| p.point_start_ms);
        Ok(points)
    }

    /// The unfinished point of `domain`, if it counted anything.
    pub fn current(&self, domain: &str) -> Option<StatsPoint> {
        let map = self.domains.read().unwrap_or_else(|p| p.into_inner());
        map.get(domain).and_then(|s| lock(s).counter.current())
    }

    /// The IP access limit recommended for `domain` from its points of the 30 days before `now_ms`.
    pub fn recommend(&self, domain: &str, now_ms: i64) -> Result<Recommendation, StoreError> {
        let points = self.points(domain, now_ms - WINDOW_MS, now_ms)?;
        Ok(recommend(
            points
                .iter()
                .filter(|p| p.requests > 0)
                .map(|p| p.max_ip_count),
        ))
    }
}

/// Two partial counts of the same point: sums, and the larger lower bound with an error that reaches the sum of
/// the upper bounds (the true maximum of the union can be no more than that).
fn merge(a: &StatsPoint, b: &StatsPoint) -> StatsPoint {
    let lower = a.max_ip_count.max(b.max_ip_count);
    let upper = a.max_ip_count + a.max_ip_error + b.max_ip_count + b.max_ip_error;
    StatsPoint {
        point_start_ms: a.point_start_ms,
        requests: a.requests + b.requests,
        max_ip_count: lower,
        max_ip_error: upper - lower,
        passed: a.passed + b.passed,
        limited: a.limited + b.limited,
        blocked: a.blocked + b.blocked,
        challenged: a.challenged + b.challenged,
    }
}

fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn persist(
    conn: &mut Connection,
    batch: &[(String, StatsPoint)],
    cutoff_ms: i64,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO stats_points (domain, point_start_ms, requests, max_ip_count, max_ip_error, \
                 passed, limited, blocked, challenged) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (domain, point_start_ms) DO UPDATE SET \
                 requests = requests + excluded.requests, \
                 max_ip_error = max_ip_count + max_ip_error + excluded.max_ip_count + excluded.max_ip_error \
                     - MAX(max_ip_count, excluded.max_ip_count), \
                 max_ip_count = MAX(max_ip_count, excluded.max_ip_count), \
                 passed = passed + excluded.passed, limited = limited + excluded.limited, \
                 blocked = blocked + excluded.blocked, challenged = challenged + excluded.challenged",
        )?;
        for (domain, p) in batch {
            stmt.execute(params![
                domain,
                p.point_start_ms,
                to_sql(p.requests),
                to_sql(p.max_ip_count),
                to_sql(p.max_ip_error),
                to_sql(p.passed),
                to_sql(p.limited),
                to_sql(p.blocked),
                to_sql(p.challenged)
            ])?;
        }
    }
    tx.execute(
        "DELETE FROM stats_points WHERE point_start_ms < ?",
        [cutoff_ms],
    )?;
    tx.commit()?;
    Ok(())
}

fn load_points(
    conn: &Connection,
    domain: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<StatsPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT point_start_ms, requests, max_ip_count, max_ip_error, passed, limited, blocked, challenged \
         FROM stats_points WHERE domain = ? AND point_start_ms >= ? AND point_start_ms < ? ORDER BY point_start_ms",
    )?;
    let points = stmt
        .query_map(params![domain, from_ms, to_ms], |row| {
            Ok(StatsPoint {
                point_start_ms: row.get(0)?,
                requests: from_sql(row.get(1)?),
                max_ip_count: from_sql(row.get(2)?),
                max_ip_error: from_sql(row.get(3)?),
                passed: from_sql(row.get(4)?),
                limited: from_sql(row.get(5)?),
                blocked: from_sql(row.get(6)?),
                challenged: from_sql(row.get(7)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(points)
}
