//! The engine's ports implemented by the real clients and store: the one place where wire
//! models become the workflow's views, and client errors become [`ErrorKind`]s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::bytebase::{self, BytebaseError};
use crate::servicenow::{self, ChangeRequest, CloseCode, CorrelationId, EncodedQuery, SysId};
use crate::spec::model::SkippedApproval;
use crate::workflow::decide::{ChangeRef, Record};
use crate::workflow::facts::{
    ApproverView, ChangeView, IssueView, PlanView, RolloutView, StageView, TaskView,
};
use crate::workflow::port::{Api, ApiError, ErrorKind, JournalEntry, PortResult, SkippedAlert};

fn bytebase_error(e: BytebaseError) -> ApiError {
    let kind = match &e {
        _ if e.is_transient() => ErrorKind::Transient,
        BytebaseError::Api { status: 401, .. }
        | BytebaseError::MissingKey { .. }
        | BytebaseError::BadUrl { .. } => ErrorKind::Fatal,
        _ => ErrorKind::Refused,
    };
    ApiError::new(Api::Bytebase, kind, e.to_string())
}

fn servicenow_error(e: servicenow::Error) -> ApiError {
    use servicenow::Error as E;
    let kind = match &e {
        _ if e.is_transient() => ErrorKind::Transient,
        E::Unauthorized { .. } | E::Config(_) => ErrorKind::Fatal,
        _ => ErrorKind::Refused,
    };
    ApiError::new(Api::ServiceNow, kind, e.to_string())
}

fn store_error(e: impl std::fmt::Display, conflict: bool) -> ApiError {
    let kind = if conflict { ErrorKind::Transient } else { ErrorKind::Fatal };
    ApiError::new(Api::Store, kind, e.to_string())
}

fn issue_view(issue: bytebase::models::Issue) -> IssueView {
    IssueView {
        status: issue.status.as_str().to_owned(),
        approval_status: issue.approval_status.as_str().to_owned(),
        name: issue.name,
        title: issue.title,
        description: issue.description,
        creator: issue.creator,
        plan: issue.plan,
        create_time: issue.create_time,
    }
}

fn plan_view(plan: bytebase::models::Plan) -> PlanView {
    let version = plan
        .update_time
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default();
    PlanView { name: plan.name, version, has_rollout: plan.has_rollout }
}

fn rollout_view(rollout: bytebase::models::Rollout) -> RolloutView {
    RolloutView {
        name: rollout.name,
        stages: rollout
            .stages
            .into_iter()
            .map(|s| StageView {
                environment: s
                    .environment
                    .strip_prefix("environments/")
                    .map(str::to_owned)
                    .unwrap_or(s.id),
                name: s.name,
                tasks: s
                    .tasks
                    .into_iter()
                    .map(|t| TaskView { name: t.name, status: t.status.as_str().to_owned() })
                    .collect(),
            })
            .collect(),
    }
}

fn utc(t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.and_utc())
}

fn change_view(c: ChangeRequest) -> ChangeView {
    let state = match c.state.name() {
        "unknown" => c.state.wire().to_owned(),
        name => name.to_owned(),
    };
    ChangeView {
        sys_id: c.sys_id.as_str().to_owned(),
        number: c.number,
        correlation_id: c.correlation_id,
        state,
        approval: c.approval.name().to_owned(),
        start: utc(c.start_date),
        end: utc(c.end_date),
        approvers: Vec::new(),
    }
}

impl crate::workflow::port::Bytebase for bytebase::Client {
    async fn open_issues(&self) -> PortResult<Vec<IssueView>> {
        let issues = self.search_issues("projects/-", "status == \"OPEN\"").await;
        Ok(issues.map_err(bytebase_error)?.into_iter().map(issue_view).collect())
    }

    async fn skipped_issues(&self, since: DateTime<Utc>) -> PortResult<Vec<IssueView>> {
        let filter = bytebase::api::approval_status_filter("SKIPPED", since);
        let issues = self.search_issues("projects/-", &filter).await.map_err(bytebase_error)?;
        Ok(issues.into_iter().map(issue_view).collect())
    }

