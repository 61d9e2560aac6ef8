//! What-if replay of an access log through one domain's protection, on the log's own timestamps: the same
//! engine as the node ([`DomainGuard`]), plus the nginx `limit_req` decisions of the domain's (or location's)
//! limits when the caller plugs them in ([`LimitReq`]; the proxy has the key builder and zones, so it supplies
//! them and this crate stays free of HTTP types). Used by `edgeguard replay`.
//!
//! `[domain.access_control]` applies as on the node: a line from a `deny` range is [`Verdict::Blocked`] by rule
//! `access_control.deny`, one from an `allow` range passes every phase.
//!
//! `[domain.challenge]` applies as on the node: with `enabled = true` every request is challenged, with `paths`
//! every request under one of them (rule `challenge.enabled` / `challenge.paths`).
//!
//! Differences from a live node, by necessity: a challenged client is assumed never to pass the challenge (a log
//! cannot say whether a browser was behind it); `limit_conn` is not simulated (a log has no concurrency, so every
//! request is taken as released before the next); a request refused in the replay has no status, while a request
//! let through gets the status the log recorded. Time never runs backwards: a line older than the newest one seen
//! is replayed at the newest time.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use edgeguard_config::Config;
use edgeguard_rules::{Action, RequestView};

use crate::path::{PathBytes, push_normalized_path};
use crate::{Access, DomainBlocks, DomainGuard, GuardError, InForce, RULE_ACCESS_DENY, Sink};

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no domain {0:?} in the configuration")]
    NoDomain(String),
    #[error("the configuration lists no domain")]
    NoDomains,
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// The nginx `limit_req` phase of a replay: what the domain's (or the matched location's) limits decide for a
/// line that got past the protection. Zones count across calls, on the line's time.
pub trait LimitReq {
    /// [`Verdict::Passed`], [`Verdict::LimitReq`] or [`Verdict::Delayed`] for `line` at `now_ms` (Unix
    /// milliseconds, never going backwards); `norm_path` is the line's normalised path, which picks the
    /// location.
    fn decide(&self, line: &Line<'_>, norm_path: &[u8], now_ms: u64) -> Verdict;
}

/// One logged request.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub time_ms: i64,
    pub client: IpAddr,
    pub method: &'a str,
    /// Path and query as logged.
    pub uri: &'a str,
    pub status: u16,
    pub user_agent: Option<&'a str>,
}

/// What the protection would have done with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// 514.
    IpLimited {
        qps: u32,
    },
    /// 403 of a block in force (or the one the request triggered).
    Blocked {
        rule: Arc<str>,
    },
    /// The challenge page (or 403 for a non-GET/HEAD request).
    Challenged {
        rule: Arc<str>,
    },
    /// `limit_req_status` from the named zone.
    LimitReq {
        zone: String,
    },
    /// Let through after a `limit_req` delay.
    Delayed {
        zone: String,
        delay_ms: u64,
    },
}

/// A rule that put its action in force on this line (by its request, or by its logged status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub rule: Arc<str>,
    pub action: Action,
    pub object_value: String,
    pub time_ms: u64,
    /// Made true by the response status, so it acts from the next request on.
    pub on_status: bool,
}

/// The outcome of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub verdict: Verdict,
    pub trigger: Option<Trigger>,
}

struct LineView<'a> {
    line: &'a Line<'a>,
    host: &'a str,
    query: Option<&'a str>,
}

impl RequestView for LineView<'_> {
    fn client_ip(&self) -> IpAddr {
        self.line.client
    }
    fn host(&self) -> &str {
        self.host
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            "user-agent" => self.line.user_agent.map(str::as_bytes),
            "host" => Some(self.host.as_bytes()),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
}

/// One domain's protection, replaying lines in order.
pub struct Replayer {
    guard: DomainGuard,
    /// Lower case, as the node routes it.
    domain: String,
    limit_req: Option<Box<dyn LimitReq>>,
    newest_ms: u64,
    key: Vec<u8>,
}

