//! Typed records of the tables cabgate reads, parsed from stored values.
//!
//! Every Table API value is a JSON string (`"state":"-3"`); each is parsed here into an enum that
//! keeps unknown variants (`State::Other`), because instances add states and an unknown state must
//! park an issue, never approve it. Only stored values are read (never labels, which follow the
//! user's locale).
//!
//! NOTE: the known values are the base change model's. cabgate does not load the instance's
//! choice lists (`sys_choice`) or ask `sn_chg_rest`'s `nextstates`, so a custom model's states
//! read as [`State::Other`] (the engine parks the issue) and a custom transition rule shows up
//! only as [`crate::servicenow::Error::StateNotChanged`] after the write.

use std::fmt;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::error::Error;
use super::query::{SysId, parse_sn_date};

/// A `change_request.state` stored value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// `-5`
    New,
    /// `-4`
    Assess,
    /// `-3`
    Authorize,
    /// `-2`
    Scheduled,
    /// `-1`
    Implement,
    /// `0`
    Review,
    /// `3`
    Closed,
    /// `4`
    Canceled,
    /// A state of a custom model, kept as its stored value.
    Other(String),
}

impl State {
    /// Parses the stored value.
    pub fn from_wire(value: &str) -> Self {
        match value {
            "-5" => State::New,
            "-4" => State::Assess,
            "-3" => State::Authorize,
            "-2" => State::Scheduled,
            "-1" => State::Implement,
            "0" => State::Review,
            "3" => State::Closed,
            "4" => State::Canceled,
            other => State::Other(other.to_owned()),
        }
    }

    /// The stored value to write.
    pub fn wire(&self) -> &str {
        match self {
            State::New => "-5",
            State::Assess => "-4",
            State::Authorize => "-3",
            State::Scheduled => "-2",
            State::Implement => "-1",
            State::Review => "0",
            State::Closed => "3",
            State::Canceled => "4",
            State::Other(value) => value,
        }
    }

    /// The name workflow conditions use (`change.state: implement`); `unknown` for custom states.
    pub fn name(&self) -> &'static str {
        match self {
            State::New => "new",
            State::Assess => "assess",
            State::Authorize => "authorize",
            State::Scheduled => "scheduled",
            State::Implement => "implement",
            State::Review => "review",
            State::Closed => "closed",
            State::Canceled => "canceled",
            State::Other(_) => "unknown",
        }
    }

    /// Parses a workflow name (`implement`) back into a state.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "new" => State::New,
            "assess" => State::Assess,
            "authorize" => State::Authorize,
            "scheduled" => State::Scheduled,
            "implement" => State::Implement,
            "review" => State::Review,
            "closed" => State::Closed,
            "canceled" => State::Canceled,
            _ => return None,
        })
    }

    /// True for Closed and Canceled.
    pub fn is_final(&self) -> bool {
        matches!(self, State::Closed | State::Canceled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Other(value) => write!(f, "unknown ({value})"),
            known => write!(f, "{} ({})", known.name(), known.wire()),
        }
    }
}

/// A `change_request.approval` stored value (the aggregate of the approver rows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Approval {
    /// `not requested`
    NotRequested,
    /// `requested`
    Requested,
    /// `approved`
    Approved,
    /// `rejected`
    Rejected,
    /// Anything else, kept as stored.
    Other(String),
}

impl Approval {
    /// Parses the stored value.
    pub fn from_wire(value: &str) -> Self {
        match value {
            "not requested" => Approval::NotRequested,
            "requested" => Approval::Requested,
            "approved" => Approval::Approved,
            "rejected" => Approval::Rejected,
            other => Approval::Other(other.to_owned()),
        }
    }

    /// The name workflow conditions use (`change.approval: approved`); `unknown` otherwise.
    pub fn name(&self) -> &'static str {
        match self {
            Approval::NotRequested => "not_requested",
            Approval::Requested => "requested",
            Approval::Approved => "approved",
            Approval::Rejected => "rejected",
            Approval::Other(_) => "unknown",
        }
    }
}

/// A `sysapproval_approver.state` stored value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApproverState {
    /// `not requested`
    NotRequested,
    /// `requested`
    Requested,
    /// `approved`
    Approved,
    /// `rejected`
    Rejected,
    /// `cancelled`
    Cancelled,
    /// `not_required` ("No Longer Required": the group rule was met by others).
    NotRequired,
    /// `skipped`
    Skipped,
    /// Anything else, kept as stored.
    Other(String),
}

