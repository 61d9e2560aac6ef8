//! The activity log (one row per rule trigger, SPEC section 4) and the blocks in force, both in the node's
//! database file. Requests never wait on it: they hand records to an [`ActivityWriter`], whose bounded queue is
//! drained by one background thread that writes in batches.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::db::open_connection;

mod writer;
use writer::writer_loop;

/// One trigger of a rate-limiting rule (or another protection that acts on an object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecord {
    /// Unix time in milliseconds.
    pub time_ms: i64,
    pub node: String,
    pub domain: String,
    pub rule: String,
    /// `ip`, `header:NAME`, `domain` or `param:NAME`.
    pub object_type: String,
    pub object_value: String,
    /// `block`, `bot_detection`, `challenge_pass`, ...
    pub action: String,
    pub ttl_s: u32,
    /// The window's numbers that made the criteria true, e.g. `count=51 status_ratio|404=62%`.
    pub detail: String,
}

/// A stored record with its row id (ids only grow, so they also order records inserted in the same millisecond).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    #[serde(flatten)]
    pub record: ActivityRecord,
}

/// Filters of [`ActivityLog::query`]; `None` means "any". The time range is half-open: `from_ms <= time_ms <
/// to_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityQuery {
    pub domain: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub rule: Option<String>,
    pub object_value: Option<String>,
    pub action: Option<String>,
    /// From 1.
    pub page: u32,
    /// 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

pub const MAX_PAGE_SIZE: u32 = 100;

impl Default for ActivityQuery {
    fn default() -> Self {
        ActivityQuery {
            domain: None,
            from_ms: None,
            to_ms: None,
            rule: None,
            object_value: None,
            action: None,
            page: 1,
            page_size: 20,
        }
    }
}

/// One page of matching records, newest first, and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPage {
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub records: Vec<ActivityEntry>,
}

/// A block or challenge in force for one object of one domain until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub domain: String,
    pub object_type: String,
    pub object_value: String,
    pub rule: String,
    pub action: String,
    pub until_ms: i64,
}

/// Sizes of the activity log. The defaults suit a node: a million rows is a few hundred megabytes at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityLogOptions {
    /// Most rows kept; the oldest inserted are deleted after each written batch.
    pub max_rows: u64,
    /// Records the queue holds before [`ActivityWriter::submit`] starts dropping.
    pub queue_capacity: usize,
    /// Most records written in one transaction.
    pub batch_size: usize,
    /// Largest size the database file may grow to (SQLite's `max_page_count`); `None`: as large as the disk
    /// allows. Past it, writes fail as on a full disk.
    pub max_db_bytes: Option<u64>,
}

impl Default for ActivityLogOptions {
    fn default() -> Self {
        ActivityLogOptions {
            max_rows: 1_000_000,
            queue_capacity: 10_000,
            batch_size: 512,
            max_db_bytes: None,
        }
    }
}

/// Counters of the asynchronous writer, for the node's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records and block changes accepted into the queue.
    pub queued: u64,
    /// Records and block changes refused because the queue was full.
    pub dropped: u64,
    /// Records and block changes written.
    pub written: u64,
    /// Batches that failed to write (their messages are lost; the error is not retried).
    pub failed_batches: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed_batches: AtomicU64,
    /// Why the last batch failed, until one succeeds again (a full disk, most often).
    failing: parking_lot::Mutex<Option<String>>,
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        WriterStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

enum Message {
    Record(ActivityRecord),
    SaveBlock(BlockRecord),
    RemoveBlock {
        domain: String,
        object_type: String,
        object_value: String,
    },
    /// Answered once every message queued before it is written.
    Barrier(mpsc::Sender<()>),
}

/// The node's database: activity log, blocks in force and (through [`crate::TrafficStats`]) statistics points.
/// Cheap to share behind an `Arc`; its own methods do disk I/O and belong off the request path.
pub struct ActivityLog {
    conn: Arc<Mutex<Connection>>,
    tx: SyncSender<Message>,
    counters: Arc<Counters>,
    options: ActivityLogOptions,
}

/// Handle for the request path: [`submit`](Self::submit) never blocks and never touches the disk.
#[derive(Clone)]
pub struct ActivityWriter {
    tx: SyncSender<Message>,
    counters: Arc<Counters>,
}

impl ActivityWriter {
    /// Queues a record; if the queue is full the record is dropped and counted.
    pub fn submit(&self, record: ActivityRecord) {
        self.send(Message::Record(record));
    }

