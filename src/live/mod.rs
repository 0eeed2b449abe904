//! The live snapshot: one normalized JSON document of the Bytebase configuration that the
//! policies read as `input.live`, whether it came from the API just now or from a file written by
//! `cabgate snapshot`.
//!
//! Normalized means: Bytebase's field names, every zero value the API omits written out (`false`,
//! `[]`, `""`, `SOURCE_UNSPECIFIED`), so policies never guess defaults; and a stable order, so two
//! snapshots of the same configuration are byte-identical and diff cleanly as evidence. Order that
//! carries meaning is kept (approval rules: match order; environments: stage order); everything
//! else is sorted by name. `schemas/snapshot.schema.json` describes the document and a test keeps
//! the two in step; a snapshot file is read straight into the typed model ([`parse_snapshot`],
//! in `file.rs`), which enforces exactly what the schema enforces.

mod file;
mod read;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use file::{MAX_ERRORS, SnapshotFileError, check, is_date_time, parse_snapshot};
pub use read::{LiveError, ReadOptions, governed_matcher, read};

use crate::bytebase::models::ApprovalRule;

/// The snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The whole snapshot (`fixtures/live/example.json` shows one).
///
/// Its `Deserialize` is strict (unknown keys refused where the schema refuses them), but a file
/// is read with [`parse_snapshot`]: the derived reading alone does not check the schema's
/// patterns and constants, nor that the document itself is an object rather than an array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Format version, 1.
    #[serde(deserialize_with = "file::version")]
    pub version: u32,
    /// The Bytebase base URL it was read from (without any user info).
    pub source: String,
    /// When it was read.
    #[serde(deserialize_with = "file::timestamp")]
    pub taken_at: DateTime<Utc>,
    /// `workspaces/{id}`.
    pub workspace: String,
    /// The licence in force.
    #[serde(default, deserialize_with = "file::object")]
    pub subscription: SubscriptionFacts,
    /// Whether the licence includes `FEATURE_APPROVAL_WORKFLOW`; without it every issue is SKIPPED.
    pub approval_feature: bool,
    /// `settings/WORKSPACE_APPROVAL` rules, in Bytebase's order (first match wins per phase).
    #[serde(deserialize_with = "file::approval_rules")]
    pub approval_rules: Vec<ApprovalRule>,
    /// Every role with its permissions.
    #[serde(deserialize_with = "file::objects")]
    pub roles: Vec<RoleFacts>,
    /// The workspace IAM policy.
    #[serde(deserialize_with = "file::object")]
    pub workspace_iam_policy: IamPolicyFacts,
    /// Every project (governed or not: a project's members may hold workspace-wide power).
    #[serde(deserialize_with = "file::objects")]
    pub projects: Vec<ProjectFacts>,
    /// Every group with its members.
    #[serde(deserialize_with = "file::objects")]
    pub groups: Vec<GroupFacts>,
    /// Environments in stage order, each with its rollout policy.
    #[serde(deserialize_with = "file::objects")]
    pub environments: Vec<EnvironmentFacts>,
    /// Start of the window in which SKIPPED issues were read (`alerts.skippedApproval.lookback`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file::present_timestamp"
    )]
    pub skipped_since: Option<DateTime<Utc>>,
    /// Issues of governed projects with approval status SKIPPED, created since `skippedSince`.
    #[serde(deserialize_with = "file::objects")]
    pub skipped_issues: Vec<SkippedIssue>,
}

/// The subscription, as far as compliance cares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionFacts {
    /// `FREE`, `TEAM`, `ENTERPRISE` (`PLAN_TYPE_UNSPECIFIED` when Bytebase omits it).
    pub plan: String,
    /// True during a trial (the feature ends with it).
    pub trialing: bool,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleFacts {
    /// `roles/{id}`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// `BUILT_IN` or `CUSTOM`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Permissions, sorted.
    pub permissions: Vec<String>,
}

/// An IAM policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamPolicyFacts {
    /// Bindings sorted by role, then condition; members sorted.
    #[serde(deserialize_with = "file::objects")]
    pub bindings: Vec<BindingFacts>,
}

/// An IAM binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingFacts {
    /// `roles/{id}`.
    pub role: String,
    /// `user:…`, `group:…`, `serviceAccount:…`, `workloadIdentity:…`, `allUsers`.
    pub members: Vec<String>,
    /// The CEL condition; `""` = unconditional.
    #[serde(deserialize_with = "file::condition")]
    pub condition: ConditionFacts,
}

