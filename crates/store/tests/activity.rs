//! Activity log and blocks in force against a real database file.

use edgeguard_store::{
    ActivityLog, ActivityLogOptions, ActivityQuery, ActivityRecord, BlockRecord, StoreError,
};

fn rec(time_ms: i64, domain: &str, rule: &str, ip: &str, action: &str) -> ActivityRecord {
    ActivityRecord {
        time_ms,
        node: "edge-1".into(),
        domain: domain.into(),
        rule: rule.into(),
        object_type: "ip".into(),
        object_value: ip.into(),
        action: action.into(),
        ttl_s: 600,
        detail: format!("count={}", time_ms % 97),
    }
}

fn q() -> ActivityQuery {
    ActivityQuery {
        page_size: 100,
        ..ActivityQuery::default()
    }
}

/// 60 records: 3 domains x 2 rules x 2 ips x alternating actions, one per second.
fn fill(log: &ActivityLog) {
    for i in 0..60i64 {
        let domain = ["a.example", "b.example", "c.example"][(i % 3) as usize];
        let rule = ["login01", "reg02"][(i % 2) as usize];
        let ip = ["10.0.0.1", "10.0.0.2"][((i / 2) % 2) as usize];
        let action = if i % 5 == 0 { "bot_detection" } else { "block" };
        log.record(&rec(1_000_000 + i * 1000, domain, rule, ip, action))
            .unwrap();
    }
}

#[test]
fn every_filter_narrows_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let log = ActivityLog::open(dir.path().join("node.db")).unwrap();
    fill(&log);
    let all = log.query(&q()).unwrap();
    assert_eq!(all.total, 60);
    assert_eq!(all.records.len(), 60);

    let by_domain = log
        .query(&ActivityQuery {
            domain: Some("b.example".into()),
            ..q()
        })
        .unwrap();
    assert_eq!(by_domain.total, 20);
    assert!(
        by_domain
            .records
            .iter()
            .all(|r| r.record.domain == "b.example")
    );

    let by_rule = log
        .query(&ActivityQuery {
            rule: Some("reg02".into()),
            ..q()
        })
        .unwrap();
    assert_eq!(by_rule.total, 30);
    assert!(by_rule.records.iter().all(|r| r.record.rule == "reg02"));

    let by_ip = log
        .query(&ActivityQuery {
            object_value: Some("10.0.0.2".into()),
            ..q()
        })
        .unwrap();
    assert_eq!(by_ip.total, 30);
    assert!(
        by_ip
            .records
            .iter()
            .all(|r| r.record.object_value == "10.0.0.2")
    );

    let by_action = log
        .query(&ActivityQuery {
            action: Some("bot_detection".into()),
            ..q()
        })
        .unwrap();
    assert_eq!(by_action.total, 12);

    // Half-open range: seconds 10..20 of the fill.
    let range = ActivityQuery {
        from_ms: Some(1_010_000),
        to_ms: Some(1_020_000),
        ..q()
    };
    let by_time = log.query(&range).unwrap();
    assert_eq!(by_time.total, 10);
    assert_eq!(by_time.records.first().unwrap().record.time_ms, 1_019_000);
    assert_eq!(by_time.records.last().unwrap().record.time_ms, 1_010_000);

    // All filters together, checked against a filter over everything.
    let combined = ActivityQuery {
        domain: Some("a.example".into()),
        rule: Some("login01".into()),
        object_value: Some("10.0.0.1".into()),
        action: Some("block".into()),
        from_ms: Some(1_000_000),
        to_ms: Some(1_050_000),
        ..q()
    };
    let expected: Vec<i64> = all
        .records
        .iter()
        .filter(|r| {
            let r = &r.record;
            r.domain == "a.example"
                && r.rule == "login01"
                && r.object_value == "10.0.0.1"
                && r.action == "block"
                && r.time_ms < 1_050_000
        })
        .map(|r| r.record.time_ms)
        .collect();
    let got: Vec<i64> = log
        .query(&combined)
        .unwrap()
        .records
        .iter()
        .map(|r| r.record.time_ms)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[test]
