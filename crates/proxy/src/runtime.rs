//! The runtime state built from a [`Config`]: domains by host name with their locations' effective limit
//! lists, the zones those limits count in, and the upstream pools. Requests read one snapshot of it; a reload
//! builds a new one and swaps it in whole (`arc-swap`), so a request never sees half of two configurations.
//!
//! A zone whose name, key, rate and size are unchanged is the same zone after a reload, counters included, so a
//! reload never hands out a free burst. Pools are kept by address, so reloads do not drop idle connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use edgeguard_cache::{Cache, CacheConfig, DiskConfig};
use edgeguard_config::{
    CacheSpec, Config, ConnZoneSpec, Domain, IpNet, LimitConnSpec, LimitReqSpec, ReqZoneSpec, Tier,
};
use edgeguard_protect::summary::{KeyText, Summaries, Tally};
use edgeguard_protect::{ClusterHooks, SharedCounter};
use http::{HeaderValue, StatusCode};

use crate::error::ProxyError;
use crate::key::CompiledKey;
use crate::limits::{self, ConnLimit, ConnZone, ReqLimit, ReqZone};
use crate::tls::UpstreamTls;
use crate::upstream::{PoolSettings, UpstreamPool};

/// The limit lists in force for one location (or for a domain outside its locations).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub req: Vec<ReqLimit>,
    pub req_keys: Vec<Arc<CompiledKey>>,
    pub conn: Vec<ConnLimit>,
    pub conn_keys: Vec<Arc<CompiledKey>>,
    /// Refusal and delay tallies of each `req` / `conn` entry's zone, in the same order.
    pub req_refused: Vec<Arc<Tally>>,
    pub req_delayed: Vec<Arc<Tally>>,
    pub conn_refused: Vec<Arc<Tally>>,
    /// For each `req` entry whose zone has `scope = "cluster"` on a node of a cluster: its shared count (the
    /// zone as this domain uses it) and the count the send quantum is sized on (a window's rate plus the
    /// burst).
    pub req_shared: Vec<Option<(Arc<dyn SharedCounter>, u64)>>,
}

/// The window of a `limit_req` zone's shared counts. The buckets take the other nodes' counts as they grow,
/// whatever the window; it only bounds how long Redis keeps them.
pub(crate) const REQ_SHARED_WINDOW_MS: u64 = 1000;

#[derive(Debug)]
pub(crate) struct LocationRt {
    pub path: String,
    pub limits: Arc<Limits>,
}

#[derive(Debug)]
pub(crate) struct DomainRt {
    pub name: String,
    pub explain: bool,
    pub limit_req_status: StatusCode,
    pub limit_conn_status: StatusCode,
    pub limits: Arc<Limits>,
    /// Longest path first.
    pub locations: Vec<LocationRt>,
    /// In the order they are tried: parents (edges only), then origins.
    pub upstreams: Vec<Arc<UpstreamPool>>,
    /// How many of `upstreams` are parents (they come first).
    pub parents: usize,
    pub connect_timeout: Duration,
    /// `[domain.cache] lock_timeout`: how long a follower waits for another request's fill.
    pub lock_timeout: Duration,
    pub read_timeout: Duration,
    /// `https_redirect`: plain-HTTP requests get 308 to HTTPS.
    pub https_redirect: bool,
    /// `allow_methods`: CONNECT and TRACE are forwarded only when listed.
    pub allow_connect: bool,
    pub allow_trace: bool,
    /// `websocket`: `Upgrade` requests are passed through (`upgrade.rs`).
    pub websocket: bool,

    /// `[domain.cache]` when enabled; kept across reloads while its settings are unchanged (`carry_over`).
    pub cache: Option<edgeguard_cache::Cache>,
    /// Counters for `/metrics`; kept across reloads by domain name.
    pub stats: Arc<crate::stats::DomainStats>,
    /// The console's live counters and top talkers; kept across reloads by domain name.
    pub live: Arc<crate::live::DomainLive>,
    /// Refusals of the domain's own limits, by client address: the IP access limit, challenge answers,
    /// request bodies (too large, too slow).
    pub ip_limited: Arc<Tally>,
    pub verify_refused: Arc<Tally>,
    pub body_refused: Arc<Tally>,
}

