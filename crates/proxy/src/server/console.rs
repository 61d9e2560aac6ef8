//! What the console reads from and does on the running node beyond the configuration: a domain's live
//! counters and top talkers (`live.rs`, `talkers.rs`), and blocks an operator starts by hand.

use std::net::IpAddr;
use std::time::Duration;

use edgeguard_protect::StartBlockError;
use edgeguard_rules::Action;
use edgeguard_store::BlockRecord;

use super::RunningNode;
use crate::live::LiveSeries;
use crate::metrics::unix_seconds;
use crate::talkers::TopTalkers;

impl RunningNode {
    fn unix_now_s(&self) -> u64 {
        unix_seconds(self.shared.epoch.now(&*self.shared.clock))
    }

    /// The last ten minutes of `domain`'s requests by outcome, `step_s` (1..=60) seconds per point; `None` for
    /// a domain the node does not serve.
    pub fn live(&self, domain: &str, step_s: u64) -> Option<LiveSeries> {
        let runtime = self.shared.runtime.load();
        let d = runtime.domains.get(&domain.to_ascii_lowercase())?;
        Some(d.live.ring.series(self.unix_now_s(), step_s))
    }

    /// `domain`'s top talkers of the last minute and the last hour, `limit` keys per dimension.
    pub fn top_talkers(&self, domain: &str, limit: usize) -> Option<[TopTalkers; 2]> {
        let runtime = self.shared.runtime.load();
        let d = runtime.domains.get(&domain.to_ascii_lowercase())?;
        let now = self.unix_now_s();
        Some([
            d.live.talkers.top(0, now, limit),
            d.live.talkers.top(1, now, limit),
        ])
    }

    /// Blocks (`challenge` false: 403) or challenges one client of `domain` for `ttl`, as an operator's action:
    /// listed with the blocks, liftable, stored across restarts, in the activity log.
    pub fn start_block(
        &self,
        domain: &str,
        ip: IpAddr,
        challenge: bool,
        ttl: Duration,
    ) -> Result<BlockRecord, StartBlockError> {
        let name = domain.to_ascii_lowercase();
        if self.shared.runtime.load().protect.get(&name).is_none() {
            return Err(StartBlockError::UnknownDomain(domain.to_owned()));
        }
        let action = if challenge {
            Action::BotDetection
        } else {
            Action::Block
        };
        self.protection.start_block(&name, ip, action, ttl)
    }
}
