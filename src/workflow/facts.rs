//! What one pass sees of one governed issue, and the facts the workflow's conditions test.
//!
//! An [`Observation`] is plain data assembled by `observe` from both APIs; [`Facts::derive`]
//! turns it into the vocabulary of [`Fact`] without any I/O and without a clock other than the
//! `now` it is given, so `decide` stays a pure function that tests can drive with any state.
//!
//! Values follow the spec grammar: Bytebase enums in upper case as the API spells them
//! (`PENDING`, `OPEN`), ServiceNow names in lower case (`approved`, `implement`), booleans as
//! `true` / `false`, and `none` when the thing a fact reads does not exist yet.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::spec::model::Fact;

/// A Bytebase issue as the runner needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueView {
    /// `projects/{p}/issues/{id}`.
    pub name: String,
    /// Title, for the CHG template.
    pub title: String,
    /// Description, for the CHG template.
    pub description: String,
    /// `users/{email}` of the creator.
    pub creator: String,
    /// OPEN, DONE or CANCELED.
    pub status: String,
    /// CHECKING, PENDING, APPROVED, REJECTED or SKIPPED.
    pub approval_status: String,
    /// `projects/{p}/plans/{id}`.
    pub plan: String,
    /// When the issue was created (RFC 3339), for alerts and the template.
    pub create_time: Option<DateTime<Utc>>,
}

impl IssueView {
    /// The project id of the issue (`p` in `projects/p/issues/1`).
    pub fn project(&self) -> &str {
        self.name.strip_prefix("projects/").and_then(|r| r.split('/').next()).unwrap_or("")
    }
}

/// The plan behind an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanView {
    /// `projects/{p}/plans/{id}`.
    pub name: String,
    /// What identifies this version of the plan (its `updateTime`): a rework changes it.
    pub version: String,
    /// True once Bytebase (or the fallback) created the rollout.
    pub has_rollout: bool,
}

/// One task of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    /// `…/rollout/stages/{env}/tasks/{n}`.
    pub name: String,
    /// NOT_STARTED, PENDING, RUNNING, DONE, FAILED, CANCELED or SKIPPED.
    pub status: String,
}

/// One stage of a rollout: the tasks of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageView {
    /// `…/rollout/stages/{env}`.
    pub name: String,
    /// The environment id (`prod`, not `environments/prod`).
    pub environment: String,
    /// Its tasks.
    pub tasks: Vec<TaskView>,
}

/// A rollout, stages in Bytebase's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RolloutView {
    /// `projects/{p}/plans/{id}/rollout`.
    pub name: String,
    /// The stages, in order.
    pub stages: Vec<StageView>,
}

/// One row of `sysapproval_approver` for the CHG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApproverView {
    /// Who (user name or e-mail, as ServiceNow gives it).
    pub approver: String,
    /// approved, rejected, requested, not_required, …
    pub state: String,
    /// The approver's comment, if any (the reason of a rejection).
    pub comment: String,
}

/// A CHG as one pass sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    /// 32-hex record id.
    pub sys_id: String,
    /// `CHG…`, for people.
    pub number: String,
    /// The correlation id it was found under.
    pub correlation_id: String,
    /// new, assess, authorize, scheduled, implement, review, closed, canceled, or the raw stored
    /// value of a state cabgate does not know (which parks the issue, never approves it).
    pub state: String,
    /// not_requested, requested, approved, rejected.
    pub approval: String,
    /// Planned start.
    pub start: Option<DateTime<Utc>>,
    /// Planned end.
    pub end: Option<DateTime<Utc>>,
    /// The approver rows (read when the approval moved).
    pub approvers: Vec<ApproverView>,
}

impl ChangeView {
    /// True when the CHG will not move again (closed or canceled).
    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "closed" | "canceled")
    }

    /// The approvers who approved, for the approval comment.
    pub fn approved_by(&self) -> Vec<&str> {
        self.approvers
            .iter()
            .filter(|a| a.state == "approved")
            .map(|a| a.approver.as_str())
            .collect()
    }

    /// The reasons the rejecting approvers gave.
    pub fn rejection_reason(&self) -> String {
        let reasons: Vec<String> = self
            .approvers
            .iter()
            .filter(|a| a.state == "rejected")
            .map(|a| {
                if a.comment.trim().is_empty() {
                    format!("rejected by {}", a.approver)
                } else {
                    format!("{} ({})", a.comment.trim(), a.approver)
                }
            })
            .collect();
        if reasons.is_empty() { "rejected by the CAB".to_owned() } else { reasons.join("; ") }
    }
}