    /// Queues the persistence of a block or challenge now in force.
    pub fn submit_block(&self, block: BlockRecord) {
        self.send(Message::SaveBlock(block));
    }

    /// Queues the removal of a block (lifted early by an operator, for example).
    pub fn submit_unblock(&self, domain: &str, object_type: &str, object_value: &str) {
        self.send(Message::RemoveBlock {
            domain: domain.to_owned(),
            object_type: object_type.to_owned(),
            object_value: object_value.to_owned(),
        });
    }

    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    fn send(&self, msg: Message) {
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            // A stopped writer thread loses the message just like a full queue: count it, never fail a request.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl ActivityLog {
    /// Opens or creates the database file with default sizes and starts its writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, ActivityLogOptions::default())
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        options: ActivityLogOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn = open_connection(path)?;
        let writer_conn = open_connection(path)?;
        if let Some(bytes) = options.max_db_bytes {
            let page: i64 = writer_conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (bytes / page.max(1) as u64).max(1);
            let _: i64 =
                writer_conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })?;
        }
        let (tx, rx) = mpsc::sync_channel(options.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        thread::Builder::new()
            .name("activity-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, thread_counters, options))?;
        Ok(ActivityLog {
            conn: Arc::new(Mutex::new(conn)),
            tx,
            counters,
            options,
        })
    }

    /// A handle for the request path. The writer thread runs while this log or any writer is alive.
    pub fn writer(&self) -> ActivityWriter {
        ActivityWriter {
            tx: self.tx.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    pub fn writer_stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Why the writer cannot write right now (the last batch failed: a full disk, a read-only file), or
    /// `None` while it writes. Requests are served either way; records and block changes queued meanwhile
    /// are lost (counted in `failed_batches`).
    pub fn write_error(&self) -> Option<String> {
        self.counters.failing.lock().clone()
    }

    /// Waits until everything queued before this call is written (tests, shutdown). Blocks while the queue is
    /// full, so never call it on the request path.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (done_tx, done_rx) = mpsc::channel();
        self.tx
            .send(Message::Barrier(done_tx))
            .map_err(|_| StoreError::WriterGone)?;
        done_rx.recv().map_err(|_| StoreError::WriterGone)
    }

    /// Writes one record now, on the caller's thread; returns its id.
    pub fn record(&self, record: &ActivityRecord) -> Result<i64, StoreError> {
        let conn = self.lock();
        insert_record(&conn, record)?;
        let id = conn.last_insert_rowid();
        enforce_max_rows(&conn, self.options.max_rows)?;
        Ok(id)
    }

    /// Matching records, newest first (by time, then by id).
    pub fn query(&self, q: &ActivityQuery) -> Result<ActivityPage, StoreError> {
        if q.page == 0 {
            return Err(StoreError::InvalidQuery("page starts at 1".into()));
        }
        if q.page_size == 0 || q.page_size > MAX_PAGE_SIZE {
            return Err(StoreError::InvalidQuery(format!(
                "page_size must be 1 to {MAX_PAGE_SIZE}"
            )));
        }
        let mut clauses: Vec<&str> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        let text_filters = [
            ("domain = ?", &q.domain),
            ("rule = ?", &q.rule),
            ("object_value = ?", &q.object_value),
            ("action = ?", &q.action),
        ];
        for (clause, value) in text_filters {
            if let Some(v) = value {
                clauses.push(clause);
                args.push(Value::Text(v.clone()));
            }
        }
        if let Some(from) = q.from_ms {
            clauses.push("time_ms >= ?");
            args.push(Value::Integer(from));
        }
        if let Some(to) = q.to_ms {
            clauses.push("time_ms < ?");
            args.push(Value::Integer(to));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };

        let conn = self.lock();
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM activity{where_sql}"),
            params_from_iter(args.iter()),
            |row| row.get(0),
        )?;
        let offset = i64::from(q.page - 1) * i64::from(q.page_size);
        let mut page_args = args;
        page_args.push(Value::Integer(i64::from(q.page_size)));
        page_args.push(Value::Integer(offset));
        let mut stmt = conn.prepare(&format!(
            "SELECT id, time_ms, node, domain, rule, object_type, object_value, action, ttl_s, detail \
             FROM activity{where_sql} ORDER BY time_ms DESC, id DESC LIMIT ? OFFSET ?"
        ))?;
        let records = stmt
            .query_map(params_from_iter(page_args.iter()), |row| {
                Ok(ActivityEntry {
                    id: row.get(0)?,
                    record: ActivityRecord {
                        time_ms: row.get(1)?,
                        node: row.get(2)?,
                        domain: row.get(3)?,
                        rule: row.get(4)?,
                        object_type: row.get(5)?,
                        object_value: row.get(6)?,
                        action: row.get(7)?,
                        ttl_s: row.get(8)?,
                        detail: row.get(9)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ActivityPage {
            total: u64::try_from(total).unwrap_or(0),
            page: q.page,
            page_size: q.page_size,
            records,
        })
    }

    /// Deletes records older than `older_than_ms`; returns how many. Run it periodically (hourly is plenty).
    pub fn prune(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .lock()
            .execute("DELETE FROM activity WHERE time_ms < ?", [older_than_ms])?;
        Ok(n as u64)
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM activity", [], |row| row.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records that a block or challenge is in force until `block.until_ms`, replacing any earlier one for the
    /// same object of the same domain.
    pub fn save_block(&self, block: &BlockRecord) -> Result<(), StoreError> {
        upsert_block(&self.lock(), block)
    }

    /// Returns whether a block was there to remove.
    pub fn remove_block(
        &self,
        domain: &str,
        object_type: &str,
        object_value: &str,
    ) -> Result<bool, StoreError> {
        Ok(delete_block(&self.lock(), domain, object_type, object_value)? > 0)
    }

    /// Blocks still in force at `now_ms` (those with `until_ms > now_ms`); expired ones are deleted on the way.
    pub fn load_blocks(&self, now_ms: i64) -> Result<Vec<BlockRecord>, StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM blocks WHERE until_ms <= ?", [now_ms])?;
        let mut stmt = conn.prepare(
            "SELECT domain, object_type, object_value, rule, action, until_ms FROM blocks \
             ORDER BY domain, object_type, object_value",
        )?;
        let blocks = stmt
            .query_map([], |row| {
                Ok(BlockRecord {
                    domain: row.get(0)?,
                    object_type: row.get(1)?,
                    object_value: row.get(2)?,
                    rule: row.get(3)?,
                    action: row.get(4)?,
                    until_ms: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(blocks)
    }

    /// The block of one object, if one is stored and unexpired at `now_ms`.
    pub fn find_block(
        &self,
        domain: &str,
        object_type: &str,
        object_value: &str,
        now_ms: i64,
    ) -> Result<Option<BlockRecord>, StoreError> {
        let block = self
            .lock()
            .query_row(
                "SELECT rule, action, until_ms FROM blocks \
                 WHERE domain = ? AND object_type = ? AND object_value = ? AND until_ms > ?",
                params![domain, object_type, object_value, now_ms],
                |row| {
                    Ok(BlockRecord {
                        domain: domain.to_owned(),
                        object_type: object_type.to_owned(),
                        object_value: object_value.to_owned(),
                        rule: row.get(0)?,
                        action: row.get(1)?,
                        until_ms: row.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(block)
    }

    pub(crate) fn shared_connection(&self) -> Arc<Mutex<Connection>> {
        Arc::clone(&self.conn)
    }

    /// The shared connection. A panic while it was held leaves SQLite itself consistent (each statement is
    /// atomic), so a poisoned lock is taken over rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn insert_record(conn: &Connection, r: &ActivityRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO activity (time_ms, node, domain, rule, object_type, object_value, action, ttl_s, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        r.time_ms,
        r.node,
        r.domain,
        r.rule,
        r.object_type,
        r.object_value,
        r.action,
        r.ttl_s,
        r.detail
    ])?;
    Ok(())
}

/// Ids only grow (AUTOINCREMENT), so "the newest `max_rows` ids" is a rowid range: the check costs two index
/// look-ups when nothing is over, which is why it runs after every batch instead of on a timer.
fn enforce_max_rows(conn: &Connection, max_rows: u64) -> Result<(), StoreError> {
    let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM activity WHERE id <= (SELECT MAX(id) FROM activity) - ?")?
        .execute([max_rows])?;
    Ok(())
}

fn upsert_block(conn: &Connection, b: &BlockRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO blocks (domain, object_type, object_value, rule, action, until_ms) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (domain, object_type, object_value) \
         DO UPDATE SET rule = excluded.rule, action = excluded.action, until_ms = excluded.until_ms",
    )?
    .execute(params![b.domain, b.object_type, b.object_value, b.rule, b.action, b.until_ms])?;
    Ok(())
}

fn delete_block(
    conn: &Connection,
    domain: &str,
    object_type: &str,
    object_value: &str,
) -> Result<usize, StoreError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM blocks WHERE domain = ? AND object_type = ? AND object_value = ?",
        )?
        .execute(params![domain, object_type, object_value])?;
    Ok(n)
}