    async fn issue(&self, name: &str) -> PortResult<IssueView> {
        self.get_issue(name).await.map(issue_view).map_err(bytebase_error)
    }

    async fn unrolled_plans(&self) -> PortResult<Vec<PlanView>> {
        let query = [
            ("pageSize", self.page_size().to_string()),
            ("filter", "has_rollout == false".to_owned()),
        ];
        let plans: Vec<bytebase::models::Plan> =
            self.list_all("projects/-/plans", &query, "plans").await.map_err(bytebase_error)?;
        Ok(plans.into_iter().map(plan_view).collect())
    }

    async fn plan(&self, name: &str) -> PortResult<PlanView> {
        self.get_plan(name).await.map(plan_view).map_err(bytebase_error)
    }

    async fn rollout(&self, plan: &str) -> PortResult<Option<RolloutView>> {
        Ok(self.get_rollout(plan).await.map_err(bytebase_error)?.map(rollout_view))
    }

    async fn create_rollout(&self, plan: &str) -> PortResult<RolloutView> {
        let rollout = bytebase::Client::create_rollout(self, plan, None).await;
        rollout.map(rollout_view).map_err(bytebase_error)
    }

    async fn comments(&self, issue: &str) -> PortResult<Vec<String>> {
        let comments = self.list_issue_comments(issue).await.map_err(bytebase_error)?;
        Ok(comments.into_iter().map(|c| c.comment).collect())
    }

    async fn comment(&self, issue: &str, text: &str) -> PortResult<()> {
        self.create_issue_comment(issue, text).await.map(|_| ()).map_err(bytebase_error)
    }

    async fn approve(&self, issue: &str, text: &str) -> PortResult<()> {
        self.approve_issue(issue, text).await.map(|_| ()).map_err(bytebase_error)
    }

    async fn reject(&self, issue: &str, text: &str) -> PortResult<()> {
        self.reject_issue(issue, text).await.map(|_| ()).map_err(bytebase_error)
    }

    async fn run_tasks(&self, stage: &str, tasks: &[String]) -> PortResult<()> {
        self.batch_run_tasks(stage, tasks).await.map_err(bytebase_error)
    }

    async fn cancel_runs(&self, stage: &str) -> PortResult<()> {
        let all = format!("{stage}/tasks/-");
        let runs = self.list_task_runs(&all).await.map_err(bytebase_error)?;
        let live: Vec<String> = runs
            .into_iter()
            .filter(|r| matches!(r.status.as_str(), "PENDING" | "RUNNING" | "AVAILABLE"))
            .map(|r| r.name)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        self.batch_cancel_task_runs(&all, &live).await.map_err(bytebase_error)
    }

    async fn skip_tasks(&self, stage: &str, tasks: &[String], reason: &str) -> PortResult<()> {
        self.batch_skip_tasks(stage, tasks, reason).await.map_err(bytebase_error)
    }
}

fn sys_id(value: &str) -> PortResult<SysId> {
    SysId::parse(value).map_err(servicenow_error)
}

fn correlation(value: &str) -> PortResult<CorrelationId> {
    CorrelationId::parse(value).map_err(servicenow_error)
}

fn fields_map(fields: &BTreeMap<String, String>) -> Map<String, Value> {
    fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
}

fn state(name: &str) -> PortResult<servicenow::State> {
    servicenow::State::from_name(name).ok_or_else(|| {
        ApiError::new(Api::ServiceNow, ErrorKind::Fatal, format!("unknown CHG state `{name}`"))
    })
}

/// The ServiceNow client with what the engine caches across passes (group ids by name).
#[derive(Debug)]
pub struct ServiceNowPort {
    /// The client.
    pub client: servicenow::Client,
    groups: Mutex<BTreeMap<String, String>>,
}

impl ServiceNowPort {
    /// Wraps a client.
    pub fn new(client: servicenow::Client) -> ServiceNowPort {
        ServiceNowPort { client, groups: Mutex::new(BTreeMap::new()) }
    }

