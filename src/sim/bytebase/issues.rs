//! Issues (`IssueService`): get, list, search, update, comments, and the review actions
//! (`:approve`, `:reject`, `:request`) with Bytebase's rules (`backend/component/review`).
//!
//! The `approval_status` and `current_approver` filters are applied after the page is cut, as
//! Bytebase does, so a page can be short or empty while `nextPageToken` is set.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::approval::{self, approval_status, gate_approved, next_role};
use super::error::{ApiError, ApiResult};
use super::json::Obj;
use super::state::{CommentRec, Db, IssueRec, JobKind};
use super::webhook::Subject;
use super::{Call, list_response, page, page_offset};

/// An issue in the API's JSON shape.
pub fn issue_json(issue: &IssueRec) -> Value {
    let approvers = issue
        .approvers
        .iter()
        .map(|a| {
            Obj::new()
                .enumv("status", a.status)
                .str("principal", &format!("users/{}", a.principal))
                .build()
        })
        .collect();
    let template = issue.template.as_ref().map(|t| {
        Obj::new()
            .msg("flow", Obj::new().strs("roles", &t.flow.roles).build())
            .str("title", &t.title)
            .str("description", &t.description)
            .build()
    });
    Obj::new()
        .str("name", &issue_name(issue))
        .str("title", &issue.title)
        .str("description", &issue.description)
        .enumv("type", issue.kind.as_str())
        .enumv("status", issue.status)
        .list("approvers", approvers)
        .opt("approvalTemplate", template)
        .str("creator", &format!("users/{}", issue.creator))
        .time("createTime", Some(issue.create_time))
        .time("updateTime", Some(issue.update_time))
        .str(
            "plan",
            &issue
                .plan
                .map(|p| format!("projects/{}/plans/{p}", issue.project))
                .unwrap_or_default(),
        )
        .enumv("riskLevel", issue.risk_level.as_deref().unwrap_or(""))
        .strs("labels", &issue.labels)
        .enumv("approvalStatus", approval_status(issue))
        .bool("draft", issue.draft)
        .build()
}

/// `projects/{p}/issues/{id}`.
pub fn issue_name(issue: &IssueRec) -> String {
    format!("projects/{}/issues/{}", issue.project, issue.id)
}

fn parse_id(raw: &str, what: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::invalid(format!("invalid {what} id {raw:?}")))
}

fn find<'a>(db: &'a Db, project: &str, raw_id: &str) -> ApiResult<&'a IssueRec> {
    let id = parse_id(raw_id, "issue")?;
    if db.project(project).is_none() {
        return Err(ApiError::not_found(format!("project {project:?} not found")));
    }
    db.issue(project, id).ok_or_else(|| {
        ApiError::not_found(format!("issue projects/{project}/issues/{id} not found"))
    })
}

/// `GET /v1/projects/{p}/issues/{id}` (`force` is ignored).
pub fn get_issue(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let issue = find(db, &args[0], &args[1])?;
    call.require(db, "bb.issues.get", Some(&args[0]))?;
    Ok(issue_json(issue))
}

/// One clause of an issue filter.
#[derive(Debug, Clone, PartialEq)]
enum Clause {
    Status(Vec<String>),
    Type(Vec<String>),
    Labels(Vec<String>),
    RiskLevel(Vec<String>),
    Creator(String),
    CreateTime(String, DateTime<Utc>),
    ApprovalStatus(String),
    CurrentApprover(String),
}

fn parse_values(raw: &str) -> Option<Vec<String>> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        inner.split(',').map(|v| unquote(v.trim())).collect()
    } else {
        unquote(raw).map(|v| vec![v])
    }
}

fn unquote(raw: &str) -> Option<String> {
    let raw = raw.trim();
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .map(str::to_owned)
}

/// Splits on `&&` outside quotes.
fn split_and(filter: &str) -> Vec<String> {
    let (mut parts, mut current, mut quote) = (Vec::new(), String::new(), None);
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '&' && chars.get(i + 1) == Some(&'&') => {
                parts.push(std::mem::take(&mut current));
                i += 2;
                continue;
            }
            _ => {}
        }
        current.push(c);
        i += 1;
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_owned()).collect()
}

