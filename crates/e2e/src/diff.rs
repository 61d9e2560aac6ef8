//! Comparing what servers answered: with the reference table, with the model, and with each other, where
//! "comparable" means the model gives the same answer when every send time moves by up to
//! [`JITTER_MS`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{LogLine, Predicted, Verdict, simulate};
use crate::scenario::Scenario;
use crate::script::{Outcome, Step};

/// How far a send time may move without changing a decision that is compared exactly.
pub const JITTER_MS: i64 = 15;
/// How far a measured response time may be from the expected delay plus origin hold time.
pub const DELAY_TOLERANCE_MS: f64 = 150.0;
/// Randomly jittered re-runs of the model per analysis, besides four fixed patterns.
const JITTER_RUNS: usize = 96;

/// Steps compared together: one step, or a concurrent group (compared as a multiset).
#[derive(Debug, Clone)]
pub struct Unit {
    pub members: Vec<usize>,
    pub label: String,
}

/// Splits a script into units: each group is one, every other step is its own.
pub fn units(steps: &[Step]) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut group_at: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        match step.group {
            Some(g) => match group_at.get(&g) {
                Some(&u) => out[u].members.push(i),
                None => {
                    group_at.insert(g, out.len());
                    out.push(Unit {
                        members: vec![i],
                        label: String::new(),
                    });
                }
            },
            None => out.push(Unit {
                members: vec![i],
                label: String::new(),
            }),
        }
    }
    for unit in &mut out {
        let first = &steps[unit.members[0]];
        unit.label = if unit.members.len() == 1 {
            format!(
                "#{} t={}ms {} {}",
                unit.members[0], first.at_ms, first.host, first.path
            )
        } else {
            format!(
                "group of {} from #{} t={}ms {} {}",
                unit.members.len(),
                unit.members[0],
                first.at_ms,
                first.host,
                first.path
            )
        };
    }
    out
}

/// The model's view of one run: its prediction at the given send times and which units (and whether the
/// debug-log sequence) stay the same under jitter.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub predicted: Vec<Predicted>,
    pub log: Vec<LogLine>,
    /// Per unit: its sorted verdicts when stable, `None` when jitter changes them.
    pub stable: Vec<Option<Vec<Verdict>>>,
    /// The debug-log lines as `(index, rc, lowest excess, highest excess)` over the jittered runs, when the
    /// sequence of `(index, rc)` does not change under jitter.
    pub log_range: Option<Vec<LogRange>>,
}

/// One expected `limit_req[i]: RC E.EEE` line: index, rc, and the excess range jitter allows.
pub type LogRange = (u32, i32, u64, u64);

/// Runs the model at `times` (one per step, ms) and at jittered copies of them.
pub fn analyse(scenario: &Scenario, steps: &[Step], times: &[i64]) -> Analysis {
    let units = units(steps);
    let (predicted, log) = simulate(scenario, steps, times);
    let base: Vec<Vec<Verdict>> = units.iter().map(|u| unit_verdicts(u, &predicted)).collect();
    let mut stable: Vec<bool> = vec![true; units.len()];
    let mut log_range: Option<Vec<LogRange>> =
        Some(log.iter().map(|&(i, rc, e)| (i, rc, e, e)).collect());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for run in 0..JITTER_RUNS + 4 {
        let jittered = jitter(steps, times, run, &mut rng);
        let (p, l) = simulate(scenario, steps, &jittered);
        for (k, u) in units.iter().enumerate() {
            if unit_verdicts(u, &p) != base[k] {
                stable[k] = false;
            }
        }
        log_range = log_range.and_then(|mut ranges| {
            let same_shape = ranges.len() == l.len()
                && ranges.iter().zip(&l).all(|(r, x)| (r.0, r.1) == (x.0, x.1));
            same_shape.then(|| {
                for (r, x) in ranges.iter_mut().zip(&l) {
                    r.2 = r.2.min(x.2);
                    r.3 = r.3.max(x.2);
                }
                ranges
            })
        });
    }
    Analysis {
        predicted,
        log,
        stable: base
            .into_iter()
            .zip(stable)
            .map(|(v, s)| s.then_some(v))
            .collect(),
        log_range,
    }
}

fn unit_verdicts(unit: &Unit, predicted: &[Predicted]) -> Vec<Verdict> {
    let mut v: Vec<Verdict> = unit
        .members
        .iter()
        .map(|&i| predicted[i].verdict.clone())
        .collect();
    v.sort();
    v
}

