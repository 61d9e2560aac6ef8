//! The detector's response-side findings: scanners (404s) and credential stuffing (4xx on login paths, per
//! client and per network).

use std::net::IpAddr;

use edgeguard_limit::window::WindowCounts;
use edgeguard_rules::Action;

use super::{
    Detector, Finding, NET_FLAG_MS, RULE_SCANNER, RULE_STUFFING, RULE_STUFFING_NET, Seen, hash64,
    net_bytes, share_at_least,
};
use crate::baseline::Measure;

impl Detector {
    pub(super) fn scanner(
        &self,
        w10: Option<WindowCounts>,
        w60: Option<WindowCounts>,
        now_ms: u64,
    ) -> Option<Finding> {
        let l = self.limits;
        let (t, learned) = self.threshold(Measure::Client404s10s, l.scanner_404_10s_floor);
        let t60 = t * 10 / 3;
        let over = |w: Option<WindowCounts>, t: u64| {
            w.filter(|w| {
                let n = w.status()[0];
                n > t && share_at_least(n, w.responses, l.scanner_share_pct)
            })
        };
        let hit = over(w10, t)
            .map(|w| (w, t, "10 s"))
            .or_else(|| over(w60, t60).map(|w| (w, t60, "60 s")));
        match hit {
            Some((w, t, span)) => {
                let n = w.status()[0];
                Some(Finding {
                    rule: RULE_SCANNER,
                    action: Action::Block,
                    ttl_s: l.block_ttl_s,
                    on_client: true,
                    detail: format!(
                        "{} over {span}; 404 share {}% of {} responses (at least {}%)",
                        Self::explain(Measure::Client404s10s, learned, t, n),
                        n * 100 / w.responses.max(1),
                        w.responses,
                        l.scanner_share_pct
                    ),
                })
            }
            None => {
                if let Some(w) = w10 {
                    self.learn(Measure::Client404s10s, w.status()[0], now_ms);
                }
                None
            }
        }
    }

    pub(super) fn login(
        &self,
        seen: &Seen,
        ckey: &[u8],
        status: u16,
        now_ms: u64,
    ) -> Option<Finding> {
        let l = self.limits;
        let mut nb = [0u8; 16];
        let nkey = net_bytes(seen.client, &mut nb);
        let wc = self.t.login_clients.record_status(ckey, now_ms, status);
        let wn = self.t.login_nets.record_status(nkey, now_ms, status);
        if status / 100 != 4 {
            return None;
        }
        let (t, learned) = self.threshold(Measure::LoginFailures300s, l.login_fail_floor);
        if let Some(w) = wc {
            let n = w.status()[0];
            if n > t && share_at_least(n, w.responses, l.login_share_pct) {
                return Some(Finding {
                    rule: RULE_STUFFING,
                    action: l.stuffing_action,
                    ttl_s: l.block_ttl_s.max(1800),
                    on_client: true,
                    detail: format!(
                        "{} on login paths; 4xx share {}% of {} responses",
                        Self::explain(Measure::LoginFailures300s, learned, t, n),
                        n * 100 / w.responses.max(1),
                        w.responses
                    ),
                });
            }
            self.learn(Measure::LoginFailures300s, n, now_ms);
        }
        let tn = l.login_net_fail_floor.max(t * 3 / 2);
        let w = wn?;
        let n = w.status()[0];
        if n > tn
            && share_at_least(n, w.responses, l.login_share_pct)
            && self
                .t
                .nets
                .set(hash64(&[nkey]), now_ms + NET_FLAG_MS, now_ms)
        {
            return Some(Finding {
                rule: RULE_STUFFING_NET,
                action: Action::BotDetection,
                ttl_s: (NET_FLAG_MS / 1000) as u32,
                on_client: false,
                detail: format!(
                    "4xx answers on login paths from the client's network ({}): observed {n} in 300 s, \
                     threshold {tn}; its login requests are challenged for {} s",
                    match seen.client {
                        IpAddr::V4(_) => "/24",
                        IpAddr::V6(_) => "/48",
                    },
                    NET_FLAG_MS / 1000
                ),
            });
        }
        None
    }
}
