//! Typed models of the Bytebase resources cabgate reads and writes.
//!
//! Bytebase's JSON omits zero values (`false`, `0`, `""`, `[]`, `*_UNSPECIFIED`), so every field
//! has a default and a missing field reads as its zero value. Unknown fields are ignored (newer
//! Bytebase versions add fields); unknown enum values read as `Unknown` instead of failing the
//! whole call. Serializing writes every field out, zero values included.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Defines a Bytebase enum: its zero value is `Unspecified`, an unknown value is `Unknown`.
macro_rules! api_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($unspecified:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        pub enum $name {
            /// The zero value: omitted by the API, or not set.
            #[default]
            #[serde(rename = $unspecified)]
            Unspecified,
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )*
            /// A value this version of cabgate does not know.
            #[serde(other)]
            Unknown,
        }

        impl $name {
            /// The name Bytebase uses in JSON and filters.
            pub fn as_str(self) -> &'static str {
                match self {
                    $name::Unspecified => $unspecified,
                    $( $name::$variant => $text, )*
                    $name::Unknown => "UNKNOWN",
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

api_enum! {
    /// An issue's lifecycle status. DONE is set once the rollout is *created*, not finished.
    IssueStatus ("ISSUE_STATUS_UNSPECIFIED") {
        /// Open.
        Open = "OPEN",
        /// Rollout created (or the issue closed as done).
        Done = "DONE",
        /// Canceled.
        Canceled = "CANCELED",
    }
}

api_enum! {
    /// The result of approval finding and review (`computeApprovalStatus`).
    ApprovalStatus ("APPROVAL_STATUS_UNSPECIFIED") {
        /// Finding not done yet.
        Checking = "CHECKING",
        /// Waiting for an approver.
        Pending = "PENDING",
        /// Every step approved.
        Approved = "APPROVED",
        /// A step rejected.
        Rejected = "REJECTED",
        /// No approval template: the issue bypassed approval.
        Skipped = "SKIPPED",
    }
}

api_enum! {
    /// One approver's decision on a step.
    ApproverStatus ("STATUS_UNSPECIFIED") {
        /// Not decided.
        Pending = "PENDING",
        /// Approved.
        Approved = "APPROVED",
        /// Rejected.
        Rejected = "REJECTED",
    }
}

api_enum! {
    /// A task's status, from its latest run.
    TaskStatus ("STATUS_UNSPECIFIED") {
        /// No run yet.
        NotStarted = "NOT_STARTED",
        /// A run is queued (run AVAILABLE or PENDING).
        Pending = "PENDING",
        /// Running.
        Running = "RUNNING",
        /// Done.
        Done = "DONE",
        /// Failed.
        Failed = "FAILED",
        /// Canceled.
        Canceled = "CANCELED",
        /// Skipped.
        Skipped = "SKIPPED",
    }
}

api_enum! {
    /// A task run's status.
    TaskRunStatus ("STATUS_UNSPECIFIED") {
        /// Queued.
        Pending = "PENDING",
        /// Running.
        Running = "RUNNING",
        /// Done.
        Done = "DONE",
        /// Failed.
        Failed = "FAILED",
        /// Canceled.
        Canceled = "CANCELED",
        /// Ready to be picked up by the scheduler.
        Available = "AVAILABLE",
    }
}

/// `GET /v1/workspaces/-`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Workspace {
    /// `workspaces/{id}`: the id IAM calls need.
    pub name: String,
    /// Display title.
    pub title: String,
}

/// `GET /v1/subscription`: the licence in force (FREE when none or expired).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subscription {
    /// `FREE`, `TEAM` or `ENTERPRISE` (`PLAN_TYPE_UNSPECIFIED` when omitted).
    pub plan: String,
    /// True during a trial.
    pub trialing: bool,
    /// When the licence expires, if it does.
    pub expires_time: Option<DateTime<Utc>>,
}

/// `GET /v1/feature`: which plan has which feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FeatureMatrix {
    /// One entry per feature.
    pub features: Vec<Feature>,
}