impl DomainRt {
    /// The limits for `path` (already normalised): the longest matching location's, else the domain's.
    pub(crate) fn limits_for(&self, path: &[u8]) -> &Arc<Limits> {
        self.locations
            .iter()
            .find(|l| path.starts_with(l.path.as_bytes()))
            .map_or(&self.limits, |l| &l.limits)
    }
}

pub(crate) struct Runtime {
    pub via: HeaderValue,
    pub trusted_proxies: Vec<IpNet>,
    pub max_header_size: usize,
    pub max_body_size: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// `[node]` client connection limits (0: none), applied at accept.
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub http2_idle_timeout: Duration,
    pub http2_max_streams: u32,
    /// The port of the first bound `listen_tls` address, for `https_redirect`; set by the node after binding.
    pub https_port: Option<u16>,
    /// Keys come from the configuration only, so the fast hasher is safe here (routing looks up every request).
    pub domains: HashMap<String, Arc<DomainRt>, foldhash::fast::RandomState>,
    /// Protection of each domain (blocks, IP access limit, rules); filled in by the node after `build`.
    pub protect: edgeguard_protect::Guards,
    req_zones: HashMap<String, (ReqZoneSpec, Arc<ReqZone>, Arc<CompiledKey>)>,
    conn_zones: HashMap<String, (ConnZoneSpec, Arc<ConnZone>, Arc<CompiledKey>)>,
    pools: Vec<Arc<UpstreamPool>>,
    /// Limit keys too long to count (not limited by that key), node-wide.
    pub long_keys: Arc<Tally>,
    /// The cluster the node joined, for zones with `scope = "cluster"`.
    cluster: Option<Arc<dyn ClusterHooks>>,
}

fn status(code: u16, what: &'static str) -> Result<StatusCode, ProxyError> {
    StatusCode::from_u16(code).map_err(|_| ProxyError::Status { what, code })
}

impl Runtime {
    /// Builds the state for `config`, taking over zones and pools of `previous` where they are unchanged.
    /// Refusal tallies come from `summaries` by kind and name, so a reload keeps their counts. With `cluster`,
    /// zones of `scope = "cluster"` count through it.
    pub(crate) fn build(
        config: &Config,
        previous: Option<&Runtime>,
        summaries: &Summaries,
        cluster: Option<Arc<dyn ClusterHooks>>,
    ) -> Result<Self, ProxyError> {
        let node = &config.node;
        let via = HeaderValue::try_from(format!("1.1 {}", node.name))
            .map_err(|_| ProxyError::ViaName(node.name.clone()))?;

        let mut req_zones = HashMap::new();
        for spec in &config.limit_req_zones {
            let kept = previous
                .and_then(|p| p.req_zones.get(&spec.name))
                .filter(|(old, _, _)| old == spec)
                .map(|(_, zone, key)| (zone.clone(), key.clone()));
            let (zone, key) = match kept {
                Some(k) => k,
                None => (
                    limits::new_req_zone(&spec.name, spec.rate, spec.size)
                        .map_err(ProxyError::Zone)?,
                    Arc::new(CompiledKey::compile(&spec.key)),
                ),
            };
            req_zones.insert(spec.name.clone(), (spec.clone(), zone, key));
        }
        let mut conn_zones = HashMap::new();
        for spec in &config.limit_conn_zones {
            let kept = previous
                .and_then(|p| p.conn_zones.get(&spec.name))
                .filter(|(old, _, _)| old == spec)
                .map(|(_, zone, key)| (zone.clone(), key.clone()));
            let (zone, key) = match kept {
                Some(k) => k,
                None => (
                    limits::new_conn_zone(&spec.name, spec.size).map_err(ProxyError::Zone)?,
                    Arc::new(CompiledKey::compile(&spec.key)),
                ),
            };
            conn_zones.insert(spec.name.clone(), (spec.clone(), zone, key));
        }

        let mut runtime = Runtime {
            via,
            trusted_proxies: node.trusted_proxies.clone(),
            max_header_size: node.max_header_size,
            max_body_size: node.max_body_size,
            header_timeout: node.header_timeout,
            body_timeout: node.body_timeout,
            keepalive_timeout: node.keepalive_timeout,
            max_connections: node.max_connections,
            max_connections_per_ip: node.max_connections_per_ip,
            http2_idle_timeout: node.http2_idle_timeout,
            http2_max_streams: node.http2_max_streams,
            https_port: None,
            domains: HashMap::default(),
            protect: Default::default(),
            req_zones,
            conn_zones,
            pools: Vec::new(),
            long_keys: summaries.get("limit_key_too_long", "", KeyText::Bytes),
            cluster,
        };
        let previous_pools = previous.map_or(&[][..], |p| &p.pools[..]);
        for domain in &config.domains {
            let mut rt = runtime.build_domain(domain, node.tier, previous_pools, summaries)?;
            let before = previous.and_then(|p| p.domains.get(&rt.name));
            carry_over(&mut rt, &domain.cache, before.map(|d| &**d));
            runtime
                .domains
                .insert(domain.name.to_ascii_lowercase(), Arc::new(rt));
        }
        Ok(runtime)
    }

