//! The protection's node-wide series in `/metrics`, read at scrape time: what the challenge verify endpoint
//! answered, the replay cache of single-use answers, and the blocks budget (`[node] blocks_size`). A second
//! collector beside the one of [`crate::metrics`], so neither grows the other.

use edgeguard_challenge::ReplayStats;
use edgeguard_protect::{BlocksStats, VERIFY_OUTCOMES};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use edgeguard_protect::Guards;

/// One scrape's values.
#[derive(Debug)]
pub(crate) struct ProtectScrape {
    verify: [u64; 9],
    replay: ReplayStats,
    blocks: BlocksStats,
}

impl ProtectScrape {
    /// `None` where the node runs no protection. Walks the replay cache (about a millisecond): scrape only.
    pub(crate) fn take(guards: &Guards) -> Option<ProtectScrape> {
        let node = guards.node()?;
        Some(ProtectScrape {
            verify: node.verify_counts().snapshot(),
            replay: node.challenger().replay_stats(node.now_ms()),
            blocks: node.blocks_stats(),
        })
    }
}

fn u(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Collector for ProtectScrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let mut m = enc.encode_descriptor(
            "edgeguard_challenge_verify",
            "Answers to the challenge verify endpoint, by outcome (passed, or why refused).",
            None,
            MetricType::Counter,
        )?;
        for (outcome, v) in VERIFY_OUTCOMES.iter().zip(self.verify) {
            ConstCounter::new(v).encode(m.encode_family(&[("outcome", *outcome)])?)?;
        }
        let gauges: [(&str, &str, u64); 5] = [
            (
                "edgeguard_challenge_replay_capacity",
                "Solved tokens the replay cache can hold at once.",
                u(self.replay.capacity),
            ),
            (
                "edgeguard_challenge_replay_in_use",
                "Solved tokens the replay cache holds now (redeemed, not yet expired).",
                u(self.replay.in_use),
            ),
            (
                "edgeguard_blocks_in_force",
                "Blocks and challenges held in the blocks budget, every domain (expired ones until swept).",
                self.blocks.in_force,
            ),
            (
                "edgeguard_blocks_bytes",
                "Bytes charged against the blocks budget (keys plus a fixed overhead per entry).",
                self.blocks.bytes,
            ),
            (
                "edgeguard_blocks_capacity_bytes",
                "The blocks budget, node.blocks_size.",
                self.blocks.capacity_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)?;
        }
        let m = enc.encode_descriptor(
            "edgeguard_blocks_refused",
            "New blocks not kept because the budget held only entries worth more.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.blocks.refused).encode(m)?;
        let m = enc.encode_descriptor(
            "edgeguard_blocks_evictions",
            "Blocks and challenges dropped before their end to stay within the blocks budget.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.blocks.evictions).encode(m)
    }
}
