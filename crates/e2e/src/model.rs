//! A small, independent model of nginx's limit_req / limit_conn decisions (written from the reference
//! notes, not shared with the engine under test). The differential tests use it to predict what a script
//! should get and, by re-running it with every send time moved, to find the decisions that depend on
//! timing too finely to compare between two servers.

use std::collections::HashMap;

use crate::scenario::{ConnLimit, Delay, ReqLimit, Scenario};
use crate::script::{Step, query_arg};

/// The address every test client connects from.
const CLIENT_ADDR: &str = "127.0.0.1";

/// What a request gets from the limits: status (200 when neither limit answers) and the two variables.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Verdict {
    pub status: u16,
    pub lr: Option<String>,
    pub lc: Option<String>,
}

impl Verdict {
    pub fn new(status: u16, lr: Option<&str>, lc: Option<&str>) -> Self {
        Self {
            status,
            lr: lr.map(str::to_string),
            lc: lc.map(str::to_string),
        }
    }
}

/// The model's full answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicted {
    pub verdict: Verdict,
    /// limit_req's wait in ms (0 when not delayed, and under dry run).
    pub delay_ms: u64,
}

/// One `limit_req[i]: RC E.EEE` debug line as nginx would log it.
pub type LogLine = (u32, i32, u64);

const RC_OK: i32 = 0;
const RC_AGAIN: i32 = -2;
const RC_BUSY: i32 = -3;

/// Stands for nginx's uptime-long `now - 0` of a new pinned state: long enough to drain any excess.
const PINNED_NEW_AGE_MS: i64 = 1_000_000_000;

struct ReqState {
    excess: i64,
    last: i64,
}

enum Event {
    Arrive(usize),
    ConnStage(usize),
    Release(usize),
}

/// Runs `steps` through the model with step `i` arriving at `times[i]` ms. Requests are handled in time
/// order (ties in step order); a pipeline's requests arrive together, in order. A request holds its
/// limit_conn slots from the end of its limit_req delay for its origin hold time (`ms=N`).
pub fn simulate(
    scenario: &Scenario,
    steps: &[Step],
    times: &[i64],
) -> (Vec<Predicted>, Vec<LogLine>) {
    let rates: HashMap<&str, i64> = scenario
        .req_zones
        .iter()
        .map(|z| (z.name.as_str(), rate_milli(&z.rate)))
        .collect();
    let req_keys: HashMap<&str, &str> = scenario
        .req_zones
        .iter()
        .map(|z| (z.name.as_str(), z.key.as_str()))
        .collect();
    let conn_keys: HashMap<&str, &str> = scenario
        .conn_zones
        .iter()
        .map(|z| (z.name.as_str(), z.key.as_str()))
        .collect();

    let mut req_states: HashMap<(String, String), ReqState> = HashMap::new();
    let mut conn_counts: HashMap<(String, String), u32> = HashMap::new();
    let mut held: Vec<Vec<(String, String)>> = vec![Vec::new(); steps.len()];
    let mut out: Vec<Option<Predicted>> = vec![None; steps.len()];
    let mut log = Vec::new();

    // (time, phase, seq, event): releases before conn stages before arrivals at the same ms, so a slot
    // freed at t is free for a request arriving at t.
    let mut queue: Vec<(i64, u8, usize, Event)> = steps
        .iter()
        .enumerate()
        .map(|(i, _)| (times[i], 2, i, Event::Arrive(i)))
        .collect();
    let mut bound = steps.len() * 4 + 8;
    while !queue.is_empty() && bound > 0 {
        bound -= 1;
        let next = (0..queue.len())
            .min_by_key(|&k| (queue[k].0, queue[k].1, queue[k].2))
            .unwrap_or(0);
        let (now, _, _, event) = queue.swap_remove(next);
        match event {
            Event::Arrive(i) => {
                let step = &steps[i];
                let Some(site) = scenario.site_for(&step.host) else {
                    continue;
                };
                let (req_list, _) = site.lists_for(&step.path);
                let r = limit_req(
                    req_list,
                    step,
                    now,
                    &rates,
                    &req_keys,
                    &mut req_states,
                    &mut log,
                );
                let status_code = site.limit_req_status.unwrap_or(503);
                match r {
                    ReqResult::Unset => queue.push((now, 1, i, Event::ConnStage(i))),
                    ReqResult::Rejected { dry_run: false } => {
                        out[i] = Some(Predicted {
                            verdict: Verdict::new(status_code, Some("REJECTED"), None),
                            delay_ms: 0,
                        });
                    }
                    ReqResult::Rejected { dry_run: true } => {
                        out[i] = Some(Predicted {
                            verdict: Verdict::new(200, Some("REJECTED_DRY_RUN"), None),
                            delay_ms: 0,
                        });
                        queue.push((now, 1, i, Event::ConnStage(i)));
                    }
                    ReqResult::Passed { delay_ms, dry_run } => {
                        let (lr, wait) = match (delay_ms, dry_run) {
                            (0, _) => ("PASSED", 0),
                            (_, true) => ("DELAYED_DRY_RUN", 0),
                            (d, false) => ("DELAYED", d),
                        };
                        out[i] = Some(Predicted {
                            verdict: Verdict::new(200, Some(lr), None),
                            delay_ms: wait,
                        });
                        let at = now + i64::try_from(wait).unwrap_or(i64::MAX / 2);
                        queue.push((at, 1, i, Event::ConnStage(i)));
                    }
                }
            }
            Event::ConnStage(i) => {
                let step = &steps[i];
                let Some(site) = scenario.site_for(&step.host) else {
                    continue;
                };
                let (_, conn_list) = site.lists_for(&step.path);
                let prior = out[i].take().unwrap_or(Predicted {
                    verdict: Verdict::new(200, None, None),
                    delay_ms: 0,
                });
                let (lc, rejected, taken) =
                    limit_conn(conn_list, step, &conn_keys, &mut conn_counts);
                let mut verdict = prior.verdict;
                verdict.lc = lc.map(str::to_string);
                if rejected {
                    verdict.status = site.limit_conn_status.unwrap_or(503);
                } else {
                    held[i] = taken;
                    let hold = i64::try_from(step.hold_ms()).unwrap_or(0);
                    queue.push((now + hold, 0, i, Event::Release(i)));
                }
                out[i] = Some(Predicted {
                    verdict,
                    delay_ms: prior.delay_ms,
                });
            }
            Event::Release(i) => {
                for key in held[i].drain(..) {
                    if let Some(c) = conn_counts.get_mut(&key) {
                        *c = c.saturating_sub(1);
                    }
                }
            }
        }
    }
    let predicted = out
        .into_iter()
        .map(|p| {
            p.unwrap_or(Predicted {
                verdict: Verdict::new(0, None, None),
                delay_ms: 0,
            })
        })
        .collect();
    (predicted, log)
}

