//! The change model: defaults on insert and the state transitions the base normal, standard and
//! emergency models allow, with the business-rule refusals that make a PATCH answer 200 and
//! change nothing (reference §7.5).
//!
//! Normal: New(-5) → Assess(-4) requests approval (needs an `assignment_group`); the
//! approval engine ([`super::approvals`]) moves it to Scheduled(-2) when approved, back to New with
//! `approval=rejected` when rejected. Scheduled → Implement(-1) needs `approval=approved`;
//! Implement → Review(0) needs the change not on hold; Review → Closed(3) needs `close_code` and
//! `close_notes`. Cancel(4) from any open state but Review and Closed. Emergency skips Assess:
//! New → Authorize(-3) requests approval. Standard is pre-approved: New → Scheduled.
//!
//! NOTE: the base model has two approval rounds (Assess: technical approval, Authorize: CAB);
//! this emulator runs one round, by the CAB group of the world (or the CHG's assignment group),
//! and goes straight to Scheduled. A custom state (`extra_states`) can only be entered and left
//! through the control endpoints: the model refuses every API transition out of or into it.

use super::World;
use super::approvals;
use super::records::{Db, Record};
use super::schema;

/// New.
pub const NEW: &str = "-5";
/// Assess.
pub const ASSESS: &str = "-4";
/// Authorize.
pub const AUTHORIZE: &str = "-3";
/// Scheduled.
pub const SCHEDULED: &str = "-2";
/// Implement.
pub const IMPLEMENT: &str = "-1";
/// Review.
pub const REVIEW: &str = "0";
/// Closed.
pub const CLOSED: &str = "3";
/// Canceled.
pub const CANCELED: &str = "4";

/// Fills the defaults of a new row: number, state, approval, active, opened_*, and `""` for
/// every field left unset (so every field renders, as on an instance).
pub fn defaults_on_insert(db: &mut Db, table: &str, rec: &mut Record, user: &str, now: &str) {
    let Some(schema_table) = schema::table(table) else { return };
    let user_id = db.user_id(user).unwrap_or_default();
    match table {
        "change_request" => {
            set_default(rec, "state", NEW);
            set_default(rec, "approval", "not requested");
            set_default(rec, "type", "normal");
            set_default(rec, "on_hold", "false");
            set_default(rec, "cab_required", "false");
            set_default(rec, "upon_reject", "cancel");
            let open = !matches!(rec.get("state").map(String::as_str), Some(CLOSED | CANCELED));
            set_default(rec, "active", if open { "true" } else { "false" });
        }
        "incident" => {
            set_default(rec, "state", "1");
            set_default(rec, "active", "true");
            set_default(rec, "urgency", "3");
            set_default(rec, "impact", "3");
            let field = |name: &str| rec.get(name).cloned().unwrap_or_default();
            let priority = priority(&field("impact"), &field("urgency"));
            rec.insert("priority".into(), priority);
        }
        _ => {}
    }
    if matches!(table, "change_request" | "incident") {
        if rec.get("number").is_none_or(String::is_empty) {
            let number = db.next_number(schema_table.name);
            rec.insert("number".into(), number);
        }
        set_default(rec, "opened_at", now);
        set_default(rec, "opened_by", &user_id);
    }
    for field in schema_table.all_fields() {
        rec.entry(field.name.to_string()).or_default();
    }
}

/// The base priority lookup of an incident: impact × urgency, 1 (Critical) to 5 (Planning).
fn priority(impact: &str, urgency: &str) -> String {
    match (impact.parse::<u8>(), urgency.parse::<u8>()) {
        (Ok(i @ 1..=3), Ok(u @ 1..=3)) => (i + u - 1).to_string(),
        _ => "5".into(),
    }
}

fn set_default(rec: &mut Record, field: &str, value: &str) {
    if rec.get(field).is_none_or(String::is_empty) {
        rec.insert(field.to_string(), value.to_string());
    }
}

/// Why the model refuses a transition (logged, never returned: the instance stays silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such transition in the model.
    NotInModel,
    /// New → Assess without an assignment group.
    NoAssignmentGroup,
    /// Scheduled → Implement before approval.
    NotApproved,
    /// Implement → Review while on hold.
    OnHold,
    /// Review → Closed without close code and notes.
    NoCloseFields,
}

/// What a permitted transition sets off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    None,
    RequestApproval,
    PreApprove,
    Cancel,
    Close,
}