fn parse_filter(filter: &str) -> ApiResult<Vec<Clause>> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    let bad = |why: String| ApiError::invalid(format!("invalid filter {filter:?}: {why}"));
    let mut clauses = Vec::new();
    for part in split_and(filter) {
        if part.contains("||") || part.contains("!=") {
            return Err(bad("only && of == / in comparisons is supported".into()));
        }
        let (field, op, value) = ["==", ">=", "<=", " in "]
            .iter()
            .find_map(|op| part.split_once(op).map(|(f, v)| (f.trim(), op.trim(), v.trim())))
            .ok_or_else(|| bad(format!("unsupported expression {part:?}")))?;
        let values = parse_values(value).ok_or_else(|| bad(format!("invalid value {value:?}")))?;
        let single = || -> ApiResult<String> {
            match (op, values.as_slice()) {
                ("==", [v]) => Ok(v.clone()),
                _ => Err(bad(format!("{field} supports only =="))),
            }
        };
        let many = || -> ApiResult<Vec<String>> {
            match op {
                "==" | "in" => Ok(values.clone()),
                _ => Err(bad(format!("{field} supports only == and in"))),
            }
        };
        clauses.push(match field {
            "status" => Clause::Status(many()?),
            "type" => Clause::Type(many()?),
            "labels" => Clause::Labels(many()?),
            "risk_level" if op == "in" => Clause::RiskLevel(values.clone()),
            "creator" => Clause::Creator(single()?),
            "create_time" if op == ">=" || op == "<=" => {
                let [v] = values.as_slice() else { return Err(bad("one timestamp".into())) };
                let t = DateTime::parse_from_rfc3339(v)
                    .map_err(|e| bad(format!("invalid time {v:?}: {e}")))?
                    .with_timezone(&Utc);
                Clause::CreateTime(op.to_owned(), t)
            }
            "approval_status" => Clause::ApprovalStatus(single()?),
            "current_approver" => Clause::CurrentApprover(single()?),
            other => return Err(bad(format!("unsupported filter field {other:?}"))),
        });
    }
    Ok(clauses)
}

/// Whether the pre-page clauses hold for an issue.
fn pre_filter(issue: &IssueRec, clauses: &[Clause], query: &str) -> bool {
    if issue.draft {
        return false;
    }
    if !query.is_empty() {
        let q = query.to_lowercase();
        if !issue.title.to_lowercase().contains(&q)
            && !issue.description.to_lowercase().contains(&q)
        {
            return false;
        }
    }
    clauses.iter().all(|c| match c {
        Clause::Status(v) => v.iter().any(|s| s == issue.status),
        Clause::Type(v) => v.iter().any(|t| t == issue.kind.as_str()),
        Clause::Labels(v) => v.iter().any(|l| issue.labels.contains(l)),
        Clause::RiskLevel(v) => issue.risk_level.as_ref().is_some_and(|r| v.contains(r)),
        Clause::Creator(c) => c.strip_prefix("users/").unwrap_or(c) == issue.creator,
        Clause::CreateTime(op, t) => {
            if op == ">=" {
                issue.create_time >= *t
            } else {
                issue.create_time <= *t
            }
        }
        Clause::ApprovalStatus(_) | Clause::CurrentApprover(_) => true,
    })
}

/// Whether the post-page clauses hold.
fn post_filter(db: &Db, issue: &IssueRec, clauses: &[Clause], now: DateTime<Utc>) -> bool {
    clauses.iter().all(|c| match c {
        Clause::ApprovalStatus(s) => approval_status(issue) == s,
        Clause::CurrentApprover(user) => {
            let email = user.strip_prefix("users/").unwrap_or(user);
            next_role(issue)
                .is_some_and(|role| approval::holds_role(db, email, role, &issue.project, now))
        }
        _ => true,
    })
}

struct Query<'a> {
    project: &'a str,
    filter: &'a str,
    query: &'a str,
    order_by: &'a str,
    page_size: usize,
    page_token: &'a str,
}