fn pages_are_newest_first_with_totals() {
    let dir = tempfile::tempdir().unwrap();
    let log = ActivityLog::open(dir.path().join("node.db")).unwrap();
    fill(&log);
    // Two records in the same millisecond: the later insert is the newer.
    let a = log
        .record(&rec(2_000_000, "a.example", "x1234", "10.9.9.9", "block"))
        .unwrap();
    let b = log
        .record(&rec(2_000_000, "a.example", "x1234", "10.9.9.9", "block"))
        .unwrap();
    assert!(b > a);

    let mut seen = Vec::new();
    for page in 1..=7 {
        let p = log
            .query(&ActivityQuery {
                page,
                page_size: 10,
                ..ActivityQuery::default()
            })
            .unwrap();
        assert_eq!(p.total, 62);
        assert_eq!((p.page, p.page_size), (page, 10));
        let expect_len = if page == 7 { 2 } else { 10 };
        assert_eq!(p.records.len(), expect_len);
        seen.extend(p.records.into_iter().map(|r| (r.record.time_ms, r.id)));
    }
    assert_eq!(seen[0].1, b);
    assert_eq!(seen[1].1, a);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first across pages"
    );
    let beyond = log
        .query(&ActivityQuery {
            page: 8,
            page_size: 10,
            ..ActivityQuery::default()
        })
        .unwrap();
    assert_eq!(beyond.total, 62);
    assert!(beyond.records.is_empty());
}

#[test]
fn bad_paging_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = ActivityLog::open(dir.path().join("node.db")).unwrap();
    for bad in [
        ActivityQuery {
            page: 0,
            ..ActivityQuery::default()
        },
        ActivityQuery {
            page_size: 0,
            ..ActivityQuery::default()
        },
        ActivityQuery {
            page_size: 101,
            ..ActivityQuery::default()
        },
    ] {
        assert!(matches!(log.query(&bad), Err(StoreError::InvalidQuery(_))));
    }
    assert!(
        log.query(&ActivityQuery {
            page_size: 100,
            ..ActivityQuery::default()
        })
        .is_ok()
    );
}

#[test]
fn retention_by_age_and_by_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = ActivityLog::open(dir.path().join("node.db")).unwrap();
    fill(&log);
    assert_eq!(log.prune(1_030_000).unwrap(), 30);
    assert_eq!(log.count().unwrap(), 30);
    let oldest = log
        .query(&ActivityQuery {
            page: 3,
            page_size: 10,
            ..q()
        })
        .unwrap();
    assert_eq!(oldest.records.last().unwrap().record.time_ms, 1_030_000);

    let capped = ActivityLog::open_with(
        dir.path().join("capped.db"),
        ActivityLogOptions {
            max_rows: 25,
            ..ActivityLogOptions::default()
        },
    )
    .unwrap();
    fill(&capped);
    assert_eq!(capped.count().unwrap(), 25);
    // The oldest inserted went first.
    let page = capped.query(&q()).unwrap();
    assert_eq!(page.records.last().unwrap().record.time_ms, 1_035_000);

    // The same cap holds for the asynchronous path.
    let w = capped.writer();
    for i in 0..100 {
        w.submit(rec(
            5_000_000 + i,
            "a.example",
            "login01",
            "10.0.0.3",
            "block",
        ));
    }
    capped.sync().unwrap();
    assert_eq!(capped.count().unwrap(), 25);
}

#[test]
fn records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("node.db");
    {
        let log = ActivityLog::open(&path).unwrap();
        fill(&log);
        let w = log.writer();
        w.submit(rec(3_000_000, "a.example", "late01", "10.0.0.7", "block"));
        log.sync().unwrap();
    }
    let log = ActivityLog::open(&path).unwrap();
    let page = log.query(&q()).unwrap();
    assert_eq!(page.total, 61);
    assert_eq!(
        page.records[0].record,
        rec(3_000_000, "a.example", "late01", "10.0.0.7", "block")
    );
    // Ids keep growing after a restart.
    let id = log
        .record(&rec(3_000_001, "a.example", "late01", "10.0.0.7", "block"))
        .unwrap();
    assert!(page.records.iter().all(|r| r.id < id));
}