/// One feature of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Feature {
    /// E.g. `FEATURE_APPROVAL_WORKFLOW`.
    pub name: String,
    /// Plan name (`FREE`, `TEAM`, `ENTERPRISE`) → whether the plan has it.
    pub matrix: BTreeMap<String, bool>,
}

impl FeatureMatrix {
    /// Whether `plan` has `feature`; `None` when the matrix does not say.
    pub fn allows(&self, feature: &str, plan: &str) -> Option<bool> {
        self.features.iter().find(|f| f.name == feature)?.matrix.get(plan).copied()
    }
}

/// A CEL expression (approval-rule and IAM-binding conditions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Expr {
    /// The CEL text; `""` when the condition is empty.
    pub expression: String,
}

/// A setting (`settings/WORKSPACE_APPROVAL`, `settings/ENVIRONMENT`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Setting {
    /// `settings/{NAME}`.
    pub name: String,
    /// The one value the setting holds.
    pub value: SettingValue,
}

/// The value of a setting: one of its kinds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingValue {
    /// `settings/WORKSPACE_APPROVAL`.
    pub workspace_approval: Option<WorkspaceApproval>,
    /// `settings/ENVIRONMENT`.
    pub environment: Option<EnvironmentSetting>,
}

/// The workspace approval rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkspaceApproval {
    /// In match order within each phase (bytebase-api.md §4).
    pub rules: Vec<ApprovalRule>,
}

/// One approval rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApprovalRule {
    /// `SOURCE_UNSPECIFIED` (a fallback rule), `CHANGE_DATABASE`, `CREATE_DATABASE`, …
    pub source: String,
    /// When the rule matches.
    pub condition: Expr,
    /// The approval flow it assigns.
    pub template: ApprovalTemplate,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        ApprovalRule {
            source: "SOURCE_UNSPECIFIED".to_owned(),
            condition: Expr::default(),
            template: ApprovalTemplate::default(),
        }
    }
}

/// An approval template: the steps an issue must pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApprovalTemplate {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The steps.
    pub flow: ApprovalFlow,
}

/// The ordered steps of an approval flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApprovalFlow {
    /// `roles/{id}`, one approver per step, in order.
    pub roles: Vec<String>,
}

/// `settings/ENVIRONMENT`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvironmentSetting {
    /// Array order = stage order.
    pub environments: Vec<Environment>,
}

/// An environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Environment {
    /// `environments/{id}`.
    pub name: String,
    /// The id.
    pub id: String,
    /// Display title.
    pub title: String,
    /// Tags such as `protected`.
    pub tags: BTreeMap<String, String>,
}

/// A role and its permissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Role {
    /// `roles/{id}`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Permission names such as `bb.taskRuns.create`.
    pub permissions: Vec<String>,
    /// `BUILT_IN` or `CUSTOM`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A workspace or project IAM policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IamPolicy {
    /// The bindings.
    pub bindings: Vec<Binding>,
    /// For `setIamPolicy`.
    pub etag: String,
}

/// One IAM binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Binding {
    /// `roles/{id}`.
    pub role: String,
    /// `user:…`, `group:…`, `serviceAccount:…`, `workloadIdentity:…`, `allUsers`.
    pub members: Vec<String>,
    /// Empty expression = unconditional.
    pub condition: Expr,
}

/// A group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Group {
    /// `groups/{email|uuid}`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// The email that `group:` members name.
    pub email: String,
    /// Where the group comes from (SCIM, …).
    pub source: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

/// A member of a group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupMember {
    /// `users/{email}`.
    pub member: String,
    /// `OWNER` or `MEMBER`.
    pub role: String,
}

/// A project and the settings cabgate checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Project {
    /// `projects/{id}`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// `ACTIVE` or `DELETED`.
    pub state: String,
    /// Without it, rollouts run without approval.
    pub require_issue_approval: bool,
    /// With it, creators approve their own changes.
    pub allow_self_approval: bool,
    /// Stored, UI only.
    pub require_plan_check_no_error: bool,
    /// Blocks submission on SQL-review errors.
    pub enforce_sql_review: bool,
    /// The project's webhooks (their URLs are write-only).
    pub webhooks: Vec<Webhook>,
}