impl Replayer {
    /// The protection of `domain` (the first domain when `None`) of `config`. `default_qps` stands in for the
    /// node's recommendation when the IP access limit has no `qps`. No `limit_req` until
    /// [`Replayer::with_limit_req`].
    pub fn new(
        config: &Config,
        domain: Option<&str>,
        default_qps: u32,
    ) -> Result<Replayer, ReplayError> {
        let d = match domain {
            Some(name) => config
                .domains
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| ReplayError::NoDomain(name.to_owned()))?,
            None => config.domains.first().ok_or(ReplayError::NoDomains)?,
        };
        let guard = DomainGuard::build(
            d,
            None,
            Arc::new(DomainBlocks::new(&d.name)),
            Arc::new(AtomicU32::new(default_qps)),
            Sink::default(),
        )?
        .with_ipv6_prefix(config.node.ipv6_prefix);
        Ok(Replayer {
            guard,
            domain: d.name.to_ascii_lowercase(),
            limit_req: None,
            newest_ms: 0,
            key: Vec::new(),
        })
    }

    /// Replays nginx `limit_req` too, after the protection phases, as the node does.
    pub fn with_limit_req(mut self, limit_req: Box<dyn LimitReq>) -> Self {
        self.limit_req = Some(limit_req);
        self
    }

    /// The domain replayed (lower case).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn guard(&self) -> &DomainGuard {
        &self.guard
    }

    /// Runs one line through blocks in force, the IP access limit, the rules and `limit_req`, then records its
    /// status into the counting rule's window if the request would have been let through.
    pub fn step(&mut self, line: &Line<'_>) -> Step {
        let now = u64::try_from(line.time_ms).unwrap_or(0).max(self.newest_ms);
        self.newest_ms = now;
        let (path, query) = match line.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (line.uri, None),
        };
        // `[domain.access_control]` before anything else, as on the node.
        match self.guard.access().check(line.client) {
            Access::Denied => {
                return Step {
                    verdict: Verdict::Blocked {
                        rule: Arc::from(RULE_ACCESS_DENY),
                    },
                    trigger: None,
                };
            }
            Access::Allowed => {
                return Step {
                    verdict: Verdict::Passed,
                    trigger: None,
                };
            }
            Access::Unlisted => {}
        }
        let host = self.domain.as_str();
        let view = LineView { line, host, query };

        let mut norm = PathBytes::new();
        push_normalized_path(path.as_bytes(), &mut norm);
        let norm_path = std::str::from_utf8(&norm).unwrap_or(path);
        // As on the node: a block on an object wins, else a challenge by configuration (whole domain or path);
        // a block answers first, a challenge after the IP access limit.
        let hit = self
            .guard
            .in_force(&view, now, &mut self.key)
            .or_else(|| self.guard.challenge_in_force(Some(norm_path), now));
        if let Some(f) = hit.as_ref().filter(|f| f.action == Action::Block) {
            return Step {
                verdict: refused(f),
                trigger: None,
            };
        }
        if let Some(qps) = self.guard.ip_access_limit(line.client, now) {
            return Step {
                verdict: Verdict::IpLimited { qps },
                trigger: None,
            };
        }
        if let Some(f) = hit {
            return Step {
                verdict: refused(&f),
                trigger: None,
            };
        }
        let counted = self
            .guard
            .count(&view, norm_path, query, now, &mut self.key);
        if let Some(f) = counted.as_ref().and_then(|c| c.triggered.clone()) {
            let trigger = Some(self.trigger(&f, now, false));
            return Step {
                verdict: refused(&f),
                trigger,
            };
        }
        let verdict = self
            .limit_req
            .as_ref()
            .map_or(Verdict::Passed, |l| l.decide(line, &norm, now));
        if matches!(verdict, Verdict::LimitReq { .. }) {
            return Step {
                verdict,
                trigger: None,
            };
        }
        let trigger = counted.and_then(|c| {
            let by_rule = self
                .guard
                .record_status(c.rule, &self.key, line.status, now);
            let by_detector = c
                .seen
                .and_then(|s| self.guard.observe_status(&s, line.status, now));
            by_rule.or(by_detector).map(|f| self.trigger(&f, now, true))
        });
        Step { verdict, trigger }
    }

    fn trigger(&self, f: &InForce, now: u64, on_status: bool) -> Trigger {
        Trigger {
            rule: f.rule.clone(),
            action: f.action,
            object_value: String::from_utf8_lossy(&self.key).into_owned(),
            time_ms: now,
            on_status,
        }
    }
}

fn refused(f: &InForce) -> Verdict {
    match f.action {
        Action::Log => Verdict::Passed,
        Action::Block => Verdict::Blocked {
            rule: f.rule.clone(),
        },
        Action::BotDetection => Verdict::Challenged {
            rule: f.rule.clone(),
        },
    }
}
