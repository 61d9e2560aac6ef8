//! `edgeguard replay`: runs an access log through one domain's protection on the log's own timestamps and reports
//! what would have been limited (514, limit_req), blocked or challenged, per rule and per client IP. The engine is
//! the node's own (`edgeguard_protect::replay`, with the proxy's `limit_req` plugged in); this module reads,
//! tallies and prints.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use edgeguard_protect::replay::{Line, Replayer, Verdict};
use edgeguard_protect::rfc3339;
use edgeguard_proxy::replay::ReplayLimitReq;
use edgeguard_store::{LogFormat, LogLine, LogReader, MIN_QPS, Recommendation};
use serde::Serialize;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Path to the TOML configuration.
    #[arg(long, short)]
    config: PathBuf,
    /// Access log to replay.
    #[arg(long)]
    log: PathBuf,
    /// Domain whose protection to replay (default: the first in the configuration).
    #[arg(long)]
    domain: Option<String>,
    /// Line format; `auto` takes JSON for lines starting with `{`, combined otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    format: ReplayFormat,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// IPs listed in the text report (the JSON report lists every IP with a refusal).
    #[arg(long, default_value_t = 20)]
    top: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayFormat {
    Auto,
    Combined,
    Json,
}

/// Requests per outcome.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Outcomes {
    pub passed: u64,
    /// 514 of the IP access limit.
    pub ip_limited: u64,
    pub blocked: u64,
    pub challenged: u64,
    /// `limit_req_status` of the nginx limits.
    pub limit_req: u64,
    /// Let through after a limit_req delay.
    pub delayed: u64,
}

impl Outcomes {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Passed => self.passed += 1,
            Verdict::IpLimited { .. } => self.ip_limited += 1,
            Verdict::Blocked { .. } => self.blocked += 1,
            Verdict::Challenged { .. } => self.challenged += 1,
            Verdict::LimitReq { .. } => self.limit_req += 1,
            Verdict::Delayed { .. } => {
                self.passed += 1;
                self.delayed += 1;
            }
        }
    }

    fn refused(&self) -> u64 {
        self.ip_limited + self.blocked + self.challenged + self.limit_req
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RuleReport {
    pub action: String,
    /// Times the rule put its action in force (on a request, or on a response status).
    pub triggers: u64,
    pub triggered_on_status: u64,
    /// Requests answered by the rule's action (the triggering ones included).
    pub blocked: u64,
    pub challenged: u64,
    /// Distinct objects (IPs, header or parameter values) the rule acted on.
    pub objects: u64,
    /// The first triggers: `time object`.
    pub first_triggers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct IpReport {
    pub ip: IpAddr,
    pub requests: u64,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub domain: String,
    pub lines: u64,
    pub malformed: u64,
    /// Lines for another host (skipped).
    pub other_host: u64,
    pub replayed: u64,
    /// Lines more than the reorder slack older than a line before them, replayed at the newer time.
    pub late: u64,
    pub first_time_ms: Option<i64>,
    pub last_time_ms: Option<i64>,
    pub recommended_qps: u32,
    /// The IP access limit applied (`None`: off).
    pub ip_access_limit_qps: Option<u32>,
    pub rules_mode: String,
    pub totals: Outcomes,
    pub rules: BTreeMap<String, RuleReport>,
    /// Zones of refused or delayed requests.
    pub limit_req_zones: BTreeMap<String, u64>,
    /// IPs with at least one refusal, most refused first.
    pub ips: Vec<IpReport>,
    pub replay_ms: u128,
    pub notes: Vec<&'static str>,
}

const FIRST_TRIGGERS: usize = 10;

/// Logs are written when requests end, and merged logs interleave: lines up to this much older than the newest
/// one read are put back in time order before they are replayed. Older ones are replayed at the newest time
/// seen (and counted as late). Memory: the lines of this span.
pub const REORDER_SLACK_MS: i64 = 5 * 60 * 1000;

/// A line waiting in the reorder buffer; the heap pops the oldest (then the first read).
struct Pending {
    time_ms: i64,
    seq: u64,
    line: LogLine,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ms, self.seq) == (other.time_ms, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_ms, other.seq).cmp(&(self.time_ms, self.seq))
    }
}