fn check(rec: &Record, from: &str, to: &str) -> Result<Effect, Refusal> {
    let field = |name: &str| rec.get(name).map(String::as_str).unwrap_or_default();
    let kind = field("type");
    let open = matches!(from, NEW | ASSESS | AUTHORIZE | SCHEDULED | IMPLEMENT);
    match (from, to) {
        (_, CANCELED) if open => Ok(Effect::Cancel),
        (NEW, ASSESS) if kind != "standard" && kind != "emergency" => {
            if field("assignment_group").is_empty() {
                Err(Refusal::NoAssignmentGroup)
            } else {
                Ok(Effect::RequestApproval)
            }
        }
        (NEW, AUTHORIZE) if kind == "emergency" => Ok(Effect::RequestApproval),
        (NEW, SCHEDULED) if kind == "standard" => Ok(Effect::PreApprove),
        (SCHEDULED, IMPLEMENT) if field("approval") == "approved" => Ok(Effect::None),
        (SCHEDULED, IMPLEMENT) => Err(Refusal::NotApproved),
        (IMPLEMENT, REVIEW) if field("on_hold") == "true" => Err(Refusal::OnHold),
        (IMPLEMENT, REVIEW) => Ok(Effect::None),
        (REVIEW, CLOSED) if field("close_code").is_empty() || field("close_notes").is_empty() => {
            Err(Refusal::NoCloseFields)
        }
        (REVIEW, CLOSED) => Ok(Effect::Close),
        _ => Err(Refusal::NotInModel),
    }
}

/// Applies a requested state change to a change request whose other fields are already
/// written. Returns whether the state changed; a refusal leaves the state as it was.
pub fn request_state(
    db: &mut Db,
    world: &World,
    chg_id: &str,
    to: &str,
    user: &str,
    now: &str,
) -> bool {
    let Some(rec) = db.get("change_request", chg_id) else { return false };
    let from = rec.get("state").cloned().unwrap_or_default();
    if from == to {
        return false;
    }
    let effect = match check(rec, &from, to) {
        Ok(effect) => effect,
        Err(refusal) => {
            tracing::debug!(chg = %chg_id, %from, %to, ?refusal, "state change refused");
            return false;
        }
    };
    set_state(db, chg_id, to);
    match effect {
        Effect::None => {}
        Effect::RequestApproval => approvals::request(db, world, chg_id, user, now),
        Effect::PreApprove => set(db, chg_id, "approval", "approved"),
        Effect::Cancel => {
            approvals::cancel_pending(db, chg_id, user, now);
            set(db, chg_id, "active", "false");
        }
        Effect::Close => set(db, chg_id, "active", "false"),
    }
    true
}

/// Sets the state without the model's checks (the approval engine and the control endpoints,
/// acting as the platform or as a human with rights the integration user lacks).
pub fn set_state(db: &mut Db, chg_id: &str, state: &str) {
    set(db, chg_id, "state", state);
    let active = !matches!(state, CLOSED | CANCELED);
    set(db, chg_id, "active", if active { "true" } else { "false" });
}

fn set(db: &mut Db, chg_id: &str, field: &str, value: &str) {
    if let Some(rec) = db.get_mut("change_request", chg_id) {
        rec.insert(field.to_string(), value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chg(pairs: &[(&str, &str)]) -> Record {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_normal_model_guards_its_transitions() {
        let base = chg(&[("type", "normal")]);
        assert_eq!(check(&base, NEW, ASSESS), Err(Refusal::NoAssignmentGroup));
        assert_eq!(check(&base, NEW, SCHEDULED), Err(Refusal::NotInModel));
        assert_eq!(check(&base, SCHEDULED, IMPLEMENT), Err(Refusal::NotApproved));
        let held = chg(&[("on_hold", "true")]);
        assert_eq!(check(&held, IMPLEMENT, REVIEW), Err(Refusal::OnHold));
        assert_eq!(check(&base, IMPLEMENT, CLOSED), Err(Refusal::NotInModel));
        assert_eq!(check(&base, REVIEW, CLOSED), Err(Refusal::NoCloseFields));
        assert_eq!(check(&base, REVIEW, CANCELED), Err(Refusal::NotInModel));
        assert_eq!(check(&base, CLOSED, CANCELED), Err(Refusal::NotInModel));
        assert_eq!(check(&base, IMPLEMENT, CANCELED), Ok(Effect::Cancel));
    }

    #[test]
    fn incident_priority_follows_impact_and_urgency() {
        assert_eq!(priority("1", "1"), "1");
        assert_eq!(priority("3", "1"), "3");
        assert_eq!(priority("2", "3"), "4");
        assert_eq!(priority("3", "3"), "5");
    }

    #[test]
    fn standard_is_pre_approved_and_emergency_skips_assess() {
        assert_eq!(check(&chg(&[("type", "standard")]), NEW, SCHEDULED), Ok(Effect::PreApprove));
        let emergency = chg(&[("type", "emergency")]);
        assert_eq!(check(&emergency, NEW, AUTHORIZE), Ok(Effect::RequestApproval));
        assert_eq!(check(&emergency, NEW, ASSESS), Err(Refusal::NotInModel));
    }
}
