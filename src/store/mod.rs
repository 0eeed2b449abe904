//! The runner's durable state: per-issue workflow records, the alert ledger and outbox, the
//! ServiceNow watermark, and an append-only journal of every action.
//!
//! [`Store`] is a small trait so a PostgreSQL store can follow (two runners sharing one store);
//! [`SqliteStore`] is the embedded default. Its SQL stays standard (`INSERT … ON CONFLICT DO
//! NOTHING`, plain types), so the PostgreSQL version is a port, not a redesign.
//!
//! Invariants every implementation keeps:
//! - each call is one transaction: a crash between two calls leaves the state of the first;
//! - issue records are written with optimistic concurrency ([`IssueRecord::revision`]), so two
//!   runners (or a runner and a stale pass) cannot overwrite each other silently;
//! - an alert is enqueued at most once per (alert key, sink), and a delivered row never goes back
//!   to pending, so a delivered alert is never re-sent;
//! - the journal is append-only.

mod sqlite;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use sqlite::SqliteStore;

/// What went wrong with the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused an operation.
    #[error("state store: {context}")]
    Database {
        /// What was being done.
        context: String,
        /// The database error.
        #[source]
        source: rusqlite::Error,
    },
    /// Someone else saved the issue record since it was read.
    #[error(
        "state store: issue {issue} changed since it was read (expected revision {expected}); \
         another runner or pass wrote it"
    )]
    Conflict {
        /// The issue name.
        issue: String,
        /// The revision the writer had read.
        expected: i64,
    },
    /// The database was written by a newer cabgate.
    #[error("state store: schema version {found} is newer than this cabgate knows ({known})")]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// `state.url` is not usable.
    #[error("state.url {url:?}: {reason}")]
    Url {
        /// The URL as written in the spec.
        url: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A stored value could not be read back.
    #[error("state store: {0}")]
    Corrupt(String),
}

/// A Bytebase issue's place in the CHG workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRecord {
    /// The issue's resource name (`projects/p/issues/42`).
    pub issue: String,
    /// Current workflow state (`new`, `awaiting_cab`, …).
    pub state: String,
    /// The CHG's sys_id, once created.
    pub change_sys_id: Option<String>,
    /// The CHG's number, once created.
    pub change_number: Option<String>,
    /// The plan version (its `updateTime`, or etag) the CHG was opened or last updated for.
    pub plan_version: Option<String>,
    /// Idempotency markers of the engine, e.g. `approved` → time, `ran:prod` → time. Free-form:
    /// the engine owns the keys (see [`marker`]).
    pub markers: BTreeMap<String, String>,
    /// Optimistic-concurrency revision: 0 for a record never saved; [`Store::save_issue`]
    /// returns the next one.
    pub revision: i64,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
}

impl IssueRecord {
    /// A new record in `state`, never saved.
    pub fn new(issue: impl Into<String>, state: impl Into<String>, now: DateTime<Utc>) -> Self {
        IssueRecord {
            issue: issue.into(),
            state: state.into(),
            change_sys_id: None,
            change_number: None,
            plan_version: None,
            markers: BTreeMap::new(),
            revision: 0,
            updated_at: now,
        }
    }
}

/// Conventional marker keys, so the engine and reports agree on them.
pub mod marker {
    /// The issue was approved in Bytebase by cabgate.
    pub const APPROVED: &str = "approved";
    /// The issue was rejected in Bytebase by cabgate.
    pub const REJECTED: &str = "rejected";
    /// cabgate called CreateRollout.
    pub const ROLLOUT_CREATED: &str = "rollout_created";
    /// The CHG was closed by cabgate.
    pub const CHANGE_CLOSED: &str = "change_closed";

    /// Tasks of `stage` were started by cabgate.
    pub fn ran(stage: &str) -> String {
        format!("ran:{stage}")
    }
}

/// One entry of the action journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Sequence number, assigned by the store (0 before it is written).
    pub id: i64,
    /// When the action happened.
    pub at: DateTime<Utc>,
    /// Who acted: the runner's identity (service account, host).
    pub actor: String,
    /// What was done (`create_change`, `approve_issue`, `alert`, …).
    pub action: String,
    /// The issue it concerns.
    pub issue: Option<String>,
    /// The CHG it concerns.
    pub change_number: Option<String>,
    /// Why (the transition, the facts that triggered it).
    pub why: String,
    /// What came of it (`ok`, `dry-run`, `error: …`).
    pub outcome: String,
}

impl JournalEntry {
    /// An entry at `at`, not yet written.
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        action: impl Into<String>,
        why: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Self {
        JournalEntry {
            id: 0,
            at,
            actor: actor.into(),
            action: action.into(),
            issue: None,
            change_number: None,
            why: why.into(),
            outcome: outcome.into(),
        }
    }

    /// Names the issue.
    pub fn issue(mut self, issue: impl Into<String>) -> Self {
        self.issue = Some(issue.into());
        self
    }

    /// Names the CHG.
    pub fn change(mut self, number: impl Into<String>) -> Self {
        self.change_number = Some(number.into());
        self
    }
}

