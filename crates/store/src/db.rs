//! Opening the node's database file and its schema. One file holds the activity log, the blocks in force and the
//! closed statistics points, so a node has one thing to back up and one thing to lose.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// Every statement is `IF NOT EXISTS`: opening an existing file only creates what is missing.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS activity (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms      INTEGER NOT NULL,
    node         TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    object_type  TEXT    NOT NULL,
    object_value TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    ttl_s        INTEGER NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_time        ON activity (time_ms);
CREATE INDEX IF NOT EXISTS activity_domain_time ON activity (domain, time_ms);
CREATE INDEX IF NOT EXISTS activity_rule_time   ON activity (domain, rule, time_ms);
CREATE INDEX IF NOT EXISTS activity_object_time ON activity (object_value, time_ms);

CREATE TABLE IF NOT EXISTS blocks (
    domain       TEXT    NOT NULL,
    object_type  TEXT    NOT NULL,
    object_value TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    until_ms     INTEGER NOT NULL,
    PRIMARY KEY (domain, object_type, object_value)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS stats_points (
    domain         TEXT    NOT NULL,
    point_start_ms INTEGER NOT NULL,
    requests       INTEGER NOT NULL,
    max_ip_count   INTEGER NOT NULL,
    max_ip_error   INTEGER NOT NULL,
    passed         INTEGER NOT NULL,
    limited        INTEGER NOT NULL,
    blocked        INTEGER NOT NULL,
    challenged     INTEGER NOT NULL,
    PRIMARY KEY (domain, point_start_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_points_time ON stats_points (point_start_ms);
";

/// Opens (creating if needed) the database file in WAL mode, so the writer thread and readers do not block each
/// other, with a busy timeout so two connections of this process wait for each other instead of failing.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // `journal_mode` answers with a row, so it cannot go through execute_batch on every SQLite build.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    // NORMAL is durable across process crashes in WAL mode; only a power loss can drop the last transactions,
    // which is acceptable for a log and for statistics.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}
