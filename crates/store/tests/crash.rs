//! Crash safety: a writer process killed with SIGKILL while it writes activity records and blocks as fast as it
//! can loses nothing it had been told was written (`ActivityLog::sync` returned), and the database opens clean
//! afterwards. The writer is this test binary run again as a child (`writer_child`, which does nothing unless
//! `EDGEGUARD_CRASH_DB` names a database).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeguard_store::{ActivityLog, ActivityRecord, BlockRecord};

const DB_ENV: &str = "EDGEGUARD_CRASH_DB";
/// Far in the future: every block written is still in force when the parent reads them back.
const UNTIL_MS: i64 = 4_000_000_000_000;

fn record(i: u64) -> ActivityRecord {
    ActivityRecord {
        time_ms: 1_700_000_000_000 + i64::try_from(i).unwrap_or(0),
        node: "edge-1".into(),
        domain: "a.test".into(),
        rule: "r1".into(),
        object_type: "ip".into(),
        object_value: format!("10.0.{}.{}", (i / 256) % 256, i % 256),
        action: "block".into(),
        ttl_s: 600,
        detail: format!("count={i}"),
    }
}

fn block(i: u64) -> BlockRecord {
    BlockRecord {
        domain: "a.test".into(),
        object_type: "ip".into(),
        object_value: format!("192.0.2.{i}/{}", i / 256),
        rule: "r1".into(),
        action: "block".into(),
        until_ms: UNTIL_MS,
    }
}

/// The child: batches of 200 records and one block, each batch acknowledged on stdout once `sync` returned.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var(DB_ENV) else {
        return;
    };
    let log = ActivityLog::open(&path).unwrap();
    let writer = log.writer();
    let mut written = 0u64;
    for batch in 0..1_000_000u64 {
        for _ in 0..200 {
            writer.submit(record(written));
            written += 1;
        }
        writer.submit_block(block(batch));
        log.sync().unwrap();
        let stats = writer.stats();
        println!(
            "committed records={} blocks={} dropped={}",
            written,
            batch + 1,
            stats.dropped
        );
    }
}

#[test]
fn kill_9_during_heavy_writes_loses_no_committed_record_or_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgeguard.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "writer_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (mut records, mut blocks, mut dropped) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in out.lines().map_while(Result::ok) {
        let field = |name: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse().ok())
        };
        if let (Some(r), Some(b), Some(d)) =
            (field("records="), field("blocks="), field("dropped="))
        {
            (records, blocks, dropped) = (r, b, d);
        }
        // Killed in the middle of writing: well after many batches, at no particular point of one.
        if records >= 20_000 || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        records >= 20_000,
        "the writer wrote {records} records in time"
    );

    let log = ActivityLog::open(&path).expect("the database opens after SIGKILL");
    let kept = log.count().unwrap();
    assert!(
        kept + dropped >= records,
        "committed {records} ({dropped} dropped by a full queue), found {kept}"
    );
    let in_force = log.load_blocks(1_700_000_000_000).unwrap();
    for b in 0..blocks {
        let want = block(b);
        assert!(
            in_force.iter().any(|x| x.object_value == want.object_value),
            "block {b} of {blocks} acknowledged before the kill is gone"
        );
    }
}
