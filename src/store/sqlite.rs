//! The SQLite store: one file, WAL, every call in one transaction.
//!
//! Migrations are numbered SQL scripts applied in order inside a transaction each, recorded in
//! `schema_version`; a file from a newer cabgate is refused rather than misread.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{
    Alert, Delivery, DeliveryState, IssueRecord, JournalEntry, Store, StoreError, format_time,
    parse_time,
};

/// Schema scripts; index + 1 is the version each one reaches. Append only, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE issue (
        issue TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        change_sys_id TEXT,
        change_number TEXT,
        plan_version TEXT,
        markers TEXT NOT NULL,
        revision INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        issue TEXT,
        change_number TEXT,
        why TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX journal_issue ON journal (issue, id);
    CREATE TABLE alert (
        alert_key TEXT PRIMARY KEY,
        issue TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        raised_at TEXT NOT NULL
    );
    CREATE TABLE alert_delivery (
        alert_key TEXT NOT NULL REFERENCES alert (alert_key),
        sink TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
        attempts INTEGER NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        delivered_at TEXT,
        PRIMARY KEY (alert_key, sink)
    );
    CREATE INDEX alert_delivery_due ON alert_delivery (state, next_attempt_at);
    CREATE TABLE watermark (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
];

/// The embedded state store.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Database { context, source }
}

impl SqliteStore {
    /// Opens (or creates) the file at `path`, in WAL mode, and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let connection = Connection::open(path).map_err(db(format!("opening {shown}")))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(db(format!("switching {shown} to WAL")))?;
        Self::setup(connection)
    }

    /// A private in-memory store (tests, `--dry-run`).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory().map_err(db("opening in memory"))?;
        Self::setup(connection)
    }

    fn setup(mut connection: Connection) -> Result<Self, StoreError> {
        connection.busy_timeout(Duration::from_secs(5)).map_err(db("setting busy timeout"))?;
        // FULL: a delivered mark or a saved transition survives a power cut, not only a crash.
        connection.pragma_update(None, "synchronous", "FULL").map_err(db("setting synchronous"))?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(db("enabling foreign keys"))?;
        migrate(&mut connection)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        current_version(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction behind (it rolls
        // back on drop), so the connection is still sound.
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write<T>(
        &self,
        context: &str,
        body: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction().map_err(db(context.to_owned()))?;
        let value = body(&tx)?;
        tx.commit().map_err(db(format!("{context}: commit")))?;
        Ok(value)
    }
}

fn current_version(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()
        .map_err(db("reading schema version"))
        .map(|v| v.unwrap_or(0))
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(db("creating schema_version"))?;
    let known = MIGRATIONS.len() as i64;
    let found = current_version(connection)?;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let tx = connection.transaction().map_err(db("starting migration"))?;
        tx.execute_batch(script).map_err(db(format!("migrating to version {version}")))?;
        tx.execute("DELETE FROM schema_version", []).map_err(db("recording version"))?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])
            .map_err(db("recording version"))?;
        tx.commit().map_err(db(format!("committing migration {version}")))?;
    }
    Ok(())
}

fn insert_journal(tx: &Transaction<'_>, entry: &JournalEntry) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO journal (at, actor, action, issue, change_number, why, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            format_time(entry.at),
            entry.actor,
            entry.action,
            entry.issue,
            entry.change_number,
            entry.why,
            entry.outcome
        ],
    )
    .map_err(db("appending to the journal"))?;
    Ok(tx.last_insert_rowid())
}

fn issue_from_row(row: &Row<'_>) -> rusqlite::Result<(IssueRecord, String, String)> {
    let markers: String = row.get(5)?;
    let updated_at: String = row.get(7)?;
    Ok((
        IssueRecord {
            issue: row.get(0)?,
            state: row.get(1)?,
            change_sys_id: row.get(2)?,
            change_number: row.get(3)?,
            plan_version: row.get(4)?,
            markers: Default::default(),
            revision: row.get(6)?,
            updated_at: DateTime::<Utc>::MIN_UTC,
        },
        markers,
        updated_at,
    ))
}

fn finish_issue(
    (mut record, markers, updated_at): (IssueRecord, String, String),
) -> Result<IssueRecord, StoreError> {
    record.markers = serde_json::from_str(&markers)
        .map_err(|e| StoreError::Corrupt(format!("markers of {}: {e}", record.issue)))?;
    record.updated_at = parse_time(&updated_at)?;
    Ok(record)
}

const ISSUE_COLUMNS: &str =
    "issue, state, change_sys_id, change_number, plan_version, markers, revision, updated_at";

