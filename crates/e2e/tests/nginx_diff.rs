//! The differential suite: every row of the reference table that HTTP can drive, sent to a real nginx and
//! to edgeguard configured alike (`crates/e2e/src/scenario.rs` renders both configurations). nginx's
//! answers are checked against the table (so the harness is checked too); edgeguard's against nginx's.
//! Decisions that would change if a send time moved by 15 ms are reported as ambiguous, not compared.
//! Skips, saying why, only when `/usr/sbin/nginx` is not installed.

use edgeguard_e2e::model::Verdict;
use edgeguard_e2e::row::{Row, Sides, run_row};
use edgeguard_e2e::scenario::{ConnLimit, Location, ReqLimit, Scenario, Site};
use edgeguard_e2e::script::Step;

const A: &str = "a.test";
const B: &str = "b.test";

fn v(status: u16, lr: Option<&str>, lc: Option<&str>) -> Verdict {
    Verdict::new(status, lr, lc)
}

fn passed() -> Verdict {
    v(200, Some("PASSED"), None)
}

fn row(name: &str, scenario: Scenario, script: Vec<(Step, Verdict)>) -> Row {
    let (steps, expected) = script.into_iter().unzip();
    Row {
        name: name.to_string(),
        scenario,
        steps,
        expected,
        check_log: true,
    }
}

/// `2r/s burst=1 nodelay`: 5 quick GETs; the same zone under `limit_req_status 501`; then, 0.7 s after the
/// last request that passed (rejects in between), a pass, since rejects are not charged.
fn nodelay_status_uncharged() -> Row {
    let limit = vec![ReqLimit::new("one").burst(1).nodelay()];
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "2r/s")
        .site(Site::new(A).limit_req(limit.clone()))
        .site(Site::new(B).limit_req(limit).limit_req_status(501));
    let rejected = v(503, Some("REJECTED"), None);
    row(
        "2r/s burst=1 nodelay, limit_req_status 501, rejects not charged",
        scenario,
        vec![
            (Step::get(0, A, "/"), passed()),
            (Step::get(40, A, "/"), passed()),
            (Step::get(80, A, "/"), rejected.clone()),
            (Step::get(120, A, "/"), rejected.clone()),
            (Step::get(160, A, "/"), rejected),
            (Step::get(220, B, "/"), v(501, Some("REJECTED"), None)),
            (Step::get(760, A, "/"), passed()),
        ],
    )
}

/// `1000r/s burst=1`: two GETs 0.1 s apart both pass.
fn fast_rate() -> Row {
    let scenario = Scenario::new()
        .req_zone("fast", "$binary_remote_addr", "1m", "1000r/s")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("fast").burst(1)]));
    row(
        "1000r/s burst=1",
        scenario,
        vec![
            (Step::get(0, A, "/"), passed()),
            (Step::get(100, A, "/"), passed()),
        ],
    )
}

/// `fast($arg_b, 1000r/s)` then `slow($arg_a, 1r/m)` in one place: the four query variants twice each,
/// 0.1 s apart; no arguments = every key empty = unlimited and `$limit_req_status` unset.
fn two_zones_empty_keys() -> Row {
    let scenario = Scenario::new()
        .req_zone("fast", "$arg_b", "1m", "1000r/s")
        .req_zone("slow", "$arg_a", "1m", "1r/m")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("fast"), ReqLimit::new("slow")]));
    let rejected = v(503, Some("REJECTED"), None);
    let unset = v(200, None, None);
    row(
        "two zones ($arg_b 1000r/s, $arg_a 1r/m), empty keys",
        scenario,
        vec![
            (Step::get(0, A, "/?b=1"), passed()),
            (Step::get(100, A, "/?b=1"), passed()),
            (Step::get(300, A, "/?a=1"), passed()),
            (Step::get(400, A, "/?a=1"), rejected.clone()),
            (Step::get(600, A, "/?a=2&b=2"), passed()),
            (Step::get(700, A, "/?a=2&b=2"), rejected),
            (Step::get(900, A, "/"), unset.clone()),
            (Step::get(1000, A, "/"), unset),
        ],
    )
}

/// `30r/m burst=2 delay=1`: r1 and r2 pass at once, r3 waits ~2 s, r4 at +0.2 s is rejected.
fn delay_one() -> Row {
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "30r/m")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("one").burst(2).delay(1)]));
    row(
        "30r/m burst=2 delay=1",
        scenario,
        vec![
            (Step::get(0, A, "/"), passed()),
            (Step::get(40, A, "/"), passed()),
            (Step::get(80, A, "/"), v(200, Some("DELAYED"), None)),
            (Step::get(280, A, "/"), v(503, Some("REJECTED"), None)),
        ],
    )
}

