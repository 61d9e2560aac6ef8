//! /metrics series of normal and emergency mode's detector, per domain: what it learned (each measure's samples,
//! 99.9th percentile and threshold in force; the unseen-query and status-class shares; whether it is warming
//! up), what it holds in force (addresses per `baseline.*` rule, paths in surge, networks flagged) and the
//! decisions it made. Read at scrape time from the detector's own state; nothing is counted on the request path
//! for them.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use edgeguard_protect::{DetectorReport, Guards};

/// One domain's detector at the scrape.
#[derive(Debug)]
struct Row {
    domain: String,
    report: DetectorReport,
    /// Addresses with a `baseline.*` decision in force, per rule.
    in_force: Vec<(String, u64)>,
}

/// One scrape of every domain's detector.
#[derive(Debug)]
pub(crate) struct DetectorScrape {
    rows: Vec<Row>,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl DetectorScrape {
    pub(crate) fn take(guards: &Guards) -> Self {
        let now = guards.node().map_or(0, |n| n.now_ms());
        let mut rows: Vec<Row> = guards
            .iter()
            .filter_map(|(name, g)| {
                let d = g.detector()?;
                Some(Row {
                    domain: name.to_owned(),
                    report: d.report(now),
                    in_force: g.blocks().count_in_force("baseline.", now),
                })
            })
            .collect();
        rows.sort_by(|a, b| a.domain.cmp(&b.domain));
        DetectorScrape { rows }
    }
}

impl Collector for DetectorScrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        type Get = fn(&edgeguard_protect::MeasureSummary) -> Option<u64>;
        let per_measure: [(&str, &str, Get); 3] = [
            (
                "edgeguard_baseline_samples",
                "Samples a learned measure holds (halved every 6 hours).",
                |m| Some(m.events),
            ),
            (
                "edgeguard_baseline_p999",
                "Learned 99.9th percentile of a measure (absent until 2,000 samples).",
                |m| m.p999,
            ),
            (
                "edgeguard_baseline_threshold",
                "Threshold in force for a measure: the mode's floor or its factor times the learned p99.9.",
                |m| Some(m.threshold),
            ),
        ];
        for (name, help, get) in per_measure {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for r in &self.rows {
                for s in &r.report.measures {
                    let Some(v) = get(s) else { continue };
                    let labels = [("domain", r.domain.as_str()), ("measure", s.measure)];
                    ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "edgeguard_baseline_unseen_query_ratio",
            "Learned share of requests with a query string not seen before for the path.",
            None,
            MetricType::Gauge,
        )?;
        for r in &self.rows {
            let s = &r.report.shares;
            let v = ratio(s.unseen_query, s.requests);
            ConstGauge::new(v).encode(m.encode_family(&[("domain", r.domain.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_baseline_status_class_ratio",
            "Learned share of responses of each status class.",
            None,
            MetricType::Gauge,
        )?;
        for r in &self.rows {
            let total: u64 = r.report.shares.status_classes.iter().sum();
            for (class, n) in CLASSES.iter().zip(r.report.shares.status_classes) {
                let labels = [("domain", r.domain.as_str()), ("class", class)];
                ConstGauge::new(ratio(n, total)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_baseline_warming_up",
            "1 while the detector's baseline is not learned yet (the floors decide), else 0.",
            None,
            MetricType::Gauge,
        )?;
        for r in &self.rows {
            let v = u64::from(r.report.warming_up);
            ConstGauge::new(v).encode(m.encode_family(&[("domain", r.domain.as_str())])?)?;
        }

        let mut m = enc.encode_descriptor(
            "edgeguard_detector_in_force",
            "Addresses with a detector decision in force, per rule (baseline.flood, baseline.scanner, ...).",
            None,
            MetricType::Gauge,
        )?;
        for r in &self.rows {
            for (rule, n) in &r.in_force {
                let labels = [("domain", r.domain.as_str()), ("rule", rule.as_str())];
                ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        type Flag = fn(&DetectorReport) -> u64;
        let flags: [(&str, &str, Flag); 2] = [
            (
                "edgeguard_detector_paths_in_surge",
                "Paths in surge now (their repeat clients are challenged).",
                |r| r.paths_in_surge,
            ),
            (
                "edgeguard_detector_networks_flagged",
                "Networks whose login requests are challenged now.",
                |r| r.networks_flagged,
            ),
        ];
        for (name, help, get) in flags {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for r in &self.rows {
                let v = get(&r.report);
                ConstGauge::new(v).encode(m.encode_family(&[("domain", r.domain.as_str())])?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "edgeguard_detector_findings",
            "Decisions the detector made since its tables were built, per rule.",
            None,
            MetricType::Counter,
        )?;
        for r in &self.rows {
            for (rule, n) in &r.report.findings {
                let labels = [("domain", r.domain.as_str()), ("rule", *rule)];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