const DELIVERY_SELECT: &str = "SELECT a.alert_key, a.issue, a.kind, a.payload, a.raised_at,
        d.sink, d.state, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at
    FROM alert_delivery d JOIN alert a ON a.alert_key = d.alert_key";

type RawDelivery = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    u32,
    String,
    Option<String>,
    Option<String>,
);

fn raw_delivery(row: &Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn finish_delivery(raw: RawDelivery) -> Result<Delivery, StoreError> {
    let (key, issue, kind, payload, raised_at, sink, state, attempts, next, error, delivered) = raw;
    let payload = serde_json::from_str(&payload)
        .map_err(|e| StoreError::Corrupt(format!("payload of alert {key}: {e}")))?;
    let state = match state.as_str() {
        "pending" => DeliveryState::Pending,
        "delivered" => DeliveryState::Delivered,
        other => return Err(StoreError::Corrupt(format!("delivery state {other:?}"))),
    };
    Ok(Delivery {
        alert: Alert { key, issue, kind, payload, raised_at: parse_time(&raised_at)? },
        sink,
        state,
        attempts,
        next_attempt_at: parse_time(&next)?,
        last_error: error,
        delivered_at: delivered.as_deref().map(parse_time).transpose()?,
    })
}

impl SqliteStore {
    fn select_deliveries(
        &self,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Delivery>, StoreError> {
        let connection = self.lock();
        let sql = format!("{DELIVERY_SELECT} {filter}");
        let mut statement = connection.prepare(&sql).map_err(db("reading the outbox"))?;
        let raw: Vec<RawDelivery> = statement
            .query_map(params, raw_delivery)
            .and_then(Iterator::collect)
            .map_err(db("reading the outbox"))?;
        raw.into_iter().map(finish_delivery).collect()
    }
}

impl Store for SqliteStore {
    fn issue(&self, issue: &str) -> Result<Option<IssueRecord>, StoreError> {
        let connection = self.lock();
        let sql = format!("SELECT {ISSUE_COLUMNS} FROM issue WHERE issue = ?1");
        let raw = connection
            .query_row(&sql, [issue], issue_from_row)
            .optional()
            .map_err(db(format!("reading issue {issue}")))?;
        raw.map(finish_issue).transpose()
    }

    fn issues(&self) -> Result<Vec<IssueRecord>, StoreError> {
        let connection = self.lock();
        let sql = format!("SELECT {ISSUE_COLUMNS} FROM issue ORDER BY issue");
        let mut statement = connection.prepare(&sql).map_err(db("listing issues"))?;
        let raw: Vec<_> = statement
            .query_map([], issue_from_row)
            .and_then(Iterator::collect)
            .map_err(db("listing issues"))?;
        raw.into_iter().map(finish_issue).collect()
    }

    fn save_issue(
        &self,
        record: &IssueRecord,
        journal: &[JournalEntry],
    ) -> Result<i64, StoreError> {
        let markers = serde_json::to_string(&record.markers)
            .map_err(|e| StoreError::Corrupt(format!("markers of {}: {e}", record.issue)))?;
        let next = record.revision + 1;
        let context = format!("saving issue {}", record.issue);
        self.write(&context, |tx| {
            let changed = if record.revision == 0 {
                tx.execute(
                    "INSERT INTO issue (issue, state, change_sys_id, change_number, plan_version,
                        markers, revision, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (issue) DO NOTHING",
                    params![
                        record.issue,
                        record.state,
                        record.change_sys_id,
                        record.change_number,
                        record.plan_version,
                        markers,
                        next,
                        format_time(record.updated_at)
                    ],
                )
            } else {
                tx.execute(
                    "UPDATE issue SET state = ?2, change_sys_id = ?3, change_number = ?4,
                        plan_version = ?5, markers = ?6, revision = ?7, updated_at = ?8
                     WHERE issue = ?1 AND revision = ?9",
                    params![
                        record.issue,
                        record.state,
                        record.change_sys_id,
                        record.change_number,
                        record.plan_version,
                        markers,
                        next,
                        format_time(record.updated_at),
                        record.revision
                    ],
                )
            }
            .map_err(db(context.clone()))?;
            if changed != 1 {
                return Err(StoreError::Conflict {
                    issue: record.issue.clone(),
                    expected: record.revision,
                });
            }
            for entry in journal {
                insert_journal(tx, entry)?;
            }
            Ok(next)
        })
    }

    fn append_journal(&self, entry: &JournalEntry) -> Result<i64, StoreError> {
        self.write("appending to the journal", |tx| insert_journal(tx, entry))
    }

    fn journal(&self, issue: Option<&str>, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let connection = self.lock();
        let sql = "SELECT id, at, actor, action, issue, change_number, why, outcome FROM (
                SELECT * FROM journal WHERE (?1 IS NULL OR issue = ?1) ORDER BY id DESC LIMIT ?2
            ) ORDER BY id";
        let mut statement = connection.prepare(sql).map_err(db("reading the journal"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let raw: Vec<(JournalEntry, String)> = statement
            .query_map(params![issue, limit], |row| {
                Ok((
                    JournalEntry {
                        id: row.get(0)?,
                        at: DateTime::<Utc>::MIN_UTC,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        issue: row.get(4)?,
                        change_number: row.get(5)?,
                        why: row.get(6)?,
                        outcome: row.get(7)?,
                    },
                    row.get(1)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(db("reading the journal"))?;
        raw.into_iter()
            .map(|(mut entry, at)| {
                entry.at = parse_time(&at)?;
                Ok(entry)
            })
            .collect()
    }

    fn enqueue_alert(
        &self,
        alert: &Alert,
        sinks: &[String],
        journal: &JournalEntry,
    ) -> Result<usize, StoreError> {
        let payload = alert.payload.to_string();
        let context = format!("enqueuing alert {}", alert.key);
        self.write(&context, |tx| {
            tx.execute(
                "INSERT INTO alert (alert_key, issue, kind, payload, raised_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (alert_key) DO NOTHING",
                params![alert.key, alert.issue, alert.kind, payload, format_time(alert.raised_at)],
            )
            .map_err(db(context.clone()))?;
            let mut queued = 0;
            for sink in sinks {
                queued += tx
                    .execute(
                        "INSERT INTO alert_delivery (alert_key, sink, state, attempts,
                            next_attempt_at)
                         VALUES (?1, ?2, 'pending', 0, ?3)
                         ON CONFLICT (alert_key, sink) DO NOTHING",
                        params![alert.key, sink, format_time(alert.raised_at)],
                    )
                    .map_err(db(context.clone()))?;
            }
            if queued > 0 {
                insert_journal(tx, journal)?;
            }
            Ok(queued)
        })
    }

    fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.select_deliveries(
            "WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
             ORDER BY d.next_attempt_at, a.raised_at, d.alert_key, d.sink LIMIT ?2",
            &[&format_time(now), &limit],
        )
    }

    fn deliveries(&self, key: &str) -> Result<Vec<Delivery>, StoreError> {
        self.select_deliveries("WHERE d.alert_key = ?1 ORDER BY d.sink", &[&key])
    }

    fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.select_deliveries(
            "WHERE d.state = 'pending' ORDER BY d.next_attempt_at, d.alert_key, d.sink",
            &[],
        )
    }

    fn mark_delivered(
        &self,
        key: &str,
        sink: &str,
        at: DateTime<Utc>,
        journal: &JournalEntry,
    ) -> Result<bool, StoreError> {
        let context = format!("marking alert {key} delivered to {sink}");
        self.write(&context, |tx| {
            let changed = tx
                .execute(
                    "UPDATE alert_delivery SET state = 'delivered', delivered_at = ?3,
                        attempts = attempts + 1, last_error = NULL
                     WHERE alert_key = ?1 AND sink = ?2 AND state = 'pending'",
                    params![key, sink, format_time(at)],
                )
                .map_err(db(context.clone()))?;
            if changed == 1 {
                insert_journal(tx, journal)?;
            }
            Ok(changed == 1)
        })
    }

    fn mark_failed(
        &self,
        key: &str,
        sink: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let context = format!("recording a failed delivery of alert {key} to {sink}");
        self.write(&context, |tx| {
            tx.execute(
                "UPDATE alert_delivery SET attempts = attempts + 1, last_error = ?3,
                    next_attempt_at = ?4
                 WHERE alert_key = ?1 AND sink = ?2 AND state = 'pending'",
                params![key, sink, error, format_time(next_attempt_at)],
            )
            .map_err(db(context.clone()))?;
            Ok(())
        })
    }

    fn watermark(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row("SELECT value FROM watermark WHERE name = ?1", [name], |row| row.get(0))
            .optional()
            .map_err(db(format!("reading watermark {name}")))
    }

    fn set_watermark(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let context = format!("setting watermark {name}");
        self.write(&context, |tx| {
            tx.execute(
                "INSERT INTO watermark (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map_err(db(context.clone()))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_record_the_version() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        migrate(&mut store.lock()).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn newer_schema_is_refused() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.lock().execute("UPDATE schema_version SET version = 99", []).unwrap();
        let err = migrate(&mut store.lock()).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }));
    }
}