impl ApproverState {
    /// Parses the stored value.
    pub fn from_wire(value: &str) -> Self {
        match value {
            "not requested" => ApproverState::NotRequested,
            "requested" => ApproverState::Requested,
            "approved" => ApproverState::Approved,
            "rejected" => ApproverState::Rejected,
            "cancelled" => ApproverState::Cancelled,
            "not_required" => ApproverState::NotRequired,
            "skipped" => ApproverState::Skipped,
            other => ApproverState::Other(other.to_owned()),
        }
    }

    /// True for the rows that decided: approved or rejected.
    pub fn is_decisive(&self) -> bool {
        matches!(self, ApproverState::Approved | ApproverState::Rejected)
    }
}

/// `close_code` stored values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// `successful`
    Successful,
    /// `successful_issues`
    SuccessfulIssues,
    /// `unsuccessful`
    Unsuccessful,
}

impl CloseCode {
    /// The stored value.
    pub fn wire(self) -> &'static str {
        match self {
            CloseCode::Successful => "successful",
            CloseCode::SuccessfulIssues => "successful_issues",
            CloseCode::Unsuccessful => "unsuccessful",
        }
    }

    /// Parses a stored value (also what workflow actions write: `code: successful`).
    pub fn from_wire(value: &str) -> Option<Self> {
        Some(match value {
            "successful" => CloseCode::Successful,
            "successful_issues" => CloseCode::SuccessfulIssues,
            "unsuccessful" => CloseCode::Unsuccessful,
            _ => return None,
        })
    }
}

/// The `change_request` fields cabgate reads (always sent as `sysparm_fields`).
pub const CHANGE_FIELDS: &[&str] = &[
    "sys_id",
    "number",
    "state",
    "approval",
    "active",
    "correlation_id",
    "short_description",
    "type",
    "on_hold",
    "start_date",
    "end_date",
    "close_code",
    "close_notes",
    "sys_mod_count",
    "sys_updated_on",
    "sys_updated_by",
];

/// A change request, from stored values.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest {
    /// The record's key.
    pub sys_id: SysId,
    /// `CHG…`, for humans.
    pub number: String,
    /// Stored state.
    pub state: State,
    /// Aggregate approval.
    pub approval: Approval,
    /// False once closed or canceled.
    pub active: bool,
    /// cabgate's key (the Bytebase issue name).
    pub correlation_id: String,
    /// One-line summary.
    pub short_description: String,
    /// `normal`, `standard`, `emergency`.
    pub change_type: String,
    /// On hold blocks Implement → Review.
    pub on_hold: bool,
    /// Planned start (UTC).
    pub start_date: Option<NaiveDateTime>,
    /// Planned end (UTC).
    pub end_date: Option<NaiveDateTime>,
    /// Close code (stored value, empty while open).
    pub close_code: String,
    /// Close notes.
    pub close_notes: String,
    /// Update counter, to dedupe rows seen twice around a watermark.
    pub sys_mod_count: u64,
    /// Last update (UTC, whole seconds).
    pub sys_updated_on: Option<NaiveDateTime>,
    /// Who last updated it (a user_name).
    pub sys_updated_by: String,
}

impl ChangeRequest {
    /// Parses one `result` object of `change_request`.
    pub fn from_record(record: &Map<String, Value>) -> Result<Self, Error> {
        let r = Record { table: "change_request", record };
        Ok(ChangeRequest {
            sys_id: r.sys_id("sys_id")?,
            number: r.text("number")?.to_owned(),
            state: State::from_wire(r.text("state")?),
            approval: Approval::from_wire(r.text("approval")?),
            active: r.text("active")? == "true",
            correlation_id: r.text("correlation_id")?.to_owned(),
            short_description: r.text("short_description")?.to_owned(),
            change_type: r.text("type")?.to_owned(),
            on_hold: r.text("on_hold")? == "true",
            start_date: r.date("start_date")?,
            end_date: r.date("end_date")?,
            close_code: r.text("close_code")?.to_owned(),
            close_notes: r.text("close_notes")?.to_owned(),
            sys_mod_count: r.count("sys_mod_count")?,
            sys_updated_on: r.date("sys_updated_on")?,
            sys_updated_by: r.text("sys_updated_by")?.to_owned(),
        })
    }
}

