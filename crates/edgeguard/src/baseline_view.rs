//! The protection engine's detector report in the admin API's shape (`GET /api/v1/domains/{name}/baseline`).

use edgeguard_admin::{
    BaselineFindings, BaselineMeasure, BaselinePath, BaselineShares, BaselineView, StatusClassShare,
};
use edgeguard_protect::{DetectorReport, SharesSummary};

pub(crate) fn view(r: DetectorReport) -> BaselineView {
    let per_mille = r.shares.status_per_mille();
    BaselineView {
        warming_up: r.warming_up,
        measures: r
            .measures
            .into_iter()
            .map(|m| BaselineMeasure {
                measure: m.measure.to_owned(),
                events: m.events,
                p99: m.p99,
                p999: m.p999,
                threshold: m.threshold,
            })
            .collect(),
        shares: BaselineShares {
            requests: r.shares.requests,
            with_query: r.shares.with_query,
            unseen_query: r.shares.unseen_query,
            unseen_query_per_mille: SharesSummary::per_mille(
                r.shares.unseen_query,
                r.shares.requests,
            ),
            status_classes: (0..5)
                .map(|i| StatusClassShare {
                    class: format!("{}xx", i + 1),
                    responses: r.shares.status_classes[i],
                    per_mille: per_mille[i],
                })
                .collect(),
        },
        top_paths: r
            .top_paths
            .into_iter()
            .map(|p| BaselinePath {
                path: p.path,
                samples: p.samples,
                requests_10s: p.requests_10s,
                peak_10s: p.peak_10s,
            })
            .collect(),
        paths_in_surge: r.paths_in_surge,
        networks_flagged: r.networks_flagged,
        findings: r
            .findings
            .into_iter()
            .map(|(rule, count)| BaselineFindings {
                rule: rule.to_owned(),
                count,
            })
            .collect(),
    }
}
