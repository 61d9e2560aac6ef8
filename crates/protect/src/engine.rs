//! The protection engine of one domain, without HTTP: blocks and challenges in force, the IP access limit
//! (SPEC section 3) and the rate-limiting rules (section 4). A request comes in as a [`RequestView`] plus its
//! normalised path and query; each phase answers with what to do. Time is passed in as Unix milliseconds of the
//! node's clock, so tests and `edgeguard replay` drive it with a fake clock.
//!
//! Counters live in `edgeguard-limit` tables of fixed size, allocated when the domain is built and handed over
//! to the next build when a reload leaves them meaning the same thing.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use edgeguard_challenge::{ChallengePage, Challenger};
use edgeguard_config::{Domain, Mode as ConfigMode};
use edgeguard_limit::persec::PerSecondTable;
use edgeguard_limit::window::{WindowCounts, WindowSpec, WindowTable};
use edgeguard_rules::{Mode, Rule, RuleSet, Scope, StatusSel, client_of};
use edgeguard_store::ActivityRecord;

use super::access::AccessLists;
use super::blocks::{self, DomainBlocks, InForce, Inserted};
use edgeguard_rules::RequestView;

use crate::anomaly::{Detector, Seen};
pub use crate::settings::{
    ChallengeSettings, RULE_ACCESS_DENY, RULE_CHALLENGE_ENABLED, RULE_CHALLENGE_PATHS,
    RULE_OPERATOR,
};
use crate::shared::{Others, SharedCounter};
pub use crate::sink::Sink;
use crate::view::{Counted6, View, count_threshold, win_sel};

mod tables;
pub use tables::TableStats;

/// The bytes of `rate_limiting.table_size` each of `rules` rules' window gets: an equal share, so a domain's
/// rules together stay within the budget whatever their windows track.
pub fn rule_table_bytes(table_size: u64, rules: usize) -> usize {
    usize::try_from(table_size / rules.max(1) as u64).unwrap_or(usize::MAX)
}

/// The name [`DomainGuard::table_stats`] gives the IP access limit's table (rule names are letters and digits,
/// so no rule is mistaken for it).
pub const IP_LIMIT_TABLE: &str = "ip-access-limit";

/// Why a domain's protection could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("domain {domain}: rate_limiting rules: {message}")]
    Rules { domain: String, message: String },
    #[error("domain {domain}: {message}")]
    Table { domain: String, message: String },
}

#[derive(Debug)]
struct IpLimit {
    table: Arc<PerSecondTable>,
    /// `ip_access_limit.table_size` the table was built with: a reload with another size builds a new one.
    size: u64,
    fixed: Option<u32>,
    /// The node's recommendation for the domain, refreshed in the background; used when `fixed` is absent.
    recommended: Arc<AtomicU32>,
    /// The cluster's counts, with `scope = "cluster"` in a cluster.
    shared: Option<Arc<dyn SharedCounter>>,
}

struct RuleRt {
    rule: Rule,
    name: Arc<str>,
    table: Arc<WindowTable>,
    /// Bytes the window was built with: a reload that gives the rule another share builds a new one.
    size: usize,
    /// The criteria's selectors, in the order the window counts them.
    tracked: Vec<StatusSel>,
    /// The cluster's request counts, with the rule's scope `cluster` in a cluster.
    shared: Option<Arc<dyn SharedCounter>>,
    /// The count at which the criteria can first turn true, if it compares `"count"`.
    threshold: Option<u64>,
}

impl std::fmt::Debug for RuleRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRt")
            .field("rule", &self.rule.name)
            .finish()
    }
}

impl RuleRt {
    /// Same name, object, interval, criteria and size: the counts keep their meaning across a reload.
    fn same_counting(&self, rule: &Rule, size: usize) -> bool {
        self.size == size
            && self.rule.name == rule.name
            && self.rule.object == rule.object
            && self.rule.interval_s == rule.interval_s
            && self.rule.criteria == rule.criteria
    }
}

