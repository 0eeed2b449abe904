//! The Bytebase part of a world file: the workspace as it stands when the emulator starts.
//!
//! Every field has a default so small worlds stay short; names follow the API's JSON where the
//! API has one (`requireIssueApproval`, `rolloutPolicy`, …) so a world reads like the responses
//! it produces. Unknown fields are errors, so a typo in a world is caught at load.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The Bytebase workspace of a world.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct World {
    /// Workspace id (`workspaces/{id}`).
    pub workspace: String,
    /// Workspace title.
    pub title: String,
    /// Subscription plan: FREE, TEAM or ENTERPRISE. Only ENTERPRISE has
    /// FEATURE_APPROVAL_WORKFLOW; without it every issue is SKIPPED.
    pub plan: String,
    /// Users and service accounts that exist (and may log in).
    pub users: Vec<User>,
    /// Custom roles (listed before the built-ins).
    pub roles: Vec<Role>,
    /// Workspace IAM bindings.
    pub workspace_iam: Vec<Binding>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Environments in stage order.
    pub environments: Vec<Environment>,
    /// Databases issues can target.
    pub databases: Vec<Database>,
    /// The `WORKSPACE_APPROVAL` rules. Absent = the seeded catch-all of a new workspace;
    /// `null` = no setting row at all (GET → 404, every issue SKIPPED).
    #[serde(deserialize_with = "present")]
    pub approval_rules: Option<Option<Vec<ApprovalRule>>>,
    /// Whether the seeded `default` project exists (it does in every real workspace).
    pub default_project: bool,
    /// Projects.
    pub projects: Vec<Project>,
    /// Issues, each with its plan.
    pub issues: Vec<Issue>,
    /// How the emulator's background work is paced.
    pub timing: Timing,
    /// The workspace's external URL, which webhook bodies link to; empty = the emulator's own
    /// base URL.
    pub external_url: String,
    /// Where webhook posts go, standing in for the Power Automate flow of a TEAMS webhook (e.g.
    /// the runner's `http://127.0.0.1:8080/webhook?secret=…`); absent = recorded, not sent.
    /// `cabgate sim --webhook-relay` overrides it.
    pub webhook_relay: Option<String>,
}

impl Default for World {
    fn default() -> Self {
        World {
            workspace: "default".into(),
            title: "Bytebase".into(),
            plan: "ENTERPRISE".into(),
            users: Vec::new(),
            roles: Vec::new(),
            workspace_iam: Vec::new(),
            groups: Vec::new(),
            environments: Vec::new(),
            databases: Vec::new(),
            approval_rules: None,
            default_project: true,
            projects: Vec::new(),
            issues: Vec::new(),
            timing: Timing::default(),
            external_url: String::new(),
            webhook_relay: None,
        }
    }
}

/// Distinguishes a missing field (None) from an explicit `null` (Some(None)).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A user or service account. A service account has `serviceKey`; a human has `password`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    /// Email (`…@service.bytebase.com` for a workspace service account).
    pub email: String,
    /// Display name.
    pub title: String,
    /// Password of a human user.
    pub password: Option<String>,
    /// Service key of a service account.
    pub service_key: Option<String>,
}

/// A custom role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    /// Role id (`roles/{id}`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Permissions such as `bb.taskRuns.create`.
    pub permissions: Vec<String>,
}

/// An IAM binding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Binding {
    /// `roles/{id}`.
    pub role: String,
    /// `user:…`, `group:…`, `serviceAccount:…`, `allUsers`.
    pub members: Vec<String>,
    /// CEL condition, e.g. `request.time < timestamp("2027-01-01T00:00:00Z")`; empty = none.
    pub condition: String,
}

/// A group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Group {
    /// Email, also the id (`groups/{email}`).
    pub email: String,
    /// Title.
    pub title: String,
    /// Members as `users/{email}`, with role OWNER or MEMBER.
    pub members: Vec<GroupMember>,
}

/// A member of a group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupMember {
    /// `users/{email}`.
    pub member: String,
    /// OWNER or MEMBER.
    pub role: String,
}

/// An environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// Id (`environments/{id}`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Whether it carries the `protected` tag.
    pub protected: bool,
    /// The stored rollout policy; absent = no row (GetPolicy returns the default).
    pub rollout_policy: Option<RolloutPolicy>,
}

/// A rollout policy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutPolicy {
    /// Task runs are created with the rollout, no human step.
    pub automatic: bool,
    /// Extra runners: anyone bound to one of these roles may run tasks here.
    pub roles: Vec<String>,
}

/// A database issues can target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Database {
    /// `instances/{i}/databases/{d}`.
    pub name: String,
    /// Environment id.
    pub environment: String,
    /// Engine, e.g. POSTGRES.
    pub engine: String,
}

/// An approval rule, in the API's JSON shape.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalRule {
    /// CHANGE_DATABASE, CREATE_DATABASE, REQUEST_ROLE, REQUEST_ACCESS; empty = fallback.
    pub source: String,
    /// `{expression}`.
    pub condition: Condition,
    /// `{title, description, flow{roles}}`.
    pub template: Template,
}

/// A `google.type.Expr`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// CEL text.
    pub expression: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Location.
    pub location: String,
}

/// An approval template.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Template {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The approval flow.
    pub flow: Flow,
}

