//! Plans, rollouts, tasks and task runs (`PlanService`, `RolloutService`), and the background
//! jobs: approval finding, the RolloutCreator and task-run progress.
//!
//! After the final approval the rollout appears asynchronously, only if every spec is a change,
//! the issue is not canceled or draft, the project not deleted, the approval current and the
//! plan check clean; otherwise it silently never does (`rollout_creator.go`). Its creation sets
//! the issue DONE and starts task runs only where the rollout policy is `automatic`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::approval::{approval_status, gate_approved};
use super::error::{ApiError, ApiResult};
use super::issues::finish_finding;
use super::json::Obj;
use super::state::{Db, JobKind, PlanCheck, PlanRec, RolloutRec, StageRec, TaskRec, TaskRunRec};
use super::webhook::Subject;
use super::{Call, list_response, page, page_offset, page_size};

/// The bot that starts automatic task runs.
const SYSTEM_BOT: &str = "support@bytebase.com";

fn plan_name(plan: &PlanRec) -> String {
    format!("projects/{}/plans/{}", plan.project, plan.id)
}

fn stage_name(plan: &PlanRec, env: &str) -> String {
    format!("{}/rollout/stages/{env}", plan_name(plan))
}

fn task_name(plan: &PlanRec, env: &str, task: u64) -> String {
    format!("{}/tasks/{task}", stage_name(plan, env))
}

fn spec_json(spec: &super::state::SpecRec) -> Value {
    let mut obj = Obj::new().str("id", &spec.id);
    if let Some(c) = &spec.change {
        obj = obj.msg(
            "changeDatabaseConfig",
            Obj::new()
                .strs("targets", &c.targets)
                .str("sheet", &c.sheet)
                .str("release", &c.release)
                .bool("enablePriorBackup", c.enable_prior_backup)
                .build(),
        );
    }
    if let Some(c) = &spec.create {
        obj = obj.msg(
            "createDatabaseConfig",
            Obj::new()
                .str("target", &c.target)
                .str("database", &c.database)
                .str(
                    "environment",
                    &if c.environment.is_empty() {
                        String::new()
                    } else {
                        format!("environments/{}", c.environment)
                    },
                )
                .build(),
        );
    }
    obj.build()
}

fn plan_json(db: &Db, plan: &PlanRec) -> Value {
    let issue = plan.issue.and_then(|i| db.issue(&plan.project, i));
    let mut check = Map::new();
    let key = match plan.plan_check {
        PlanCheck::None => None,
        PlanCheck::Running => Some("RUNNING"),
        PlanCheck::Done => Some("SUCCESS"),
        PlanCheck::Error => Some("ERROR"),
        PlanCheck::Failed => Some("FAILED"),
    };
    if let Some(key) = key {
        check.insert(key.into(), Value::from(plan.specs.len().max(1)));
    }
    let summaries = plan
        .rollout
        .as_ref()
        .map(|r| {
            r.stages
                .iter()
                .map(|s| {
                    let mut counts: Vec<(&str, i64)> = Vec::new();
                    for t in &s.tasks {
                        match counts.iter_mut().find(|(st, _)| *st == t.status()) {
                            Some((_, n)) => *n += 1,
                            None => counts.push((t.status(), 1)),
                        }
                    }
                    let counts = counts
                        .into_iter()
                        .map(|(st, n)| Obj::new().enumv("status", st).int("count", n).build())
                        .collect();
                    Obj::new()
                        .str("stage", &stage_name(plan, &s.env))
                        .list("taskStatusCounts", counts)
                        .build()
                })
                .collect()
        })
        .unwrap_or_default();
    Obj::new()
        .str("name", &plan_name(plan))
        .enumv("state", "ACTIVE")
        .str("issue", &issue.map(super::issues::issue_name).unwrap_or_default())
        .str("title", &plan.title)
        .str("description", &plan.description)
        .list("specs", plan.specs.iter().map(spec_json).collect())
        .str("creator", &format!("users/{}", plan.creator))
        .time("createTime", Some(plan.create_time))
        .time("updateTime", Some(plan.update_time))
        .map("planCheckRunStatusCount", check)
        .bool("hasRollout", plan.rollout.is_some())
        .enumv("approvalStatus", issue.map(approval_status).unwrap_or(""))
        .list("rolloutStageSummaries", summaries)
        .enumv("issueStatus", issue.map(|i| i.status).unwrap_or(""))
        .build()
}

