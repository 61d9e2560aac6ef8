//! The evaluation of normal and emergency mode: legitimate traffic (a real access log, or
//! [`crate::episodes::synthetic_legit`]) with attack episodes woven in ([`crate::episodes::generate`]), replayed
//! through the node's own engine ([`crate::replay::Replayer`]) once per mode. The report gives the false
//! positives (legitimate clients blocked or challenged, the share of legitimate requests refused) and, per
//! attack kind, the share of its requests refused, the share refused once detected, and the detection delay.
//! Run by `edgeguard evaluate`; the figures are in `docs/protection.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::episodes::{AttackKind, Episode, EvalLine, generate, weave};
use crate::replay::{Line, ReplayError, Replayer, Verdict};

/// Figures of one attack kind in one mode, summed over its episodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttackFigures {
    pub episodes: usize,
    pub detected: usize,
    pub requests: u64,
    pub refused: u64,
    /// Requests from the first refusal of each episode on, and how many of them were refused.
    pub after_detection: u64,
    pub refused_after_detection: u64,
    /// Longest time from an episode's start to its first refused request, milliseconds.
    pub worst_delay_ms: Option<i64>,
}

impl AttackFigures {
    pub fn refused_pct(&self) -> f64 {
        pct(self.refused, self.requests)
    }
    pub fn refused_after_detection_pct(&self) -> f64 {
        pct(self.refused_after_detection, self.after_detection)
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// The figures of one mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModeReport {
    pub mode: &'static str,
    pub legit_requests: u64,
    pub legit_clients: u64,
    pub legit_blocked_requests: u64,
    pub legit_challenged_requests: u64,
    pub legit_clients_blocked: u64,
    pub legit_clients_challenged: u64,
    pub attacks: BTreeMap<AttackKind, AttackFigures>,
    /// What the mode learned over the whole run.
    pub baseline: Vec<crate::MeasureSummary>,
    /// The first few legitimate refusals: `time client verdict uri`, to see what went wrong.
    pub legit_examples: Vec<String>,
}

impl ModeReport {
    /// Adds the figures of another run of the same mode (another seed): counts add up, delays keep the worst.
    pub fn absorb(&mut self, o: &ModeReport) {
        self.legit_requests += o.legit_requests;
        self.legit_clients += o.legit_clients;
        self.legit_blocked_requests += o.legit_blocked_requests;
        self.legit_challenged_requests += o.legit_challenged_requests;
        self.legit_clients_blocked += o.legit_clients_blocked;
        self.legit_clients_challenged += o.legit_clients_challenged;
        for (k, f) in &o.attacks {
            let t = self.attacks.entry(*k).or_default();
            t.episodes += f.episodes;
            t.detected += f.detected;
            t.requests += f.requests;
            t.refused += f.refused;
            t.after_detection += f.after_detection;
            t.refused_after_detection += f.refused_after_detection;
            t.worst_delay_ms = t.worst_delay_ms.max(f.worst_delay_ms);
        }
        self.legit_examples
            .extend(o.legit_examples.iter().take(3).cloned());
    }