/// An approval flow: one approver per role, in order.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Flow {
    /// `roles/{id}` per step.
    pub roles: Vec<String>,
}

/// A project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Project {
    /// Id (`projects/{id}`).
    pub id: String,
    /// Title.
    pub title: String,
    /// ACTIVE (default) or DELETED.
    pub state: Option<String>,
    /// Approval required before CreateRollout / batchRun.
    pub require_issue_approval: bool,
    /// The creator may approve their own issue.
    pub allow_self_approval: bool,
    /// Stored, UI-only.
    pub require_plan_check_no_error: bool,
    /// Blocks submission on SQL-review errors.
    pub enforce_sql_review: bool,
    /// Issue title must follow a format.
    pub enforce_issue_title: bool,
    /// Issues need a label.
    pub force_issue_labels: bool,
    /// Allowed labels.
    pub issue_labels: Vec<serde_json::Value>,
    /// Parallel tasks per rollout.
    pub parallel_tasks_per_rollout: i64,
    /// CI sampling size.
    pub ci_sampling_size: i64,
    /// Users may request roles.
    pub allow_request_role: bool,
    /// Just-in-time access.
    pub allow_just_in_time_access: bool,
    /// `executionRetryPolicy.maximumRetries`.
    pub maximum_retries: i64,
    /// Project labels.
    pub labels: BTreeMap<String, String>,
    /// Webhooks (their `url` is never returned).
    pub webhooks: Vec<Webhook>,
    /// Project IAM bindings.
    pub iam: Vec<Binding>,
}

/// A project webhook.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    /// Id (`projects/{p}/webhooks/{id}`).
    pub id: String,
    /// SLACK, DISCORD, TEAMS, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Write-only URL; must be on the type's host allowlist, as `:addWebhook` requires. Empty =
    /// a Power Automate flow (the body is the adaptive card).
    pub url: String,
    /// Events delivered (ISSUE_CREATED, ISSUE_APPROVAL_REQUESTED, ISSUE_SENT_BACK,
    /// ISSUE_APPROVED, PIPELINE_FAILED, PIPELINE_COMPLETED).
    pub notification_types: Vec<String>,
    /// Direct messages.
    pub direct_message: bool,
}

/// An issue and its plan.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Issue {
    /// Project id.
    pub project: String,
    /// Numeric id; 0 = next free.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// DATABASE_CHANGE (default), ROLE_GRANT, ACCESS_GRANT.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// OPEN (default), DONE, CANCELED.
    pub status: Option<String>,
    /// Creator email.
    pub creator: String,
    /// Labels.
    pub labels: Vec<String>,
    /// LOW, MODERATE, HIGH.
    pub risk_level: Option<String>,
    /// Drafts never appear in List/Search.
    pub draft: bool,
    /// Creation time (RFC 3339); absent = the sim clock at start.
    pub create_time: Option<String>,
    /// Plan specs; a DATABASE_CHANGE issue with none is SKIPPED.
    pub specs: Vec<Spec>,
    /// Approvals already given, in order: `{principal: email, status: APPROVED|REJECTED}`.
    pub approvers: Vec<Approver>,
    /// Finding state: absent = done at start (computed from the rules), `false` = still CHECKING.
    pub finding_done: Option<bool>,
    /// Plan-check result for the plan: DONE (default), RUNNING, FAILED, or ERROR (a DONE run
    /// with an error, which stops automatic rollout creation).
    pub plan_check: Option<String>,
    /// Whether the rollout already exists.
    pub has_rollout: bool,
}

/// A plan spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Spec id; empty = generated.
    pub id: String,
    /// A change: targets are database names.
    pub change_database_config: Option<ChangeConfig>,
    /// A database creation.
    pub create_database_config: Option<CreateConfig>,
}

/// `changeDatabaseConfig`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeConfig {
    /// `instances/{i}/databases/{d}`.
    pub targets: Vec<String>,
    /// `projects/{p}/sheets/{id}`.
    pub sheet: String,
    /// Release.
    pub release: String,
    /// Prior backup.
    pub enable_prior_backup: bool,
}

/// `createDatabaseConfig`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateConfig {
    /// `instances/{i}`.
    pub target: String,
    /// Database name.
    pub database: String,
    /// Environment id of the new database.
    pub environment: String,
}

/// A recorded approval step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Approver {
    /// Email of the approver.
    pub principal: String,
    /// APPROVED or REJECTED.
    pub status: String,
}

/// How background work is paced. Each delay is a duration on the sim clock (`0s` = done by the
/// next request) or `manual` (only `POST /_sim/step` runs it).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Timing {
    /// From issue creation (or `:request`, or a label change) to the end of approval finding.
    pub finding: String,
    /// From the final approval (or a SKIPPED finding) to the rollout's creation.
    pub rollout: String,
    /// From a task run's creation to RUNNING, and again to its end.
    pub task_run: String,
    /// How an automatic task run ends: DONE or FAILED.
    pub task_run_outcome: String,
    /// Wait before the second attempt of a failed webhook post (doubled before the third), in
    /// real time: Bytebase waits 5 s; tests shorten it.
    pub webhook_retry: String,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finding: "0s".into(),
            rollout: "0s".into(),
            task_run: "0s".into(),
            task_run_outcome: "DONE".into(),
            webhook_retry: "5s".into(),
        }
    }
}
