//! The bridge spec as typed Rust values (version 1).
//!
//! These types are what the rest of cabgate reads; they are built only from a document that has
//! already passed the JSON Schema (`schemas/bridge-spec.schema.json`), so deserialization here
//! should not fail on user input. Field names follow `bridge-spec.md` exactly (lowerCamelCase in
//! YAML). Unknown keys are rejected both by the schema and by `deny_unknown_fields`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A whole bridge spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Spec format version; only 1 exists.
    pub version: u32,
    /// A name for this bridge, used in CHG correlation ids and reports.
    pub name: String,
    /// The Bytebase workspace and what of it is governed.
    pub bytebase: BytebaseSpec,
    /// The ServiceNow instance; needed by `apply`, not by `lint` or `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicenow: Option<ServiceNowSpec>,
    /// Bytebase environments by id, in stage order.
    #[serde(default)]
    pub environments: indexmap_like::OrderedMap<EnvironmentSpec>,
    /// What the workspace approval setting must contain.
    pub approval: ApprovalSpec,
    /// Who may run tasks, and the project settings that close bypasses.
    pub lockdown: LockdownSpec,
    /// How CHGs drive changes.
    #[serde(default)]
    pub workflow: WorkflowSpec,
    /// Where bypass alerts go.
    #[serde(default)]
    pub alerts: AlertsSpec,
    /// Accepted findings, each with a reason and an expiry date.
    #[serde(default)]
    pub waivers: Vec<Waiver>,
    /// The runner's durable state.
    #[serde(default)]
    pub state: StateSpec,
}

/// The Bytebase side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BytebaseSpec {
    /// Base URL of the workspace, e.g. `https://bytebase.acme.example`.
    pub url: String,
    /// Email of the service account that approves and runs (`…@service.bytebase.com`).
    pub service_account: String,
    /// Name of the environment variable holding the service key.
    pub service_key_env: String,
    /// Governed projects: ids or globs (`ledger-*`); `*` governs all.
    pub projects: Vec<String>,
}

/// The ServiceNow side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceNowSpec {
    /// Base URL of the instance, e.g. `https://acme.service-now.com`.
    pub instance: String,
    /// How cabgate authenticates; exactly one of the methods.
    pub auth: ServiceNowAuth,
}

/// ServiceNow credentials, by environment variable name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceNowAuth {
    /// Basic authentication of an integration user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// OAuth 2.0 (password grant when user and password are named, else client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
}

/// Basic authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// Variable holding the user name.
    pub user_env: String,
    /// Variable holding the password.
    pub password_env: String,
}

/// OAuth 2.0 against `/oauth_token.do`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth {
    /// Variable holding the client id.
    pub client_id_env: String,
    /// Variable holding the client secret.
    pub client_secret_env: String,
    /// Variable holding the user name (password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_env: Option<String>,
    /// Variable holding the password (password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

/// One Bytebase environment as the spec wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// True when a change here needs an approved CHG.
    #[serde(default)]
    pub governed: bool,
    /// The environment's rollout policy.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// How the CHG for a change in this environment is filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<EnvironmentChange>,
}

/// The rollout policy of an environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// `true` lets Bytebase run tasks as soon as the rollout exists: no human (or CAB) step.
    #[serde(default)]
    pub automatic: bool,
    /// Roles whose members may run tasks here in addition to `bb.taskRuns.create` holders.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// CHG fields that depend on the environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentChange {
    /// ServiceNow assignment group (name) of the CHG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_group: Option<String>,
    /// Run tasks only inside the CHG's planned window.
    #[serde(default)]
    pub require_window: bool,
}

/// What the approval setting must contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSpec {
    /// The catch-all rule (no source, condition `true`).
    pub catch_all: CatchAll,
    /// Whether a rule with an empty flow is tolerated (it is a bypass).
    #[serde(default)]
    pub allow_empty_flows: bool,
}

/// The catch-all rule's flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatchAll {
    /// The flow's steps, in order, exactly.
    pub roles: Vec<String>,
}

/// Who may run tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockdownSpec {
    /// The permission that runs, skips and cancels tasks.
    #[serde(default = "default_permission")]
    pub permission: String,
    /// The only principals (`user:`, `serviceAccount:`, …) that may hold it.
    pub allow: Vec<String>,
    /// Settings every governed project must have.
    #[serde(default)]
    pub project_settings: ProjectSettings,
}

fn default_permission() -> String {
    "bb.taskRuns.create".to_owned()
}

/// Project settings that close bypasses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectSettings {
    /// Without it, rollouts run without any approval.
    #[serde(default = "yes")]
    pub require_issue_approval: bool,
    /// With it, a creator approves their own change.
    #[serde(default)]
    pub allow_self_approval: bool,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        ProjectSettings { require_issue_approval: true, allow_self_approval: false }
    }
}

fn yes() -> bool {
    true
}