fn task_run_json(plan: &PlanRec, env: &str, task: &TaskRec, run: &TaskRunRec) -> Value {
    Obj::new()
        .str("name", &format!("{}/taskRuns/{}", task_name(plan, env, task.id), run.id))
        .str("creator", &format!("users/{}", run.creator))
        .time("createTime", Some(run.create_time))
        .time("updateTime", Some(run.update_time))
        .enumv("status", run.status)
        .str("detail", &run.detail)
        .time("startTime", run.start_time)
        .time("runTime", run.run_time)
        .build()
}

fn task_json(plan: &PlanRec, env: &str, task: &TaskRec) -> Value {
    let spec = plan.specs.iter().find(|s| s.id == task.spec_id);
    let detail = match spec.and_then(|s| s.change.as_ref()) {
        Some(c) => ("databaseUpdate", Obj::new().str("sheet", &c.sheet).build()),
        None => ("databaseCreate", Obj::new().build()),
    };
    Obj::new()
        .str("name", &task_name(plan, env, task.id))
        .str("specId", &task.spec_id)
        .enumv("status", task.status())
        .str("skippedReason", task.skipped.as_deref().unwrap_or(""))
        .enumv("type", task.kind)
        .str("target", &task.target)
        .msg(detail.0, detail.1)
        .time("updateTime", Some(task.update_time))
        .time("runTime", task.runs.last().and_then(|r| r.run_time))
        .build()
}

fn rollout_json(plan: &PlanRec, rollout: &RolloutRec) -> Value {
    let stages = rollout
        .stages
        .iter()
        .map(|s| {
            let environment =
                if s.env == "-" { String::new() } else { format!("environments/{}", s.env) };
            Obj::new()
                .str("name", &stage_name(plan, &s.env))
                .str("id", &s.env)
                .str("environment", &environment)
                .list("tasks", s.tasks.iter().map(|t| task_json(plan, &s.env, t)).collect())
                .build()
        })
        .collect();
    Obj::new()
        .str("name", &format!("{}/rollout", plan_name(plan)))
        .str("plan", &plan_name(plan))
        .str("title", &plan.title)
        .list("stages", stages)
        .time("createTime", Some(rollout.create_time))
        .time("updateTime", Some(rollout.update_time))
        .build()
}

fn find_plan<'a>(db: &'a Db, project: &str, raw: &str) -> ApiResult<&'a PlanRec> {
    let not_found =
        || ApiError::not_found(format!("plan projects/{project}/plans/{raw} not found"));
    let id: u64 = raw.parse().map_err(|_| not_found())?;
    db.plans.get(&id).filter(|p| p.project == project).ok_or_else(not_found)
}

/// `GET /v1/projects/{p}/plans/{id}`.
pub fn get_plan(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    call.require(db, "bb.plans.get", Some(&args[0]))?;
    Ok(plan_json(db, plan))
}

/// `GET /v1/projects/{p}/plans` (`projects/-` ok; filter `has_rollout`, `creator`).
pub fn list_plans(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let size = page_size(call)?;
    let offset = page_offset(call.param(&["pageToken", "page_token"]), size)?;
    let mut has_rollout = None;
    let mut creator = None;
    for clause in call.param(&["filter"]).unwrap_or("").split("&&").map(str::trim) {
        if clause.is_empty() {
            continue;
        }
        match clause.split_once("==").map(|(f, v)| (f.trim(), v.trim().trim_matches('"'))) {
            Some(("has_rollout", v)) => has_rollout = Some(v == "true"),
            Some(("creator", v)) => {
                creator = Some(v.strip_prefix("users/").unwrap_or(v).to_owned())
            }
            _ => return Err(ApiError::invalid(format!("unsupported plan filter {clause:?}"))),
        }
    }
    if args[0] != "-" {
        if db.project(&args[0]).is_none() {
            return Err(ApiError::not_found(format!("project {:?} not found", args[0])));
        }
        call.require(db, "bb.plans.list", Some(&args[0]))?;
    }
    let mut plans: Vec<&PlanRec> = db
        .plans
        .values()
        .filter(|p| args[0] == "-" || p.project == args[0])
        .filter(|p| {
            args[0] != "-"
                || db.has_permission(&call.caller, "bb.plans.list", Some(&p.project), call.now)
        })
        .filter(|p| has_rollout.is_none_or(|h| h == p.rollout.is_some()))
        .filter(|p| creator.as_ref().is_none_or(|c| *c == p.creator))
        .collect();
    plans.sort_by_key(|p| std::cmp::Reverse(p.id));
    let (range, next) = page(plans.len(), offset, size);
    Ok(list_response("plans", plans[range].iter().map(|p| plan_json(db, p)).collect(), next))
}