/// `2r/s burst=3` with the default delay: 5 concurrent requests, one passes, three wait ~0.5/1/1.5 s, one
/// is rejected (which one gets which is not determined: compared as a group).
fn burst_delays() -> Row {
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "2r/s")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("one").burst(3)]));
    let delayed = v(200, Some("DELAYED"), None);
    let mut script = vec![(Step::get(0, A, "/").in_group(1), passed())];
    for _ in 0..3 {
        script.push((Step::get(0, A, "/").in_group(1), delayed.clone()));
    }
    script.push((
        Step::get(0, A, "/").in_group(1),
        v(503, Some("REJECTED"), None),
    ));
    row("2r/s burst=3, 5 concurrent", scenario, script)
}

/// `1r/m` with dry run: a delay and a reject that only log, then the same zone enforced, then no limit.
fn req_dry_run() -> Row {
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "1r/m")
        .site(
            Site::new(A)
                .location(
                    Location::new("/delay")
                        .limit_req(vec![ReqLimit::new("one").burst(2).dry_run()]),
                )
                .location(Location::new("/reject").limit_req(vec![ReqLimit::new("one").dry_run()]))
                .location(Location::new("/reject/off").limit_req(vec![ReqLimit::new("one")]))
                .location(Location::new("/unlimited")),
        );
    row(
        "1r/m dry_run",
        scenario,
        vec![
            (Step::get(0, A, "/delay"), passed()),
            (
                Step::get(40, A, "/delay"),
                v(200, Some("DELAYED_DRY_RUN"), None),
            ),
            (
                Step::get(80, A, "/reject"),
                v(200, Some("REJECTED_DRY_RUN"), None),
            ),
            (
                Step::get(120, A, "/reject/off"),
                v(503, Some("REJECTED"), None),
            ),
            (Step::get(160, A, "/unlimited"), v(200, None, None)),
        ],
    )
}

/// `1r/m burst=11 nodelay`, 13 requests 30 ms apart: the leak of each gap truncates to zero, so nginx logs
/// excess 0, 1, ..., 11 exactly, and the 13th is rejected at 12.000.
fn truncated_leak() -> Row {
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "1r/m")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("one").burst(11).nodelay()]));
    let mut script: Vec<(Step, Verdict)> = (0..12)
        .map(|k| (Step::get(k * 30, A, "/").in_group(1), passed()))
        .collect();
    script.push((
        Step::get(360, A, "/").in_group(1),
        v(503, Some("REJECTED"), None),
    ));
    row("1r/m burst=11 nodelay, 30 ms apart", scenario, script)
}

/// `1r/m burst=3 nodelay`, six requests pipelined in one write: excess steps of exactly 1000.
fn pipelined() -> Row {
    let scenario = Scenario::new()
        .req_zone("one", "$binary_remote_addr", "1m", "1r/m")
        .site(Site::new(A).limit_req(vec![ReqLimit::new("one").burst(3).nodelay()]));
    let mut script: Vec<(Step, Verdict)> = (0..4)
        .map(|_| (Step::get(0, A, "/").pipelined(1), passed()))
        .collect();
    for _ in 0..2 {
        script.push((
            Step::get(0, A, "/").pipelined(1),
            v(503, Some("REJECTED"), None),
        ));
    }
    row("1r/m burst=3 nodelay, pipelined", scenario, script)
}

/// `limit_conn 1`: a request held 1 s by the origin; the same key in the same place and elsewhere is
/// rejected, another zone passes, and after the release the first place passes again.
fn conn_held() -> Row {
    let scenario = Scenario::new()
        .conn_zone("c1", "$binary_remote_addr", "1m")
        .conn_zone("c2", "$binary_remote_addr", "1m")
        .site(
            Site::new(A)
                .location(Location::new("/slow").limit_conn(vec![ConnLimit::new("c1", 1)]))
                .location(Location::new("/other").limit_conn(vec![ConnLimit::new("c1", 1)]))
                .location(Location::new("/zone2").limit_conn(vec![ConnLimit::new("c2", 1)])),
        );
    let pass = v(200, None, Some("PASSED"));
    let rejected = v(503, None, Some("REJECTED"));
    let mut r = row(
        "limit_conn 1 held by a slow origin request",
        scenario,
        vec![
            (Step::get(0, A, "/slow?ms=1000"), pass.clone()),
            (Step::get(200, A, "/slow"), rejected.clone()),
            (Step::get(300, A, "/other"), rejected),
            (Step::get(400, A, "/zone2"), pass.clone()),
            (Step::get(1300, A, "/slow"), pass),
        ],
    );
    r.check_log = false;
    r
}