    /// Reference fields take sys_ids; the spec names the assignment group.
    async fn resolve_group(&self, fields: &mut BTreeMap<String, String>) -> PortResult<()> {
        let Some(group) = fields.get("assignment_group").cloned() else { return Ok(()) };
        if SysId::parse(&group).is_ok() {
            return Ok(());
        }
        let cached = self.groups.lock().ok().and_then(|g| g.get(&group).cloned());
        let id = match cached {
            Some(id) => id,
            None => {
                let found = self.client.group_sys_id(&group).await.map_err(servicenow_error)?;
                let Some(id) = found else {
                    return Err(ApiError::new(
                        Api::ServiceNow,
                        ErrorKind::Fatal,
                        format!("assignment group `{group}` does not exist in ServiceNow"),
                    ));
                };
                let id = id.as_str().to_owned();
                if let Ok(mut g) = self.groups.lock() {
                    g.insert(group.clone(), id.clone());
                }
                id
            }
        };
        fields.insert("assignment_group".into(), id);
        Ok(())
    }
}

impl crate::workflow::port::ServiceNow for ServiceNowPort {
    async fn active_changes(&self, prefix: &str) -> PortResult<Vec<ChangeView>> {
        let query = EncodedQuery::new()
            .correlation_starts_with(&correlation(prefix)?)
            .constant("active=true")
            .order_by("sys_id");
        let fields = servicenow::model::CHANGE_FIELDS;
        let rows = self.client.list_records("change_request", &query, fields).await;
        let rows = rows.map_err(servicenow_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let change = ChangeRequest::from_record(row).map_err(servicenow_error)?;
            // An instance that ignored the term would list everything: keep ours only.
            if change.correlation_id.starts_with(prefix) {
                out.push(change_view(change));
            }
        }
        Ok(out)
    }

    async fn changes_by_correlation(&self, ids: &[String]) -> PortResult<Vec<ChangeView>> {
        let ids: Vec<CorrelationId> =
            ids.iter().map(|i| correlation(i)).collect::<Result<_, _>>()?;
        let changes = self.client.find_changes(&ids).await.map_err(servicenow_error)?;
        Ok(changes.into_iter().map(change_view).collect())
    }

    async fn create_change(
        &self,
        correlation_id: &str,
        fields: &BTreeMap<String, String>,
    ) -> PortResult<ChangeView> {
        let mut fields = fields.clone();
        self.resolve_group(&mut fields).await?;
        let id = correlation(correlation_id)?;
        let created =
            self.client.create_change(&id, &fields_map(&fields)).await.map_err(servicenow_error)?;
        self.change(created.sys_id.as_str()).await
    }

    async fn change(&self, id: &str) -> PortResult<ChangeView> {
        match self.client.get_change(&sys_id(id)?).await.map_err(servicenow_error)? {
            Some(c) => Ok(change_view(c)),
            None => Err(ApiError::new(
                Api::ServiceNow,
                ErrorKind::Refused,
                format!("change {id} is gone or hidden by an ACL"),
            )),
        }
    }

    async fn approvers(&self, id: &str) -> PortResult<Vec<ApproverView>> {
        let rows = self.client.approvers(&sys_id(id)?).await.map_err(servicenow_error)?;
        Ok(rows
            .into_iter()
            .map(|a| ApproverView {
                approver: a.display_name(),
                state: match a.state {
                    servicenow::ApproverState::Approved => "approved".to_owned(),
                    servicenow::ApproverState::Rejected => "rejected".to_owned(),
                    other => format!("{other:?}").to_lowercase(),
                },
                comment: a.comments,
            })
            .collect())
    }

    async fn update_fields(&self, id: &str, fields: &BTreeMap<String, String>) -> PortResult<()> {
        let mut fields = fields.clone();
        // The type and the correlation are set once, at creation.
        fields.remove("type");
        self.resolve_group(&mut fields).await?;
        let update = self.client.update_change(&sys_id(id)?, &fields_map(&fields)).await;
        update.map(|_| ()).map_err(servicenow_error)
    }