    /// Every upstream pool, with the shortest `connect_timeout` of the domains that use it (health checks).
    pub(crate) fn pools_with_timeouts(&self) -> Vec<(Arc<UpstreamPool>, Duration)> {
        self.pools
            .iter()
            .map(|p| {
                let timeout = self
                    .domains
                    .values()
                    .filter(|d| d.upstreams.iter().any(|u| Arc::ptr_eq(u, p)))
                    .map(|d| d.connect_timeout)
                    .min()
                    .unwrap_or(Duration::from_secs(1));
                (p.clone(), timeout)
            })
            .collect()
    }

    /// The upstream pools, in the order the configuration first names them.
    pub(crate) fn pools(&self) -> &[Arc<UpstreamPool>] {
        &self.pools
    }

    /// The limit_req zones by name.
    pub(crate) fn req_zones(&self) -> impl Iterator<Item = &ReqZone> {
        self.req_zones.values().map(|(_, z, _)| &**z)
    }

    /// The limit_conn zones by name.
    pub(crate) fn conn_zones(&self) -> impl Iterator<Item = &ConnZone> {
        self.conn_zones.values().map(|(_, z, _)| &**z)
    }

    fn pool(
        &mut self,
        kind: &str,
        up: &edgeguard_config::Upstream,
        tls: Option<&UpstreamTls>,
        settings: &PoolSettings,
        previous: &[Arc<UpstreamPool>],
    ) -> Arc<UpstreamPool> {
        let label_kind = |p: &Arc<UpstreamPool>| p.label.starts_with(kind);
        if let Some(p) = self
            .pools
            .iter()
            .find(|p| p.same_address(up, tls, settings) && label_kind(p))
        {
            return p.clone();
        }
        let pool = previous
            .iter()
            .find(|p| p.same_address(up, tls, settings) && label_kind(p))
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(UpstreamPool::new(kind, up, tls.cloned(), settings.clone()))
            });
        self.pools.push(pool.clone());
        pool
    }

    fn build_domain(
        &mut self,
        d: &Domain,
        tier: Tier,
        previous: &[Arc<UpstreamPool>],
        summaries: &Summaries,
    ) -> Result<DomainRt, ProxyError> {
        let name = d.name.to_ascii_lowercase();
        let mut upstreams = Vec::new();
        let tls = UpstreamTls::build(&d.upstream_tls, &d.name)?;
        let settings = PoolSettings {
            upstream: d.upstream.clone(),
            check: d.health_check.clone(),
            check_host: name.clone(),
        };
        if tier == Tier::Edge {
            for up in &d.parents {
                upstreams.push(self.pool("parent", up, tls.as_ref(), &settings, previous));
            }
        }
        let parents = upstreams.len();
        for up in &d.origins {
            upstreams.push(self.pool("origin", up, tls.as_ref(), &settings, previous));
        }
        let limits = Arc::new(self.limits(&d.name, &d.limit_req, &d.limit_conn, summaries)?);
        let mut locations = Vec::with_capacity(d.locations.len());
        for loc in &d.locations {
            let req = loc.limit_req.as_deref().unwrap_or(&d.limit_req);
            let conn = loc.limit_conn.as_deref().unwrap_or(&d.limit_conn);
            locations.push(LocationRt {
                path: loc.path.clone(),
                limits: Arc::new(self.limits(&d.name, req, conn, summaries)?),
            });
        }
        // The model promises longest first; sorting again keeps the match right whatever built the config.
        locations.sort_by_key(|l| std::cmp::Reverse(l.path.len()));
        Ok(DomainRt {
            ip_limited: summaries.get("ip_access_limit", &name, KeyText::Address),
            verify_refused: summaries.get("challenge_answer", &name, KeyText::Address),
            body_refused: summaries.get("request_body", &name, KeyText::Address),
            name,
            explain: d.explain,
            limit_req_status: status(d.limit_req_status, "limit_req_status")?,
            limit_conn_status: status(d.limit_conn_status, "limit_conn_status")?,
            limits,
            locations,
            upstreams,
            parents,
            connect_timeout: d.connect_timeout,
            lock_timeout: d.cache.lock_timeout,
            read_timeout: d.read_timeout,
            https_redirect: d.https_redirect,
            allow_connect: d.allow_methods.iter().any(|m| m == "CONNECT"),
            allow_trace: d.allow_methods.iter().any(|m| m == "TRACE"),
            websocket: d.websocket,
            cache: None,
            stats: Arc::default(),
            live: Arc::default(),
        })
    }

    fn limits(
        &self,
        domain: &str,
        req: &[LimitReqSpec],
        conn: &[LimitConnSpec],
        summaries: &Summaries,
    ) -> Result<Limits, ProxyError> {
        let mut out = Limits::default();
        for spec in req {
            let (zspec, zone, key) =
                self.req_zones
                    .get(&spec.zone)
                    .ok_or_else(|| ProxyError::UndefinedZone {
                        domain: domain.to_owned(),
                        kind: "limit_req",
                        zone: spec.zone.clone(),
                    })?;
            out.req.push(ReqLimit {
                zone: zone.clone(),
                burst: spec.burst,
                delay: spec.delay,
                dry_run: spec.dry_run,
            });
            out.req_keys.push(key.clone());
            out.req_refused
                .push(summaries.get("limit_req", &spec.zone, KeyText::Bytes));
            out.req_delayed
                .push(summaries.get("limit_req_delay", &spec.zone, KeyText::Bytes));
            let shared = match (&self.cluster, zspec.scope) {
                (Some(c), edgeguard_config::Scope::Cluster) => {
                    let table = format!("limit_req_zone:{}", spec.zone);
                    let per_window =
                        zspec.rate.milli_per_sec() * REQ_SHARED_WINDOW_MS / 1000 / 1000;
                    let cap = per_window + u64::from(spec.burst) + 1;
                    Some((c.counter(domain, &table, REQ_SHARED_WINDOW_MS), cap))
                }
                _ => None,
            };
            out.req_shared.push(shared);
        }
        for spec in conn {
            let (_, zone, key) =
                self.conn_zones
                    .get(&spec.zone)
                    .ok_or_else(|| ProxyError::UndefinedZone {
                        domain: domain.to_owned(),
                        kind: "limit_conn",
                        zone: spec.zone.clone(),
                    })?;
            out.conn.push(ConnLimit {
                zone: zone.clone(),
                conn: spec.conn,
                dry_run: spec.dry_run,
            });
            out.conn_keys.push(key.clone());
            out.conn_refused
                .push(summaries.get("limit_conn", &spec.zone, KeyText::Bytes));
        }
        Ok(out)
    }
}