/// A CEL condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionFacts {
    /// The expression text.
    pub expression: String,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectFacts {
    /// `projects/{id}`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// `ACTIVE` or `DELETED`.
    pub state: String,
    /// True when `bytebase.projects` of the spec matches it (`None`: a snapshot file that does
    /// not say; policies see `false`). Only a governed project's SKIPPED issues are read.
    #[serde(default, serialize_with = "false_if_unsaid", deserialize_with = "stated")]
    pub governed: Option<bool>,
    /// Without it, rollouts run without approval.
    pub require_issue_approval: bool,
    /// With it, creators approve their own changes.
    pub allow_self_approval: bool,
    /// Webhooks, sorted by name (URLs are write-only in Bytebase).
    #[serde(deserialize_with = "file::objects")]
    pub webhooks: Vec<WebhookFacts>,
    /// The project IAM policy.
    #[serde(deserialize_with = "file::object")]
    pub iam_policy: IamPolicyFacts,
}

fn stated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
}

fn false_if_unsaid<S: serde::Serializer>(value: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(value.unwrap_or(false))
}

/// A project webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookFacts {
    /// `projects/{p}/webhooks/{id}`.
    pub name: String,
    /// `SLACK`, `TEAMS`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Events it posts.
    pub notification_types: Vec<String>,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupFacts {
    /// `groups/{email|uuid}`.
    pub name: String,
    /// The email `group:` members name.
    pub email: String,
    /// Display title.
    pub title: String,
    /// Members sorted by `member`.
    #[serde(deserialize_with = "file::objects")]
    pub members: Vec<GroupMemberFacts>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupMemberFacts {
    /// `users/{email}`.
    pub member: String,
    /// `OWNER` or `MEMBER`.
    pub role: String,
}

/// An environment and its rollout policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentFacts {
    /// `environments/{id}`.
    pub name: String,
    /// The id.
    pub id: String,
    /// Display title.
    pub title: String,
    /// The stored policy, or Bytebase's default (`automatic` false, no roles).
    #[serde(deserialize_with = "file::object")]
    pub rollout_policy: RolloutPolicyFacts,
}

/// A rollout policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPolicyFacts {
    /// Task runs start by themselves when the rollout is created.
    pub automatic: bool,
    /// Roles that may also run tasks here.
    pub roles: Vec<String>,
}

/// An issue whose approval was SKIPPED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkippedIssue {
    /// `projects/{p}/issues/{n}`.
    pub name: String,
    /// `projects/{p}`.
    pub project: String,
    /// Title.
    pub title: String,
    /// `DATABASE_CHANGE`, `ROLE_GRANT`, `ACCESS_GRANT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `OPEN`, `DONE`, `CANCELED`.
    pub status: String,
    /// `SKIPPED`.
    pub approval_status: String,
    /// `users/{email}`.
    pub creator: String,
    /// When it was created.
    #[serde(deserialize_with = "file::nullable_timestamp")]
    pub create_time: Option<DateTime<Utc>>,
    /// `projects/{p}/plans/{id}` (`""` when none).
    pub plan: String,
}

impl Snapshot {
    /// The snapshot as the JSON value policies read.
    pub fn to_value(&self) -> serde_json::Value {
        // Every field is a plain string, number, bool, list or map: serializing cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The snapshot as a file: pretty JSON with a final newline.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The JSON Schema of the snapshot, compiled in.
pub const SCHEMA: &str = include_str!("../../schemas/snapshot.schema.json");

/// The compiled [`SCHEMA`], with `format` asserted (`date-time` must be a real RFC 3339 time).
fn validator() -> Result<&'static jsonschema::Validator, String> {
    static VALIDATOR: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema: serde_json::Value =
                serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| format!("the built-in snapshot schema is invalid: {e}"))
}

/// Checks a snapshot document against [`SCHEMA`]; each error names its JSON Pointer.
pub fn validate(document: &serde_json::Value) -> Result<(), Vec<String>> {
    match schema_errors(document, usize::MAX) {
        Ok(errors) if errors.is_empty() => Ok(()),
        Ok(errors) => Err(errors),
        Err(broken) => Err(vec![broken]),
    }
}

/// Up to `limit` schema errors of `document`, each `/pointer: message`; `Err` when the built-in
/// schema itself does not compile.
fn schema_errors(document: &serde_json::Value, limit: usize) -> Result<Vec<String>, String> {
    let validator = validator()?;
    // The boolean check is far cheaper than collecting errors with their paths.
    if validator.is_valid(document) {
        return Ok(Vec::new());
    }
    Ok(validator
        .iter_errors(document)
        .take(limit)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../fixtures/live/example.json");

    #[test]
    fn the_contract_example_validates_and_reads_back() {
        let document: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        validate(&document).unwrap();
        let snapshot: Snapshot = serde_json::from_value(document).unwrap();
        assert_eq!(snapshot.environments[1].id, "prod");
        // What cabgate writes validates too (the optional fields it adds included).
        validate(&snapshot.to_value()).unwrap();
    }

    #[test]
    fn a_broken_snapshot_names_the_place() {
        let mut document: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        document["environments"][0]["rolloutPolicy"]["automatic"] = "yes".into();
        let errors = validate(&document).unwrap_err();
        assert!(errors[0].starts_with("/environments/0/rolloutPolicy/automatic"), "{errors:?}");
    }
}
