//! Integration tests: the SQLite state store (file-backed, reopened between steps).

use std::path::Path;

use cabgate::store::{
    self, Alert, DeliveryState, IssueRecord, JournalEntry, SqliteStore, Store, StoreError, marker,
};
use chrono::{DateTime, TimeDelta, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn entry(action: &str, issue: &str) -> JournalEntry {
    JournalEntry::new(t("2026-12-03T10:00:00Z"), "cabgate@test", action, "because", "ok")
        .issue(issue)
}

fn alert(key: &str, at: DateTime<Utc>) -> Alert {
    Alert {
        key: key.to_owned(),
        issue: "projects/p/issues/7".to_owned(),
        kind: "skipped-approval".to_owned(),
        payload: serde_json::json!({"issue": "projects/p/issues/7", "title": "drop table"}),
        raised_at: at,
    }
}

#[test]
fn issue_record_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let now = t("2026-12-03T10:00:00Z");
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut record = IssueRecord::new("projects/p/issues/1", "awaiting_cab", now);
        record.change_sys_id = Some("0123456789abcdef0123456789abcdef".into());
        record.change_number = Some("CHG0010001".into());
        record.plan_version = Some("2026-12-03T09:59:00Z".into());
        record.markers.insert(marker::APPROVED.into(), "2026-12-03T10:00:00Z".into());
        record.markers.insert(marker::ran("prod"), "2026-12-03T10:01:00Z".into());
        let revision = store.save_issue(&record, &[entry("create_change", &record.issue)]).unwrap();
        assert_eq!(revision, 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    let record = store.issue("projects/p/issues/1").unwrap().unwrap();
    assert_eq!(record.state, "awaiting_cab");
    assert_eq!(record.change_number.as_deref(), Some("CHG0010001"));
    assert_eq!(record.revision, 1);
    assert_eq!(record.updated_at, now);
    assert_eq!(record.markers.get("ran:prod").map(String::as_str), Some("2026-12-03T10:01:00Z"));
    assert_eq!(store.issues().unwrap(), vec![record]);
    assert_eq!(store.journal(None, 10).unwrap().len(), 1);
    assert!(store.issue("projects/p/issues/2").unwrap().is_none());
}

#[test]
fn stale_revision_is_a_conflict_and_writes_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = t("2026-12-03T10:00:00Z");
    let record = IssueRecord::new("projects/p/issues/1", "new", now);
    assert_eq!(store.save_issue(&record, &[]).unwrap(), 1);

    // A second "new" record for the same issue (another runner) is refused.
    let err = store.save_issue(&record, &[entry("create_change", &record.issue)]).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 0, .. }), "{err}");

    let mut first = store.issue(&record.issue).unwrap().unwrap();
    let mut second = first.clone();
    first.state = "awaiting_cab".into();
    assert_eq!(store.save_issue(&first, &[entry("a", &first.issue)]).unwrap(), 2);
    second.state = "approved".into();
    let err = store.save_issue(&second, &[entry("b", &second.issue)]).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 1, .. }), "{err}");

    // Neither refused write left a record change or a journal entry behind.
    assert_eq!(store.issue(&record.issue).unwrap().unwrap().state, "awaiting_cab");
    let journal = store.journal(Some(&record.issue), 10).unwrap();
    assert_eq!(journal.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["a"]);
}

#[test]
fn journal_is_ordered_filtered_and_limited_to_the_newest() {
    let store = SqliteStore::open_in_memory().unwrap();
    for i in 0..5 {
        let issue = if i % 2 == 0 { "projects/p/issues/1" } else { "projects/p/issues/2" };
        let id = store.append_journal(&entry(&format!("step{i}"), issue).change("CHG1")).unwrap();
        assert_eq!(id, i + 1);
    }
    let all = store.journal(None, 100).unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let newest = store.journal(None, 2).unwrap();
    assert_eq!(newest.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["step3", "step4"]);
    let one = store.journal(Some("projects/p/issues/2"), 100).unwrap();
    assert_eq!(one.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["step1", "step3"]);
    assert_eq!(one[0].change_number.as_deref(), Some("CHG1"));
    assert_eq!(one[0].actor, "cabgate@test");
}