/// What the rules made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Index of the counting rule, for [`DomainGuard::record_status`].
    pub rule: usize,
    /// The action this request put in force (the request itself receives it).
    pub triggered: Option<InForce>,
    /// What the learned-baseline detector needs for [`DomainGuard::observe_status`] (normal and emergency).
    pub seen: Option<Seen>,
}

/// The protection of one domain.
#[derive(Debug)]
pub struct DomainGuard {
    name: String,
    ip_limit: Option<IpLimit>,
    set: RuleSet,
    rules: Vec<RuleRt>,
    blocks: Arc<DomainBlocks>,
    sink: Sink,
    challenge: ChallengeSettings,
    /// The node's challenger with this domain's clearance TTL; absent where nothing serves HTTP (replay, tests).
    challenger: Option<Arc<Challenger>>,
    /// The challenge page, built once per configuration.
    page: ChallengePage,
    access: AccessLists,
    /// `[node] ipv6_prefix`: the prefix an IPv6 client is counted by (IP access limit, `ip` rules and blocks).
    ipv6_prefix: u8,
    /// Normal and emergency mode: clients and paths far from the domain's own history.
    detector: Option<Detector>,
}

/// The rule list a domain's `rate_limiting` section asks for (empty when it is off).
pub fn rule_set(d: &Domain) -> Result<RuleSet, GuardError> {
    let rl = &d.rate_limiting;
    if !rl.enabled {
        return Ok(RuleSet::default());
    }
    match rl.mode {
        ConfigMode::Normal => Ok(RuleSet::preset(Mode::Normal)),
        ConfigMode::Emergency => Ok(RuleSet::preset(Mode::Emergency)),
        ConfigMode::Custom => {
            RuleSet::compile(&rl.rules, rl.parameter_check).map_err(|errors| GuardError::Rules {
                domain: d.name.clone(),
                message: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }
}

impl DomainGuard {
    /// Builds the protection of `d`, taking over the counters of `previous` where they mean the same thing: the
    /// IP access limit's table while the limit stays on, a rule's window while its name, object, interval and
    /// criteria are unchanged. `blocks` and `recommended` belong to the node and outlive reloads.
    pub fn build(
        d: &Domain,
        previous: Option<&DomainGuard>,
        blocks: Arc<DomainBlocks>,
        recommended: Arc<AtomicU32>,
        sink: Sink,
    ) -> Result<DomainGuard, GuardError> {
        let table_err = |e: String| GuardError::Table {
            domain: d.name.clone(),
            message: e,
        };
        let ip_limit = if d.ip_access_limit.enabled {
            let size = d.ip_access_limit.table_size;
            let table = match previous.and_then(|p| p.ip_limit.as_ref()) {
                Some(old) if old.size == size => old.table.clone(),
                _ => Arc::new(
                    PerSecondTable::new(usize::try_from(size).unwrap_or(usize::MAX))
                        .map_err(|e| table_err(format!("ip_access_limit.table_size: {e}")))?,
                ),
            };
            let shared = match (&sink.cluster, d.ip_access_limit.scope) {
                (Some(c), Scope::Cluster) => Some(c.counter(&d.name, IP_LIMIT_TABLE, 1000)),
                _ => None,
            };
            Some(IpLimit {
                table,
                size,
                fixed: d.ip_access_limit.qps,
                recommended,
                shared,
            })
        } else {
            None
        };
        let set = rule_set(d)?;
        let mut rules = Vec::with_capacity(set.rules().len());
        let detector = crate::anomaly::for_domain(d, previous.and_then(|p| p.detector.as_ref()))
            .map_err(|e| table_err(format!("rate_limiting.table_size, baseline detector: {e}")))?;
        // The detector's tables take half of the budget, the built-in rule the other half.
        let budget = d.rate_limiting.table_size / if detector.is_some() { 2 } else { 1 };
        let size = rule_table_bytes(budget, set.rules().len());
        for rule in set.rules() {
            let kept = previous
                .and_then(|p| p.rules.iter().find(|old| old.same_counting(rule, size)))
                .map(|old| old.table.clone());
            let tracked = rule.criteria.tracked();
            let table = match kept {
                Some(t) => t,
                None => {
                    let spec = WindowSpec {
                        interval_s: rule.interval_s,
                        tracked: tracked.iter().copied().map(win_sel).collect(),
                    };
                    Arc::new(WindowTable::new(&spec, size).map_err(|e| {
                        table_err(format!("rate_limiting.table_size, rule {}: {e}", rule.name))
                    })?)
                }
            };
            // A rule without a scope counts across the cluster when the node is in one (SPEC 9.5).
            let shared = match (&sink.cluster, rule.scope.unwrap_or(Scope::Cluster)) {
                (Some(c), Scope::Cluster) => {
                    Some(c.counter(&d.name, &rule.name, u64::from(rule.interval_s) * 1000))
                }
                _ => None,
            };
            rules.push(RuleRt {
                shared,
                threshold: count_threshold(&rule.criteria),
                name: Arc::from(rule.name.as_str()),
                rule: rule.clone(),
                table,
                size,
                tracked,
            });
        }
        Ok(DomainGuard {
            name: d.name.clone(),
            ip_limit,
            set,
            rules,
            blocks,
            sink,
            challenge: ChallengeSettings::new(&d.challenge),
            challenger: None,
            page: ChallengePage::new(&d.name),
            access: AccessLists::new(&d.access_control),
            ipv6_prefix: edgeguard_config::defaults::IPV6_PREFIX,
            detector,
        })
    }

    /// The learned-baseline detector (normal and emergency mode).
    pub fn detector(&self) -> Option<&Detector> {
        self.detector.as_ref()
    }

    /// The detector learns into the node's `baseline` and spares `crawlers`.
    pub fn with_learning(
        mut self,
        baseline: Arc<crate::Baseline>,
        crawlers: Arc<crate::CrawlerRanges>,
    ) -> Self {
        if let Some(d) = self.detector.as_mut() {
            d.set_baseline(baseline);
            d.set_crawlers(crawlers);
        }
        self
    }

    /// Counts IPv6 clients by their first `bits` bits (`[node] ipv6_prefix`; 128: the whole address). A guard
    /// is built with the default, 64.
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.clamp(1, 128);
        self
    }

    /// The prefix an IPv6 client is counted by.
    pub fn ipv6_prefix(&self) -> u8 {
        self.ipv6_prefix
    }

    /// Gives the guard the challenger its challenges are issued and checked with.
    pub(crate) fn with_challenger(mut self, node: &Challenger) -> Self {
        let ttl = self.challenge.clearance_ttl;
        self.challenger = Some(Arc::new(node.clone().with_clearance_ttl(ttl)));
        self
    }

    /// The challenger of this domain (its clearance TTL), when the guard serves HTTP.
    pub fn challenger(&self) -> Option<&Challenger> {
        self.challenger.as_deref()
    }

    /// The domain's challenge page: a visit splices in its token and return path.
    pub fn page(&self) -> &ChallengePage {
        &self.page
    }

    /// `[domain.access_control]`.
    pub fn access(&self) -> &AccessLists {
        &self.access
    }

    pub fn challenge(&self) -> &ChallengeSettings {
        &self.challenge
    }

    /// Whether [`DomainGuard::challenge_in_force`] needs the request's path.
    #[inline]
    pub fn challenge_needs_path(&self) -> bool {
        !self.challenge.paths.is_empty() || self.blocks.has_prefixes()
    }

    /// A challenge in force for the whole domain by configuration, or for the normalised `path` by configuration
    /// or an operator's timed prefix challenge. Timed challenges of the whole domain are objects (`domain`) and
    /// come from [`DomainGuard::in_force`].
    ///
    /// Hot path: no allocation; a prefix scan only when the domain has prefixes.
    pub fn challenge_in_force(&self, path: Option<&str>, now_ms: u64) -> Option<InForce> {
        if let Some(all) = &self.challenge.all {
            return Some(all.clone());
        }
        let path = path?;
        if self.challenge.paths.iter().any(|p| path.starts_with(&**p)) {
            return Some(self.challenge.paths_entry.clone());
        }
        self.blocks.lookup_prefix(path, now_ms)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn blocks(&self) -> &Arc<DomainBlocks> {
        &self.blocks
    }

    /// Whether the rules need the request's path (anything to count).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The compiled rules in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        self.set.rules()
    }

    /// Whether the IP access limit is on without a `qps`, so the node's recommendation applies.
    pub fn uses_recommendation(&self) -> bool {
        self.ip_limit.as_ref().is_some_and(|l| l.fixed.is_none())
    }

    /// The limit in force when the IP access limit is on.
    pub fn ip_limit_qps(&self) -> Option<u32> {
        self.ip_limit.as_ref().map(|l| {
            l.fixed
                .unwrap_or_else(|| l.recommended.load(Ordering::Relaxed))
                .max(1)
        })
    }

    /// Phase 1: the strongest action in force for the request, if any.
    ///
    /// Hot path: see [`DomainBlocks::lookup`].
    #[inline]
    pub fn in_force(
        &self,
        req: &impl RequestView,
        now_ms: u64,
        buf: &mut Vec<u8>,
    ) -> Option<InForce> {
        let req = Counted6 {
            req,
            ipv6_prefix: self.ipv6_prefix,
        };
        self.blocks.lookup(&req, now_ms, buf)
    }

    /// Phase 2, the IP access limit: `Some(qps)` when the request is one too many in its second (answer 514).
    ///
    /// Hot path: one shard lock of the per-second table, no allocation.
    pub fn ip_access_limit(&self, client: IpAddr, now_ms: u64) -> Option<u32> {
        let limit = self.ip_limit.as_ref()?;
        let qps = limit
            .fixed
            .unwrap_or_else(|| limit.recommended.load(Ordering::Relaxed))
            .max(1);
        // Binary keys: 4 bytes for IPv4 (mapped IPv6 included), 16 for an IPv6 prefix with the host bits zero.
        let (v4, v6);
        let key: &[u8] = match client_of(client, self.ipv6_prefix) {
            IpAddr::V4(a) => {
                v4 = a.octets();
                &v4
            }
            IpAddr::V6(a) => {
                v6 = a.octets();
                &v6
            }
        };
        let Some(shared) = &limit.shared else {
            return (!limit.table.check(key, qps, now_ms)).then_some(qps);
        };
        // In a cluster this node may admit what the others left of the limit in the last second; an admitted
        // request counts towards the cluster's total (with `Open`, nothing is counted: the limit is off).
        let mut refused = false;
        shared.others_then_add(
            key,
            now_ms,
            Some(u64::from(qps)),
            &mut |others| match others {
                Others::Count(n) => {
                    refused = !limit.table.check_with(key, qps, n, now_ms);
                    !refused
                }
                Others::Open => false,
                Others::Closed => {
                    refused = true;
                    false
                }
            },
        );
        refused.then_some(qps)
    }

    /// Phase 3, the rules: the first rule whose URI matches counts the request under the object's key (left in
    /// `key` for [`DomainGuard::record_status`]). `None`: no rule matches, or the request lacks the rule's
    /// header or parameter. `path` is the normalised path, `query` the raw query.
    ///
    /// Hot path: one window update and a criteria evaluation; allocates only when the request triggers the rule.
    pub fn count(
        &self,
        req: &impl RequestView,
        path: &str,
        query: Option<&str>,
        now_ms: u64,
        key: &mut Vec<u8>,
    ) -> Option<Counted> {
        if self.rules.is_empty() {
            return None;
        }
        let (i, rule) = self.set.first_match(path, query)?;
        let req = Counted6 {
            req,
            ipv6_prefix: self.ipv6_prefix,
        };
        if !rule.object.key_into(&req, key) {
            return None;
        }
        let r = &self.rules[i];
        let mut counts = r.table.record_request(key, now_ms);
        if let Some(shared) = &r.shared {
            match shared.add_then_others(key, now_ms, r.threshold) {
                Others::Count(n) => counts.requests += n,
                Others::Open => {
                    return Some(Counted {
                        rule: i,
                        triggered: None,
                        seen: None,
                    });
                }
                // The rule's action for this request, without putting a block in force on a guess.
                Others::Closed => {
                    let triggered = Some(InForce {
                        rule: r.name.clone(),
                        action: r.rule.action,
                        until_ms: now_ms,
                    });
                    return Some(Counted {
                        rule: i,
                        triggered,
                        seen: None,
                    });
                }
            }
        }
        let mut triggered = self.check_trigger(r, key, &counts, now_ms);
        let mut seen = None;
        if let Some(d) = &self.detector {
            let (s, found) = d.on_request(req.client_ip(), self.ipv6_prefix, path, query, now_ms);
            seen = s;
            if triggered.is_none()
                && let (Some(f), Some(s)) = (found, s)
            {
                triggered = self.apply_finding(&f, &s, now_ms);
            }
        }
        Some(Counted {
            rule: i,
            triggered,
            seen,
        })
    }

    /// Records the response status of a request the detector saw (`Counted::seen`); a finding acts from the
    /// next request on.
    pub fn observe_status(&self, seen: &Seen, status: u16, now_ms: u64) -> Option<InForce> {
        let f = self.detector.as_ref()?.on_status(seen, status, now_ms)?;
        self.apply_finding(&f, seen, now_ms)
    }

    fn apply_finding(&self, f: &crate::Finding, s: &Seen, now_ms: u64) -> Option<InForce> {
        let (blocks, sink) = (&self.blocks, &self.sink);
        crate::findings::apply(
            f,
            &self.name,
            blocks,
            sink,
            s.client(),
            self.ipv6_prefix,
            now_ms,
        )
    }

    /// Records the response status of a request that rule `rule` counted under `key`. A criteria made true by
    /// it puts the action in force from the next request on (returned here for the record).
    pub fn record_status(
        &self,
        rule: usize,
        key: &[u8],
        status: u16,
        now_ms: u64,
    ) -> Option<InForce> {
        let r = self.rules.get(rule)?;
        if r.tracked.is_empty() {
            // Nothing in the criteria reads statuses; `responses` alone decides nothing.
            return None;
        }
        let counts = r.table.record_status(key, now_ms, status)?;
        self.check_trigger(r, key, &counts, now_ms)
    }

    fn check_trigger(
        &self,
        r: &RuleRt,
        key: &[u8],
        counts: &WindowCounts,
        now_ms: u64,
    ) -> Option<InForce> {
        let view = View {
            counts,
            tracked: &r.tracked,
        };
        if !r.rule.criteria.eval(&view) {
            return None;
        }
        let entry = InForce {
            rule: r.name.clone(),
            action: r.rule.action,
            until_ms: now_ms.saturating_add(u64::from(r.rule.ttl_s) * 1000),
        };
        match self
            .blocks
            .insert(&r.rule.object, key, entry.clone(), now_ms)
        {
            Inserted::AlreadyInForce => return None,
            // Not kept (the budget holds only entries worth more): this request gets the action, and so does
            // each next one while the window stays over the threshold; logged once, when first kept.
            Inserted::NoRoom => return Some(entry),
            Inserted::New => {}
        }
        if let Some(w) = &self.sink.writer {
            let object_value = String::from_utf8_lossy(key).into_owned();
            w.submit(ActivityRecord {
                time_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
                node: self.sink.node.clone(),
                domain: self.name.clone(),
                rule: r.rule.name.clone(),
                object_type: r.rule.object.to_string(),
                object_value,
                action: r.rule.action.as_str().to_owned(),
                ttl_s: r.rule.ttl_s,
                detail: r.rule.criteria.explain(&view),
            });
            if r.rule.action.enforces() {
                w.submit_block(blocks::record(&self.name, &r.rule.object, key, &entry));
            }
        }
        if let Some(c) = &self.sink.cluster
            && r.rule.action.enforces()
        {
            c.block_set(&blocks::record(&self.name, &r.rule.object, key, &entry));
        }
        let tally = self.sink.summaries.rule(&self.name, &r.name);
        tally.refuse(key);
        if !tally.may_log() {
            return Some(entry);
        }
        tracing::warn!(
            domain = %self.name,
            rule = %r.rule.name,
            object = %r.rule.object,
            key = %String::from_utf8_lossy(key),
            action = r.rule.action.as_str(),
            ttl_s = r.rule.ttl_s,
            "rate-limiting rule triggered"
        );
        Some(entry)
    }
}
