//! Control endpoints under `/_sim/` (no token, never recorded or faulted): they act as the
//! humans and the world around cabgate, so a test can drive a full CHG cycle.
//!
//! | method | path | body | effect |
//! |---|---|---|---|
//! | GET | `/_sim/clock` | | `{now}` |
//! | POST | `/_sim/clock/advance` | `{"by":"2h"}` | moves the sim clock |
//! | POST | `/_sim/step` | | runs every queued job now, manual ones included |
//! | POST | `/_sim/issues` | `{project, creator, title, specs, …}` | creates issue and plan |
//! | POST | `/_sim/issues/{p}/{id}/approve` | `{principal, comment}` | approves as that user |
//! | POST | `/_sim/issues/{p}/{id}/reject` | `{principal, comment}` | rejects as that user |
//! | POST | `/_sim/issues/{p}/{id}/request` | `{principal?, comment}` | re-requests (creator) |
//! | POST | `/_sim/issues/{p}/{id}/cancel` | | sets the issue CANCELED |
//! | POST | `/_sim/tasks/finish` | `{task, status: DONE\|FAILED}` | ends a task's latest run |
//! | POST | `/_sim/plans/{p}/{id}/planCheck` | `{status}` | RUNNING, DONE, ERROR, FAILED |
//! | POST | `/_sim/token` | `{email}` | a token for any known user |
//! | GET, DELETE | `/_sim/webhooks` | | finished webhook posts (served by `sim::start`) |
//!
//! Review actions apply Bytebase's rules and answer with the same errors as the real API.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::issues::{self, Review};
use super::json::rfc3339;
use super::state::{IssueType, JobKind, NewIssue, PlanCheck};
use super::webhook::Subject;
use super::world::Spec;
use super::{Emulator, auth, rollout};

