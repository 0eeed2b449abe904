//! Control endpoints under `/_sim/` (no authentication): tests and `cabgate demo` act through
//! them as the humans around the integration — CAB members approving or rejecting, a change
//! manager cancelling, scheduling or holding a CHG — and read whole tables for assertions.
//!
//! `{chg}` is a sys_id or a number. Every endpoint answers the CHG's stored values as
//! `{"result": {...}}`; a request the platform would not allow answers 409 with the reason.
//!
//! `POST /_sim/change_request/{chg}/…` (each body may add `"by": user_name`, who acts):
//!
//! | action | body |
//! |---|---|
//! | `approve` | `{"approver": "alice", "comment": "…"}` (`by`: a delegate or admin) |
//! | `reject` | `{"approver": "alice", "comment": "the reason"}` |
//! | `cancel` | `{"reason": "…"}` (optional; written as a work note) |
//! | `window` | `{"start_date": "2026-05-01 22:00:00", "end_date": "…"}` (UTC) |
//! | `hold` | `{"on_hold": true, "reason": "…"}` |
//! | `state` | `{"state": "-1"}` (forced, without the model's checks) |
//! | `journal` | `{"element": "comments" or "work_notes", "value": "…"}` |
//!
//! `GET /_sim/table/{table}` answers every row's stored values, ACLs ignored.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::approvals::{self, Verdict};
use super::records::{self, Db, SYSTEM_USER, stamp_update};
use super::{ApiError, Shared, change, journal, schema};

/// The control routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sim/change_request/{chg}/approve", post(approve))
        .route("/_sim/change_request/{chg}/reject", post(reject))
        .route("/_sim/change_request/{chg}/cancel", post(cancel))
        .route("/_sim/change_request/{chg}/window", post(window))
        .route("/_sim/change_request/{chg}/hold", post(hold))
        .route("/_sim/change_request/{chg}/state", post(force_state))
        .route("/_sim/change_request/{chg}/journal", post(add_journal))
        .route("/_sim/table/{table}", get(dump))
}

/// A CAB member's decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The approver's user_name.
    pub approver: String,
    /// The comment (the reason, for a rejection).
    #[serde(default)]
    pub comment: String,
    /// Who acts, when not the approver (a delegate, an admin override).
    pub by: Option<String>,
}

/// A change manager's action.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Action {
    /// Acting user_name.
    pub by: Option<String>,
    /// Reason, written as a work note.
    pub reason: Option<String>,
    /// Planned start (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub start_date: Option<String>,
    /// Planned end.
    pub end_date: Option<String>,
    /// On hold or not.
    pub on_hold: Option<bool>,
    /// A state value to force.
    pub state: Option<String>,
    /// Journal field name.
    pub element: Option<String>,
    /// Journal text.
    pub value: Option<String>,
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, message, None)
}

fn chg_id(db: &Db, chg: &str) -> Result<String, ApiError> {
    db.get("change_request", chg)
        .or_else(|| db.find("change_request", "number", chg))
        .map(records::sys_id_of)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "No Record found", Some(chg)))
}

fn answer(db: &Db, id: &str) -> Response {
    let rec = db.get("change_request", id).cloned().unwrap_or_default();
    (StatusCode::OK, Json(json!({ "result": rec }))).into_response()
}

async fn approve(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(decision): Json<Decision>,
) -> Result<Response, ApiError> {
    decide(&inst, &chg, decision, Verdict::Approve)
}

async fn reject(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(decision): Json<Decision>,
) -> Result<Response, ApiError> {
    decide(&inst, &chg, decision, Verdict::Reject)
}

fn decide(
    inst: &Shared,
    chg: &str,
    decision: Decision,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let mut db = inst.db();
    let id = chg_id(&db, chg)?;
    let by = decision.by.as_deref().unwrap_or(&decision.approver);
    let row = approvals::pending_row(&db, &id, &decision.approver).ok_or_else(|| {
        conflict(&format!("{} has no requested approval on {chg}", decision.approver))
    })?;
    approvals::decide(&mut db, &inst.world, &row, verdict, &decision.comment, by, &now)
        .map_err(|e| conflict(&e.to_string()))?;
    Ok(answer(&db, &id))
}

