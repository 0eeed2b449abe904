//! Projects (`ProjectService`): list (workspace `bb.projects.list`), search (projects where the
//! caller has `bb.projects.get`), get. Webhook URLs are write-only and never returned.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::json::Obj;
use super::state::{Db, ProjectRec};
use super::{Call, list_response, page, page_offset, page_size};

/// A project in the API's JSON shape.
///
/// Webhooks are listed without their URL; their posts are built in `webhook.rs` and sent
/// through the relay by `delivery.rs`.
pub fn project_json(project: &ProjectRec) -> Value {
    let c = &project.config;
    let webhooks = c
        .webhooks
        .iter()
        .map(|w| {
            Obj::new()
                .str("name", &format!("projects/{}/webhooks/{}", c.id, w.id))
                .enumv("type", &w.kind)
                .str("title", &w.title)
                .strs("notificationTypes", &w.notification_types)
                .bool("directMessage", w.direct_message)
                .build()
        })
        .collect();
    let labels: Map<String, Value> =
        c.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let retry = (c.maximum_retries != 0)
        .then(|| Obj::new().int("maximumRetries", c.maximum_retries).build());
    Obj::new()
        .str("name", &format!("projects/{}", c.id))
        .enumv("state", c.state.as_deref().unwrap_or("ACTIVE"))
        .str("title", &c.title)
        .list("webhooks", webhooks)
        .list("issueLabels", c.issue_labels.clone())
        .bool("forceIssueLabels", c.force_issue_labels)
        .bool("enforceIssueTitle", c.enforce_issue_title)
        .bool("allowSelfApproval", c.allow_self_approval)
        .opt("executionRetryPolicy", retry)
        .int("ciSamplingSize", c.ci_sampling_size)
        .int("parallelTasksPerRollout", c.parallel_tasks_per_rollout)
        .map("labels", labels)
        .bool("enforceSqlReview", c.enforce_sql_review)
        .bool("requireIssueApproval", c.require_issue_approval)
        .bool("requirePlanCheckNoError", c.require_plan_check_no_error)
        .bool("allowRequestRole", c.allow_request_role)
        .bool("allowJustInTimeAccess", c.allow_just_in_time_access)
        .build()
}

fn visible(project: &ProjectRec, show_deleted: bool) -> bool {
    show_deleted || project.config.state.as_deref().unwrap_or("ACTIVE") != "DELETED"
}

/// `GET /v1/projects` (paged).
pub fn list_projects(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    call.require(db, "bb.projects.list", None)?;
    let size = page_size(call)?;
    let offset = page_offset(call.param(&["pageToken", "page_token"]), size)?;
    let show_deleted = call.param(&["showDeleted", "show_deleted"]) == Some("true");
    if show_deleted {
        let (range, next) = page(db.projects.len(), offset, size);
        let items = db.projects[range].iter().map(project_json).collect();
        return Ok(list_response("projects", items, next));
    }
    let all: Vec<&ProjectRec> = db.projects.iter().filter(|p| visible(p, false)).collect();
    let (range, next) = page(all.len(), offset, size);
    Ok(list_response("projects", all[range].iter().map(|p| project_json(p)).collect(), next))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct SearchBody {
    filter: String,
    page_size: i64,
    page_token: String,
    show_deleted: bool,
    order_by: String,
}

/// `POST /v1/projects:search`: projects where the caller has `bb.projects.get`.
pub fn search_projects(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    let body: SearchBody = call.body()?;
    if !body.filter.is_empty() || !body.order_by.is_empty() {
        // NOTE: search filters and ordering are not emulated; refuse rather than ignore.
        return Err(ApiError::invalid("the emulator does not support project search filters"));
    }
    let size = match body.page_size {
        n if n < 0 => return Err(ApiError::invalid("page size must be non-negative")),
        0 => 10,
        n => n.min(1000) as usize,
    };
    let offset = page_offset(Some(&body.page_token), size)?;
    let workspace_wide = db.has_permission(&call.caller, "bb.projects.get", None, call.now);
    let all: Vec<&ProjectRec> = db
        .projects
        .iter()
        .filter(|p| visible(p, body.show_deleted))
        .filter(|p| {
            workspace_wide
                || db.has_permission(&call.caller, "bb.projects.get", Some(&p.config.id), call.now)
        })
        .collect();
    let (range, next) = page(all.len(), offset, size);
    Ok(list_response("projects", all[range].iter().map(|p| project_json(p)).collect(), next))
}

/// `GET /v1/projects/{p}`.
pub fn get_project(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let project = db
        .project(&args[0])
        .ok_or_else(|| ApiError::not_found(format!("project {:?} not found", args[0])))?;
    call.require(db, "bb.projects.get", Some(&args[0]))?;
    Ok(project_json(project))
}