impl Project {
    /// The id: the name without `projects/`.
    pub fn id(&self) -> &str {
        self.name.strip_prefix("projects/").unwrap_or(&self.name)
    }
}

/// A project webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Webhook {
    /// `projects/{p}/webhooks/{id}`.
    pub name: String,
    /// `SLACK`, `TEAMS`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Events it posts.
    pub notification_types: Vec<String>,
    /// Whether it messages users directly.
    pub direct_message: bool,
}

/// An environment's policy (only the rollout policy is read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Policy {
    /// `environments/{e}/policies/rollout_policy`.
    pub name: String,
    /// `ROLLOUT_POLICY`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rollout policy (absent or `{}` = the default).
    pub rollout_policy: RolloutPolicy,
}

/// Who runs tasks in an environment, and whether they start by themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutPolicy {
    /// Task runs are created with the rollout: no human step.
    pub automatic: bool,
    /// Roles that may run tasks here besides `bb.taskRuns.create` holders.
    pub roles: Vec<String>,
}

/// An issue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Issue {
    /// `projects/{p}/issues/{n}`.
    pub name: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `DATABASE_CHANGE`, `ROLE_GRANT`, `ACCESS_GRANT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Lifecycle status.
    pub status: IssueStatus,
    /// Approval status.
    pub approval_status: ApprovalStatus,
    /// One entry per completed step.
    pub approvers: Vec<Approver>,
    /// The template found for it; `None` when none (SKIPPED) or not yet found.
    pub approval_template: Option<ApprovalTemplate>,
    /// `users/{email}`.
    pub creator: String,
    /// Created.
    pub create_time: Option<DateTime<Utc>>,
    /// Last updated.
    pub update_time: Option<DateTime<Utc>>,
    /// `projects/{p}/plans/{id}`; the rollout is `{plan}/rollout`.
    pub plan: String,
    /// `LOW`, `MODERATE`, `HIGH`.
    pub risk_level: String,
    /// Labels (editing them resets approval).
    pub labels: Vec<String>,
    /// Drafts never appear in lists.
    pub draft: bool,
}

impl Issue {
    /// The project part of the name, `projects/{p}`.
    pub fn project(&self) -> &str {
        project_of(&self.name)
    }
}

/// `projects/{p}` of any resource name under a project.
pub fn project_of(name: &str) -> &str {
    match name.match_indices('/').nth(1) {
        Some((cut, _)) => &name[..cut],
        None => name,
    }
}

/// One approver entry of an issue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Approver {
    /// The decision.
    pub status: ApproverStatus,
    /// `users/{email}`, even for service accounts.
    pub principal: String,
}

/// An issue comment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IssueComment {
    /// `projects/{p}/issues/{n}/issueComments/{id}`.
    pub name: String,
    /// The text.
    pub comment: String,
    /// `users/{email}`.
    pub creator: String,
    /// Created.
    pub create_time: Option<DateTime<Utc>>,
    /// Last updated.
    pub update_time: Option<DateTime<Utc>>,
}

/// A plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Plan {
    /// `projects/{p}/plans/{id}`.
    pub name: String,
    /// `ACTIVE` or `DELETED`.
    pub state: String,
    /// The linked issue.
    pub issue: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `users/{email}`.
    pub creator: String,
    /// Created.
    pub create_time: Option<DateTime<Utc>>,
    /// Last updated (a new plan version after rework).
    pub update_time: Option<DateTime<Utc>>,
    /// True once the rollout exists (GetRollout 404s before).
    pub has_rollout: bool,
    /// The linked issue's approval status.
    pub approval_status: ApprovalStatus,
    /// The linked issue's status.
    pub issue_status: IssueStatus,
    /// The specs, kept as Bytebase sends them.
    pub specs: Vec<serde_json::Value>,
    /// Task counts per stage.
    pub rollout_stage_summaries: Vec<StageSummary>,
}

/// Task counts of one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StageSummary {
    /// The stage name.
    pub stage: String,
    /// Count per task status.
    pub task_status_counts: Vec<TaskStatusCount>,
}

/// How many tasks have a status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskStatusCount {
    /// The status.
    pub status: TaskStatus,
    /// How many.
    pub count: i64,
}

/// A rollout: stages of tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rollout {
    /// `projects/{p}/plans/{id}/rollout`.
    pub name: String,
    /// Title.
    pub title: String,
    /// In stage order. A stage has no status: read its tasks.
    pub stages: Vec<Stage>,
    /// Created.
    pub create_time: Option<DateTime<Utc>>,
    /// Last updated.
    pub update_time: Option<DateTime<Utc>>,
}

/// A stage of a rollout: one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Stage {
    /// `…/rollout/stages/{envId}`.
    pub name: String,
    /// The environment id (`-` = none or deleted).
    pub id: String,
    /// `environments/{id}`.
    pub environment: String,
    /// Its tasks.
    pub tasks: Vec<Task>,
}

/// A task of a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Task {
    /// `…/stages/{env}/tasks/{n}`.
    pub name: String,
    /// The plan spec it comes from.
    pub spec_id: String,
    /// From its latest run.
    pub status: TaskStatus,
    /// Why it was skipped.
    pub skipped_reason: String,
    /// `GENERAL`, `DATABASE_CREATE`, `DATABASE_MIGRATE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The database it changes.
    pub target: String,
    /// Last updated.
    pub update_time: Option<DateTime<Utc>>,
    /// A scheduled run time, if any.
    pub run_time: Option<DateTime<Utc>>,
}

