//! One row of the reference table run end to end: against nginx, then against edgeguard, then compared.

use crate::HarnessError;
use crate::diff::Report;
use crate::model::Verdict;
use crate::nginx::{Nginx, nginx_available};
use crate::origin::TestOrigin;
use crate::scenario::Scenario;
use crate::script::{Outcome, Step, Target, run_script};

/// A scenario, its script, and the reference table's answer for every step.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub scenario: Scenario,
    pub steps: Vec<Step>,
    pub expected: Vec<Verdict>,
    /// Compare nginx's `limit_req[i]` debug lines with the model (when they are timing-robust).
    pub check_log: bool,
}

/// Which servers a row is run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    /// nginx alone: checks the harness, the model and the scripts against the reference table.
    NginxOnly,
    /// nginx, then edgeguard, then compared.
    Both,
}

/// Runs a row. Returns `None` (after saying why) when nginx is not installed, so the suite can skip.
pub async fn run_row(row: &Row, sides: Sides) -> Option<Report> {
    if !nginx_available() {
        println!(
            "SKIP {}: {} not installed (scripts/test.sh installs nginx-light)",
            row.name,
            crate::nginx::NGINX_BIN
        );
        return None;
    }
    assert_eq!(
        row.steps.len(),
        row.expected.len(),
        "one expectation per step"
    );
    let mut report = Report::new(&row.name);
    report.check_design(&row.scenario, &row.steps, &row.expected);

    let origin = TestOrigin::start().await.expect("test origin starts");
    let nginx_out = match run_nginx(row, &origin).await {
        Ok((out, log)) => {
            let analysis =
                report.check_side("nginx", &row.scenario, &row.steps, &row.expected, &out);
            if row.check_log {
                report.check_nginx_log(&analysis, &log);
            }
            Some((out, analysis))
        }
        Err(e) => {
            report.fail(format!("nginx could not be run: {e}"));
            None
        }
    };

    if sides == Sides::Both {
        match crate::edgeguard::run(&row.scenario, &row.steps, origin.addr()).await {
            Ok(out) => {
                let analysis =
                    report.check_side("edgeguard", &row.scenario, &row.steps, &row.expected, &out);
                if let Some((n_out, n_analysis)) = &nginx_out {
                    report.check_differential(&row.steps, (n_out, n_analysis), (&out, &analysis));
                }
            }
            Err(e) => report.fail(format!("edgeguard could not be run: {e}")),
        }
    }
    report.note(format!("origin received {} request(s)", origin.hits()));
    Some(report)
}

async fn run_nginx(
    row: &Row,
    origin: &TestOrigin,
) -> Result<(Vec<Outcome>, Vec<crate::nginx::LimitReqLogLine>), HarnessError> {
    let snippet = row.scenario.nginx_snippet(origin.addr());
    let mut nginx = tokio::task::spawn_blocking(move || Nginx::start(&snippet))
        .await
        .map_err(|e| HarnessError::Nginx(format!("start task: {e}")))??;
    let target = Target {
        name: "nginx",
        addr: nginx.addr(),
        lr_header: "X-LR",
        lc_header: "X-LC",
    };
    let out = run_script(target, &row.steps).await;
    let log = nginx.limit_req_log();
    tokio::task::spawn_blocking(move || nginx.stop())
        .await
        .map_err(|e| HarnessError::Nginx(format!("stop task: {e}")))?;
    Ok((out, log))
}