#[test]
fn alert_is_queued_once_per_sink() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = t("2026-12-03T10:00:00Z");
    let sinks = vec!["log".to_owned(), "webhook:https://hooks.example/cab".to_owned()];
    let a = alert("skipped-approval:projects/p/issues/7", now);
    assert_eq!(store.enqueue_alert(&a, &sinks, &entry("alert", &a.issue)).unwrap(), 2);
    // Every later pass sees the same SKIPPED issue: nothing new.
    assert_eq!(store.enqueue_alert(&a, &sinks, &entry("alert", &a.issue)).unwrap(), 0);
    // A sink added to the spec later gets the alert too, the others not again.
    let more = [sinks.clone(), vec!["servicenow:incident".to_owned()]].concat();
    assert_eq!(store.enqueue_alert(&a, &more, &entry("alert", &a.issue)).unwrap(), 1);
    assert_eq!(store.deliveries(&a.key).unwrap().len(), 3);
    // Only the two enqueues that queued something were journaled.
    assert_eq!(store.journal(None, 10).unwrap().len(), 2);
}

#[test]
fn delivery_is_retried_until_delivered_and_never_after() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = t("2026-12-03T10:00:00Z");
    let a = alert("k1", now);
    store.enqueue_alert(&a, &["log".to_owned()], &entry("alert", &a.issue)).unwrap();

    let due = store.due_deliveries(now, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].state, DeliveryState::Pending);
    assert_eq!(due[0].alert.payload["title"], "drop table");

    let later = now + TimeDelta::seconds(30);
    store.mark_failed("k1", "log", "sink down", later).unwrap();
    assert!(store.due_deliveries(now + TimeDelta::seconds(29), 10).unwrap().is_empty());
    let due = store.due_deliveries(later, 10).unwrap();
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("sink down"));

    assert!(store.mark_delivered("k1", "log", later, &entry("delivered", &a.issue)).unwrap());
    assert!(!store.mark_delivered("k1", "log", later, &entry("delivered", &a.issue)).unwrap());
    store.mark_failed("k1", "log", "late failure report", later).unwrap();
    let rows = store.deliveries("k1").unwrap();
    assert_eq!(rows[0].state, DeliveryState::Delivered);
    assert_eq!(rows[0].attempts, 2);
    assert_eq!(rows[0].last_error, None);
    assert_eq!(rows[0].delivered_at, Some(later));
    assert!(store.due_deliveries(later + TimeDelta::days(1), 10).unwrap().is_empty());
    assert!(store.pending_deliveries().unwrap().is_empty());
    // Re-enqueueing a delivered alert does not send it again.
    assert_eq!(store.enqueue_alert(&a, &["log".into()], &entry("alert", &a.issue)).unwrap(), 0);
    assert!(store.pending_deliveries().unwrap().is_empty());
}

#[test]
fn outbox_and_watermark_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let now = t("2026-12-03T10:00:00Z");
    {
        let store = SqliteStore::open(&path).unwrap();
        let a = alert("k1", now);
        store.enqueue_alert(&a, &["log".into(), "x".into()], &entry("alert", &a.issue)).unwrap();
        store.mark_delivered("k1", "x", now, &entry("delivered", &a.issue)).unwrap();
        store.set_watermark("servicenow.change_request", "2026-12-03 09:00:00").unwrap();
        store.set_watermark("servicenow.change_request", "2026-12-03 09:30:00").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].sink, "log");
    assert_eq!(
        store.watermark("servicenow.change_request").unwrap().as_deref(),
        Some("2026-12-03 09:30:00")
    );
    assert_eq!(store.watermark("other").unwrap(), None);
}