/// `limit_conn_status 501` in a second site sharing the zone: the held key is rejected there with 501.
fn conn_status() -> Row {
    let limit = vec![ConnLimit::new("c1", 1)];
    let scenario = Scenario::new()
        .conn_zone("c1", "$binary_remote_addr", "1m")
        .site(Site::new(A).limit_conn(limit.clone()))
        .site(Site::new(B).limit_conn(limit).limit_conn_status(501));
    let mut r = row(
        "limit_conn_status 501",
        scenario,
        vec![
            (Step::get(0, A, "/?ms=800"), v(200, None, Some("PASSED"))),
            (Step::get(200, B, "/"), v(501, None, Some("REJECTED"))),
        ],
    );
    r.check_log = false;
    r
}

/// limit_conn dry run: over the limit, the request goes on holding nothing; the enforced place still
/// rejects while the first request is held; after the release the dry-run place passes.
fn conn_dry_run() -> Row {
    let scenario = Scenario::new()
        .conn_zone("c1", "$binary_remote_addr", "1m")
        .site(
            Site::new(A)
                .limit_conn(vec![ConnLimit::new("c1", 1)])
                .location(
                    Location::new("/dry").limit_conn(vec![ConnLimit::new("c1", 1).dry_run()]),
                ),
        );
    let mut r = row(
        "limit_conn dry run",
        scenario,
        vec![
            (Step::get(0, A, "/?ms=800"), v(200, None, Some("PASSED"))),
            (
                Step::get(200, A, "/dry"),
                v(200, None, Some("REJECTED_DRY_RUN")),
            ),
            (Step::get(300, A, "/"), v(503, None, Some("REJECTED"))),
            (Step::get(1100, A, "/dry"), v(200, None, Some("PASSED"))),
        ],
    );
    r.check_log = false;
    r
}

/// Beyond the table: two limits in one place, the larger delay wins (nginx charges the earlier limit
/// last, with the same clock reading).
fn two_limits_larger_delay() -> Row {
    let scenario = Scenario::new()
        .req_zone("a", "$binary_remote_addr", "1m", "2r/s")
        .req_zone("b", "$binary_remote_addr", "1m", "1r/s")
        .site(Site::new(A).limit_req(vec![
            ReqLimit::new("a").burst(3),
            ReqLimit::new("b").burst(3).delay(1),
        ]));
    let delayed = v(200, Some("DELAYED"), None);
    row(
        "two limits, larger delay wins",
        scenario,
        vec![
            (Step::get(0, A, "/"), passed()),
            (Step::get(50, A, "/"), delayed.clone()),
            (Step::get(100, A, "/"), delayed),
        ],
    )
}

/// Beyond the table: limit_conn counts from the end of the limit_req delay, so a delayed request meets a
/// connection still held and both variables are set on its rejection.
fn delayed_then_conn_rejected() -> Row {
    let scenario = Scenario::new()
        .req_zone("r", "$binary_remote_addr", "1m", "2r/s")
        .conn_zone("c", "$binary_remote_addr", "1m")
        .site(
            Site::new(A)
                .limit_req(vec![ReqLimit::new("r").burst(2)])
                .limit_conn(vec![ConnLimit::new("c", 1)]),
        );
    let both_passed = v(200, Some("PASSED"), Some("PASSED"));
    row(
        "delayed by limit_req, then rejected by limit_conn",
        scenario,
        vec![
            (Step::get(0, A, "/?ms=700"), both_passed.clone()),
            (
                Step::get(50, A, "/"),
                v(503, Some("DELAYED"), Some("REJECTED")),
            ),
            (Step::get(1200, A, "/"), both_passed),
        ],
    )
}

async fn check(row: Row, sides: Sides) {
    if let Some(report) = run_row(&row, sides).await {
        report.finish();
    }
}

/// One test per row, so rows run in parallel (each with its own origin, nginx and edgeguard).
macro_rules! rows {
    ($sides:expr, #[$attr:meta] ; $($row:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[$attr]
        async fn $row() {
            super::check(super::$row(), $sides).await;
        }
    )*};
}

macro_rules! all_rows {
    ($sides:expr, #[$attr:meta]) => {
        rows! {
            $sides, #[$attr] ;
            nodelay_status_uncharged,
            fast_rate,
            two_zones_empty_keys,
            delay_one,
            burst_delays,
            req_dry_run,
            truncated_leak,
            pipelined,
            conn_held,
            conn_status,
            conn_dry_run,
            two_limits_larger_delay,
            delayed_then_conn_rejected,
        }
    };
}

/// nginx against the reference table and the model (which checks the harness itself), then edgeguard
/// against nginx, decision by decision.
mod differential {
    use edgeguard_e2e::row::Sides;
    all_rows!(Sides::Both, #[doc = "nginx, then edgeguard"]);
}