    /// Legitimate requests challenged or blocked, percent.
    pub fn legit_refused_pct(&self) -> f64 {
        pct(
            self.legit_blocked_requests + self.legit_challenged_requests,
            self.legit_requests,
        )
    }
}

fn config_for(mode: &str) -> edgeguard_config::Config {
    let text = format!(
        "[node]\nname = \"eval\"\nlisten = [\"127.0.0.1:0\"]\n[[domain]]\nname = \"eval.example\"\n\
         origins = [\"127.0.0.1:9\"]\n[domain.rate_limiting]\nenabled = true\nmode = \"{mode}\"\n"
    );
    match edgeguard_config::parse_with_env(&text, |_| None) {
        Ok(c) => c,
        // The text above is fixed; a failure here is a bug in this module, caught by its tests.
        Err(e) => panic!("evaluation configuration: {e}"),
    }
}

/// Replays `lines` (time-sorted, attacks marked) through `mode` (`"normal"` or `"emergency"`).
pub fn run_mode(
    mode: &'static str,
    lines: &[EvalLine],
    episodes: &[Episode],
) -> Result<ModeReport, ReplayError> {
    let config = config_for(mode);
    let mut r = Replayer::new(&config, None, 10)?;
    let mut rep = ModeReport {
        mode,
        ..ModeReport::default()
    };
    let mut legit_clients: HashSet<IpAddr> = HashSet::new();
    let mut blocked: HashSet<IpAddr> = HashSet::new();
    let mut challenged: HashSet<IpAddr> = HashSet::new();
    let mut first_refusal: HashMap<usize, i64> = HashMap::new();
    // The first legitimate block is always shown, even after ten challenges.
    let mut blocked_seen = false;
    let mut per_episode: Vec<(u64, u64, u64, u64)> = vec![(0, 0, 0, 0); episodes.len()];
    for l in lines {
        let step = r.step(&Line {
            time_ms: l.time_ms,
            client: l.client,
            method: &l.method,
            uri: &l.uri,
            status: l.status,
            user_agent: None,
        });
        let (is_block, is_challenge) = match step.verdict {
            Verdict::Blocked { .. } => (true, false),
            Verdict::Challenged { .. } => (false, true),
            _ => (false, false),
        };
        let refused = is_block || is_challenge;
        match l.episode {
            None => {
                rep.legit_requests += 1;
                legit_clients.insert(l.client);
                if is_block {
                    rep.legit_blocked_requests += 1;
                    blocked.insert(l.client);
                }
                if is_challenge {
                    rep.legit_challenged_requests += 1;
                    challenged.insert(l.client);
                }
                let room = rep.legit_examples.len() < 10 || (is_block && !blocked_seen);
                blocked_seen |= is_block;
                if refused && room {
                    rep.legit_examples.push(format!(
                        "{} {} {:?} {} {}",
                        crate::rfc3339(u64::try_from(l.time_ms).unwrap_or(0)),
                        l.client,
                        step.verdict,
                        l.method,
                        l.uri
                    ));
                }
            }
            Some(e) => {
                let c = &mut per_episode[e];
                c.0 += 1;
                if refused {
                    c.1 += 1;
                    first_refusal.entry(e).or_insert(l.time_ms);
                }
                if first_refusal.contains_key(&e) {
                    c.2 += 1;
                    if refused {
                        c.3 += 1;
                    }
                }
            }
        }
    }
    rep.baseline = r
        .guard()
        .detector()
        .map(|d| d.baseline().summary())
        .unwrap_or_default();
    rep.legit_clients = legit_clients.len() as u64;
    rep.legit_clients_blocked = blocked.len() as u64;
    rep.legit_clients_challenged = challenged.difference(&blocked).count() as u64;
    for (i, ep) in episodes.iter().enumerate() {
        let f = rep.attacks.entry(ep.kind).or_default();
        let (n, refused, after, refused_after) = per_episode[i];
        f.episodes += 1;
        f.requests += n;
        f.refused += refused;
        f.after_detection += after;
        f.refused_after_detection += refused_after;
        match first_refusal.get(&i) {
            Some(&t) => {
                f.detected += 1;
                let d = t - ep.start_ms;
                f.worst_delay_ms = Some(f.worst_delay_ms.map_or(d, |w| w.max(d)));
            }
            None => f.worst_delay_ms = Some(i64::MAX),
        }
    }
    Ok(rep)
}

/// The paths legitimate traffic requests most (the floods aim at them), at most `n`.
pub fn popular_paths(legit: &[EvalLine], n: usize) -> Vec<String> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for l in legit {
        *counts
            .entry(l.uri.split('?').next().unwrap_or("/"))
            .or_default() += 1;
    }
    let mut v: Vec<(&str, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(p, _)| p.to_owned()).collect()
}

/// Weaves `per_kind` episodes of each kind (seed `seed`) into `legit` (time-sorted) and evaluates both modes.
pub fn evaluate(
    legit: Vec<EvalLine>,
    seed: u64,
    per_kind: usize,
) -> Result<(Vec<ModeReport>, Vec<Episode>), ReplayError> {
    let (Some(first), Some(last)) = (legit.first(), legit.last()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    // The first tenth of the traffic is left free of attacks: the node has some history when they start.
    let span = last.time_ms - first.time_ms;
    let (start, end) = (first.time_ms + span / 10, last.time_ms);
    let clients: HashSet<IpAddr> = legit.iter().map(|l| l.client).collect();
    let popular = popular_paths(&legit, 20);
    let (attacks, episodes) = generate(seed, per_kind, start, end, &popular, &clients);
    let lines = weave(legit, attacks);
    let reports = ["normal", "emergency"]
        .into_iter()
        .map(|m| run_mode(m, &lines, &episodes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((reports, episodes))
}

/// The report as text, one block per mode.
pub fn format_report(reports: &[ModeReport]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "mode {}: legitimate {} requests from {} clients; clients blocked {}, challenged {}; requests \
             refused {:.3}% (blocked {}, challenged {})",
            r.mode,
            r.legit_requests,
            r.legit_clients,
            r.legit_clients_blocked,
            r.legit_clients_challenged,
            r.legit_refused_pct(),
            r.legit_blocked_requests,
            r.legit_challenged_requests
        );
        for (kind, f) in &r.attacks {
            let delay = match f.worst_delay_ms {
                Some(i64::MAX) | None => "not detected".to_owned(),
                Some(d) => format!("{:.1} s", d as f64 / 1000.0),
            };
            let _ = writeln!(
                out,
                "  {:<28} episodes {:>2} detected {:>2}  requests {:>7}  refused {:>6.2}%  once detected \
                 {:>6.2}%  worst detection delay {delay}",
                kind.as_str(),
                f.episodes,
                f.detected,
                f.requests,
                f.refused_pct(),
                f.refused_after_detection_pct()
            );
        }
        for m in &r.baseline {
            let _ = writeln!(
                out,
                "  learned {:<22} events {:>8}  p99 {:>6}  p99.9 {:>6}",
                m.measure,
                m.events,
                m.p99.map_or_else(|| "-".to_owned(), |v| v.to_string()),
                m.p999.map_or_else(|| "-".to_owned(), |v| v.to_string())
            );
        }
        for e in &r.legit_examples {
            let _ = writeln!(out, "  legitimate refusal: {e}");
        }
    }
    out
}
