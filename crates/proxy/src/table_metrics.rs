//! /metrics series of the protection tables (SPEC 9.1): per domain and table (`ip-access-limit` or a rule's
//! name), the keys a table can hold and holds, and how often it evicted a live key or refused a new one. Read
//! at scrape time from the tables' own counters; nothing is counted on the request path for them.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use edgeguard_protect::{Guards, TableStats};

/// One scrape of every domain's protection tables.
#[derive(Debug)]
pub(crate) struct ProtectTables {
    rows: Vec<(String, TableStats)>,
}

/// A series: name (without `_total` for counters, which the encoder appends), type, help and reader.
type Series = (
    &'static str,
    MetricType,
    &'static str,
    fn(&TableStats) -> u64,
);

const SERIES: [Series; 5] = [
    (
        "edgeguard_protect_table_bytes",
        MetricType::Gauge,
        "Memory budget of a protection table (its share of table_size), bytes.",
        |t| t.size_bytes,
    ),
    (
        "edgeguard_protect_table_capacity",
        MetricType::Gauge,
        "Keys a protection table holds at most (keys of up to 16 bytes).",
        |t| t.capacity,
    ),
    (
        "edgeguard_protect_table_in_use",
        MetricType::Gauge,
        "Keys a protection table holds now.",
        |t| t.in_use,
    ),
    (
        "edgeguard_protect_table_evictions",
        MetricType::Counter,
        "Keys with live counts evicted from a protection table for a new key.",
        |t| t.evictions,
    ),
    (
        "edgeguard_protect_table_admission_refusals",
        MetricType::Counter,
        "New keys a full protection table did not store because every candidate victim counted more.",
        |t| t.admission_refusals,
    ),
];

impl ProtectTables {
    pub(crate) fn take(guards: &Guards) -> Self {
        let mut rows: Vec<(String, TableStats)> = guards
            .iter()
            .flat_map(|(name, g)| g.table_stats().into_iter().map(|t| (name.to_owned(), t)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        ProtectTables { rows }
    }
}

impl Collector for ProtectTables {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        for (name, kind, help, get) in SERIES {
            let mut m = enc.encode_descriptor(name, help, None, kind)?;
            for (domain, t) in &self.rows {
                let labels = [("domain", domain.as_str()), ("table", t.table.as_str())];
                let family = m.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(get(t)).encode(family)?,
                    _ => ConstGauge::new(get(t)).encode(family)?,
                }
            }
        }
        Ok(())
    }
}