/// How the runner drives CHGs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Time between two passes of the runner, e.g. `30s`.
    #[serde(default = "default_poll")]
    pub poll_interval: String,
    /// How long to wait for Bytebase to create the rollout after approval.
    #[serde(default)]
    pub rollout_wait: RolloutWait,
    /// What to do when a task fails.
    #[serde(default)]
    pub on_task_failure: OnTaskFailure,
    /// What to do when the creator re-requests review after a rework.
    #[serde(default)]
    pub on_rework: OnRework,
    /// The CHG template: ServiceNow `change_request` fields; `{{ issue.x }}` reads issue facts.
    #[serde(default = "default_change_template")]
    pub change: BTreeMap<String, String>,
    /// The state the machine starts in; `new` unless transitions say otherwise.
    #[serde(default = "default_initial")]
    pub initial: String,
    /// States where an issue's flow ends.
    #[serde(default = "default_final", rename = "final")]
    pub final_states: Vec<String>,
    /// The state machine; the default workflow applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<Transition>>,
}

impl Default for WorkflowSpec {
    fn default() -> Self {
        WorkflowSpec {
            poll_interval: default_poll(),
            rollout_wait: RolloutWait::default(),
            on_task_failure: OnTaskFailure::default(),
            on_rework: OnRework::default(),
            change: default_change_template(),
            initial: default_initial(),
            final_states: default_final(),
            transitions: None,
        }
    }
}

fn default_poll() -> String {
    "30s".to_owned()
}

fn default_initial() -> String {
    "new".to_owned()
}

fn default_final() -> Vec<String> {
    ["closed", "rejected", "canceled"].map(str::to_owned).to_vec()
}

fn default_change_template() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("type".to_owned(), "normal".to_owned()),
        ("short_description".to_owned(), "[Bytebase] {{ issue.title }}".to_owned()),
        (
            "description".to_owned(),
            "{{ issue.description }}\n\nBytebase: {{ issue.url }}".to_owned(),
        ),
    ])
}

/// Waiting for the asynchronous rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutWait {
    /// How long to poll the plan's `hasRollout`, e.g. `10m`.
    #[serde(default = "default_rollout_timeout")]
    pub timeout: String,
    /// Call CreateRollout when the wait times out.
    #[serde(default = "yes")]
    pub fallback_create: bool,
}

impl Default for RolloutWait {
    fn default() -> Self {
        RolloutWait { timeout: default_rollout_timeout(), fallback_create: true }
    }
}

fn default_rollout_timeout() -> String {
    "10m".to_owned()
}

/// What happens when a task fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTaskFailure {
    /// Cancel the remaining task runs and close the CHG unsuccessful.
    #[default]
    CancelRemaining,
    /// Write a work note and wait for a human to retry or skip in Bytebase.
    Wait,
}

/// What happens when a reworked issue comes back for review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRework {
    /// Update the existing CHG and send it back to the CAB.
    #[default]
    Update,
    /// Cancel the old CHG and open a new one.
    New,
}

/// One transition of the workflow state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    /// A name for logs and the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The state it leaves (`*` = any non-final state).
    pub from: String,
    /// The state it enters.
    pub to: String,
    /// Observed facts that must all hold; a list means any of its values.
    #[serde(default)]
    pub when: BTreeMap<Fact, OneOrMany>,
    /// What to do, in order.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// The facts a transition can test. See `workflow` for how each is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fact {
    /// Bytebase approval status: CHECKING, PENDING, APPROVED, REJECTED, SKIPPED.
    #[serde(rename = "issue.approvalStatus")]
    IssueApprovalStatus,
    /// Bytebase issue status: OPEN, DONE, CANCELED.
    #[serde(rename = "issue.status")]
    IssueStatus,
    /// `true` when the plan changed since the CHG was opened (the creator re-requested).
    #[serde(rename = "issue.planChanged")]
    IssuePlanChanged,
    /// `true` when the issue has a CHG.
    #[serde(rename = "change.exists")]
    ChangeExists,
    /// CHG state by name: new, assess, authorize, scheduled, implement, review, closed, canceled.
    #[serde(rename = "change.state")]
    ChangeState,
    /// CHG approval: not_requested, requested, approved, rejected.
    #[serde(rename = "change.approval")]
    ChangeApproval,
    /// The CHG's planned window: open, closed, or none (no window set or none required).
    #[serde(rename = "change.window")]
    ChangeWindow,
    /// `true` once the plan's rollout exists.
    #[serde(rename = "rollout.exists")]
    RolloutExists,
    /// `true` once `rolloutWait.timeout` has passed since approval without a rollout.
    #[serde(rename = "rollout.waitExpired")]
    RolloutWaitExpired,
    /// Tasks of the governed stages: not_started, running, done, failed, canceled.
    #[serde(rename = "tasks")]
    Tasks,
}

/// One value, or a list meaning any of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value (booleans are written as `true` / `false`).
    One(Scalar),
    /// Any of these values.
    Many(Vec<Scalar>),
}

