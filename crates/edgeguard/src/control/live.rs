//! The live view of the running node for the admin API: the data plane's per-second counters and top talkers
//! in the admin crate's shapes, and blocks an operator starts by hand.

use std::net::IpAddr;
use std::time::Duration;

use edgeguard_admin::{
    BlockInfo, LivePoint, LiveView, StartError, Talker, TalkerWindow, TopTalkers,
};
use edgeguard_protect::StartBlockError;
use edgeguard_proxy::RunningNode;

fn ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

pub(super) fn live(node: &RunningNode, domain: &str, step_s: u64) -> Option<LiveView> {
    let s = node.live(domain, step_s)?;
    Some(LiveView {
        domain: domain.to_ascii_lowercase(),
        step_s: s.step_s,
        now_ms: ms(s.now_s),
        points: s
            .points
            .iter()
            .map(|p| {
                let [
                    hit,
                    miss,
                    limited,
                    blocked,
                    challenged,
                    upstream_error,
                    other,
                ] = p.counts;
                LivePoint {
                    start_ms: ms(p.start_s),
                    hit,
                    miss,
                    limited,
                    blocked,
                    challenged,
                    upstream_error,
                    other,
                }
            })
            .collect(),
    })
}

pub(super) fn top_talkers(node: &RunningNode, domain: &str, limit: usize) -> Option<TopTalkers> {
    let windows = node.top_talkers(domain, limit)?;
    let list = |v: &[edgeguard_proxy::talkers::Talker]| -> Vec<Talker> {
        v.iter()
            .map(|t| Talker {
                key: t.key.clone(),
                requests: t.requests,
                error: t.error,
                refused: t.refused,
            })
            .collect()
    };
    Some(TopTalkers {
        domain: domain.to_ascii_lowercase(),
        windows: windows
            .iter()
            .map(|w| TalkerWindow {
                window: w.window.to_owned(),
                seconds: w.seconds,
                total: w.total,
                addresses: list(&w.dims[0]),
                networks: list(&w.dims[1]),
                paths: list(&w.dims[2]),
                user_agents: list(&w.dims[3]),
            })
            .collect(),
    })
}

pub(super) fn start_block(
    node: &RunningNode,
    domain: &str,
    ip: IpAddr,
    challenge: bool,
    ttl_s: u64,
) -> Result<BlockInfo, StartError> {
    node.start_block(domain, ip, challenge, Duration::from_secs(ttl_s))
        .map(BlockInfo::from_record)
        .map_err(|e| match e {
            StartBlockError::UnknownDomain(_) => StartError::NoDomain(e.to_string()),
            StartBlockError::Stronger { .. } | StartBlockError::NoRoom => {
                StartError::Conflict(e.to_string())
            }
            StartBlockError::Ttl(_) => StartError::Invalid(e.to_string()),
        })
}