fn format_of(f: ReplayFormat) -> LogFormat {
    match f {
        ReplayFormat::Auto => LogFormat::Auto,
        ReplayFormat::Combined => LogFormat::Combined,
        ReplayFormat::Json => LogFormat::Json,
    }
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

/// Host of a log line without port, for comparison with the domain.
fn same_host(logged: &str, domain: &str) -> bool {
    let h = logged.rsplit_once(':').map_or(logged, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            logged
        }
    });
    h.trim_end_matches('.').eq_ignore_ascii_case(domain)
}

/// Replays `log` through the protection of `domain` (the first of `config` when `None`).
pub fn replay_file(
    config: &edgeguard_config::Config,
    domain: Option<&str>,
    log: &Path,
    format: LogFormat,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let d = match domain {
        Some(name) => config
            .domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("no domain {name:?} in the configuration"))?,
        None => config
            .domains
            .first()
            .context("the configuration lists no domain")?,
    };

    // Pass 1: the section 3 recommendation for this host (or for a log without hosts), which also stands in
    // for a `qps` left to the recommendation.
    let (per_host, _) = edgeguard_store::recommend_from_log_per_host(open(log)?, format)
        .with_context(|| format!("cannot read {}", log.display()))?;
    let rec: Option<&Recommendation> = per_host
        .iter()
        .find(|(h, _)| same_host(h, &d.name))
        .map(|(_, r)| r)
        .or_else(|| per_host.get("-"));
    let recommended_qps = rec.map_or(MIN_QPS, |r| r.qps);

    let mut replayer = Replayer::new(config, Some(&d.name), recommended_qps)?;
    if let Some(limit_req) = ReplayLimitReq::new(config, &d.name)? {
        replayer = replayer.with_limit_req(Box::new(limit_req));
    }
    let mut reader = LogReader::new(open(log)?, format);
    let mut totals = Outcomes::default();
    let mut rules: BTreeMap<String, RuleReport> = BTreeMap::new();
    for r in replayer.guard().rules() {
        rules.insert(
            r.name.clone(),
            RuleReport {
                action: r.action.as_str().to_owned(),
                ..RuleReport::default()
            },
        );
    }
    let mut rule_objects: HashMap<(String, String), ()> = HashMap::new();
    let mut zones: BTreeMap<String, u64> = BTreeMap::new();
    let mut ips: HashMap<IpAddr, (u64, Outcomes)> = HashMap::new();
    let mut other_host = 0u64;
    let mut replayed = 0u64;
    let mut late = 0u64;
    let mut pending: BinaryHeap<Pending> = BinaryHeap::new();
    let mut newest_read = i64::MIN;
    let mut newest_replayed = i64::MIN;
    let mut seq = 0u64;
    loop {
        let next = reader
            .next_line()
            .with_context(|| format!("cannot read {}", log.display()))?;
        let l = match next {
            Some(l) => {
                if let Some(h) = l.host.as_deref()
                    && !same_host(h, &d.name)
                {
                    other_host += 1;
                    continue;
                }
                newest_read = newest_read.max(l.time_ms);
                seq += 1;
                pending.push(Pending {
                    time_ms: l.time_ms,
                    seq,
                    line: l,
                });
                match pending.peek() {
                    Some(p) if p.time_ms < newest_read.saturating_sub(REORDER_SLACK_MS) => {}
                    _ => continue,
                }
                match pending.pop() {
                    Some(p) => p.line,
                    None => continue,
                }
            }
            None => match pending.pop() {
                Some(p) => p.line,
                None => break,
            },
        };
        if l.time_ms < newest_replayed {
            late += 1;
        }
        newest_replayed = newest_replayed.max(l.time_ms);
        replayed += 1;
        let step = replayer.step(&Line {
            time_ms: l.time_ms,
            client: l.client,
            method: &l.method,
            uri: &l.uri,
            status: l.status,
            user_agent: l.user_agent.as_deref(),
        });
        totals.add(&step.verdict);
        let ip = ips.entry(l.client).or_default();
        ip.0 += 1;
        ip.1.add(&step.verdict);
        match &step.verdict {
            Verdict::Blocked { rule } => rules.entry(rule.to_string()).or_default().blocked += 1,
            Verdict::Challenged { rule } => {
                rules.entry(rule.to_string()).or_default().challenged += 1
            }
            Verdict::LimitReq { zone } | Verdict::Delayed { zone, .. } => {
                *zones.entry(zone.clone()).or_default() += 1
            }
            _ => {}
        }
        if let Some(t) = step.trigger {
            let r = rules.entry(t.rule.to_string()).or_default();
            r.triggers += 1;
            r.triggered_on_status += u64::from(t.on_status);
            if rule_objects
                .insert((t.rule.to_string(), t.object_value.clone()), ())
                .is_none()
            {
                r.objects += 1;
            }
            if r.first_triggers.len() < FIRST_TRIGGERS {
                r.first_triggers.push(format!(
                    "{} {}{}",
                    rfc3339(t.time_ms),
                    t.object_value,
                    if t.on_status { " (on status)" } else { "" }
                ));
            }
        }
    }
    let stats = reader.into_stats();
    let mut ip_list: Vec<IpReport> = ips
        .into_iter()
        .filter(|(_, (_, o))| o.refused() > 0)
        .map(|(ip, (requests, outcomes))| IpReport {
            ip,
            requests,
            outcomes,
        })
        .collect();
    ip_list.sort_by(|a, b| {
        b.outcomes
            .refused()
            .cmp(&a.outcomes.refused())
            .then(a.ip.cmp(&b.ip))
    });
    let rl = &d.rate_limiting;
    let rules_mode = if !rl.enabled {
        "off".to_owned()
    } else {
        format!("{:?}", rl.mode).to_ascii_lowercase()
    };
    Ok(Report {
        domain: replayer.domain().to_owned(),
        lines: stats.lines,
        malformed: stats.malformed,
        other_host,
        replayed,
        late,
        first_time_ms: stats.first_time_ms,
        last_time_ms: stats.last_time_ms,
        recommended_qps,
        ip_access_limit_qps: replayer.guard().ip_limit_qps(),
        rules_mode,
        totals,
        rules,
        limit_req_zones: zones,
        ips: ip_list,
        replay_ms: started.elapsed().as_millis(),
        notes: vec![
            "a challenged client is assumed never to pass the challenge (a log cannot tell a browser)",
            "limit_conn is not simulated: a log has no concurrency, every request counts as released at once",
            "refused requests have no status in the replay; statuses of the others come from the log",
        ],
    })
}