impl OneOrMany {
    /// The accepted values as strings (`true`, `PENDING`, …).
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(v) => vec![v.to_string()],
            OneOrMany::Many(vs) => vs.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A condition value: YAML lets users write `true` or `"true"`; both mean the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean fact value.
    Bool(bool),
    /// Any other value.
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Open the CHG from the template (after looking it up by correlation id).
    CreateChange,
    /// Approve the Bytebase issue as the service account, naming the CAB approver and CHG.
    ApproveIssue,
    /// Reject the Bytebase issue with the CAB's reason.
    RejectIssue,
    /// Comment on the Bytebase issue.
    Comment,
    /// Poll the plan's `hasRollout`; after the timeout, fall back to CreateRollout if declared.
    WaitRollout,
    /// Call CreateRollout (idempotent).
    CreateRollout,
    /// Run the tasks of the next governed stage.
    RunTasks,
    /// Cancel the pending and running task runs.
    CancelTaskRuns,
    /// Skip tasks that have not run.
    SkipTasks,
    /// Update the CHG (state, work note).
    UpdateChange,
    /// Close the CHG with a close code.
    CloseChange,
    /// Raise an alert through the spec's sinks.
    Alert,
}

/// An action with its arguments: written as `run_tasks` or `close_change: { code: successful }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// Arguments, by name (e.g. `code`, `state`, `text`).
    pub args: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;

        impl<'de> Visitor<'de> for ActionVisitor {
            type Value = Action;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action name, or a map with one action name and its arguments")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Action, E> {
                let kind = ActionKind::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(Action { kind, args: BTreeMap::new() })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Action, A::Error> {
                let Some((kind, args)) = map.next_entry::<ActionKind, ActionArgs>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an action map has exactly one key"));
                }
                Ok(Action { kind, args: args.0 })
            }
        }

        deserializer.deserialize_any(ActionVisitor)
    }
}

/// Arguments of an action: a map, or a single string (taken as `text`).
struct ActionArgs(BTreeMap<String, serde_json::Value>);

impl<'de> Deserialize<'de> for ActionArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(map) => Ok(ActionArgs(map.into_iter().collect())),
            serde_json::Value::String(text) => {
                Ok(ActionArgs(BTreeMap::from([("text".to_owned(), text.into())])))
            }
            serde_json::Value::Null => Ok(ActionArgs(BTreeMap::new())),
            other => Err(de::Error::custom(format!("action arguments must be a map, not {other}"))),
        }
    }
}

/// Where alerts go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertsSpec {
    /// Alerts for issues whose approval was SKIPPED.
    #[serde(default)]
    pub skipped_approval: SkippedApproval,
}

/// The bypass alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkippedApproval {
    /// How far back to look for SKIPPED issues, e.g. `7d`.
    #[serde(default = "default_lookback")]
    pub lookback: String,
    /// Every sink gets every alert.
    #[serde(default)]
    pub sinks: Vec<Sink>,
}

impl Default for SkippedApproval {
    fn default() -> Self {
        SkippedApproval { lookback: default_lookback(), sinks: Vec::new() }
    }
}

fn default_lookback() -> String {
    "7d".to_owned()
}

/// One alert sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Sink {
    /// POST a JSON body, signed with HMAC-SHA256.
    Webhook(WebhookSink),
    /// Open a ServiceNow record (an incident by default).
    Servicenow(ServiceNowSink),
    /// Write the alert to the log at `error` level.
    Log(LogSink),
}

/// A signed webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookSink {
    /// Where to POST.
    pub url: String,
    /// Variable holding the HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// A ServiceNow record per alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceNowSink {
    /// The table, `incident` by default.
    #[serde(default = "default_incident")]
    pub table: String,
    /// Assignment group (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_group: Option<String>,
    /// Urgency, 1 (high) to 3 (low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<u8>,
}

fn default_incident() -> String {
    "incident".to_owned()
}

/// The log sink (no settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSink {}

/// An accepted finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Waiver {
    /// The finding code it covers.
    pub code: String,
    /// The resource it covers; absent = every resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Why the gap is accepted.
    pub reason: String,
    /// The last day it applies (`YYYY-MM-DD`); later, it is `waiver/expired`.
    pub expires: chrono::NaiveDate,
}

/// The runner's state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateSpec {
    /// `sqlite://PATH` (relative to the spec's folder).
    #[serde(default = "default_state_url")]
    pub url: String,
}

impl Default for StateSpec {
    fn default() -> Self {
        StateSpec { url: default_state_url() }
    }
}

fn default_state_url() -> String {
    "sqlite://cabgate.db".to_owned()
}

/// An insertion-ordered map from names to values (environments keep the spec's order).
pub mod indexmap_like {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Keys in the order the spec wrote them.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OrderedMap<V>(pub Vec<(String, V)>);

    impl<V> Default for OrderedMap<V> {
        fn default() -> Self {
            OrderedMap(Vec::new())
        }
    }

    impl<V> OrderedMap<V> {
        /// The value under `key`.
        pub fn get(&self, key: &str) -> Option<&V> {
            self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }

        /// Entries in spec order.
        pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
            self.0.iter().map(|(k, v)| (k.as_str(), v))
        }
    }

    impl<V: Serialize> Serialize for OrderedMap<V> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            // serde_json is built with `preserve_order`, so its map keeps the document's order.
            let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                let value = V::deserialize(value).map_err(serde::de::Error::custom)?;
                entries.push((key, value));
            }
            Ok(OrderedMap(entries))
        }
    }
}