/// Run 0 and 1 alternate -15/+15 per send, 2 and 3 snap sends to a grid; the rest draw each send's
/// offset uniformly. A pipeline moves
/// as one send.
fn jitter(steps: &[Step], times: &[i64], run: usize, rng: &mut XorShift) -> Vec<i64> {
    let mut offsets: BTreeMap<u32, i64> = BTreeMap::new();
    let span = u64::try_from(2 * JITTER_MS + 1).unwrap_or(31);
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let fresh = match run {
                0 | 1 => {
                    if (i + run) & 1 == 0 {
                        -JITTER_MS
                    } else {
                        JITTER_MS
                    }
                }
                // Snap to a 30 ms grid (two phases): sends close together land on the same millisecond,
                // the case that gives the largest excess.
                2 | 3 => {
                    let grid = 2 * JITTER_MS;
                    let phase = if run == 2 { 0 } else { JITTER_MS };
                    let t = times[i] + phase;
                    let snapped = (t + JITTER_MS).div_euclid(grid) * grid - phase;
                    (snapped - times[i]).clamp(-JITTER_MS, JITTER_MS)
                }
                _ => i64::try_from(rng.next() % span).unwrap_or(0) - JITTER_MS,
            };
            let off = match step.pipeline {
                Some(p) => *offsets.entry(p).or_insert(fresh),
                None => fresh,
            };
            times[i] + off
        })
        .collect()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A side's observed verdict for one step.
pub fn observed(o: &Outcome) -> Verdict {
    Verdict {
        status: o.status.clone().unwrap_or(0),
        lr: o.lr.clone(),
        lc: o.lc.clone(),
    }
}

/// The scripted send times, as the model takes them.
pub fn scripted_times(steps: &[Step]) -> Vec<i64> {
    steps
        .iter()
        .map(|s| i64::try_from(s.at_ms).unwrap_or(i64::MAX / 4))
        .collect()
}

/// The measured send times of a run (a failed step keeps its scripted time).
pub fn measured_times(steps: &[Step], outcomes: &[Outcome]) -> Vec<i64> {
    steps
        .iter()
        .zip(outcomes)
        .map(|(s, o)| {
            if o.sent_ms.is_finite() {
                o.sent_ms.round() as i64
            } else {
                i64::try_from(s.at_ms).unwrap_or(0)
            }
        })
        .collect()
}

/// Findings of one row, printed whole at the end so a failure shows the full picture.
#[derive(Debug, Default)]
pub struct Report {
    pub row: String,
    pub lines: Vec<String>,
    pub failures: Vec<String>,
    pub ambiguous: usize,
}

impl Report {
    pub fn new(row: &str) -> Self {
        Self {
            row: row.to_string(),
            ..Self::default()
        }
    }

    pub fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    pub fn fail(&mut self, line: String) {
        self.lines.push(format!("FAIL {line}"));
        self.failures.push(line);
    }

    /// Every scripted unit should be comparable (the scripts are written with margins) and the model must
    /// agree with the reference table: checks the script and the model before any server is involved.
    pub fn check_design(
        &mut self,
        scenario: &Scenario,
        steps: &[Step],
        expected: &[Verdict],
    ) -> Analysis {
        let analysis = analyse(scenario, steps, &scripted_times(steps));
        for (k, unit) in units(steps).iter().enumerate() {
            let mut want: Vec<Verdict> =
                unit.members.iter().map(|&i| expected[i].clone()).collect();
            want.sort();
            let model = unit_verdicts(unit, &analysis.predicted);
            if model != want {
                self.fail(format!(
                    "model disagrees with the table at {}: model {} table {}",
                    unit.label,
                    show(&model),
                    show(&want)
                ));
            }
            if analysis.stable[k].is_none() {
                self.note(format!(
                    "design: {} is timing-sensitive at +-{JITTER_MS} ms",
                    unit.label
                ));
            }
        }
        analysis
    }

    /// Checks one side's run against the table (for its stable units) and its response times against the
    /// model's delays. Returns the analysis at the side's measured send times.
    pub fn check_side(
        &mut self,
        side: &str,
        scenario: &Scenario,
        steps: &[Step],
        expected: &[Verdict],
        outcomes: &[Outcome],
    ) -> Analysis {
        let times = measured_times(steps, outcomes);
        let drift = steps
            .iter()
            .zip(&times)
            .map(|(s, &t)| (t - i64::try_from(s.at_ms).unwrap_or(0)).abs())
            .max()
            .unwrap_or(0);
        self.note(format!("{side}: largest send drift {drift} ms"));
        let analysis = analyse(scenario, steps, &times);
        for (k, unit) in units(steps).iter().enumerate() {
            let mut got: Vec<Verdict> = unit
                .members
                .iter()
                .map(|&i| observed(&outcomes[i]))
                .collect();
            got.sort();
            let mut want: Vec<Verdict> =
                unit.members.iter().map(|&i| expected[i].clone()).collect();
            want.sort();
            let elapsed: Vec<String> = unit
                .members
                .iter()
                .map(|&i| format!("{:.0}", outcomes[i].elapsed_ms))
                .collect();
            match &analysis.stable[k] {
                Some(_) if got != want => self.fail(format!(
                    "{side} {}: got {} want {} (ms {})",
                    unit.label,
                    show(&got),
                    show(&want),
                    elapsed.join("/")
                )),
                Some(_) => self.note(format!(
                    "{side} {}: {} (ms {})",
                    unit.label,
                    show(&got),
                    elapsed.join("/")
                )),
                None => {
                    self.ambiguous += 1;
                    self.note(format!(
                        "{side} {}: AMBIGUOUS at these send times, not compared: {} (ms {})",
                        unit.label,
                        show(&got),
                        elapsed.join("/")
                    ));
                    continue;
                }
            }
            self.check_delays(side, unit, steps, outcomes, &analysis.predicted);
        }
        analysis
    }

