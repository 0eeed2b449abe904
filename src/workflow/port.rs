//! What the engine needs from Bytebase, ServiceNow and the store, in its own words.
//!
//! The engine reads and writes through these traits so that observe and act speak the
//! workflow's vocabulary ([`IssueView`], [`ChangeView`], …) and the mapping from each client's
//! wire models lives in one place (`adapt`). They are implemented by the real HTTP clients and
//! the real store; tests run them against the emulators over HTTP, never against mocks.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::workflow::decide::Record;
use crate::workflow::facts::{ApproverView, ChangeView, IssueView, PlanView, RolloutView};

/// Which side a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// The Bytebase v1 API.
    Bytebase,
    /// The ServiceNow Table API.
    ServiceNow,
    /// The runner's state store.
    Store,
}

impl Api {
    /// The name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Bytebase => "bytebase",
            Api::ServiceNow => "servicenow",
            Api::Store => "store",
        }
    }
}

/// How a failed call failed, which decides what the runner does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    /// Worth retrying on a later pass (5xx, 429, timeouts, dropped connections) — the client has
    /// already retried within the call.
    Transient,
    /// The other side refused this request for this resource (400, 403 on one record, 404): the
    /// action is skipped and journaled, the pass goes on.
    Refused,
    /// Nothing will work until a person fixes something (authentication, configuration): the
    /// pass stops and the command exits 3.
    Fatal,
}

/// A failed call, already retried by the client where that made sense.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{api} call failed: {message}", api = api.as_str())]
pub struct ApiError {
    /// Which side.
    pub api: Api,
    /// How it failed.
    pub kind: ErrorKind,
    /// The client's message (never carries a secret: clients redact).
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(api: Api, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { api, kind, message: message.into() }
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, ApiError>;

/// The Bytebase calls the engine makes.
pub trait Bytebase: Send + Sync {
    /// Every OPEN issue of every project the service account can read (`projects/-`), in as few
    /// calls as paging allows.
    fn open_issues(&self) -> impl Future<Output = PortResult<Vec<IssueView>>> + Send;
    /// Issues with approval status SKIPPED created at or after `since`.
    fn skipped_issues(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<Vec<IssueView>>> + Send;
    /// One issue.
    fn issue(&self, name: &str) -> impl Future<Output = PortResult<IssueView>> + Send;
    /// Every plan of the workspace that has no rollout yet (`projects/-/plans`, filter
    /// `has_rollout == false`): one listing instead of a GetPlan per issue awaiting the CAB.
    fn unrolled_plans(&self) -> impl Future<Output = PortResult<Vec<PlanView>>> + Send;
    /// One plan.
    fn plan(&self, name: &str) -> impl Future<Output = PortResult<PlanView>> + Send;
    /// The plan's rollout, `None` while it does not exist.
    fn rollout(&self, plan: &str) -> impl Future<Output = PortResult<Option<RolloutView>>> + Send;
    /// CreateRollout (idempotent).
    fn create_rollout(&self, plan: &str) -> impl Future<Output = PortResult<RolloutView>> + Send;
    /// The texts of the issue's comments.
    fn comments(&self, issue: &str) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    /// Adds a comment.
    fn comment(&self, issue: &str, text: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Approves as the service account.
    fn approve(&self, issue: &str, text: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Rejects as the service account.
    fn reject(&self, issue: &str, text: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// BatchRunTasks for tasks of one stage.
    fn run_tasks(
        &self,
        stage: &str,
        tasks: &[String],
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Cancels every pending or running task run of a stage.
    fn cancel_runs(&self, stage: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Skips tasks of a stage with a reason.
    fn skip_tasks(
        &self,
        stage: &str,
        tasks: &[String],
        reason: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// The ServiceNow calls the engine makes.
pub trait ServiceNow: Send + Sync {
    /// Every active CHG whose correlation id starts with `prefix`, in as few calls as paging
    /// allows (one list query per pass, whatever the number of CHGs).
    fn active_changes(
        &self,
        prefix: &str,
    ) -> impl Future<Output = PortResult<Vec<ChangeView>>> + Send;
    /// The CHGs (active or not) with these correlation ids, in batched `correlation_idIN…`
    /// queries.
    fn changes_by_correlation(
        &self,
        ids: &[String],
    ) -> impl Future<Output = PortResult<Vec<ChangeView>>> + Send;
    /// Looks the correlation id up, and creates the CHG only when none exists.
    fn create_change(
        &self,
        correlation_id: &str,
        fields: &BTreeMap<String, String>,
    ) -> impl Future<Output = PortResult<ChangeView>> + Send;
    /// A fresh read of one CHG (without its approver rows).
    fn change(&self, sys_id: &str) -> impl Future<Output = PortResult<ChangeView>> + Send;
    /// The approver rows of one CHG.
    fn approvers(&self, sys_id: &str)
    -> impl Future<Output = PortResult<Vec<ApproverView>>> + Send;
    /// Updates fields (no state change).
    fn update_fields(
        &self,
        sys_id: &str,
        fields: &BTreeMap<String, String>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Moves the CHG to a state by name (`assess`, `implement`, …), re-reads it and fails when
    /// ServiceNow did not take the change.
    fn set_state(&self, sys_id: &str, state: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Appends a work note.
    fn work_note(&self, sys_id: &str, text: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Closes the CHG (through Review) with a close code and notes.
    fn close(
        &self,
        sys_id: &str,
        code: &str,
        notes: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Cancels the CHG with a note.
    fn cancel(&self, sys_id: &str, notes: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// One line of the journal: who did what to which resources, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// The actor: the Bytebase service account.
    pub actor: String,
    /// The Bytebase issue.
    pub issue: String,
    /// The CHG (`CHG… (sys_id)`), when there is one.
    pub change: Option<String>,
    /// The transition that fired.
    pub transition: String,
    /// The action kind (`approve_issue`, …).
    pub action: String,
    /// `done`, `skipped`, `blocked` or `failed`.
    pub outcome: String,
    /// Why: the facts or the precondition that decided it.
    pub detail: String,
}

/// A SKIPPED issue handed to the alert outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedAlert {
    /// The issue.
    pub issue: String,
    /// Its title.
    pub title: String,
    /// Its creator.
    pub creator: String,
    /// When it was created.
    pub create_time: Option<DateTime<Utc>>,
    /// Link to it.
    pub url: String,
}

/// The runner's durable state.
pub trait Store: Send + Sync {
    /// Every workflow record.
    fn records(&self) -> impl Future<Output = PortResult<Vec<Record>>> + Send;
    /// Writes one record (atomically replacing the previous one).
    fn save(&self, record: &Record) -> impl Future<Output = PortResult<()>> + Send;
    /// Appends to the journal.
    fn journal(&self, entry: &JournalEntry) -> impl Future<Output = PortResult<()>> + Send;
    /// Puts an alert in the outbox once: a second call for the same issue does nothing. Returns
    /// true when it was new.
    fn enqueue_alert(&self, alert: &SkippedAlert) -> impl Future<Output = PortResult<bool>> + Send;
    /// Delivers what the outbox holds to every sink; returns how many alerts are still waiting.
    fn deliver_alerts(&self) -> impl Future<Output = PortResult<u64>> + Send;
}