/// `GET /v1/projects/{p}/plans/{id}/rollout`: 404 until `hasRollout`, the same 404 as a missing
/// plan.
pub fn get_rollout(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let not_found = || {
        ApiError::not_found(format!(
            "rollout projects/{}/plans/{}/rollout not found",
            args[0], args[1]
        ))
    };
    let plan = find_plan(db, &args[0], &args[1]).map_err(|_| not_found())?;
    call.require(db, "bb.rollouts.get", Some(&args[0]))?;
    let rollout = plan.rollout.as_ref().ok_or_else(not_found)?;
    Ok(rollout_json(plan, rollout))
}

/// `GET /v1/projects/{p}/rollouts` (paged).
pub fn list_rollouts(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    if call.param(&["filter"]).is_some_and(|f| !f.is_empty()) {
        // NOTE: rollout filters (update_time, task_type) are not emulated.
        return Err(ApiError::invalid("the emulator does not support rollout filters"));
    }
    if db.project(&args[0]).is_none() {
        return Err(ApiError::not_found(format!("project {:?} not found", args[0])));
    }
    call.require(db, "bb.rollouts.list", Some(&args[0]))?;
    let size = page_size(call)?;
    let offset = page_offset(call.param(&["pageToken", "page_token"]), size)?;
    let mut plans: Vec<&PlanRec> =
        db.plans.values().filter(|p| p.project == args[0] && p.rollout.is_some()).collect();
    plans.sort_by_key(|p| std::cmp::Reverse(p.id));
    let (range, next) = page(plans.len(), offset, size);
    let items = plans[range]
        .iter()
        .filter_map(|p| p.rollout.as_ref().map(|r| rollout_json(p, r)))
        .collect();
    Ok(list_response("rollouts", items, next))
}

/// The environment of a task target.
fn target_environment(db: &Db, target: &str) -> String {
    db.databases.get(target).map(|d| d.environment.clone()).unwrap_or_else(|| "-".into())
}

