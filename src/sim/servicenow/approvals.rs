//! The approval engine: a group approval per round (`sysapproval_group`) with one
//! `sysapproval_approver` row per member, and the aggregate it writes to
//! `change_request.approval`.
//!
//! Any rejection rejects; under the rule `any` the first approval approves, under `all` every
//! member must approve. Once the rule is met the remaining `requested` rows become
//! `not_required`. Approved: the CHG moves to Scheduled. Rejected: a normal or emergency CHG drops
//! back to New with `approval=rejected`; moving it to Assess again starts a new round, and the
//! rows of earlier rounds stay as they were (history), so a reader must look at the newest round.
//!
//! NOTE: with no CAB group configured and no `assignment_group`, or an empty group, a round has
//! no approvers and the CHG waits in `requested` forever (a real flow might auto-approve).

use super::records::{self, Db, Record, stamp_insert, stamp_update};
use super::{ApprovalRule, World, change, journal};

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `approved`.
    Approve,
    /// `rejected`.
    Reject,
}

/// Why a decision could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No approver row for this user awaits a decision on this CHG.
    #[error("{user} has no requested approval on {chg}")]
    NothingRequested {
        /// The user.
        user: String,
        /// The CHG number or sys_id.
        chg: String,
    },
}

/// Starts an approval round for a CHG: the CAB group's members (or the assignment group's).
pub fn request(db: &mut Db, world: &World, chg_id: &str, user: &str, now: &str) {
    let Some(chg) = db.get("change_request", chg_id) else { return };
    let cab_group = world.cab.as_ref().and_then(|c| c.group.as_deref());
    let group_id = match cab_group {
        Some(name) => db.find("sys_user_group", "name", name).map(records::sys_id_of),
        None => chg.get("assignment_group").filter(|g| !g.is_empty()).cloned(),
    };
    set_chg(db, chg_id, "approval", "requested");
    let Some(group_id) = group_id else { return };
    let round_id = db.new_sys_id();
    let mut round = Record::from([
        ("sys_id".into(), round_id.clone()),
        ("parent".into(), chg_id.to_string()),
        ("assignment_group".into(), group_id.clone()),
        ("approval".into(), "requested".into()),
    ]);
    stamp_insert(&mut round, user, now);
    db.push("sysapproval_group", round);
    let members: Vec<String> = db
        .rows("sys_user_grmember")
        .iter()
        .filter(|m| m.get("group").is_some_and(|g| *g == group_id))
        .filter_map(|m| m.get("user").cloned())
        .collect();
    for member in members {
        let mut row = Record::from([
            ("sys_id".into(), db.new_sys_id()),
            ("approver".into(), member),
            ("state".into(), "requested".into()),
            ("sysapproval".into(), chg_id.to_string()),
            ("document_id".into(), chg_id.to_string()),
            ("source_table".into(), "change_request".into()),
            ("group".into(), round_id.clone()),
            ("comments".into(), String::new()),
            ("due_date".into(), String::new()),
        ]);
        stamp_insert(&mut row, user, now);
        db.push("sysapproval_approver", row);
    }
}

/// The approver row of `user_name` awaiting a decision on a CHG, newest round first.
pub fn pending_row(db: &Db, chg_id: &str, user_name: &str) -> Option<String> {
    let user_id = db.user_id(user_name)?;
    db.rows("sysapproval_approver")
        .iter()
        .rev()
        .find(|r| {
            r.get("sysapproval").is_some_and(|s| s == chg_id)
                && r.get("approver").is_some_and(|a| *a == user_id)
                && r.get("state").is_some_and(|s| s == "requested")
        })
        .map(records::sys_id_of)
}

/// Records a decision on an approver row as `by` (the approver, or a delegate or admin acting
/// for them: `sys_updated_by` says who), with a comment, and applies the group's rule.
pub fn decide(
    db: &mut Db,
    world: &World,
    row_id: &str,
    verdict: Verdict,
    comment: &str,
    by: &str,
    now: &str,
) -> Result<(), DecisionError> {
    let nothing = |db: &Db| DecisionError::NothingRequested {
        user: by.to_string(),
        chg: db
            .get("sysapproval_approver", row_id)
            .and_then(|r| r.get("sysapproval").cloned())
            .unwrap_or_else(|| row_id.to_string()),
    };
    let Some(row) = db.get_mut("sysapproval_approver", row_id) else { return Err(nothing(db)) };
    if row.get("state").is_none_or(|s| s != "requested") {
        return Err(nothing(db));
    }
    let state = match verdict {
        Verdict::Approve => "approved",
        Verdict::Reject => "rejected",
    };
    row.insert("state".into(), state.into());
    stamp_update(row, by, now);
    let round_id = row.get("group").cloned().unwrap_or_default();
    let chg_id = row.get("sysapproval").cloned().unwrap_or_default();
    journal::append(db, "sysapproval_approver", row_id, "comments", comment, by, now);

    let rule = world.cab.as_ref().map(|c| c.rule).unwrap_or_default();
    let round: Vec<&Record> = db
        .rows("sysapproval_approver")
        .iter()
        .filter(|r| r.get("group").is_some_and(|g| *g == round_id) && !round_id.is_empty())
        .collect();
    let all_approved = round.iter().all(|r| r.get("state").is_some_and(|s| s == "approved"));
    let outcome = match verdict {
        Verdict::Reject => Some("rejected"),
        Verdict::Approve if rule == ApprovalRule::Any || all_approved => Some("approved"),
        Verdict::Approve => None,
    };
    let Some(outcome) = outcome else { return Ok(()) };
    let others: Vec<String> = round
        .iter()
        .filter(|r| r.get("state").is_some_and(|s| s == "requested"))
        .map(|r| records::sys_id_of(r))
        .collect();
    for other in others {
        if let Some(r) = db.get_mut("sysapproval_approver", &other) {
            r.insert("state".into(), "not_required".into());
            stamp_update(r, by, now);
        }
    }
    if let Some(r) = db.get_mut("sysapproval_group", &round_id) {
        r.insert("approval".into(), outcome.into());
        stamp_update(r, by, now);
    }
    set_chg(db, &chg_id, "approval", outcome);
    let waiting = db
        .get("change_request", &chg_id)
        .and_then(|c| c.get("state"))
        .is_some_and(|s| s == change::ASSESS || s == change::AUTHORIZE);
    if waiting {
        let next = if outcome == "approved" { change::SCHEDULED } else { change::NEW };
        change::set_state(db, &chg_id, next);
    }
    if let Some(chg) = db.get_mut("change_request", &chg_id) {
        stamp_update(chg, by, now);
    }
    Ok(())
}

/// Cancels the rows still awaiting a decision (the CHG was canceled).
pub fn cancel_pending(db: &mut Db, chg_id: &str, user: &str, now: &str) {
    let pending: Vec<String> = db
        .rows("sysapproval_approver")
        .iter()
        .filter(|r| {
            r.get("sysapproval").is_some_and(|s| s == chg_id)
                && r.get("state").is_some_and(|s| s == "requested")
        })
        .map(records::sys_id_of)
        .collect();
    for id in pending {
        if let Some(r) = db.get_mut("sysapproval_approver", &id) {
            r.insert("state".into(), "cancelled".into());
            stamp_update(r, user, now);
        }
    }
}

fn set_chg(db: &mut Db, chg_id: &str, field: &str, value: &str) {
    if let Some(rec) = db.get_mut("change_request", chg_id) {
        rec.insert(field.to_string(), value.to_string());
    }
}