/// `edgeguard replay`.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let config = edgeguard_config::load(&args.config)
        .map_err(|e| anyhow::anyhow!("{}:\n{e}", args.config.display()))?;
    let report = replay_file(
        &config,
        args.domain.as_deref(),
        &args.log,
        format_of(args.format),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print_text(&report, args.top);
    Ok(())
}

fn print_text(r: &Report, top: usize) {
    println!("domain: {}", r.domain);
    println!(
        "lines: {} read, {} malformed, {} for other hosts, {} replayed, {} late ({} .. {})",
        r.lines,
        r.malformed,
        r.other_host,
        r.replayed,
        r.late,
        r.first_time_ms
            .map_or("-".into(), |t| rfc3339(t.max(0) as u64)),
        r.last_time_ms
            .map_or("-".into(), |t| rfc3339(t.max(0) as u64)),
    );
    match r.ip_access_limit_qps {
        Some(q) => println!("IP access limit: {q} per second"),
        None => println!("IP access limit: off"),
    }
    println!("rate limiting: {}", r.rules_mode);
    let t = &r.totals;
    println!(
        "outcomes: passed {} (delayed {}), limited 514 {}, blocked {}, challenged {}, limit_req {}",
        t.passed, t.delayed, t.ip_limited, t.blocked, t.challenged, t.limit_req
    );
    for (name, rule) in &r.rules {
        println!(
            "rule {name} ({}): {} triggers ({} on a status) on {} objects; {} requests blocked, {} challenged",
            rule.action,
            rule.triggers,
            rule.triggered_on_status,
            rule.objects,
            rule.blocked,
            rule.challenged
        );
        for line in &rule.first_triggers {
            println!("    {line}");
        }
    }
    for (zone, n) in &r.limit_req_zones {
        println!("limit_req zone {zone}: {n} requests refused or delayed");
    }
    if !r.ips.is_empty() {
        println!(
            "clients with refusals ({} in all, top {}):",
            r.ips.len(),
            top.min(r.ips.len())
        );
        for ip in r.ips.iter().take(top) {
            let o = &ip.outcomes;
            println!(
                "  {:<39} {:>8} requests: 514 {}, blocked {}, challenged {}, limit_req {}",
                ip.ip, ip.requests, o.ip_limited, o.blocked, o.challenged, o.limit_req
            );
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    println!("replayed in {} ms", r.replay_ms);
    println!("recommended_qps: {}", r.recommended_qps);
}