/// Creates (or completes) the rollout of a plan now; `only` limits it to one environment.
/// Returns the new task ids per environment. Does not touch the issue.
fn build_rollout(
    db: &mut Db,
    plan_id: u64,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> Vec<(String, u64)> {
    let Some(plan) = db.plans.get(&plan_id) else { return Vec::new() };
    let mut wanted: Vec<(String, String, String, &'static str)> = Vec::new();
    for spec in &plan.specs {
        if let Some(c) = &spec.change {
            for t in &c.targets {
                wanted.push((
                    target_environment(db, t),
                    spec.id.clone(),
                    t.clone(),
                    "DATABASE_MIGRATE",
                ));
            }
        }
        if let Some(c) = &spec.create {
            let env = if c.environment.is_empty() { "-".to_owned() } else { c.environment.clone() };
            wanted.push((env, spec.id.clone(), c.target.clone(), "DATABASE_CREATE"));
        }
    }
    let order: Vec<String> = db.environments.iter().map(|e| e.id.clone()).collect();
    let Some(plan) = db.plans.get_mut(&plan_id) else { return Vec::new() };
    let rollout = plan.rollout.get_or_insert_with(|| RolloutRec {
        create_time: now,
        update_time: now,
        stages: Vec::new(),
    });
    let mut next_task =
        rollout.stages.iter().flat_map(|s| &s.tasks).map(|t| t.id).max().unwrap_or(0) + 1;
    let mut created = Vec::new();
    for (env, spec_id, target, kind) in wanted {
        if only.is_some_and(|o| o != env) {
            continue;
        }
        let stage = match rollout.stages.iter().position(|s| s.env == env) {
            Some(i) => &mut rollout.stages[i],
            None => {
                rollout.stages.push(StageRec { env: env.clone(), tasks: Vec::new() });
                let last = rollout.stages.len() - 1;
                &mut rollout.stages[last]
            }
        };
        if stage.tasks.iter().any(|t| t.spec_id == spec_id && t.target == target) {
            continue;
        }
        stage.tasks.push(TaskRec {
            id: next_task,
            spec_id,
            target,
            kind,
            skipped: None,
            runs: Vec::new(),
            update_time: now,
        });
        created.push((env, next_task));
        next_task += 1;
    }
    let rank = |env: &str| order.iter().position(|e| e == env).unwrap_or(usize::MAX);
    rollout.stages.sort_by_key(|s| rank(&s.env));
    rollout.update_time = now;
    created
}

/// Starts task runs for new tasks in environments whose rollout policy is automatic.
fn start_automatic(db: &mut Db, plan_id: u64, created: &[(String, u64)], now: DateTime<Utc>) {
    for (env, task) in created {
        if db.rollout_policies.get(env).is_some_and(|p| p.automatic) {
            start_run(db, plan_id, env, *task, SYSTEM_BOT, now);
        }
    }
}

fn start_run(
    db: &mut Db,
    plan_id: u64,
    env: &str,
    task_id: u64,
    creator: &str,
    now: DateTime<Utc>,
) {
    let run_id = db.next_task_run;
    db.next_task_run += 1;
    let Some(task) = task_mut(db, plan_id, env, task_id) else { return };
    task.runs.push(TaskRunRec {
        id: run_id,
        creator: creator.to_owned(),
        create_time: now,
        update_time: now,
        status: "PENDING",
        detail: String::new(),
        start_time: None,
        run_time: None,
    });
    task.update_time = now;
    let delay = db.timing.task_run;
    db.queue(now, delay, JobKind::AdvanceTaskRun { plan: plan_id, run: run_id });
}

fn task_mut<'a>(db: &'a mut Db, plan: u64, env: &str, task: u64) -> Option<&'a mut TaskRec> {
    db.plans
        .get_mut(&plan)?
        .rollout
        .as_mut()?
        .stages
        .iter_mut()
        .find(|s| s.env == env)?
        .tasks
        .iter_mut()
        .find(|t| t.id == task)
}

/// Creates the rollout as the RolloutCreator does (no condition checks): tasks, issue DONE,
/// automatic task runs. Used by the job and by world seeding.
pub fn create_rollout_now(db: &mut Db, plan_id: u64, now: DateTime<Utc>, only: Option<&str>) {
    let created = build_rollout(db, plan_id, now, only);
    if let Some(plan) = db.plans.get(&plan_id)
        && let Some(issue_id) = plan.issue
    {
        let project = plan.project.clone();
        if let Some(issue) = db.issue_mut(&project, issue_id) {
            issue.status = "DONE";
            issue.update_time = now;
        }
    }
    start_automatic(db, plan_id, &created, now);
}

/// The RolloutCreator's conditions; on any failure it silently gives up.
fn try_create_rollout(db: &mut Db, plan_id: u64, now: DateTime<Utc>) {
    let Some(plan) = db.plans.get(&plan_id) else { return };
    if plan.rollout.is_some()
        || plan.specs.is_empty()
        || plan.specs.iter().any(|s| s.change.is_none())
    {
        return;
    }
    if matches!(plan.plan_check, PlanCheck::Running | PlanCheck::Error | PlanCheck::Failed) {
        return;
    }
    let Some(issue) = plan.issue.and_then(|i| db.issue(&plan.project, i)) else { return };
    if issue.draft || issue.status == "CANCELED" || !gate_approved(issue) {
        return;
    }
    let deleted =
        db.project(&plan.project).is_none_or(|p| p.config.state.as_deref() == Some("DELETED"));
    if deleted {
        return;
    }
    create_rollout_now(db, plan_id, now, None);
}