/// A run of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskRun {
    /// `…/tasks/{n}/taskRuns/{id}`.
    pub name: String,
    /// `users/{email}`.
    pub creator: String,
    /// Its status.
    pub status: TaskRunStatus,
    /// What happened, in Bytebase's words.
    pub detail: String,
    /// Created.
    pub create_time: Option<DateTime<Utc>>,
    /// Last updated.
    pub update_time: Option<DateTime<Utc>>,
    /// Started.
    pub start_time: Option<DateTime<Utc>>,
    /// A scheduled run time, if any.
    pub run_time: Option<DateTime<Utc>>,
    /// Whether a backup was taken first.
    pub has_prior_backup: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_read_as_zero_values() {
        let issue: Issue = serde_json::from_str(
            r#"{"name":"projects/pay/issues/7","status":"OPEN","approvalStatus":"SKIPPED",
                "createTime":"2026-12-01T10:00:00Z","someNewField":1}"#,
        )
        .unwrap();
        assert_eq!(issue.status, IssueStatus::Open);
        assert_eq!(issue.approval_status, ApprovalStatus::Skipped);
        assert!(issue.approvers.is_empty() && !issue.draft && issue.approval_template.is_none());
        assert_eq!(issue.project(), "projects/pay");

        let policy: Policy = serde_json::from_str(r#"{"rolloutPolicy":{}}"#).unwrap();
        assert_eq!(policy.rollout_policy, RolloutPolicy { automatic: false, roles: vec![] });
        let rule: ApprovalRule =
            serde_json::from_str(r#"{"condition":{"expression":"true"}}"#).unwrap();
        assert_eq!(rule.source, "SOURCE_UNSPECIFIED");
    }

    #[test]
    fn unknown_enum_values_do_not_fail_the_call() {
        let task: Task = serde_json::from_str(r#"{"status":"PAUSED_BY_MARS"}"#).unwrap();
        assert_eq!(task.status, TaskStatus::Unknown);
        assert_eq!(TaskStatus::NotStarted.as_str(), "NOT_STARTED");
        assert_eq!(serde_json::to_string(&ApprovalStatus::Skipped).unwrap(), "\"SKIPPED\"");
    }

    #[test]
    fn feature_matrix_answers_per_plan() {
        let matrix: FeatureMatrix = serde_json::from_str(
            r#"{"features":[{"name":"FEATURE_APPROVAL_WORKFLOW",
                "matrix":{"ENTERPRISE":true,"TEAM":false}}]}"#,
        )
        .unwrap();
        assert_eq!(matrix.allows("FEATURE_APPROVAL_WORKFLOW", "ENTERPRISE"), Some(true));
        assert_eq!(matrix.allows("FEATURE_APPROVAL_WORKFLOW", "FREE"), None);
        assert_eq!(project_of("projects/p/plans/1/rollout"), "projects/p");
    }
}