    async fn set_state(&self, id: &str, name: &str) -> PortResult<()> {
        let target = state(name)?;
        self.client.set_state(&sys_id(id)?, &target).await.map(|_| ()).map_err(servicenow_error)
    }

    async fn work_note(&self, id: &str, text: &str) -> PortResult<()> {
        self.client.add_work_note(&sys_id(id)?, text).await.map_err(servicenow_error)
    }

    async fn close(&self, id: &str, code: &str, notes: &str) -> PortResult<()> {
        let code = CloseCode::from_wire(code).ok_or_else(|| {
            ApiError::new(Api::ServiceNow, ErrorKind::Fatal, format!("unknown close code `{code}`"))
        })?;
        let closed = self.client.close_change(&sys_id(id)?, code, notes).await;
        closed.map(|_| ()).map_err(servicenow_error)
    }

    async fn cancel(&self, id: &str, notes: &str) -> PortResult<()> {
        self.client.cancel_change(&sys_id(id)?, notes).await.map(|_| ()).map_err(servicenow_error)
    }
}

/// Marker keys of the engine's fields in the store's [`crate::store::IssueRecord`].
mod keys {
    pub const SINCE: &str = "engine.since";
    pub const GENERATION: &str = "engine.generation";
    pub const CORRELATION: &str = "engine.correlation";
    pub const STEP: &str = "engine.step";
    pub const DONE: &str = "engine.done";
}

/// The store, the alert outbox and the spec's sinks, behind the engine's [`Store`] port.
///
/// NOTE: the SQLite store is synchronous; its calls are short single-row transactions made
/// inline on the async runtime, which a single runner can afford.
///
/// [`Store`]: crate::workflow::port::Store
pub struct StorePort {
    store: Box<dyn crate::store::Store>,
    outbox: Arc<crate::alert::Outbox>,
    sinks: Vec<crate::spec::model::Sink>,
    actor: String,
    revisions: Mutex<BTreeMap<String, i64>>,
    clock: crate::workflow::runner::Clock,
}

impl std::fmt::Debug for StorePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePort").field("actor", &self.actor).finish_non_exhaustive()
    }
}