/// Everything one pass observed about one governed issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// The issue.
    pub issue: IssueView,
    /// Its plan, when the pass read it.
    pub plan: Option<PlanView>,
    /// Its rollout, when it exists and the pass read it.
    pub rollout: Option<RolloutView>,
    /// Its CHG, when one exists.
    pub change: Option<ChangeView>,
}

/// What fact derivation needs from the spec.
#[derive(Debug, Clone, Default)]
pub struct Governance {
    /// Environment ids whose stages need an approved CHG (the runner runs only these).
    pub governed: BTreeSet<String>,
    /// Governed environment ids whose CHG must be inside its planned window to run.
    pub require_window: BTreeSet<String>,
    /// How long to wait for the asynchronous rollout before `rollout.waitExpired`.
    pub rollout_timeout: TimeDelta,
}

impl Governance {
    /// The governed stages of a rollout, in order.
    pub fn governed_stages<'a>(&self, rollout: &'a RolloutView) -> Vec<&'a StageView> {
        rollout.stages.iter().filter(|s| self.governed.contains(&s.environment)).collect()
    }

    /// Whether this issue's CHG must be inside its window. Before the rollout exists the
    /// environments are unknown, so any governed environment that requires a window counts (the
    /// stricter reading); once it exists, only its governed stages do.
    pub fn window_required(&self, rollout: Option<&RolloutView>) -> bool {
        match rollout {
            None => !self.require_window.is_empty(),
            Some(r) => r.stages.iter().any(|s| self.require_window.contains(&s.environment)),
        }
    }
}

/// Per-issue memory the facts depend on (from the store's workflow record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory<'a> {
    /// The plan version the CHG was opened or last resubmitted for.
    pub plan_version: Option<&'a str>,
    /// When the issue entered its current workflow state.
    pub since: Option<DateTime<Utc>>,
}

/// The value of every fact for one issue at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts(pub BTreeMap<Fact, String>);

impl Facts {
    /// Derives every fact from an observation.
    pub fn derive(
        obs: &Observation,
        memory: &Memory<'_>,
        governance: &Governance,
        now: DateTime<Utc>,
    ) -> Facts {
        let mut facts = BTreeMap::new();
        facts.insert(Fact::IssueApprovalStatus, obs.issue.approval_status.clone());
        facts.insert(Fact::IssueStatus, obs.issue.status.clone());
        let plan_changed = match (memory.plan_version, &obs.plan) {
            (Some(seen), Some(plan)) => seen != plan.version,
            _ => false,
        };
        facts.insert(Fact::IssuePlanChanged, plan_changed.to_string());
        facts.insert(Fact::ChangeExists, obs.change.is_some().to_string());
        let (state, approval) = match &obs.change {
            Some(c) => (c.state.clone(), c.approval.clone()),
            None => ("none".to_owned(), "none".to_owned()),
        };
        facts.insert(Fact::ChangeState, state);
        facts.insert(Fact::ChangeApproval, approval);
        let window =
            window(obs.change.as_ref(), governance.window_required(obs.rollout.as_ref()), now);
        facts.insert(Fact::ChangeWindow, window.to_owned());
        let rollout_exists =
            obs.rollout.is_some() || obs.plan.as_ref().is_some_and(|p| p.has_rollout);
        facts.insert(Fact::RolloutExists, rollout_exists.to_string());
        let expired = !rollout_exists
            && memory.since.is_some_and(|since| now - since >= governance.rollout_timeout);
        facts.insert(Fact::RolloutWaitExpired, expired.to_string());
        let tasks = match &obs.rollout {
            Some(r) => tasks_summary(&governance.governed_stages(r)),
            None => "none",
        };
        facts.insert(Fact::Tasks, tasks.to_owned());
        Facts(facts)
    }

    /// The value of one fact.
    pub fn get(&self, fact: Fact) -> &str {
        self.0.get(&fact).map_or("none", String::as_str)
    }
}

