//! Journal fields (`work_notes`, `comments`): a write appends a `sys_journal_field` row
//! (`name` = table, `element` = field, `element_id` = record sys_id, `value`,
//! `sys_created_by` = user_name) and never replaces earlier entries. Reading the field's stored
//! value returns `""`; the entries are read from `sys_journal_field`.

use super::records::{Db, Record, stamp_insert};
use super::render::Locale;

/// Appends one journal entry. An empty value adds nothing, as on the platform.
pub fn append(
    db: &mut Db,
    table: &str,
    element_id: &str,
    element: &str,
    value: &str,
    user: &str,
    now: &str,
) {
    if value.is_empty() {
        return;
    }
    let mut rec = Record::from([
        ("sys_id".into(), db.new_sys_id()),
        ("name".into(), table.to_string()),
        ("element".into(), element.to_string()),
        ("element_id".into(), element_id.to_string()),
        ("value".into(), value.to_string()),
    ]);
    stamp_insert(&mut rec, user, now);
    db.push("sys_journal_field", rec);
}

/// The journal as a form shows it: entries newest first, each headed by its time (in the
/// caller's locale), author and field label.
pub fn display(db: &Db, table: &str, element_id: &str, element: &str, locale: &Locale) -> String {
    let label = match element {
        "work_notes" => "Work notes",
        "comments" => "Additional comments",
        other => other,
    };
    let mut out = String::new();
    let entries = db.rows("sys_journal_field").iter().rev().filter(|r| {
        r.get("name").is_some_and(|n| n == table)
            && r.get("element_id").is_some_and(|i| i == element_id)
            && r.get("element").is_some_and(|e| e == element)
    });
    for entry in entries {
        let by = entry.get("sys_created_by").map(String::as_str).unwrap_or_default();
        let name = db.user(by).and_then(|u| u.get("name")).map(String::as_str).unwrap_or(by);
        let on = locale.show(entry.get("sys_created_on").map(String::as_str).unwrap_or_default());
        let value = entry.get("value").map(String::as_str).unwrap_or_default();
        out.push_str(&format!("{on} - {name} ({label})\n{value}\n\n"));
    }
    out
}
