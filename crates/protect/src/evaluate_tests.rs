//! Normal and emergency mode against generated attacks woven into a synthetic audience, on fixed seeds: the
//! targets of `docs/protection.md` ("Evaluation") as assertions.

use crate::episodes::{AttackKind, synthetic_legit};
use crate::evaluate::{evaluate, format_report};

const START_MS: i64 = 1_700_000_000_000;

#[test]
fn normal_mode_stops_each_attack_kind_without_false_positives() {
    // Each seed replays tens of thousands of requests through both modes: one seed in unoptimised builds keeps
    // the suite quick, release builds (`cargo test --release`) check two.
    let seeds: &[u64] = if cfg!(debug_assertions) {
        &[1]
    } else {
        &[1, 2]
    };
    for &seed in seeds {
        let legit = synthetic_legit(seed, START_MS, 1);
        let (reports, episodes) = evaluate(legit, seed, 1).unwrap();
        assert_eq!(episodes.len(), AttackKind::ALL.len());
        let text = format_report(&reports);
        let normal = &reports[0];
        assert_eq!(normal.mode, "normal");
        assert_eq!(normal.legit_clients_blocked, 0, "seed {seed}\n{text}");
        assert!(normal.legit_refused_pct() <= 0.1, "seed {seed}\n{text}");
        for r in &reports {
            for (kind, f) in &r.attacks {
                assert_eq!(
                    f.detected, f.episodes,
                    "{} {kind:?} seed {seed}\n{text}",
                    r.mode
                );
                assert!(
                    f.worst_delay_ms.is_some_and(|d| d <= 30_000),
                    "{} {kind:?} seed {seed}\n{text}",
                    r.mode
                );
                assert!(
                    f.refused_after_detection_pct() >= 90.0,
                    "{} {kind:?} seed {seed}\n{text}",
                    r.mode
                );
            }
        }
    }
}