fn advance_run(db: &mut Db, plan_id: u64, run_id: u64, now: DateTime<Utc>) {
    let fail = db.timing.task_runs_fail;
    let delay = db.timing.task_run;
    let Some(plan) = db.plans.get_mut(&plan_id) else { return };
    let Some(rollout) = plan.rollout.as_mut() else { return };
    for task in rollout.stages.iter_mut().flat_map(|s| s.tasks.iter_mut()) {
        let Some(run) = task.runs.iter_mut().find(|r| r.id == run_id) else { continue };
        let requeue = match run.status {
            "PENDING" | "AVAILABLE" => {
                run.status = "RUNNING";
                run.start_time = Some(now);
                true
            }
            "RUNNING" => {
                run.status = if fail { "FAILED" } else { "DONE" };
                if fail {
                    run.detail = "the emulator's world says this task run fails".into();
                }
                false
            }
            _ => false,
        };
        run.update_time = now;
        task.update_time = now;
        rollout.update_time = now;
        if requeue {
            db.queue(now, delay, JobKind::AdvanceTaskRun { plan: plan_id, run: run_id });
        } else {
            pipeline_events(db, plan_id, fail);
        }
        return;
    }
}

/// The webhook events after a task run of `plan_id` ended: PIPELINE_FAILED once per plan until
/// the next batchRun, PIPELINE_COMPLETED when every task is DONE or SKIPPED.
///
/// NOTE: only the end of a task run is checked, so a rollout whose last open task is skipped
/// (`batchSkip`) posts no PIPELINE_COMPLETED; the reference does not say whether Bytebase does.
fn pipeline_events(db: &mut Db, plan_id: u64, failed: bool) {
    let Some(plan) = db.plans.get_mut(&plan_id) else { return };
    let project = plan.project.clone();
    if failed {
        if !plan.failure_notified {
            plan.failure_notified = true;
            db.emit("PIPELINE_FAILED", &project, Subject::Rollout(plan_id), "");
        }
        return;
    }
    let complete = plan.rollout.as_ref().is_some_and(|r| {
        r.stages
            .iter()
            .flat_map(|s| s.tasks.iter())
            .all(|t| matches!(t.status(), "DONE" | "SKIPPED"))
    });
    if complete {
        db.emit("PIPELINE_COMPLETED", &project, Subject::Rollout(plan_id), "");
    }
}

/// Runs due jobs (all queued ones, manual included, when `all`); returns how many ran.
pub fn run_due_jobs(db: &mut Db, now: DateTime<Utc>, all: bool) -> usize {
    let mut ran = 0;
    // A bound on chains of jobs that queue jobs (finding → rollout → runs).
    while ran < 100_000 {
        let next = db
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| all || j.due.is_some_and(|d| d <= now))
            .min_by_key(|(_, j)| (j.due.unwrap_or(DateTime::<Utc>::MAX_UTC), j.seq))
            .map(|(i, _)| i);
        let Some(index) = next else { break };
        let job = db.jobs.remove(index);
        ran += 1;
        match job.kind {
            JobKind::Finding { project, issue } => finish_finding(db, &project, issue, now),
            JobKind::CreateRollout { plan } => try_create_rollout(db, plan, now),
            JobKind::AdvanceTaskRun { plan, run } => advance_run(db, plan, run, now),
        }
    }
    ran
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct CreateRolloutBody {
    parent: String,
    rollout: Option<Value>,
    target: Option<String>,
    validate_only: bool,
}

/// The approval gate of CreateRollout and BatchRunTasks: only with `requireIssueApproval` and a
/// linked issue.
fn approval_gate(db: &Db, plan: &PlanRec) -> ApiResult<()> {
    let require = db.project(&plan.project).is_some_and(|p| p.config.require_issue_approval);
    let Some(issue) = plan.issue.and_then(|i| db.issue(&plan.project, i)) else { return Ok(()) };
    if issue.draft {
        return Err(ApiError::precondition(
            "draft issue must be submitted before rollout creation",
        ));
    }
    if require && !gate_approved(issue) {
        return Err(ApiError::precondition(
            "cannot create rollout because issue approval is required but the issue is not \
             approved",
        ));
    }
    Ok(())
}