/// The `sysapproval_approver` fields cabgate reads; the approver's name and email by dot-walk.
pub const APPROVER_FIELDS: &[&str] = &[
    "sys_id",
    "state",
    "approver",
    "approver.user_name",
    "approver.email",
    "group",
    "comments",
    "sys_updated_on",
    "sys_updated_by",
];

/// One approver row of a CHG: who was asked, what they decided, and who actually clicked.
#[derive(Debug, Clone, PartialEq)]
pub struct Approver {
    /// The approval row's sys_id.
    pub sys_id: SysId,
    /// What this approver decided.
    pub state: ApproverState,
    /// The approver's `sys_user` sys_id (empty when ACLs hide it).
    pub approver: String,
    /// The approver's user_name.
    pub user_name: String,
    /// The approver's email.
    pub email: String,
    /// The `sysapproval_group` row when the approval came from a group (empty otherwise).
    pub group: String,
    /// Approver comments (from the journal when the field reads back empty).
    pub comments: String,
    /// Last update (UTC).
    pub sys_updated_on: Option<NaiveDateTime>,
    /// Who last updated the row; differs from the approver for delegates and admin overrides.
    pub sys_updated_by: String,
}

impl Approver {
    /// Parses one `result` object of `sysapproval_approver`.
    pub fn from_record(record: &Map<String, Value>) -> Result<Self, Error> {
        let r = Record { table: "sysapproval_approver", record };
        Ok(Approver {
            sys_id: r.sys_id("sys_id")?,
            state: ApproverState::from_wire(r.text("state")?),
            approver: r.text("approver")?.to_owned(),
            user_name: r.text("approver.user_name")?.to_owned(),
            email: r.text("approver.email")?.to_owned(),
            group: r.text("group")?.to_owned(),
            comments: r.text("comments")?.to_owned(),
            sys_updated_on: r.date("sys_updated_on")?,
            sys_updated_by: r.text("sys_updated_by")?.to_owned(),
        })
    }

    /// The name to show as "approved by": the approver's user_name, and who acted for them when
    /// that was someone else (delegate, admin override).
    pub fn display_name(&self) -> String {
        let who = if self.user_name.is_empty() { &self.email } else { &self.user_name };
        if !self.sys_updated_by.is_empty() && self.sys_updated_by != *who {
            format!("{who} (recorded by {})", self.sys_updated_by)
        } else {
            who.clone()
        }
    }
}

/// The `sys_journal_field` fields cabgate reads.
pub const JOURNAL_FIELDS: &[&str] =
    &["sys_id", "element", "element_id", "value", "sys_created_by", "sys_created_on"];

/// One journal entry (work note or comment).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// `work_notes` or `comments`.
    pub element: String,
    /// The text.
    pub value: String,
    /// Author (user_name).
    pub created_by: String,
    /// When (UTC).
    pub created_on: Option<NaiveDateTime>,
}

impl JournalEntry {
    /// Parses one `result` object of `sys_journal_field`.
    pub fn from_record(record: &Map<String, Value>) -> Result<Self, Error> {
        let r = Record { table: "sys_journal_field", record };
        Ok(JournalEntry {
            element: r.text("element")?.to_owned(),
            value: r.text("value")?.to_owned(),
            created_by: r.text("sys_created_by")?.to_owned(),
            created_on: r.date("sys_created_on")?,
        })
    }
}

/// What a create answered: the new record's key and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The record's sys_id.
    pub sys_id: SysId,
    /// Its number (`CHG…`, `INC…`).
    pub number: String,
    /// False when the record already existed (found by correlation id) and nothing was created.
    pub created: bool,
    /// Fields of a new record the instance did not store as sent (unknown, read-only, refused
    /// by an ACL or a business rule); empty when it was found rather than created.
    pub unapplied: Vec<String>,
}

/// A field reader over one result object that reports a missing field by name.
pub(crate) struct Record<'a> {
    pub(crate) table: &'static str,
    pub(crate) record: &'a Map<String, Value>,
}