/// `open`, `closed` or `none` for the CHG's planned window.
///
/// NOTE: when a window is required but the CHG has none, the fact is `closed`, not `none`: a
/// run the spec wants inside a window must not happen because nobody planned one.
fn window(change: Option<&ChangeView>, required: bool, now: DateTime<Utc>) -> &'static str {
    if !required {
        return "none";
    }
    match change.map(|c| (c.start, c.end)) {
        Some((Some(start), Some(end))) if start <= now && now <= end => "open",
        _ => "closed",
    }
}

/// One word for the tasks of the governed stages, worst first: `failed`, `canceled`, `running`
/// (a run is pending or running), `not_started` (some task waits for `batchRun`), `done` (every
/// task done or skipped, or no governed task at all).
pub fn tasks_summary(stages: &[&StageView]) -> &'static str {
    let statuses: Vec<&str> =
        stages.iter().flat_map(|s| s.tasks.iter().map(|t| t.status.as_str())).collect();
    let any = |wanted: &[&str]| statuses.iter().any(|s| wanted.contains(s));
    if any(&["FAILED"]) {
        "failed"
    } else if any(&["CANCELED"]) {
        "canceled"
    } else if any(&["PENDING", "RUNNING"]) {
        "running"
    } else if statuses.iter().any(|s| !matches!(*s, "DONE" | "SKIPPED")) {
        "not_started"
    } else {
        "done"
    }
}

/// The first governed stage that still has a task to start, when no earlier governed stage is
/// unfinished: the stage `run_tasks` runs next. `None` while a stage runs or when all are done.
pub fn next_stage<'a>(governance: &Governance, rollout: &'a RolloutView) -> Option<&'a StageView> {
    for stage in governance.governed_stages(rollout) {
        let summary = tasks_summary(&[stage]);
        match summary {
            "done" => continue,
            "not_started" => return Some(stage),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn stage(env: &str, statuses: &[&str]) -> StageView {
        StageView {
            name: format!("projects/p/plans/1/rollout/stages/{env}"),
            environment: env.to_owned(),
            tasks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| TaskView {
                    name: format!("projects/p/plans/1/rollout/stages/{env}/tasks/{i}"),
                    status: (*s).to_owned(),
                })
                .collect(),
        }
    }

    fn governance() -> Governance {
        Governance {
            governed: ["prod".to_owned(), "prod-eu".to_owned()].into(),
            require_window: ["prod".to_owned()].into(),
            rollout_timeout: TimeDelta::minutes(10),
        }
    }

    #[test]
    fn tasks_summary_reports_the_worst_status() {
        assert_eq!(tasks_summary(&[&stage("prod", &["DONE", "FAILED", "RUNNING"])]), "failed");
        assert_eq!(tasks_summary(&[&stage("prod", &["DONE", "PENDING"])]), "running");
        assert_eq!(tasks_summary(&[&stage("prod", &["DONE", "NOT_STARTED"])]), "not_started");
        assert_eq!(tasks_summary(&[&stage("prod", &["DONE", "SKIPPED"])]), "done");
        assert_eq!(tasks_summary(&[]), "done");
    }

    #[test]
    fn next_stage_waits_for_the_stage_before() {
        let g = governance();
        let rollout = RolloutView {
            name: "r".into(),
            stages: vec![
                stage("staging", &["NOT_STARTED"]),
                stage("prod", &["RUNNING"]),
                stage("prod-eu", &["NOT_STARTED"]),
            ],
        };
        assert!(next_stage(&g, &rollout).is_none(), "prod still runs");
        let rollout = RolloutView {
            name: "r".into(),
            stages: vec![stage("prod", &["DONE"]), stage("prod-eu", &["NOT_STARTED"])],
        };
        assert_eq!(next_stage(&g, &rollout).map(|s| s.environment.as_str()), Some("prod-eu"));
    }

    #[test]
    fn a_required_window_without_dates_is_closed() {
        let now = Utc::now();
        let mut change = ChangeView {
            sys_id: "a".repeat(32),
            number: "CHG0000001".into(),
            correlation_id: "c".into(),
            state: "scheduled".into(),
            approval: "approved".into(),
            start: None,
            end: None,
            approvers: vec![],
        };
        assert_eq!(window(Some(&change), true, now), "closed");
        assert_eq!(window(Some(&change), false, now), "none");
        change.start = Some(now - TimeDelta::hours(1));
        change.end = Some(now + TimeDelta::hours(1));
        assert_eq!(window(Some(&change), true, now), "open");
        change.end = Some(now - TimeDelta::minutes(1));
        assert_eq!(window(Some(&change), true, now), "closed");
    }
}