fn order_key(order_by: &str) -> ApiResult<Vec<(String, bool)>> {
    let mut keys = Vec::new();
    for part in order_by.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let field = words.next().unwrap_or_default();
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(ApiError::invalid(format!("invalid order {other:?}"))),
        };
        if field != "create_time" && field != "update_time" {
            return Err(ApiError::invalid(format!("invalid order by field {field:?}")));
        }
        keys.push((field.to_owned(), desc));
    }
    Ok(keys)
}

fn run_query(db: &Db, call: &Call, q: Query<'_>) -> ApiResult {
    let clauses = parse_filter(q.filter)?;
    let order = order_key(q.order_by)?;
    let offset = page_offset(Some(q.page_token), q.page_size)?;
    let projects: Vec<&str> = if q.project == "-" {
        let wide = db.has_permission(&call.caller, "bb.issues.get", None, call.now);
        db.projects
            .iter()
            .map(|p| p.config.id.as_str())
            .filter(|p| wide || db.has_permission(&call.caller, "bb.issues.get", Some(p), call.now))
            .collect()
    } else {
        vec![q.project]
    };
    let mut all: Vec<&IssueRec> = projects
        .iter()
        .filter_map(|p| db.issues.get(*p))
        .flat_map(|m| m.values())
        .filter(|i| pre_filter(i, &clauses, q.query))
        .collect();
    all.sort_by(|a, b| {
        for (field, desc) in &order {
            let (x, y) = if field == "create_time" {
                (a.create_time, b.create_time)
            } else {
                (a.update_time, b.update_time)
            };
            let ord = if *desc { y.cmp(&x) } else { x.cmp(&y) };
            if ord.is_ne() {
                return ord;
            }
        }
        b.id.cmp(&a.id)
    });
    let (range, next) = page(all.len(), offset, q.page_size);
    let items = all[range]
        .iter()
        .filter(|i| post_filter(db, i, &clauses, call.now))
        .map(|i| issue_json(i))
        .collect();
    Ok(list_response("issues", items, next))
}