/// `POST /v1/projects/{p}/plans/{id}/rollout` (idempotent; adds missing tasks only).
pub fn create_rollout(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    let plan_id = plan.id;
    call.require(db, "bb.rollouts.create", Some(&args[0]))?;
    let body: CreateRolloutBody = call.body()?;
    let _ = (&body.parent, &body.rollout);
    approval_gate(db, plan)?;
    let only = match body.target.as_deref() {
        None => None,
        Some("") => Some(String::new()),
        Some(t) => {
            let env = t.strip_prefix("environments/").unwrap_or(t);
            if !db.environments.iter().any(|e| e.id == env) {
                return Err(ApiError::invalid(format!("invalid target {t:?}")));
            }
            Some(env.to_owned())
        }
    };
    if body.validate_only {
        return Ok(Obj::new().str("name", &format!("{}/rollout", plan_name(plan))).build());
    }
    // The API goes through the same workflow as the RolloutCreator: the linked issue is DONE.
    create_rollout_now(db, plan_id, call.now, only.as_deref());
    let plan = find_plan(db, &args[0], &args[1])?;
    let rollout = plan.rollout.as_ref().ok_or_else(|| ApiError::internal("rollout vanished"))?;
    Ok(rollout_json(plan, rollout))
}

/// Parses `projects/{p}/plans/{id}/rollout/stages/{s}/tasks/{t}` into (env, task id).
fn parse_task_name(plan: &PlanRec, name: &str) -> ApiResult<(String, u64)> {
    let prefix = format!("{}/rollout/stages/", plan_name(plan));
    let invalid = || ApiError::invalid(format!("invalid task name {name:?}"));
    let rest = name.strip_prefix(&prefix).ok_or_else(invalid)?;
    let (env, task) = rest.split_once("/tasks/").ok_or_else(invalid)?;
    Ok((env.to_owned(), task.parse().map_err(|_| invalid())?))
}

/// Whether the caller may run, skip or cancel tasks in `env`: `bb.taskRuns.create`, or a role
/// in the environment's rollout-policy `roles`.
fn can_run(db: &Db, call: &Call, project: &str, env: &str) -> ApiResult<()> {
    if db.has_permission(&call.caller, "bb.taskRuns.create", Some(project), call.now) {
        return Ok(());
    }
    let held = db.roles_of(&call.caller, Some(project), call.now);
    if db.rollout_policies.get(env).is_some_and(|p| p.roles.iter().any(|r| held.contains(r))) {
        return Ok(());
    }
    Err(ApiError::missing_permission(&format!("/bytebase.v1.{}", call.rpc), "bb.taskRuns.create"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct BatchRunBody {
    parent: String,
    tasks: Vec<String>,
    reason: String,
    run_time: Option<String>,
    skip_prior_backup: bool,
}

/// Resolves task names to (env, id) within one environment.
fn tasks_in_one_env(plan: &PlanRec, names: &[String]) -> ApiResult<(String, Vec<u64>)> {
    if names.is_empty() {
        return Err(ApiError::invalid("tasks are required"));
    }
    let rollout = plan.rollout.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("rollout {}/rollout not found", plan_name(plan)))
    })?;
    let mut env = None;
    let mut ids = Vec::new();
    for name in names {
        let (e, id) = parse_task_name(plan, name)?;
        let exists =
            rollout.stages.iter().any(|s| s.env == e && s.tasks.iter().any(|t| t.id == id));
        if !exists {
            return Err(ApiError::not_found(format!("task {name:?} not found")));
        }
        if env.as_ref().is_some_and(|x: &String| *x != e) {
            return Err(ApiError::invalid("tasks must be in the same environment"));
        }
        env = Some(e);
        ids.push(id);
    }
    Ok((env.unwrap_or_default(), ids))
}