impl Record<'_> {
    fn missing(&self, field: &str) -> Error {
        Error::MissingField { table: self.table.to_owned(), field: field.to_owned() }
    }

    /// A string field. A reference left as `{"link","value"}` (no
    /// `sysparm_exclude_reference_link`) is read through its `value`.
    pub(crate) fn text(&self, field: &str) -> Result<&str, Error> {
        match self.record.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Object(reference)) => match reference.get("value") {
                Some(Value::String(s)) => Ok(s),
                _ => Err(self.decode(field, "an object without a string `value`")),
            },
            Some(Value::Null) => Ok(""),
            Some(other) => Err(self.decode(field, &format!("{other} instead of a string"))),
            None => Err(self.missing(field)),
        }
    }

    pub(crate) fn sys_id(&self, field: &str) -> Result<SysId, Error> {
        SysId::parse(self.text(field)?)
    }

    fn date(&self, field: &str) -> Result<Option<NaiveDateTime>, Error> {
        let text = self.text(field)?;
        parse_sn_date(text).map_err(|_| self.decode(field, &format!("{text:?} is not a UTC date")))
    }

    fn count(&self, field: &str) -> Result<u64, Error> {
        let text = self.text(field)?;
        if text.is_empty() {
            return Ok(0);
        }
        text.parse().map_err(|_| self.decode(field, &format!("{text:?} is not a count")))
    }

    fn decode(&self, field: &str, what: &str) -> Error {
        Error::Decode {
            method: "GET".to_owned(),
            table: self.table.to_owned(),
            reason: format!("field `{field}`: {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change_json() -> Map<String, Value> {
        serde_json::json!({
            "sys_id": "0123456789abcdef0123456789abcdef",
            "number": "CHG0010001",
            "state": "-3",
            "approval": "requested",
            "active": "true",
            "correlation_id": "projects/p/issues/1",
            "short_description": "[Bytebase] add index",
            "type": "normal",
            "on_hold": "false",
            "start_date": "",
            "end_date": "2026-12-04 10:00:00",
            "close_code": "",
            "close_notes": "",
            "sys_mod_count": "3",
            "sys_updated_on": "2026-12-03 16:00:00",
            "sys_updated_by": "cab.bridge"
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn state_round_trips_and_keeps_unknown() {
        for wire in ["-5", "-4", "-3", "-2", "-1", "0", "3", "4"] {
            let state = State::from_wire(wire);
            assert_ne!(state.name(), "unknown");
            assert_eq!(state.wire(), wire);
            assert_eq!(State::from_name(state.name()), Some(state));
        }
        let custom = State::from_wire("7");
        assert_eq!(custom, State::Other("7".into()));
        assert_eq!(custom.name(), "unknown");
        assert_eq!(custom.wire(), "7");
        // A label is not a stored value.
        assert_eq!(State::from_wire("Implement"), State::Other("Implement".into()));
    }

    #[test]
    fn approval_parses_stored_values() {
        assert_eq!(Approval::from_wire("not requested"), Approval::NotRequested);
        assert_eq!(Approval::from_wire("approved").name(), "approved");
        assert_eq!(Approval::from_wire("Approved").name(), "unknown");
    }

    #[test]
    fn change_parses_from_strings() {
        let change = ChangeRequest::from_record(&change_json()).unwrap();
        assert_eq!(change.state, State::Authorize);
        assert_eq!(change.approval, Approval::Requested);
        assert_eq!(change.start_date, None);
        assert!(change.end_date.is_some());
        assert_eq!(change.sys_mod_count, 3);
    }

    #[test]
    fn missing_field_is_named() {
        let mut json = change_json();
        json.remove("approval");
        let err = ChangeRequest::from_record(&json).unwrap_err();
        assert!(matches!(err, Error::MissingField { ref field, .. } if field == "approval"));
    }

    #[test]
    fn reference_link_object_is_read_through_value() {
        let mut json = change_json();
        json.insert("sys_updated_by".into(), serde_json::json!({"link": "x", "value": "admin"}));
        assert_eq!(ChangeRequest::from_record(&json).unwrap().sys_updated_by, "admin");
    }

    #[test]
    fn approver_names_delegate() {
        let json = serde_json::json!({
            "sys_id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "state": "approved",
            "approver": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "approver.user_name": "cab.chair",
            "approver.email": "chair@acme.example", "group": "", "comments": "",
            "sys_updated_on": "2026-12-03 16:00:00", "sys_updated_by": "admin"
        });
        let approver = Approver::from_record(json.as_object().unwrap()).unwrap();
        assert!(approver.state.is_decisive());
        assert_eq!(approver.display_name(), "cab.chair (recorded by admin)");
    }
}