/// The cache settings of `[domain.cache]`.
/// The disk tier of each domain is a folder of its own under `disk_path`, so domains naming one path never
/// share (or evict) each other's files.
fn cache_config(spec: &CacheSpec, domain: &str) -> CacheConfig {
    CacheConfig {
        default_ttl: spec.default_ttl,
        stale_grace: spec.stale_grace,
        ignore_query: spec.ignore_query,
        disk: spec.disk_path.as_ref().map(|p| DiskConfig {
            path: p.join(domain),
            size: spec.disk_size,
        }),
        ..CacheConfig::new(spec.max_size)
    }
}

/// Gives a freshly built domain its cache and counters, taking over `before`'s (the same domain in the
/// configuration being replaced) when its cache settings are unchanged, so a reload neither empties the cache
/// nor resets counters.
fn carry_over(rt: &mut DomainRt, spec: &CacheSpec, before: Option<&DomainRt>) {
    if let Some(before) = before {
        rt.stats = before.stats.clone();
        rt.live = before.live.clone();
    }
    if !spec.enabled {
        return;
    }
    let config = cache_config(spec, &rt.name);
    let kept = before
        .and_then(|b| b.cache.as_ref())
        .filter(|c| *c.config() == config)
        .cloned();
    let cache = kept.unwrap_or_else(|| {
        let cache = Cache::new(config);
        if let Some(why) = cache.disk_error() {
            tracing::error!(domain = %rt.name, "cache disk tier not usable, memory only: {why}");
        }
        cache
    });
    rt.cache = Some(cache);
}