#[test]
fn file_store_uses_wal_and_an_interrupted_transaction_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    store.append_journal(&entry("before", "projects/p/issues/1")).unwrap();

    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");

    // A writer that dies mid-transaction (its connection never commits, nor rolls back).
    raw.execute_batch(
        "BEGIN; INSERT INTO journal (at, actor, action, why, outcome)
         VALUES ('2026-12-03T10:00:00.000Z', 'x', 'half-done', '', '');",
    )
    .unwrap();
    std::mem::forget(raw);

    drop(store);
    // NOTE: the leaked connection still holds the write lock in this process, so we only read.
    let reopened = rusqlite::Connection::open(&path).unwrap();
    let actions: Vec<String> = reopened
        .prepare("SELECT action FROM journal ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(actions, ["before"]);
}

#[test]
fn open_resolves_sqlite_paths_against_the_spec_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open("sqlite://nested.db", dir.path()).unwrap();
    store.set_watermark("w", "1").unwrap();
    assert!(dir.path().join("nested.db").exists());
    let absolute = dir.path().join("abs.db");
    let url = format!("sqlite://{}", absolute.display());
    store::open(&url, Path::new("/nonexistent")).unwrap();
    assert!(absolute.exists());
    let memory = store::open("sqlite::memory:", dir.path()).unwrap();
    assert!(memory.issues().unwrap().is_empty());
}

/// Saves the issue record again and again, each save with one journal entry in the same
/// transaction, `rounds` times (forever when `None`).
fn save_loop(path: &Path, rounds: Option<u32>) {
    let store = SqliteStore::open(path).unwrap();
    let issue = "projects/p/issues/crash";
    let mut round = 0;
    while rounds.is_none_or(|r| round < r) {
        let mut record = store
            .issue(issue)
            .unwrap()
            .unwrap_or_else(|| IssueRecord::new(issue, "new", Utc::now()));
        record.state = format!("step-{round}");
        store.save_issue(&record, &[entry("step", issue)]).unwrap();
        let a = alert(&format!("k{round}"), Utc::now());
        store.enqueue_alert(&a, &["log".into()], &entry("alert", &a.issue)).unwrap();
        store.mark_delivered(&a.key, "log", Utc::now(), &entry("delivered", &a.issue)).unwrap();
        round += 1;
    }
}

/// What must hold after any crash: the record's revision counts its journal entries (they are
/// written together), and every delivered alert has its journal entry.
fn assert_consistent(path: &Path) -> i64 {
    let store = SqliteStore::open(path).unwrap();
    let issue = "projects/p/issues/crash";
    let revision = store.issue(issue).unwrap().map_or(0, |r| r.revision);
    let journal = store.journal(Some(issue), usize::MAX).unwrap();
    let steps = journal.iter().filter(|e| e.action == "step").count() as i64;
    assert_eq!(revision, steps, "record and journal disagree");
    let delivered = journal.iter().filter(|e| e.action == "delivered").count();
    let queued = journal.iter().filter(|e| e.action == "alert").count();
    assert!(delivered == queued || delivered + 1 == queued, "{queued} queued, {delivered} sent");
    assert!(store.pending_deliveries().unwrap().len() <= 1);
    revision
}

/// The writer half of the crash test: run in a child process (named by the environment) until
/// killed; run in-process, a bounded number of rounds.
#[test]
fn crash_writer() {
    match std::env::var_os("CABGATE_STORE_CRASH_FILE") {
        Some(path) => save_loop(Path::new(&path), None),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.db");
            save_loop(&path, Some(20));
            assert_eq!(assert_consistent(&path), 20);
        }
    }
}

#[test]
fn a_writer_killed_mid_transaction_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["store::crash_writer", "--exact", "--test-threads=1"])
        .env("CABGATE_STORE_CRASH_FILE", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it write a while, then kill it (SIGKILL: no destructor, no rollback, no unlock).
    // The deadline only bounds a stuck child; a loaded CI machine may need long to start it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let written = path.exists()
            && SqliteStore::open(&path)
                .ok()
                .and_then(|s| s.issue("projects/p/issues/crash").ok().flatten())
                .is_some_and(|r| r.revision >= 10);
        if written || std::time::Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let revision = assert_consistent(&path);
    assert!(revision >= 10, "the writer made progress before it was killed: {revision}");
    // And the store keeps working after the crash.
    save_loop(&path, Some(1));
    assert_eq!(assert_consistent(&path), revision + 1);
}