enum ReqResult {
    Unset,
    Rejected { dry_run: bool },
    Passed { delay_ms: u64, dry_run: bool },
}

fn limit_req(
    list: &[ReqLimit],
    step: &Step,
    now: i64,
    rates: &HashMap<&str, i64>,
    keys: &HashMap<&str, &str>,
    states: &mut HashMap<(String, String), ReqState>,
    log: &mut Vec<LogLine>,
) -> ReqResult {
    let dry_run = list.first().is_some_and(|l| l.dry_run);
    // Limits looked up and not yet charged (every one but the last), with their drained excess.
    let mut pinned: Vec<(usize, (String, String))> = Vec::new();
    let mut last_result: Option<(usize, i64)> = None;
    let mut any = false;
    for (n, limit) in list.iter().enumerate() {
        let key = eval_key(keys.get(limit.zone.as_str()).copied().unwrap_or(""), step);
        if key.is_empty() {
            continue;
        }
        any = true;
        let rate = rates.get(limit.zone.as_str()).copied().unwrap_or(1);
        let is_last = n + 1 == list.len();
        let id = (limit.zone.clone(), key);
        let idx = u32::try_from(n).unwrap_or(u32::MAX);
        match states.get_mut(&id) {
            Some(state) => {
                let ms = clamp_ms(now - state.last);
                let e = (state.excess - rate * ms / 1000 + 1000).max(0);
                let burst = i64::from(limit.burst) * 1000;
                if e > burst {
                    log.push((idx, RC_BUSY, e.unsigned_abs()));
                    return ReqResult::Rejected { dry_run };
                }
                if is_last {
                    state.excess = e;
                    if ms != 0 {
                        state.last = now;
                    }
                    log.push((idx, RC_OK, e.unsigned_abs()));
                    last_result = Some((n, e));
                } else {
                    log.push((idx, RC_AGAIN, e.unsigned_abs()));
                    pinned.push((n, id));
                }
            }
            None => {
                // nginx gives a new state that is not the last limit `last = 0` (the clock's epoch), so
                // when it is charged the whole uptime drains it: it commits with excess 0, not 1000.
                let last = if is_last {
                    now
                } else {
                    now - PINNED_NEW_AGE_MS
                };
                states.insert(id.clone(), ReqState { excess: 0, last });
                if is_last {
                    log.push((idx, RC_OK, 0));
                    last_result = Some((n, 0));
                } else {
                    log.push((idx, RC_AGAIN, 0));
                    pinned.push((n, id));
                }
            }
        }
    }
    if !any {
        return ReqResult::Unset;
    }
    let delay_of = |n: usize, e: i64| -> u64 {
        let limit = &list[n];
        let d = match limit.delay {
            Delay::NoDelay => return 0,
            Delay::Default => 0,
            Delay::Delay(d) => i64::from(d) * 1000,
        };
        let rate = rates.get(limit.zone.as_str()).copied().unwrap_or(1);
        if e <= d {
            0
        } else {
            ((e - d) * 1000 / rate).unsigned_abs()
        }
    };
    let mut max_delay = last_result.map(|(n, e)| delay_of(n, e)).unwrap_or(0);
    // nginx charges the pinned limits last to first, at the same `now`.
    for (n, id) in pinned.into_iter().rev() {
        let rate = rates.get(list[n].zone.as_str()).copied().unwrap_or(1);
        let Some(state) = states.get_mut(&id) else {
            continue;
        };
        let ms = clamp_ms(now - state.last);
        let e = (state.excess - rate * ms / 1000 + 1000).max(0);
        if ms != 0 {
            state.last = now;
        }
        state.excess = e;
        max_delay = max_delay.max(delay_of(n, e));
    }
    ReqResult::Passed {
        delay_ms: max_delay,
        dry_run,
    }
}

