//! act: carries out one decided step, action by action, each idempotent and each gated action
//! behind a fresh read of its precondition.
//!
//! `decide` saw the state of the start of the pass; by the time an action runs, the CAB may have
//! withdrawn its approval, the window may have closed, or the creator may have edited the plan.
//! So `approve_issue`, `create_rollout` and `run_tasks` re-read the CHG (and the issue and plan,
//! or the rollout) just before calling Bytebase, and stop the step ("blocked") when the
//! precondition no longer holds. Every other action checks the other side first so that running
//! it twice — after a crash, a retry or a second runner — changes nothing the second time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::spec::model::{Action, ActionKind, OnRework};
use crate::workflow::decide::{ChangeRef, Record};
use crate::workflow::facts::{
    ChangeView, Governance, IssueView, Observation, RolloutView, next_stage,
};
use crate::workflow::port::{Bytebase, PortResult, ServiceNow};
use crate::workflow::template::{
    Context, approval_comment, asks_for_rework, change_fields, change_opened_comment,
    correlation_id, rejection_comment,
};

/// What the engine needs to know to act (from the spec).
#[derive(Debug, Clone)]
pub struct ActSettings {
    /// Bytebase base URL (links, correlation ids).
    pub bytebase_url: String,
    /// ServiceNow instance URL (links in comments).
    pub instance_url: String,
    /// The CHG template.
    pub template: BTreeMap<String, String>,
    /// Assignment group of the CHG, from the governed environments.
    pub assignment_group: Option<String>,
    /// Call CreateRollout when the wait expires.
    pub fallback_create: bool,
    /// Update the CHG or open a new one when a reworked plan comes back.
    pub on_rework: OnRework,
    /// Environments, windows, rollout wait.
    pub governance: Governance,
}

/// How one action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it says.
    Done(String),
    /// There was nothing to do (already done, or not applicable); the step goes on.
    Skipped(String),
    /// Its precondition does not hold any more: the step stops here and the next pass decides
    /// again from fresh facts.
    Blocked(String),
}

impl Outcome {
    /// `done`, `skipped` or `blocked`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Skipped(_) => "skipped",
            Outcome::Blocked(_) => "blocked",
        }
    }

    /// The explanation.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Done(d) | Outcome::Skipped(d) | Outcome::Blocked(d) => d,
        }
    }
}

/// Everything one action works on.
pub struct Target<'a, B, S> {
    /// Bytebase.
    pub bytebase: &'a B,
    /// ServiceNow.
    pub servicenow: &'a S,
    /// Settings.
    pub settings: &'a ActSettings,
    /// What the pass saw.
    pub observation: &'a Observation,
    /// The record, updated in place (CHG reference, plan version, generation).
    pub record: &'a mut Record,
    /// The instant of the pass.
    pub now: DateTime<Utc>,
}