/// `GET /v1/projects/{p}/issues` (concrete project only).
pub fn list_issues(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    if args[0] == "-" {
        return Err(ApiError::invalid("ListIssues needs a concrete project; use issues:search"));
    }
    if db.project(&args[0]).is_none() {
        return Err(ApiError::not_found(format!("project {:?} not found", args[0])));
    }
    call.require(db, "bb.issues.list", Some(&args[0]))?;
    let page_size = super::page_size(call)?;
    run_query(
        db,
        call,
        Query {
            project: &args[0],
            filter: call.param(&["filter"]).unwrap_or(""),
            query: call.param(&["query"]).unwrap_or(""),
            order_by: call.param(&["orderBy", "order_by"]).unwrap_or(""),
            page_size,
            page_token: call.param(&["pageToken", "page_token"]).unwrap_or(""),
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct SearchBody {
    parent: String,
    filter: String,
    query: String,
    order_by: String,
    page_size: i64,
    page_token: String,
}

/// `POST /v1/projects/{p}/issues:search` (`projects/-` = every project the caller can read).
pub fn search_issues(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let body: SearchBody = call.body()?;
    let _ = &body.parent;
    if args[0] != "-" {
        if db.project(&args[0]).is_none() {
            return Err(ApiError::not_found(format!("project {:?} not found", args[0])));
        }
        call.require(db, "bb.issues.get", Some(&args[0]))?;
    }
    let page_size = match body.page_size {
        n if n < 0 => return Err(ApiError::invalid("page size must be non-negative")),
        0 => 10,
        n => n.min(1000) as usize,
    };
    run_query(
        db,
        call,
        Query {
            project: &args[0],
            filter: &body.filter,
            query: &body.query,
            order_by: &body.order_by,
            page_size,
            page_token: &body.page_token,
        },
    )
}

/// The Issue message as a request body: output-only fields are accepted and ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct IssueBody {
    name: String,
    title: Option<String>,
    description: Option<String>,
    labels: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Value,
    status: Value,
    approvers: Value,
    approval_template: Value,
    creator: Value,
    create_time: Value,
    update_time: Value,
    plan: Value,
    role_grant: Value,
    risk_level: Value,
    approval_status: Value,
    access_grant: Value,
    draft: Value,
}

/// `PATCH /v1/projects/{p}/issues/{id}?update_mask=title,description,labels`. A label change
/// before the rollout exists resets approval (CHECKING, approvers cleared).
pub fn update_issue(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let issue = find(db, &args[0], &args[1])?;
    let id = issue.id;
    call.require(db, "bb.issues.update", Some(&args[0]))?;
    let body: IssueBody = call.body()?;
    let _ = (&body.name, &body.kind, &body.status, &body.approvers, &body.approval_template);
    let _ = (&body.creator, &body.create_time, &body.update_time, &body.plan, &body.role_grant);
    let _ = (&body.risk_level, &body.approval_status, &body.access_grant, &body.draft);
    let mask = call.param(&["update_mask", "updateMask"]).unwrap_or("");
    if mask.trim().is_empty() {
        return Err(ApiError::invalid("update_mask is required"));
    }
    let mut reset = false;
    let has_rollout =
        issue.plan.and_then(|p| db.plans.get(&p)).is_some_and(|p| p.rollout.is_some());
    let now = call.now;
    let record = db.issue_mut(&args[0], id).ok_or_else(|| ApiError::internal("issue vanished"))?;
    for path in mask.split(',').map(str::trim) {
        match path {
            "title" => record.title = body.title.clone().unwrap_or_default(),
            "description" => record.description = body.description.clone().unwrap_or_default(),
            "labels" => {
                let labels = body.labels.clone().unwrap_or_default();
                if labels != record.labels {
                    record.labels = labels;
                    reset = !has_rollout;
                }
            }
            other => {
                return Err(ApiError::invalid(format!("unsupported update_mask path {other:?}")));
            }
        }
    }
    record.update_time = now;
    if reset {
        record.finding_done = false;
        record.template = None;
        record.approvers.clear();
        if record.kind == super::state::IssueType::DatabaseChange {
            let project = args[0].clone();
            let delay = db.timing.finding;
            db.queue(now, delay, JobKind::Finding { project, issue: id });
        } else {
            finish_finding(db, &args[0], id, now);
        }
    }
    find(db, &args[0], &args[1]).map(issue_json)
}

fn comment_json(issue: &IssueRec, c: &CommentRec) -> Value {
    let approval = c.approval.map(|s| Obj::new().enumv("status", s).build());
    Obj::new()
        .str("name", &format!("{}/issueComments/{}", issue_name(issue), c.id))
        .str("comment", &c.comment)
        .opt("approval", approval)
        .time("createTime", Some(c.create_time))
        .time("updateTime", Some(c.create_time))
        .str("creator", &format!("users/{}", c.creator))
        .build()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct CommentBody {
    name: String,
    comment: String,
    create_time: Value,
    update_time: Value,
    creator: Value,
}

/// `POST /v1/projects/{p}/issues/{id}:comment` body `{"comment":"…"}` (empty → 400).
pub fn create_comment(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let id = find(db, &args[0], &args[1])?.id;
    call.require(db, "bb.issueComments.create", Some(&args[0]))?;
    let body: CommentBody = call.body()?;
    let _ = (&body.name, &body.create_time, &body.update_time, &body.creator);
    if body.comment.trim().is_empty() {
        return Err(ApiError::invalid("issue comment is empty"));
    }
    let comment = add_comment(db, &args[0], id, &call.caller, &body.comment, None, call.now)?;
    let issue = find(db, &args[0], &args[1])?;
    Ok(comment_json(issue, &comment))
}

fn add_comment(
    db: &mut Db,
    project: &str,
    id: u64,
    author: &str,
    text: &str,
    approval: Option<&'static str>,
    now: DateTime<Utc>,
) -> ApiResult<CommentRec> {
    let comment_id = db.next_comment;
    db.next_comment += 1;
    let comment = CommentRec {
        id: comment_id,
        comment: text.to_owned(),
        creator: author.to_owned(),
        create_time: now,
        approval,
    };
    let issue = db.issue_mut(project, id).ok_or_else(|| ApiError::internal("issue vanished"))?;
    issue.comments.push(comment.clone());
    Ok(comment)
}

/// `GET /v1/projects/{p}/issues/{id}/issueComments` (paged, oldest first).
pub fn list_comments(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let issue = find(db, &args[0], &args[1])?;
    call.require(db, "bb.issueComments.list", Some(&args[0]))?;
    let size = super::page_size(call)?;
    let offset = page_offset(call.param(&["pageToken", "page_token"]), size)?;
    let (range, next) = page(issue.comments.len(), offset, size);
    let items = issue.comments[range].iter().map(|c| comment_json(issue, c)).collect();
    Ok(list_response("issueComments", items, next))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ReviewBody {
    name: String,
    comment: String,
}

/// A review action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// `:approve`.
    Approve,
    /// `:reject`.
    Reject,
    /// `:request`.
    Request,
}

/// `POST …/issues/{id}:approve`.
pub fn approve(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    review_call(db, call, args, Review::Approve)
}

/// `POST …/issues/{id}:reject`.
pub fn reject(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    review_call(db, call, args, Review::Reject)
}

/// `POST …/issues/{id}:request`.
pub fn request(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    review_call(db, call, args, Review::Request)
}

fn review_call(db: &mut Db, call: &Call, args: &[String], action: Review) -> ApiResult {
    let body: ReviewBody = call.body()?;
    let _ = &body.name;
    let id = parse_id(&args[1], "issue")?;
    review(db, &args[0], id, &call.caller, action, &body.comment, call.now)
}

/// Applies a review action as `actor`, with Bytebase's checks; returns the issue.
///
/// NOTE: plan edits are not emulated beyond `:request`, so the stale-input check
/// (`approvalInputVersion`) never fires, and `allowLastPlanEditorApproval` is not modelled.
pub fn review(
    db: &mut Db,
    project: &str,
    id: u64,
    actor: &str,
    action: Review,
    comment: &str,
    now: DateTime<Utc>,
) -> ApiResult {
    let issue = find(db, project, &id.to_string())?.clone();
    let allow_self = db.project(project).is_some_and(|p| p.config.allow_self_approval);
    // The order of checks follows `Workflow.ReviewIssue` and `applyReviewAction`.
    if issue.draft {
        return Err(ApiError::precondition(
            "draft issue must be submitted before approval actions are allowed",
        ));
    }
    if !issue.finding_done {
        return Err(ApiError::precondition("approval template finding is not done"));
    }
    let Some(template) = &issue.template else {
        return Err(ApiError::internal("approval template is required"));
    };
    let rejected = issue.approvers.iter().any(|a| a.status == "REJECTED");
    match action {
        Review::Request => {
            if !rejected {
                return Err(ApiError::invalid(
                    "cannot request issues because the issue is not rejected",
                ));
            }
            if issue.creator != actor {
                return Err(ApiError::denied(
                    "cannot request issues because you are not the issue creator",
                ));
            }
        }
        Review::Approve | Review::Reject => {
            let verb = if action == Review::Approve { "approve" } else { "reject" };
            if rejected {
                return Err(ApiError::invalid(format!(
                    "cannot {verb} because the issue has been rejected"
                )));
            }
            let Some(role) = template.flow.roles.get(issue.approvers.len()).cloned() else {
                return Err(ApiError::invalid("the issue has been approved"));
            };
            if !approval::holds_role(db, actor, &role, project, now) {
                return Err(ApiError::denied(format!(
                    "cannot {verb} because the user does not have the required permission"
                )));
            }
            if issue.creator == actor && !allow_self {
                return Err(ApiError::denied(format!(
                    "cannot {verb} because self-approval is not allowed for this project"
                )));
            }
        }
    }
    let record = db.issue_mut(project, id).ok_or_else(|| ApiError::internal("issue vanished"))?;
    let event = match action {
        Review::Approve => {
            record.approvers.push(super::state::ApproverRec {
                status: "APPROVED",
                principal: actor.to_owned(),
            });
            "APPROVED"
        }
        Review::Reject => {
            record.approvers.push(super::state::ApproverRec {
                status: "REJECTED",
                principal: actor.to_owned(),
            });
            "REJECTED"
        }
        Review::Request => {
            record.approvers.retain(|a| a.status != "REJECTED");
            "PENDING"
        }
    };
    record.update_time = now;
    let approved_now = action == Review::Approve && gate_approved(record);
    let plan = record.plan;
    if action == Review::Request
        && let Some(plan) = plan.and_then(|p| db.plans.get_mut(&p))
    {
        // A new plan version: the creator edited the plan before re-requesting.
        plan.update_time = now;
    }
    add_comment(db, project, id, actor, comment, Some(event), now)?;
    // NOTE: a re-request (`:request`) posts no webhook: the reference lists
    // ISSUE_APPROVAL_REQUESTED only after finding and after a non-final approval.
    let pending = db.issue(project, id).and_then(approval::next_role).is_some();
    match action {
        Review::Approve if approved_now => {
            db.emit("ISSUE_APPROVED", project, Subject::Issue(id), actor);
        }
        Review::Approve if pending => {
            let creator = issue.creator.clone();
            db.emit("ISSUE_APPROVAL_REQUESTED", project, Subject::Issue(id), &creator);
        }
        Review::Reject => db.emit("ISSUE_SENT_BACK", project, Subject::Issue(id), actor),
        _ => {}
    }
    if approved_now && let Some(plan) = plan {
        let delay = db.timing.rollout;
        db.queue(now, delay, JobKind::CreateRollout { plan });
    }
    find(db, project, &id.to_string()).map(issue_json)
}

/// Ends approval finding for an issue (the background runner's work), unless its plan check is
/// still running; queues rollout creation when the result is already approved (SKIPPED).
pub fn finish_finding(db: &mut Db, project: &str, id: u64, now: DateTime<Utc>) {
    let Some(issue) = db.issue(project, id) else { return };
    let plan = issue.plan;
    let waiting = plan
        .and_then(|p| db.plans.get(&p))
        .is_some_and(|p| p.plan_check == super::state::PlanCheck::Running);
    if waiting && issue.kind == super::state::IssueType::DatabaseChange {
        return;
    }
    let template = approval::find_template(db, project, id);
    let Some(issue) = db.issue_mut(project, id) else { return };
    issue.finding_done = true;
    issue.template = template;
    // A SKIPPED issue (no template) is approved for the gate but posts nothing: no
    // ISSUE_APPROVED ever, no ISSUE_APPROVAL_REQUESTED.
    if issue.status == "OPEN" && approval::next_role(issue).is_some() {
        let creator = issue.creator.clone();
        db.emit("ISSUE_APPROVAL_REQUESTED", project, Subject::Issue(id), &creator);
    }
    let Some(issue) = db.issue(project, id) else { return };
    if gate_approved(issue)
        && issue.status == "OPEN"
        && let Some(plan) = plan
    {
        let delay = db.timing.rollout;
        db.queue(now, delay, JobKind::CreateRollout { plan });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_documented_subset() {
        let filter = concat!(
            r#"status in ["OPEN", "DONE"] && approval_status == "SKIPPED""#,
            r#" && create_time >= "2026-01-01T00:00:00Z""#
        );
        let clauses = parse_filter(filter).unwrap();
        assert_eq!(clauses.len(), 3);
        assert!(parse_filter(r#"status == "OPEN" || status == "DONE""#).is_err());
        assert!(parse_filter(r#"status != "OPEN""#).is_err());
        assert!(parse_filter(r#"update_time >= "2026-01-01T00:00:00Z""#).is_err());
        assert!(parse_filter(r#"approval_status in ["PENDING"]"#).is_err());
        assert_eq!(
            parse_filter(r#"title == "a && b""#).unwrap_err().code,
            super::super::error::Code::InvalidArgument
        );
    }
}