fn limit_conn(
    list: &[ConnLimit],
    step: &Step,
    keys: &HashMap<&str, &str>,
    counts: &mut HashMap<(String, String), u32>,
) -> (Option<&'static str>, bool, Vec<(String, String)>) {
    let mut taken = Vec::new();
    let mut any = false;
    for limit in list {
        let key = eval_key(keys.get(limit.zone.as_str()).copied().unwrap_or(""), step);
        if key.is_empty() || key.len() > 255 {
            continue;
        }
        any = true;
        let id = (limit.zone.clone(), key);
        let count = counts.entry(id.clone()).or_insert(0);
        if *count >= limit.conn {
            for k in taken.drain(..) {
                if let Some(c) = counts.get_mut(&k) {
                    *c = c.saturating_sub(1);
                }
            }
            return if limit.dry_run {
                (Some("REJECTED_DRY_RUN"), false, Vec::new())
            } else {
                (Some("REJECTED"), true, Vec::new())
            };
        }
        *count += 1;
        taken.push(id);
    }
    (any.then_some("PASSED"), false, taken)
}

/// nginx's handling of a clock that went backwards.
fn clamp_ms(ms: i64) -> i64 {
    if ms < -60_000 {
        1
    } else if ms < 0 {
        0
    } else {
        ms
    }
}

/// Milli-requests per second: `floor(N * 1000 / scale)`.
pub fn rate_milli(rate: &str) -> i64 {
    let (n, scale) = if let Some(n) = rate.strip_suffix("r/m") {
        (n, 60)
    } else {
        (rate.strip_suffix("r/s").unwrap_or(rate), 1)
    };
    n.parse::<i64>()
        .map(|n| n * 1000 / scale)
        .unwrap_or(1)
        .max(1)
}

/// Evaluates the key templates the scenarios use: `$binary_remote_addr`, `$remote_addr`, `$host`, `$uri`,
/// `$request_uri`, `$arg_NAME`, `$http_host`, and literal text.
fn eval_key(template: &str, step: &Step) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        let value = match name {
            "binary_remote_addr" | "remote_addr" => CLIENT_ADDR.to_string(),
            "host" | "http_host" => step.host.to_ascii_lowercase(),
            "uri" => step.path.split('?').next().unwrap_or("").to_string(),
            "request_uri" => step.path.clone(),
            _ => name
                .strip_prefix("arg_")
                .and_then(|arg| query_arg(&step.path, arg))
                .unwrap_or("")
                .to_string(),
        };
        out.push_str(&value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}