/// An alert in the ledger: raised once per key, whatever the number of passes that see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable key (e.g. `skipped-approval:projects/p/issues/42`).
    pub key: String,
    /// The issue it is about.
    pub issue: String,
    /// Kind of alert (`skipped-approval`).
    pub kind: String,
    /// The facts sinks render.
    pub payload: serde_json::Value,
    /// When it was first raised.
    pub raised_at: DateTime<Utc>,
}

/// Where one alert stands with one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet taken by the sink.
    Pending,
    /// Taken; never sent again.
    Delivered,
}

/// One row of the outbox: an alert for one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The alert.
    pub alert: Alert,
    /// The sink's stable id (see `alert::sink_id`).
    pub sink: String,
    /// Pending or delivered.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest time of the next attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
    /// When the sink took it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The runner's durable state. Every method is one transaction.
pub trait Store: Send + Sync {
    /// The record of `issue`, if any.
    fn issue(&self, issue: &str) -> Result<Option<IssueRecord>, StoreError>;

    /// Every issue record, by issue name.
    fn issues(&self) -> Result<Vec<IssueRecord>, StoreError>;

    /// Saves `record` if its revision is still the stored one (0 = not stored yet) and appends
    /// `journal` in the same transaction. Returns the new revision; [`StoreError::Conflict`]
    /// when someone else saved it first (nothing is written then).
    fn save_issue(&self, record: &IssueRecord, journal: &[JournalEntry])
    -> Result<i64, StoreError>;

    /// Appends one journal entry; returns its id.
    fn append_journal(&self, entry: &JournalEntry) -> Result<i64, StoreError>;

    /// Journal entries in order, for one issue or all, at most `limit` of the newest.
    fn journal(&self, issue: Option<&str>, limit: usize) -> Result<Vec<JournalEntry>, StoreError>;

    /// Records `alert` in the ledger (once per key) and queues it for each of `sinks` (once per
    /// sink), with a journal entry when anything new was queued. Returns how many deliveries were
    /// newly queued: 0 when the alert was already known to every sink.
    fn enqueue_alert(
        &self,
        alert: &Alert,
        sinks: &[String],
        journal: &JournalEntry,
    ) -> Result<usize, StoreError>;

    /// Pending deliveries due at `now`, oldest first, at most `limit`.
    fn due_deliveries(&self, now: DateTime<Utc>, limit: usize)
    -> Result<Vec<Delivery>, StoreError>;

    /// Every delivery of an alert key (any state).
    fn deliveries(&self, key: &str) -> Result<Vec<Delivery>, StoreError>;

    /// Every delivery still pending (for status and metrics).
    fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError>;

    /// Marks a delivery delivered, with a journal entry. Returns false (and writes nothing) when
    /// it was already delivered or does not exist.
    fn mark_delivered(
        &self,
        key: &str,
        sink: &str,
        at: DateTime<Utc>,
        journal: &JournalEntry,
    ) -> Result<bool, StoreError>;

    /// Records a failed attempt and when to try again. A delivered row is left alone.
    fn mark_failed(
        &self,
        key: &str,
        sink: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A named watermark (e.g. `servicenow.change_request`).
    fn watermark(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets a named watermark.
    fn set_watermark(&self, name: &str, value: &str) -> Result<(), StoreError>;
}

/// Opens the store named by the spec's `state.url`: `sqlite://PATH` (relative to `spec_dir`,
/// the spec's folder, unless absolute) or `sqlite::memory:`.
pub fn open(url: &str, spec_dir: &Path) -> Result<Box<dyn Store>, StoreError> {
    let bad = |reason: &str| StoreError::Url { url: url.to_owned(), reason: reason.to_owned() };
    if url == "sqlite::memory:" {
        return Ok(Box::new(SqliteStore::open_in_memory()?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(bad("names no file"));
        }
        let path = Path::new(path);
        let path = if path.is_absolute() { path.to_path_buf() } else { spec_dir.join(path) };
        return Ok(Box::new(SqliteStore::open(&path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // TODO: a PostgreSQL store (shared by two runners with a leader lease) is designed for
        // (standard SQL, revisions) but not written; only SQLite exists.
        return Err(bad("PostgreSQL is not supported yet; use sqlite://PATH"));
    }
    Err(bad("expected sqlite://PATH or sqlite::memory:"))
}

/// Formats a time the way the store keeps it: RFC 3339 UTC with milliseconds, so text order is
/// time order.
pub(crate) fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses a stored time.
pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_unknown_urls() {
        let dir = Path::new(".");
        for (url, why) in [
            ("postgres://db/cab", "not supported yet"),
            ("mysql://x", "expected sqlite://"),
            ("sqlite://", "names no file"),
        ] {
            let err = open(url, dir).err().unwrap().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(open("sqlite::memory:", dir).is_ok());
    }

    #[test]
    fn stored_times_sort_as_text() {
        let a = parse_time("2026-12-03T09:00:00.000Z").unwrap();
        let b = parse_time("2026-12-03T10:00:00.500Z").unwrap();
        assert!(format_time(a) < format_time(b));
        assert_eq!(parse_time(&format_time(b)).unwrap(), b);
    }
}
