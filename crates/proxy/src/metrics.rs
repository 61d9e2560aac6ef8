//! The node's metrics: per-domain request and decision counters kept as atomics in each domain's runtime
//! state (carried across reloads by name), a node-wide latency histogram, and gauges read at scrape time from
//! the zones, the upstream pools and the caches. `prometheus-client` writes the exposition (Prometheus text
//! format 0.0.4: naming, label escaping, histogram layout) from a snapshot taken at scrape time; its own
//! metric types are not used on the request path because a labelled `Family` locks on every lookup.
//!
//! Label values come from the configuration only (domain names, zone names, upstream addresses), plus the
//! fixed `_unknown` domain for requests that matched none, so the number of series is bounded by the config.
//!
//! Hot path: [`observe`] does three relaxed `fetch_add`s and pushes an access-log record if a log is open; no
//! lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use edgeguard_cache::{CacheStats, CacheStatus};
use http::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::access_log::{AccessLog, RequestLine};
use crate::body::ProxyBody;
use crate::ctx::RequestCtx;
use crate::decision::{DECISIONS, Decision};
use crate::live::LiveKind;
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::stats::{BUCKETS, CLASSES, DomainStats, NodeStats};
use crate::talkers::TalkerKeys;

/// Unix seconds of a wall-clock time (0 before 1970).
pub(crate) fn unix_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records a finished request: counters, latency, and the access log line.
///
/// Hot path: atomics, the live view's ring and top talkers (see `live.rs`, `talkers.rs`) and, with an access
/// log open, one channel push (never blocks).
pub(crate) fn observe(
    shared: &Shared,
    ctx: &RequestCtx,
    resp: &Response<ProxyBody>,
    line: Option<RequestLine>,
    talker: &TalkerKeys,
) {
    let status = resp.status().as_u16();
    let decision = Decision::of(ctx);
    match &ctx.domain {
        Some(d) => {
            d.stats.count(status, decision);
            let from_cache = matches!(
                ctx.cdn.cache_status,
                Some(
                    CacheStatus::Hit
                        | CacheStatus::Stale
                        | CacheStatus::Updating
                        | CacheStatus::Revalidated
                )
            );
            let kind = LiveKind::of(decision, status, from_cache);
            let now_s = unix_seconds(ctx.cdn.epoch.now(&*shared.clock));
            d.live.ring.record(now_s, kind);
            d.live
                .talkers
                .record(now_s, ctx.client_ip, talker, kind.refused());
        }
        None => shared.stats.unknown.count(status, decision),
    }
    let elapsed = ctx.started.elapsed();
    shared.stats.observe_latency(elapsed);
    if let Some(line) = line {
        shared
            .access_log
            .push(line.finish(ctx, resp, decision, elapsed));
    }
}