impl StorePort {
    /// Wraps a store and the outbox of `alerts.skippedApproval`.
    pub fn new(
        store: Box<dyn crate::store::Store>,
        outbox: crate::alert::Outbox,
        alerts: &SkippedApproval,
        actor: &str,
        clock: crate::workflow::runner::Clock,
    ) -> StorePort {
        StorePort {
            store,
            outbox: Arc::new(outbox),
            sinks: alerts.sinks.clone(),
            actor: actor.to_owned(),
            revisions: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    /// The same sinks and settings over a freshly opened store: what a restarted runner has.
    pub fn reopen(&self, store: Box<dyn crate::store::Store>) -> StorePort {
        StorePort {
            store,
            outbox: self.outbox.clone(),
            sinks: self.sinks.clone(),
            actor: self.actor.clone(),
            revisions: Mutex::new(BTreeMap::new()),
            clock: self.clock.clone(),
        }
    }

    /// The wrapped store (tests read the journal and the outbox through it).
    pub fn inner(&self) -> &dyn crate::store::Store {
        self.store.as_ref()
    }
}

fn to_record(r: crate::store::IssueRecord) -> Record {
    let m = &r.markers;
    let change = match (&r.change_sys_id, &r.change_number) {
        (Some(sys_id), Some(number)) => Some(ChangeRef {
            sys_id: sys_id.clone(),
            number: number.clone(),
            correlation_id: m.get(keys::CORRELATION).cloned().unwrap_or_default(),
        }),
        _ => None,
    };
    Record {
        since: m
            .get(keys::SINCE)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or(r.updated_at, |t| t.with_timezone(&Utc)),
        generation: m.get(keys::GENERATION).and_then(|g| g.parse().ok()).unwrap_or(0),
        step: m.get(keys::STEP).cloned(),
        done: m
            .get(keys::DONE)
            .map(|d| d.split(',').filter_map(|i| i.parse().ok()).collect())
            .unwrap_or_default(),
        issue: r.issue,
        state: r.state,
        change,
        plan_version: r.plan_version,
    }
}

fn from_record(r: &Record, revision: i64, now: DateTime<Utc>) -> crate::store::IssueRecord {
    let mut markers = BTreeMap::new();
    markers.insert(keys::SINCE.to_owned(), r.since.to_rfc3339());
    markers.insert(keys::GENERATION.to_owned(), r.generation.to_string());
    if let Some(c) = &r.change {
        markers.insert(keys::CORRELATION.to_owned(), c.correlation_id.clone());
    }
    if let Some(step) = &r.step {
        markers.insert(keys::STEP.to_owned(), step.clone());
        let done: Vec<String> = r.done.iter().map(ToString::to_string).collect();
        markers.insert(keys::DONE.to_owned(), done.join(","));
    }
    crate::store::IssueRecord {
        issue: r.issue.clone(),
        state: r.state.clone(),
        change_sys_id: r.change.as_ref().map(|c| c.sys_id.clone()),
        change_number: r.change.as_ref().map(|c| c.number.clone()),
        plan_version: r.plan_version.clone(),
        markers,
        revision,
        updated_at: now,
    }
}

impl crate::workflow::port::Store for StorePort {
    async fn records(&self) -> PortResult<Vec<Record>> {
        let all = self.store.issues().map_err(|e| store_error(e, false))?;
        let mut revisions = self.revisions.lock().map_err(|e| store_error(e, false))?;
        Ok(all
            .into_iter()
            .map(|r| {
                revisions.insert(r.issue.clone(), r.revision);
                to_record(r)
            })
            .collect())
    }

    async fn save(&self, record: &Record) -> PortResult<()> {
        let now = (self.clock)();
        let revision =
            self.revisions.lock().ok().and_then(|r| r.get(&record.issue).copied()).unwrap_or(0);
        let stored = from_record(record, revision, now);
        match self.store.save_issue(&stored, &[]) {
            Ok(next) => {
                if let Ok(mut r) = self.revisions.lock() {
                    r.insert(record.issue.clone(), next);
                }
                Ok(())
            }
            Err(e @ crate::store::StoreError::Conflict { .. }) => Err(store_error(e, true)),
            Err(e) => Err(store_error(e, false)),
        }
    }

    async fn journal(&self, entry: &JournalEntry) -> PortResult<()> {
        let why = format!("{}: {}", entry.transition, entry.detail);
        let mut stored = crate::store::JournalEntry::new(
            entry.at,
            &entry.actor,
            &entry.action,
            why,
            &entry.outcome,
        )
        .issue(&entry.issue);
        if let Some(change) = &entry.change {
            stored = stored.change(change);
        }
        self.store.append_journal(&stored).map(|_| ()).map_err(|e| store_error(e, false))
    }

    async fn enqueue_alert(&self, alert: &SkippedAlert) -> PortResult<bool> {
        let project = crate::bytebase::models::project_of(&alert.issue).to_owned();
        let issue = crate::alert::SkippedIssue {
            issue: alert.issue.clone(),
            title: alert.title.clone(),
            project,
            creator: alert.creator.clone(),
            url: Some(alert.url.clone()),
            status: None,
            created: alert.create_time.map(|t| t.to_rfc3339()),
            environments: Vec::new(),
        };
        let now = (self.clock)();
        let queued = crate::alert::enqueue_skipped(
            self.store.as_ref(),
            &self.sinks,
            &issue,
            &self.actor,
            now,
        )
        .map_err(|e| store_error(e, false))?;
        Ok(queued > 0)
    }

    async fn deliver_alerts(&self) -> PortResult<u64> {
        let now = (self.clock)();
        self.outbox
            .deliver_due(self.store.as_ref(), &self.actor, now)
            .await
            .map_err(|e| store_error(e, false))?;
        let pending = self.store.pending_deliveries().map_err(|e| store_error(e, false))?;
        Ok(pending.len() as u64)
    }
}