    fn check_delays(
        &mut self,
        side: &str,
        unit: &Unit,
        steps: &[Step],
        outcomes: &[Outcome],
        predicted: &[Predicted],
    ) {
        let mut want: Vec<f64> = unit
            .members
            .iter()
            .map(|&i| {
                let p = &predicted[i];
                let hold = if p.verdict.status == 200 {
                    steps[i].hold_ms()
                } else {
                    0
                };
                (p.delay_ms + hold) as f64
            })
            .collect();
        let mut got: Vec<f64> = unit
            .members
            .iter()
            .map(|&i| outcomes[i].elapsed_ms)
            .collect();
        want.sort_by(f64::total_cmp);
        got.sort_by(f64::total_cmp);
        for (w, g) in want.iter().zip(&got) {
            if !g.is_finite() || (g - w).abs() > DELAY_TOLERANCE_MS {
                self.fail(format!(
                    "{side} {}: response after {g:.0} ms, expected {w:.0} +- {DELAY_TOLERANCE_MS} ms",
                    unit.label
                ));
            }
        }
    }

    /// edgeguard against nginx, unit by unit, where both runs are stable.
    pub fn check_differential(
        &mut self,
        steps: &[Step],
        nginx: (&[Outcome], &Analysis),
        edgeguard: (&[Outcome], &Analysis),
    ) {
        for (k, unit) in units(steps).iter().enumerate() {
            let side = |o: &[Outcome]| {
                let mut v: Vec<Verdict> = unit.members.iter().map(|&i| observed(&o[i])).collect();
                v.sort();
                v
            };
            let (n, e) = (side(nginx.0), side(edgeguard.0));
            if nginx.1.stable[k].is_none() || edgeguard.1.stable[k].is_none() {
                if n != e {
                    self.ambiguous += 1;
                    self.note(format!(
                        "diff {}: AMBIGUOUS, nginx {} edgeguard {}",
                        unit.label,
                        show(&n),
                        show(&e)
                    ));
                }
                continue;
            }
            if n != e {
                self.fail(format!(
                    "diff {}: nginx {} edgeguard {}",
                    unit.label,
                    show(&n),
                    show(&e)
                ));
            }
        }
    }

    /// nginx's `limit_req[i]: RC E.EEE` lines against the model's: the same limits and results in the
    /// same order, each excess within what jitter allows (exact where jitter changes nothing).
    pub fn check_nginx_log(&mut self, analysis: &Analysis, log: &[crate::nginx::LimitReqLogLine]) {
        let milli = |e: u64| format!("{}.{:03}", e / 1000, e % 1000);
        let got: Vec<String> = log
            .iter()
            .map(|l| format!("[{}]{}:{}", l.index, l.rc, milli(l.excess_milli)))
            .collect();
        let Some(ranges) = &analysis.log_range else {
            self.ambiguous += 1;
            self.note(format!(
                "nginx log: which limits run is timing-sensitive, not compared: {}",
                got.join(" ")
            ));
            return;
        };
        let want: Vec<String> = ranges
            .iter()
            .map(|&(i, rc, lo, hi)| {
                if lo == hi {
                    format!("[{i}]{rc}:{}", milli(lo))
                } else {
                    format!("[{i}]{rc}:{}..{}", milli(lo), milli(hi))
                }
            })
            .collect();
        let matches = ranges.len() == log.len()
            && ranges.iter().zip(log).all(|(&(i, rc, lo, hi), l)| {
                (i, rc) == (l.index, l.rc) && (lo..=hi).contains(&l.excess_milli)
            });
        if matches {
            self.note(format!("nginx log: {}", got.join(" ")));
        } else {
            self.fail(format!(
                "nginx log: got {} want {}",
                got.join(" "),
                want.join(" ")
            ));
        }
    }

    /// Prints everything and panics when anything failed.
    pub fn finish(self) {
        let mut text = String::new();
        let _ = writeln!(text, "== {} ==", self.row);
        for line in &self.lines {
            let _ = writeln!(text, "  {line}");
        }
        let _ = writeln!(
            text,
            "  {} failure(s), {} ambiguous decision(s) reported",
            self.failures.len(),
            self.ambiguous
        );
        println!("{text}");
        assert!(self.failures.is_empty(), "{text}");
    }
}

/// `200 PASSED/-` style rendering of a verdict list.
pub fn show(v: &[Verdict]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|x| {
            format!(
                "{} {}/{}",
                x.status,
                x.lr.as_deref().unwrap_or("-"),
                x.lc.as_deref().unwrap_or("-")
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}