#[test]
fn async_writer_batches_and_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let options = ActivityLogOptions {
        queue_capacity: 1,
        batch_size: 64,
        ..ActivityLogOptions::default()
    };
    let log = ActivityLog::open_with(&path, options).unwrap();
    let w = log.writer();

    // Hold the database's write lock from outside, so the writer thread is stuck on its first batch.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..100 {
        w.submit(rec(i, "a.example", "login01", "10.0.0.1", "block"));
    }
    let stats = w.stats();
    assert_eq!(stats.queued + stats.dropped, 100);
    // One message may be in the thread's hands, one or so in the queue: the rest were dropped, not waited for.
    assert!(stats.dropped >= 90, "{stats:?}");
    blocker.execute_batch("COMMIT").unwrap();
    log.sync().unwrap();
    assert_eq!(log.count().unwrap(), stats.queued);
    assert_eq!(log.writer_stats().written, stats.queued);

    // Writers from other threads.
    let log = ActivityLog::open(dir.path().join("threads.db")).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let w = log.writer();
            std::thread::spawn(move || {
                for i in 0..500 {
                    w.submit(rec(
                        t * 1000 + i,
                        "a.example",
                        "login01",
                        "10.0.0.1",
                        "block",
                    ));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    log.sync().unwrap();
    let s = log.writer_stats();
    assert_eq!(s.queued + s.dropped, 2000);
    assert_eq!(log.count().unwrap(), s.queued);
}

fn block(domain: &str, value: &str, until_ms: i64) -> BlockRecord {
    BlockRecord {
        domain: domain.into(),
        object_type: "ip".into(),
        object_value: value.into(),
        rule: "login01".into(),
        action: "block".into(),
        until_ms,
    }
}

#[test]
fn blocks_in_force_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    {
        let log = ActivityLog::open(&path).unwrap();
        log.save_block(&block("a.example", "10.0.0.1", 10_000))
            .unwrap();
        log.save_block(&block("a.example", "10.0.0.2", 20_000))
            .unwrap();
        log.save_block(&block("b.example", "10.0.0.1", 30_000))
            .unwrap();
        // A newer block of the same object replaces the old one.
        let mut challenge = block("a.example", "10.0.0.2", 25_000);
        challenge.action = "bot_detection".into();
        log.save_block(&challenge).unwrap();
        // Through the request path's writer too.
        log.writer()
            .submit_block(block("c.example", "10.0.0.9", 40_000));
        log.writer().submit_unblock("b.example", "ip", "10.0.0.1");
        log.sync().unwrap();
    }
    let log = ActivityLog::open(&path).unwrap();
    let blocks = log.load_blocks(10_000).unwrap();
    let mut challenge = block("a.example", "10.0.0.2", 25_000);
    challenge.action = "bot_detection".into();
    assert_eq!(
        blocks,
        vec![challenge.clone(), block("c.example", "10.0.0.9", 40_000)]
    );
    assert_eq!(
        log.find_block("a.example", "ip", "10.0.0.2", 10_000)
            .unwrap(),
        Some(challenge)
    );
    assert_eq!(
        log.find_block("a.example", "ip", "10.0.0.2", 25_000)
            .unwrap(),
        None
    );
    assert!(log.remove_block("c.example", "ip", "10.0.0.9").unwrap());
    assert!(!log.remove_block("c.example", "ip", "10.0.0.9").unwrap());
    assert!(log.load_blocks(30_000).unwrap().is_empty());
}

#[test]
fn a_full_database_is_reported_and_writing_resumes_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let options = ActivityLogOptions {
        max_db_bytes: Some(256 * 1024),
        max_rows: 1_000_000,
        // One record a transaction: the database fills record by record, and every one after that fails.
        batch_size: 1,
        ..ActivityLogOptions::default()
    };
    let log = ActivityLog::open_with(dir.path().join("full.db"), options).unwrap();
    let w = log.writer();
    assert_eq!(log.write_error(), None);
    // Far more than 256 KiB of records: the database fills up as a full disk would.
    let detail = "x".repeat(500);
    for i in 0..2000 {
        let mut r = rec(1_000_000 + i, "a.test", "r", "192.0.2.1", "block");
        r.detail = detail.clone();
        w.submit(r);
    }
    log.sync().unwrap();
    let why = log.write_error().expect("the failure is reported");
    assert!(why.contains("full"), "{why}");
    assert!(log.writer_stats().failed_batches > 0);
    // Reading still works, and so does the queue: nothing blocks, nothing panics.
    let before = log.count().unwrap();
    assert!(before > 0);
    w.submit(rec(2_000_000, "a.test", "r", "192.0.2.2", "block"));
    log.sync().unwrap();
    // Room again (old rows deleted, as retention would): the next batch is written and the report clears.
    let deleted = log.prune(2_000_000).unwrap();
    assert!(deleted > 0);
    w.submit(rec(2_000_001, "a.test", "r", "192.0.2.3", "block"));
    log.sync().unwrap();
    assert_eq!(log.write_error(), None);
}