/// Handles one control request.
pub fn handle(
    emulator: &Emulator,
    method: &Method,
    path: &str,
    _query: &[(String, String)],
    body: &[u8],
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches("/_sim/").split('/').collect();
    let result = route(emulator, method, &segments, body);
    emulator.flush(&mut emulator.lock());
    match result {
        Ok(value) => (StatusCode::OK, Json(value)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid control body: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Advance {
    by: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct CreateIssue {
    project: String,
    creator: String,
    title: String,
    description: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    labels: Vec<String>,
    risk_level: Option<String>,
    draft: bool,
    specs: Vec<Spec>,
    plan_check: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ReviewAs {
    principal: String,
    comment: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FinishTask {
    task: String,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Status {
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct TokenFor {
    email: String,
}

fn route(emulator: &Emulator, method: &Method, segments: &[&str], body: &[u8]) -> ApiResult {
    let clock = &emulator.clock;
    match (method.as_str(), segments) {
        ("GET", ["clock"]) => Ok(json!({ "now": rfc3339(clock.now()) })),
        ("POST", ["clock", "advance"]) => {
            let advance: Advance = parse(body)?;
            let by = humantime::parse_duration(&advance.by).map_err(|e| {
                ApiError::invalid(format!("invalid duration {:?}: {e}", advance.by))
            })?;
            let by = TimeDelta::from_std(by).map_err(|_| ApiError::invalid("duration too long"))?;
            clock.advance(by);
            emulator.tick();
            Ok(json!({ "now": rfc3339(clock.now()) }))
        }
        ("POST", ["step"]) => Ok(json!({ "ran": emulator.step() })),
        ("POST", ["issues"]) => create_issue(emulator, parse(body)?),
        ("POST", ["issues", project, id, action]) => {
            let id: u64 = id.parse().map_err(|_| ApiError::invalid("invalid issue id"))?;
            let request: ReviewAs = parse(body)?;
            let now = clock.now();
            let mut db = emulator.lock();
            rollout::run_due_jobs(&mut db, now, false);
            let action = match *action {
                "approve" => Review::Approve,
                "reject" => Review::Reject,
                "request" => Review::Request,
                "cancel" => {
                    let issue = db
                        .issue_mut(project, id)
                        .ok_or_else(|| ApiError::not_found("issue not found"))?;
                    issue.status = "CANCELED";
                    issue.update_time = now;
                    return Ok(issues::issue_json(issue));
                }
                other => return Err(ApiError::not_found(format!("unknown action {other:?}"))),
            };
            let principal = if request.principal.is_empty() && action == Review::Request {
                db.issue(project, id).map(|i| i.creator.clone()).unwrap_or_default()
            } else {
                request.principal.strip_prefix("users/").unwrap_or(&request.principal).to_owned()
            };
            issues::review(&mut db, project, id, &principal, action, &request.comment, now)
        }
        ("POST", ["tasks", "finish"]) => {
            let request: FinishTask = parse(body)?;
            let status = match request.status.as_str() {
                "DONE" => "DONE",
                "FAILED" => "FAILED",
                other => {
                    return Err(ApiError::invalid(format!("status {other:?}: DONE or FAILED")));
                }
            };
            let now = clock.now();
            let mut db = emulator.lock();
            rollout::run_due_jobs(&mut db, now, false);
            rollout::finish_task(&mut db, &request.task, status, now)
        }
        ("POST", ["plans", project, id, "planCheck"]) => {
            let request: Status = parse(body)?;
            let now = clock.now();
            let mut db = emulator.lock();
            rollout::set_plan_check(&mut db, project, id, &request.status, now)
        }
        ("POST", ["token"]) => {
            let request: TokenFor = parse(body)?;
            let db = emulator.lock();
            if !db.users.contains_key(&request.email) {
                return Err(ApiError::not_found(format!("user {:?} not found", request.email)));
            }
            Ok(json!({ "token": auth::issue_token(&db, &request.email, clock.now()) }))
        }
        _ => Err(ApiError::unroutable(StatusCode::NOT_FOUND)),
    }
}

fn create_issue(emulator: &Emulator, request: CreateIssue) -> ApiResult {
    let now = emulator.clock.now();
    let mut db = emulator.lock();
    rollout::run_due_jobs(&mut db, now, false);
    let kind = match request.kind.as_deref() {
        None => IssueType::DatabaseChange,
        Some(t) => IssueType::parse(t).ok_or_else(|| ApiError::invalid(format!("type {t:?}")))?,
    };
    if !db.users.contains_key(&request.creator) {
        return Err(ApiError::invalid(format!(
            "creator {:?} is not a known user",
            request.creator
        )));
    }
    let plan_check = match request.plan_check.as_deref().unwrap_or("DONE") {
        "DONE" => PlanCheck::Done,
        "RUNNING" => PlanCheck::Running,
        "ERROR" => PlanCheck::Error,
        "FAILED" => PlanCheck::Failed,
        "NONE" => PlanCheck::None,
        other => return Err(ApiError::invalid(format!("planCheck {other:?}"))),
    };
    let new = NewIssue {
        project: request.project.clone(),
        title: request.title,
        description: request.description,
        kind,
        creator: request.creator,
        labels: request.labels,
        risk_level: request.risk_level,
        draft: request.draft,
        specs: request.specs,
        plan_check,
    };
    let draft = new.draft;
    let creator = new.creator.clone();
    let (id, _plan) = db.insert_issue(new, None, now).map_err(ApiError::not_found)?;
    // NOTE: a draft posts nothing until submitted, and submitting is not emulated.
    if !draft {
        db.emit("ISSUE_CREATED", &request.project, Subject::Issue(id), &creator);
    }
    if kind == IssueType::DatabaseChange {
        let delay = db.timing.finding;
        db.queue(now, delay, JobKind::Finding { project: request.project.clone(), issue: id });
    } else {
        issues::finish_finding(&mut db, &request.project, id, now);
    }
    let issue =
        db.issue(&request.project, id).ok_or_else(|| ApiError::internal("issue vanished"))?;
    Ok(issues::issue_json(issue))
}
