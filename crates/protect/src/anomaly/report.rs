//! What a detector knows, for the admin API and /metrics: the learned measures with the thresholds in force,
//! the domain's shares and busiest paths, whether it is still warming up, the flags in force and the findings
//! made. Built on demand (allocates); never on the request path.

use std::sync::atomic::Ordering;

use super::{Detector, RULES};
use crate::baseline::{MIN_EVENTS, Measure, MeasureSummary};
use crate::shares::SharesSummary;
use crate::toppaths::PathRate;

/// A detector's state at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorReport {
    pub measures: Vec<MeasureSummary>,
    pub shares: SharesSummary,
    pub top_paths: Vec<PathRate>,
    /// The per-client and per-path request measures have fewer than [`MIN_EVENTS`] samples, or the novelty
    /// filters have not run five minutes yet: the floors decide, and the novelty signals are off.
    pub warming_up: bool,
    /// Paths in surge and networks whose login requests are challenged, now.
    pub paths_in_surge: u64,
    pub networks_flagged: u64,
    /// Findings made since the detector's tables were built, by rule name.
    pub findings: Vec<(&'static str, u64)>,
}

impl Detector {
    pub fn report(&self, now_ms: u64) -> DetectorReport {
        let b = &self.baseline;
        let unlearned = [Measure::ClientRequests10s, Measure::PathRequests10s]
            .iter()
            .any(|m| b.histogram(*m).events() < MIN_EVENTS);
        let cold = !self.t.queries.warm(now_ms) || !self.t.clients_seen.warm(now_ms);
        DetectorReport {
            measures: self.summary(),
            shares: b.shares_summary(),
            top_paths: b.top_paths(),
            warming_up: unlearned || cold,
            paths_in_surge: self.t.surges.in_force(now_ms),
            networks_flagged: self.t.nets.in_force(now_ms),
            findings: RULES
                .iter()
                .zip(&self.t.found)
                .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