/// `POST …/rollout/stages/{s}/tasks:batchRun`: one environment, the approval gate.
pub fn batch_run(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    let plan_id = plan.id;
    let body: BatchRunBody = call.body()?;
    let _ = (&body.parent, &body.reason, body.skip_prior_backup);
    let (env, ids) = tasks_in_one_env(plan, &body.tasks)?;
    can_run(db, call, &args[0], &env)?;
    approval_gate(db, plan)?;
    let run_time = match &body.run_time {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::invalid(format!("invalid runTime: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    for id in &ids {
        let task =
            task_mut(db, plan_id, &env, *id).ok_or_else(|| ApiError::internal("task vanished"))?;
        match task.status() {
            "SKIPPED" => return Err(ApiError::invalid(format!("task {id} is skipped"))),
            "PENDING" | "RUNNING" => {
                return Err(ApiError::invalid(format!("task {id} is already running")));
            }
            "DONE" => return Err(ApiError::invalid(format!("task {id} is already done"))),
            _ => {}
        }
    }
    if let Some(plan) = db.plans.get_mut(&plan_id) {
        plan.failure_notified = false;
    }
    for id in ids {
        start_run(db, plan_id, &env, id, &call.caller, call.now);
        if let Some(run) = task_mut(db, plan_id, &env, id).and_then(|t| t.runs.last_mut()) {
            run.run_time = run_time;
        }
    }
    Ok(Obj::new().build())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct BatchSkipBody {
    parent: String,
    tasks: Vec<String>,
    reason: String,
}

/// `POST …/rollout/stages/{s}/tasks:batchSkip`: no approval check.
pub fn batch_skip(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    let plan_id = plan.id;
    let body: BatchSkipBody = call.body()?;
    let _ = &body.parent;
    if body.reason.chars().count() > 1000 {
        return Err(ApiError::invalid("reason is longer than 1000 characters"));
    }
    let (env, ids) = tasks_in_one_env(plan, &body.tasks)?;
    can_run(db, call, &args[0], &env)?;
    for id in &ids {
        let task =
            task_mut(db, plan_id, &env, *id).ok_or_else(|| ApiError::internal("task vanished"))?;
        if !matches!(task.status(), "NOT_STARTED" | "FAILED" | "CANCELED") {
            return Err(ApiError::invalid(format!(
                "task {id} cannot be skipped in status {}",
                task.status()
            )));
        }
    }
    for id in ids {
        if let Some(task) = task_mut(db, plan_id, &env, id) {
            task.skipped = Some(body.reason.clone());
            task.update_time = call.now;
        }
    }
    Ok(Obj::new().build())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
struct BatchCancelBody {
    parent: String,
    task_runs: Vec<String>,
    reason: String,
}

/// `POST …/rollout/stages/{s}/tasks/{t}/taskRuns:batchCancel` (`tasks/-` = whole stage).
pub fn batch_cancel(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    let plan_id = plan.id;
    let body: BatchCancelBody = call.body()?;
    let _ = (&body.parent, &body.reason);
    if body.task_runs.is_empty() {
        return Err(ApiError::invalid("task runs are required"));
    }
    let mut targets = Vec::new();
    for name in &body.task_runs {
        let invalid = || ApiError::invalid(format!("invalid task run name {name:?}"));
        let (task, run) = name.rsplit_once("/taskRuns/").ok_or_else(invalid)?;
        let (env, task_id) = parse_task_name(plan, task)?;
        let run_id: u64 = run.parse().map_err(|_| invalid())?;
        targets.push((env, task_id, run_id));
    }
    for (env, _, _) in &targets {
        can_run(db, call, &args[0], env)?;
    }
    for (env, task_id, run_id) in &targets {
        let task = task_mut(db, plan_id, env, *task_id)
            .ok_or_else(|| ApiError::not_found(format!("task {task_id} not found")))?;
        let run = task
            .runs
            .iter()
            .find(|r| r.id == *run_id)
            .ok_or_else(|| ApiError::not_found(format!("task run {run_id} not found")))?;
        if !matches!(run.status, "PENDING" | "AVAILABLE" | "RUNNING") {
            return Err(ApiError::invalid(format!("task run {run_id} is {}", run.status)));
        }
    }
    for (env, task_id, run_id) in targets {
        if let Some(task) = task_mut(db, plan_id, &env, task_id) {
            if let Some(run) = task.runs.iter_mut().find(|r| r.id == run_id) {
                run.status = "CANCELED";
                run.update_time = call.now;
            }
            task.update_time = call.now;
        }
        db.jobs.retain(|j| j.kind != JobKind::AdvanceTaskRun { plan: plan_id, run: run_id });
    }
    Ok(Obj::new().build())
}

/// `GET …/rollout/stages/{s}/tasks/{t}/taskRuns` (`-` wildcards; no paging; newest first).
pub fn list_task_runs(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let plan = find_plan(db, &args[0], &args[1])?;
    call.require(db, "bb.taskRuns.list", Some(&args[0]))?;
    let rollout = plan.rollout.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("rollout {}/rollout not found", plan_name(plan)))
    })?;
    let (stage, task) = (&args[2], &args[3]);
    let mut runs: Vec<(u64, Value)> = Vec::new();
    for s in rollout.stages.iter().filter(|s| stage == "-" || s.env == *stage) {
        for t in s.tasks.iter().filter(|t| task == "-" || t.id.to_string() == *task) {
            for r in &t.runs {
                runs.push((r.id, task_run_json(plan, &s.env, t, r)));
            }
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(Obj::new().list("taskRuns", runs.into_iter().map(|(_, v)| v).collect()).build())
}

/// Ends the latest run of a task (control API); `status` is DONE or FAILED.
pub fn finish_task(
    db: &mut Db,
    task_name: &str,
    status: &'static str,
    now: DateTime<Utc>,
) -> ApiResult {
    let invalid = || ApiError::invalid(format!("invalid task name {task_name:?}"));
    let rest = task_name.strip_prefix("projects/").ok_or_else(invalid)?;
    let (project, rest) = rest.split_once("/plans/").ok_or_else(invalid)?;
    let (plan_id, _) = rest.split_once('/').ok_or_else(invalid)?;
    let plan = find_plan(db, project, plan_id)?;
    let plan_id = plan.id;
    let (env, task_id) = parse_task_name(plan, task_name)?;
    let task = task_mut(db, plan_id, &env, task_id)
        .ok_or_else(|| ApiError::not_found(format!("task {task_name:?} not found")))?;
    let run = task
        .runs
        .last_mut()
        .ok_or_else(|| ApiError::precondition(format!("task {task_name:?} has no run")))?;
    if !matches!(run.status, "PENDING" | "AVAILABLE" | "RUNNING") {
        return Err(ApiError::precondition(format!(
            "task run {} is already {}",
            run.id, run.status
        )));
    }
    if run.start_time.is_none() {
        run.start_time = Some(now);
    }
    run.status = status;
    run.update_time = now;
    if status == "FAILED" {
        run.detail = "failed by the emulator's control API".into();
    }
    let run_id = run.id;
    task.update_time = now;
    db.jobs.retain(|j| j.kind != JobKind::AdvanceTaskRun { plan: plan_id, run: run_id });
    pipeline_events(db, plan_id, status == "FAILED");
    let plan = find_plan(db, project, &plan_id.to_string())?;
    Ok(plan.rollout.as_ref().map(|r| rollout_json(plan, r)).unwrap_or(Value::Null))
}

/// Sets a plan's plan-check state (control API); re-queues finding when it stops running.
pub fn set_plan_check(
    db: &mut Db,
    project: &str,
    plan: &str,
    state: &str,
    now: DateTime<Utc>,
) -> ApiResult {
    let check = match state {
        "RUNNING" => PlanCheck::Running,
        "DONE" | "SUCCESS" => PlanCheck::Done,
        "ERROR" => PlanCheck::Error,
        "FAILED" => PlanCheck::Failed,
        other => return Err(ApiError::invalid(format!("invalid plan check state {other:?}"))),
    };
    let plan_id = find_plan(db, project, plan)?.id;
    let Some(record) = db.plans.get_mut(&plan_id) else {
        return Err(ApiError::internal("plan vanished"));
    };
    record.plan_check = check;
    record.update_time = now;
    let issue = record.issue;
    if check != PlanCheck::Running
        && let Some(issue) = issue
        && db.issue(project, issue).is_some_and(|i| !i.finding_done)
    {
        let delay = db.timing.finding;
        db.queue(now, delay, JobKind::Finding { project: project.to_owned(), issue });
    }
    let plan = find_plan(db, project, &plan_id.to_string())?;
    Ok(plan_json(db, plan))
}