impl<B: Bytebase, S: ServiceNow> Target<'_, B, S> {
    fn issue(&self) -> &IssueView {
        &self.observation.issue
    }

    fn context(&self) -> Context {
        let ctx = Context::for_issue(self.issue(), &self.settings.bytebase_url);
        match &self.record.change {
            Some(c) => ctx.with("change.number", c.number.clone()).with("change.sys_id", &c.sys_id),
            None => ctx,
        }
    }

    /// Carries out one action.
    pub async fn run(&mut self, action: &Action) -> PortResult<Outcome> {
        let text = action.args.get("text").and_then(|v| v.as_str()).map(str::to_owned);
        match action.kind {
            ActionKind::CreateChange => self.create_change().await,
            ActionKind::Comment => self.comment(text).await,
            ActionKind::ApproveIssue => self.approve_issue().await,
            ActionKind::RejectIssue => self.reject_issue().await,
            ActionKind::WaitRollout => self.wait_rollout().await,
            ActionKind::CreateRollout => self.create_rollout().await,
            ActionKind::RunTasks => self.run_tasks().await,
            ActionKind::CancelTaskRuns => self.cancel_task_runs().await,
            ActionKind::SkipTasks => self.skip_tasks(text).await,
            ActionKind::UpdateChange => self.update_change(action).await,
            ActionKind::CloseChange => self.close_change(action, text).await,
            ActionKind::Alert => Ok(self.alert(text)),
        }
    }

    async fn create_change(&mut self) -> PortResult<Outcome> {
        if let Some(c) = &self.record.change {
            let current = self.servicenow.change(&c.sys_id).await?;
            if !current.is_terminal() {
                return Ok(Outcome::Skipped(format!("{} already exists", current.number)));
            }
            self.record.generation += 1;
        }
        self.open_change().await
    }

    /// Looks the CHG up by correlation id, creates it when missing, and sends it to the CAB.
    async fn open_change(&mut self) -> PortResult<Outcome> {
        let correlation =
            correlation_id(&self.settings.bytebase_url, &self.issue().name, self.record.generation);
        let plan = self.bytebase.plan(&self.issue().plan).await?;
        let mut fields = change_fields(&self.settings.template, &self.context());
        fields.insert("correlation_display".into(), self.issue().name.chars().take(100).collect());
        if let Some(group) = &self.settings.assignment_group {
            fields.entry("assignment_group".into()).or_insert_with(|| group.clone());
        }
        let change = self.servicenow.create_change(&correlation, &fields).await?;
        self.record.change = Some(ChangeRef {
            sys_id: change.sys_id.clone(),
            number: change.number.clone(),
            correlation_id: correlation,
        });
        self.record.plan_version = Some(plan.version);
        // Only a CHG never sent to the CAB is sent now: one found by its correlation id may
        // already carry the CAB's decision (a rejected CHG is back in New), which must stand.
        if change.state == "new" && change.approval == "not_requested" {
            self.servicenow.set_state(&change.sys_id, "assess").await?;
        }
        Ok(Outcome::Done(format!("{} opened and sent to the CAB", change.number)))
    }

    async fn comment(&mut self, text: Option<String>) -> PortResult<Outcome> {
        let body = match (text, &self.record.change) {
            (Some(t), _) => format!("cabgate: {}", self.context().render(&t)),
            (None, Some(c)) => {
                change_opened_comment(&c.number, &self.settings.instance_url, &c.sys_id)
            }
            (None, None) => return Ok(Outcome::Skipped("no CHG to name".into())),
        };
        let existing = self.bytebase.comments(&self.issue().name).await?;
        if existing.iter().any(|c| c.trim() == body.trim()) {
            return Ok(Outcome::Skipped("the same comment is already there".into()));
        }
        self.bytebase.comment(&self.issue().name, &body).await?;
        Ok(Outcome::Done(body))
    }

    /// The CHG as ServiceNow has it now; `None` when the issue has no CHG.
    async fn fresh_change(&self) -> PortResult<Option<ChangeView>> {
        match &self.record.change {
            Some(c) => Ok(Some(self.servicenow.change(&c.sys_id).await?)),
            None => Ok(None),
        }
    }

    fn gate(&self, change: Option<&ChangeView>) -> Option<String> {
        gate(self.settings, self.observation.rollout.as_ref(), change, false, self.now)
    }

    async fn approve_issue(&mut self) -> PortResult<Outcome> {
        let change = self.fresh_change().await?;
        if let Some(why) = self.gate(change.as_ref()) {
            return Ok(Outcome::Blocked(why));
        }
        let Some(change) = change else { return Ok(Outcome::Blocked("no CHG".into())) };
        let issue = self.bytebase.issue(&self.issue().name).await?;
        match issue.approval_status.as_str() {
            "APPROVED" => return Ok(Outcome::Skipped("the issue is already approved".into())),
            "PENDING" => {}
            other => return Ok(Outcome::Blocked(format!("the issue is {other}, not PENDING"))),
        }
        let plan = self.bytebase.plan(&issue.plan).await?;
        if self.record.plan_version.as_deref() != Some(plan.version.as_str()) {
            return Ok(Outcome::Blocked("the plan changed since the CAB reviewed it".into()));
        }
        let approvers = self.servicenow.approvers(&change.sys_id).await?;
        let names: Vec<String> = approvers
            .iter()
            .filter(|a| a.state == "approved")
            .map(|a| a.approver.clone())
            .collect();
        let text = approval_comment(&change.number, &names);
        self.bytebase.approve(&issue.name, &text).await?;
        Ok(Outcome::Done(text))
    }

    async fn reject_issue(&mut self) -> PortResult<Outcome> {
        let issue = self.bytebase.issue(&self.issue().name).await?;
        if issue.approval_status != "PENDING" {
            let why = format!("the issue is {}, nothing to reject", issue.approval_status);
            return Ok(Outcome::Skipped(why));
        }
        let change = self.fresh_change().await?;
        let text = match &change {
            Some(c) if c.state == "canceled" => {
                format!(
                    "cabgate: ServiceNow {} was canceled; the change cannot go ahead.",
                    c.number
                )
            }
            Some(c) => {
                let approvers = self.servicenow.approvers(&c.sys_id).await?;
                let reason = ChangeView { approvers, ..c.clone() }.rejection_reason();
                rejection_comment(&c.number, &reason, asks_for_rework(&reason))
            }
            None => "cabgate: rejected: the issue has no approved CHG.".to_owned(),
        };
        self.bytebase.reject(&issue.name, &text).await?;
        Ok(Outcome::Done(text))
    }

    async fn wait_rollout(&mut self) -> PortResult<Outcome> {
        let plan = self.bytebase.plan(&self.issue().plan).await?;
        if plan.has_rollout {
            return Ok(Outcome::Done("the rollout exists".into()));
        }
        let waited = self.now - self.record.since;
        if waited < self.settings.governance.rollout_timeout {
            return Ok(Outcome::Blocked("waiting for Bytebase to create the rollout".into()));
        }
        self.create_rollout().await
    }

    async fn create_rollout(&mut self) -> PortResult<Outcome> {
        if !self.settings.fallback_create {
            return Ok(Outcome::Blocked(
                "no rollout yet and rolloutWait.fallbackCreate is off: create it in Bytebase"
                    .into(),
            ));
        }
        let change = self.fresh_change().await?;
        if let Some(why) = self.gate(change.as_ref()) {
            return Ok(Outcome::Blocked(why));
        }
        if self.bytebase.rollout(&self.issue().plan).await?.is_some() {
            return Ok(Outcome::Skipped("the rollout exists".into()));
        }
        let rollout = self.bytebase.create_rollout(&self.issue().plan).await?;
        Ok(Outcome::Done(format!("created {}", rollout.name)))
    }

    async fn run_tasks(&mut self) -> PortResult<Outcome> {
        let change = self.fresh_change().await?;
        let Some(rollout) = self.bytebase.rollout(&self.issue().plan).await? else {
            return Ok(Outcome::Blocked("the rollout does not exist yet".into()));
        };
        if let Some(why) = gate(self.settings, Some(&rollout), change.as_ref(), true, self.now) {
            return Ok(Outcome::Blocked(why));
        }
        let Some(stage) = next_stage(&self.settings.governance, &rollout) else {
            return Ok(Outcome::Skipped("no governed stage waits to start".into()));
        };
        let tasks: Vec<String> = stage
            .tasks
            .iter()
            .filter(|t| t.status == "NOT_STARTED")
            .map(|t| t.name.clone())
            .collect();
        self.bytebase.run_tasks(&stage.name, &tasks).await?;
        let note = format!("cabgate: started {} task(s) in {}.", tasks.len(), stage.environment);
        if let Some(c) = &change {
            self.servicenow.work_note(&c.sys_id, &note).await?;
        }
        Ok(Outcome::Done(note))
    }

    async fn cancel_task_runs(&mut self) -> PortResult<Outcome> {
        let Some(rollout) = self.bytebase.rollout(&self.issue().plan).await? else {
            return Ok(Outcome::Skipped("no rollout".into()));
        };
        let mut canceled = Vec::new();
        for stage in self.settings.governance.governed_stages(&rollout) {
            if stage.tasks.iter().any(|t| matches!(t.status.as_str(), "PENDING" | "RUNNING")) {
                self.bytebase.cancel_runs(&stage.name).await?;
                canceled.push(stage.environment.clone());
            }
        }
        if canceled.is_empty() {
            return Ok(Outcome::Skipped("no task run pending or running".into()));
        }
        let note = format!("cabgate: canceled task runs in {}.", canceled.join(", "));
        if let Some(c) = &self.record.change {
            self.servicenow.work_note(&c.sys_id, &note).await?;
        }
        Ok(Outcome::Done(note))
    }

    async fn skip_tasks(&mut self, text: Option<String>) -> PortResult<Outcome> {
        let Some(rollout) = self.bytebase.rollout(&self.issue().plan).await? else {
            return Ok(Outcome::Skipped("no rollout".into()));
        };
        let reason = text.unwrap_or_else(|| "skipped by cabgate".into());
        let mut skipped = 0;
        for stage in self.settings.governance.governed_stages(&rollout) {
            let tasks: Vec<String> = stage
                .tasks
                .iter()
                .filter(|t| t.status == "NOT_STARTED")
                .map(|t| t.name.clone())
                .collect();
            if !tasks.is_empty() {
                self.bytebase.skip_tasks(&stage.name, &tasks, &reason).await?;
                skipped += tasks.len();
            }
        }
        if skipped == 0 {
            return Ok(Outcome::Skipped("no task to skip".into()));
        }
        Ok(Outcome::Done(format!("skipped {skipped} task(s)")))
    }

    async fn update_change(&mut self, action: &Action) -> PortResult<Outcome> {
        let resubmit = action.args.get("resubmit").and_then(|v| v.as_bool()).unwrap_or(false);
        if resubmit {
            return self.resubmit().await;
        }
        let Some(change) = self.fresh_change().await? else {
            return Ok(Outcome::Skipped("no CHG".into()));
        };
        let mut did = Vec::new();
        if let Some(state) = action.args.get("state").and_then(|v| v.as_str()) {
            if change.state != state {
                self.servicenow.set_state(&change.sys_id, state).await?;
                did.push(format!("{} moved to {state}", change.number));
            }
        }
        if let Some(text) = action.args.get("text").and_then(|v| v.as_str()) {
            let note = format!("cabgate: {}", self.context().render(text));
            self.servicenow.work_note(&change.sys_id, &note).await?;
            did.push(note);
        }
        if did.is_empty() {
            return Ok(Outcome::Skipped(format!("{} needs no update", change.number)));
        }
        Ok(Outcome::Done(did.join("; ")))
    }

    /// The creator brought a new plan version: the CAB reviews it again, in the same CHG
    /// (`onRework: update`) or in a new one (`onRework: new`). A CHG the CAB already approved
    /// cannot go back to Assess in ServiceNow's model, so it is replaced by a new one either way.
    async fn resubmit(&mut self) -> PortResult<Outcome> {
        let Some(change) = self.fresh_change().await? else {
            return self.open_change().await;
        };
        let plan = self.bytebase.plan(&self.issue().plan).await?;
        let replace = self.settings.on_rework == OnRework::New
            || change.is_terminal()
            || matches!(change.state.as_str(), "scheduled" | "implement" | "review");
        if replace {
            // The new CHG first: a crash before the old one is canceled leaves the record on the
            // old CHG, and the next pass finds the new one by its correlation id and finishes.
            self.record.generation += 1;
            let opened = self.open_change().await?;
            if !change.is_terminal() {
                let note = "cabgate: superseded by a new CHG for the changed plan.";
                self.servicenow.cancel(&change.sys_id, note).await?;
            }
            return Ok(opened);
        }
        let fields = change_fields(&self.settings.template, &self.context());
        self.servicenow.update_fields(&change.sys_id, &fields).await?;
        let note = format!(
            "cabgate: the Bytebase plan changed (version {}); please review this CHG again.",
            plan.version
        );
        self.servicenow.work_note(&change.sys_id, &note).await?;
        if change.state == "new" {
            self.servicenow.set_state(&change.sys_id, "assess").await?;
        }
        self.record.plan_version = Some(plan.version);
        Ok(Outcome::Done(format!("{} sent back to the CAB", change.number)))
    }

    async fn close_change(&mut self, action: &Action, text: Option<String>) -> PortResult<Outcome> {
        let Some(change) = self.fresh_change().await? else {
            return Ok(Outcome::Skipped("no CHG".into()));
        };
        if change.is_terminal() {
            return Ok(Outcome::Skipped(format!("{} is already {}", change.number, change.state)));
        }
        let notes = text.map(|t| self.context().render(&t));
        if action.args.get("state").and_then(|v| v.as_str()) == Some("canceled") {
            let notes = notes.unwrap_or_else(|| "Canceled by cabgate.".into());
            self.servicenow.cancel(&change.sys_id, &notes).await?;
            return Ok(Outcome::Done(format!("{} canceled", change.number)));
        }
        let code = action.args.get("code").and_then(|v| v.as_str()).unwrap_or("successful");
        let notes = notes.unwrap_or_else(|| match code {
            "successful" => "Every governed task finished in Bytebase.".to_owned(),
            "unsuccessful" => "A governed task failed in Bytebase.".to_owned(),
            other => format!("Closed by cabgate ({other})."),
        });
        self.servicenow.close(&change.sys_id, code, &notes).await?;
        Ok(Outcome::Done(format!("{} closed {code}", change.number)))
    }

    fn alert(&self, text: Option<String>) -> Outcome {
        let text = text.map(|t| self.context().render(&t)).unwrap_or_default();
        // TODO: route workflow `alert` actions through the alert outbox; today they are logged
        // at error level and journaled, which the log sink would also do.
        tracing::error!(issue = %self.issue().name, %text, "workflow alert");
        Outcome::Done(format!("alert: {text}"))
    }
}

/// Why a gated action (approve, create rollout, run) may not run now, from a fresh read of the
/// CHG: it must be approved, in `implement` to run tasks, and inside its window when one of the
/// issue's governed environments requires it.
pub fn gate(
    settings: &ActSettings,
    rollout: Option<&RolloutView>,
    change: Option<&ChangeView>,
    need_implement: bool,
    now: DateTime<Utc>,
) -> Option<String> {
    let Some(change) = change else { return Some("the issue has no CHG".into()) };
    if change.approval != "approved" {
        return Some(format!("{} is {}, not approved", change.number, change.approval));
    }
    if need_implement && change.state != "implement" {
        return Some(format!("{} is in {}, not implement", change.number, change.state));
    }
    if settings.governance.window_required(rollout) {
        let inside =
            matches!((change.start, change.end), (Some(s), Some(e)) if s <= now && now <= e);
        if !inside {
            return Some(format!("{} is outside its planned window", change.number));
        }
    }
    None
}