async fn cancel(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let by = action.by.as_deref().unwrap_or(SYSTEM_USER);
    let mut db = inst.db();
    let id = chg_id(&db, chg.as_str())?;
    if !change::request_state(&mut db, &inst.world, &id, change::CANCELED, by, &now) {
        return Err(conflict("the change model does not allow cancelling from this state"));
    }
    if let Some(reason) = &action.reason {
        journal::append(&mut db, "change_request", &id, "work_notes", reason, by, &now);
    }
    touch(&mut db, &id, by, &now);
    Ok(answer(&db, &id))
}

async fn window(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let by = action.by.as_deref().unwrap_or(SYSTEM_USER);
    let mut db = inst.db();
    let id = chg_id(&db, chg.as_str())?;
    for (field, value) in [("start_date", &action.start_date), ("end_date", &action.end_date)] {
        let Some(value) = value else { continue };
        if !value.is_empty()
            && chrono::NaiveDateTime::parse_from_str(value, records::STORED_DATE_TIME).is_err()
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid date-time",
                Some(&format!("{field} must be YYYY-MM-DD HH:MM:SS (UTC)")),
            ));
        }
        set(&mut db, &id, field, value);
    }
    touch(&mut db, &id, by, &now);
    Ok(answer(&db, &id))
}

async fn hold(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let by = action.by.as_deref().unwrap_or(SYSTEM_USER);
    let mut db = inst.db();
    let id = chg_id(&db, chg.as_str())?;
    let on_hold = action.on_hold.unwrap_or(true);
    set(&mut db, &id, "on_hold", if on_hold { "true" } else { "false" });
    let reason = if on_hold { action.reason.clone().unwrap_or_default() } else { String::new() };
    set(&mut db, &id, "on_hold_reason", &reason);
    touch(&mut db, &id, by, &now);
    Ok(answer(&db, &id))
}

async fn force_state(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let by = action.by.as_deref().unwrap_or(SYSTEM_USER);
    let state = action
        .state
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "state is required", None))?;
    let mut db = inst.db();
    let id = chg_id(&db, chg.as_str())?;
    change::set_state(&mut db, &id, &state);
    touch(&mut db, &id, by, &now);
    Ok(answer(&db, &id))
}

async fn add_journal(
    State(inst): State<Shared>,
    Path(chg): Path<String>,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let now = records::stored(inst.clock.now());
    let by = action.by.as_deref().unwrap_or(SYSTEM_USER);
    let element = action.element.as_deref().unwrap_or("comments");
    if element != "comments" && element != "work_notes" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "element must be comments or work_notes",
            None,
        ));
    }
    let mut db = inst.db();
    let id = chg_id(&db, chg.as_str())?;
    let value = action.value.unwrap_or_default();
    journal::append(&mut db, "change_request", &id, element, &value, by, &now);
    touch(&mut db, &id, by, &now);
    Ok(answer(&db, &id))
}

async fn dump(State(inst): State<Shared>, Path(table): Path<String>) -> Result<Response, ApiError> {
    let table = schema::table(&table).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, &format!("Invalid table {table}"), None)
    })?;
    let db = inst.db();
    let rows = db.rows(table.name).to_vec();
    Ok((StatusCode::OK, Json(json!({ "result": rows }))).into_response())
}

fn set(db: &mut Db, id: &str, field: &str, value: &str) {
    if let Some(rec) = db.get_mut("change_request", id) {
        rec.insert(field.to_string(), value.to_string());
    }
}

fn touch(db: &mut Db, id: &str, by: &str, now: &str) {
    if let Some(rec) = db.get_mut("change_request", id) {
        stamp_update(rec, by, now);
    }
}