/// Every value of one scrape, read from the atomics and the runtime before encoding: the registry wants a
/// `'static` collector, and reading first keeps the encoder from walking a zone's table twice.
#[derive(Debug)]
struct Scrape {
    /// Domains by name, then `_unknown`.
    domains: Vec<DomainRow>,
    /// Per-bucket (not cumulative) counts; the last one is above every bound.
    latency: [u64; 13],
    latency_sum_s: f64,
    /// `limit_req` zones by name, then `limit_conn` zones by name.
    zones: Vec<ZoneRow>,
    upstreams: Vec<UpstreamRow>,
    /// Domains with a cache, by name.
    caches: Vec<(String, CacheStats)>,
    log_dropped: u64,
    /// Client connections open now, and refused at accept since start.
    clients_open: u64,
    clients_refused: u64,
    /// Refusal tallies (kind, name, total), sorted; from the node protection's summaries.
    refusals: Vec<(&'static str, String, u64)>,
}

#[derive(Debug)]
struct DomainRow {
    name: String,
    requests: [u64; 6],
    decisions: [u64; 8],
}

#[derive(Debug)]
struct ZoneRow {
    kind: &'static str,
    name: String,
    capacity: u64,
    in_use: u64,
}

#[derive(Debug)]
struct UpstreamRow {
    kind: String,
    addr: String,
    up: bool,
    /// Sockets open now, for upstreams with `max_conns`.
    open: Option<u32>,
}

fn loads<const N: usize>(a: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| a[i].load(Relaxed))
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Scrape {
    fn take(rt: &Runtime, stats: &NodeStats, log: &AccessLog) -> Scrape {
        let mut named: Vec<_> = rt.domains.values().collect();
        named.sort_by(|a, b| a.name.cmp(&b.name));
        let row = |name: &str, s: &DomainStats| DomainRow {
            name: name.to_owned(),
            requests: loads(&s.requests),
            decisions: loads(&s.decisions),
        };
        let mut domains: Vec<DomainRow> = named.iter().map(|d| row(&d.name, &d.stats)).collect();
        domains.push(row("_unknown", &stats.unknown));

        let mut zones: Vec<ZoneRow> = rt
            .req_zones()
            .map(|z| ZoneRow {
                kind: "limit_req",
                name: z.name().to_owned(),
                capacity: as_u64(z.capacity()),
                in_use: as_u64(z.in_use()),
            })
            .collect();
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        let mut conn: Vec<ZoneRow> = rt
            .conn_zones()
            .map(|z| ZoneRow {
                kind: "limit_conn",
                name: z.name().to_owned(),
                capacity: as_u64(z.capacity()),
                in_use: as_u64(z.in_use()),
            })
            .collect();
        conn.sort_by(|a, b| a.name.cmp(&b.name));
        zones.append(&mut conn);

        let upstreams = rt
            .pools()
            .iter()
            .map(|p| {
                let (kind, addr) = p.label.split_once(' ').unwrap_or(("", &p.label));
                UpstreamRow {
                    kind: kind.to_owned(),
                    addr: addr.to_owned(),
                    up: p.health.marked_up(),
                    open: p.open_conns(),
                }
            })
            .collect();
        let caches = named
            .iter()
            .filter_map(|d| Some((d.name.clone(), d.cache.as_ref()?.stats())))
            .collect();
        Scrape {
            domains,
            latency: loads(&stats.latency),
            latency_sum_s: stats.latency_sum_us.load(Relaxed) as f64 / 1e6,
            clients_open: u64::from(stats.clients.open.load(Relaxed)),
            clients_refused: stats.clients.refused.load(Relaxed),
            zones,
            upstreams,
            caches,
            log_dropped: log.dropped(),
            refusals: rt.protect.node().map_or_else(Vec::new, |n| {
                n.summaries()
                    .all()
                    .iter()
                    .map(|t| (t.kind(), t.name().to_owned(), t.total()))
                    .collect()
            }),
        }
    }
}

/// A cache series: name (without `_total` for counters, which the encoder appends), type, help and reader.
type CacheSeries = (
    &'static str,
    MetricType,
    &'static str,
    fn(&CacheStats) -> u64,
);

const CACHE_SERIES: [CacheSeries; 14] = [
    (
        "edgeguard_cache_hits",
        MetricType::Counter,
        "Requests answered from the cache.",
        |s| s.hits,
    ),
    (
        "edgeguard_cache_misses",
        MetricType::Counter,
        "Lookups that fetched the object to fill the cache.",
        |s| s.misses,
    ),
    (
        "edgeguard_cache_passes",
        MetricType::Counter,
        "Lookups that went upstream without filling.",
        |s| s.passes,
    ),
    (
        "edgeguard_cache_coalesced",
        MetricType::Counter,
        "Lookups that waited for a fill in flight.",
        |s| s.coalesced,
    ),
    (
        "edgeguard_cache_stale",
        MetricType::Counter,
        "Expired objects served because the upstream failed.",
        |s| s.stale_served,
    ),
    (
        "edgeguard_cache_evictions",
        MetricType::Counter,
        "Objects evicted to stay within the memory budget.",
        |s| s.evictions,
    ),
    (
        "edgeguard_cache_bytes",
        MetricType::Gauge,
        "Bytes charged against the cache budget.",
        |s| s.bytes,
    ),
    (
        "edgeguard_cache_objects",
        MetricType::Gauge,
        "Objects held by the cache.",
        |s| s.objects,
    ),
    (
        "edgeguard_cache_revalidated",
        MetricType::Counter,
        "Expired objects the upstream confirmed with a 304.",
        |s| s.revalidated,
    ),
    (
        "edgeguard_cache_disk_hits",
        MetricType::Counter,
        "Memory misses answered from the disk tier.",
        |s| s.disk_hits,
    ),
    (
        "edgeguard_cache_disk_writes",
        MetricType::Counter,
        "Objects written to the disk tier.",
        |s| s.disk_writes,
    ),
    (
        "edgeguard_cache_disk_dropped",
        MetricType::Counter,
        "Disk-tier writes dropped because the writer was behind.",
        |s| s.disk_dropped,
    ),
    (
        "edgeguard_cache_disk_bytes",
        MetricType::Gauge,
        "Bytes of the disk tier's files.",
        |s| s.disk_bytes,
    ),
    (
        "edgeguard_cache_disk_objects",
        MetricType::Gauge,
        "Objects in the disk tier.",
        |s| s.disk_objects,
    ),
];

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        // Counter names are given without `_total`: the encoder appends it to the samples and the HELP/TYPE lines.
        let mut m = enc.encode_descriptor(
            "edgeguard_requests",
            "Requests answered, by domain and status class.",
            None,
            MetricType::Counter,
        )?;
        for d in &self.domains {
            for (class, v) in CLASSES.iter().zip(d.requests) {
                let labels = [("domain", d.name.as_str()), ("class", class)];
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_decisions",
            "Requests by what the node decided about them.",
            None,
            MetricType::Counter,
        )?;
        for d in &self.domains {
            for decision in DECISIONS {
                let labels = [("domain", d.name.as_str()), ("decision", decision.as_str())];
                ConstCounter::new(d.decisions[decision.index()])
                    .encode(m.encode_family(&labels)?)?;
            }
        }

        ConstGauge::new(self.clients_open).encode(enc.encode_descriptor(
            "edgeguard_client_connections",
            "Client connections open now.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(self.clients_refused).encode(enc.encode_descriptor(
            "edgeguard_client_connections_refused",
            "Client connections closed at accept by max_connections or max_connections_per_ip.",
            None,
            MetricType::Counter,
        )?)?;

        let mut m = enc.encode_descriptor(
            "edgeguard_request_duration_seconds",
            "Time from the request head to the response head.",
            None,
            MetricType::Histogram,
        )?;
        let buckets: [(f64, u64); 12] = std::array::from_fn(|i| (BUCKETS[i], self.latency[i]));
        m.encode_histogram::<NoLabelSet>(
            self.latency_sum_s,
            self.latency.iter().sum(),
            &buckets,
            None,
        )?;

        let mut m = enc.encode_descriptor(
            "edgeguard_zone_capacity",
            "States a limit zone holds at most (keys of up to 16 bytes).",
            None,
            MetricType::Gauge,
        )?;
        for z in &self.zones {
            let labels = [("kind", z.kind), ("zone", z.name.as_str())];
            ConstGauge::new(z.capacity).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_zone_in_use",
            "States a limit zone holds now.",
            None,
            MetricType::Gauge,
        )?;
        for z in &self.zones {
            let labels = [("kind", z.kind), ("zone", z.name.as_str())];
            ConstGauge::new(z.in_use).encode(m.encode_family(&labels)?)?;
        }

        let mut m = enc.encode_descriptor(
            "edgeguard_upstream_up",
            "1 if the upstream is up, 0 if health checks or max_fails have it down.",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
            let labels = [("kind", u.kind.as_str()), ("upstream", u.addr.as_str())];
            ConstGauge::new(u64::from(u.up)).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_upstream_connections",
            "Sockets open to the upstream now (upstreams with max_conns only).",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
            let Some(open) = u.open else { continue };
            let labels = [("kind", u.kind.as_str()), ("upstream", u.addr.as_str())];
            ConstGauge::new(u64::from(open)).encode(m.encode_family(&labels)?)?;
        }

        for (name, kind, help, get) in CACHE_SERIES {
            let mut m = enc.encode_descriptor(name, help, None, kind)?;
            for (domain, s) in &self.caches {
                let labels = [("domain", domain.as_str())];
                let family = m.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(get(s)).encode(family)?,
                    _ => ConstGauge::new(get(s)).encode(family)?,
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "edgeguard_refusals",
            "Requests refused (or delayed, kind limit_req_delay) by each zone, rule or limit; dry runs included.",
            None,
            MetricType::Counter,
        )?;
        for (kind, name, v) in &self.refusals {
            let labels = [("kind", *kind), ("name", name.as_str())];
            ConstCounter::new(*v).encode(m.encode_family(&labels)?)?;
        }

        let m = enc.encode_descriptor(
            "edgeguard_access_log_dropped",
            "Access log records dropped because the writer fell behind.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.log_dropped).encode(m)
    }
}

/// The whole exposition (Prometheus text format 0.0.4), built at scrape time.
pub(crate) fn render(rt: &Runtime, stats: &NodeStats, log: &AccessLog) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape::take(rt, stats, log)));
    if let Some(p) = crate::protect_metrics::ProtectScrape::take(&rt.protect) {
        registry.register_collector(Box::new(p));
    }
    registry.register_collector(Box::new(crate::table_metrics::ProtectTables::take(
        &rt.protect,
    )));
    registry.register_collector(Box::new(crate::detector_metrics::DetectorScrape::take(
        &rt.protect,
    )));
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail; the collector's own writes only fail with the writer.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}
