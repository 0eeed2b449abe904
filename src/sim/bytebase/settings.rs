//! Settings (`WORKSPACE_APPROVAL`, `ENVIRONMENT`), rollout policies and the subscription.
//!
//! Environments live in the `ENVIRONMENT` setting (there is no EnvironmentService). GetPolicy
//! for a rollout policy returns a default instead of 404; ListPolicies omits environments with
//! no stored row. `bb.workspace.approval` (the legacy name in old docs) is a 400.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Call;
use super::approval;
use super::error::{ApiError, ApiResult};
use super::json::Obj;
use super::state::Db;
use super::world::{ApprovalRule, Environment, RolloutPolicy};

/// `GET /v1/subscription` (no credential needed).
pub fn subscription(db: &mut Db, _call: &Call, _: &[String]) -> ApiResult {
    Ok(Obj::new().enumv("plan", &db.plan).int("seatCount", 0).build())
}

/// `GET /v1/feature`: whether the plan has FEATURE_APPROVAL_WORKFLOW.
///
/// NOTE: only the approval feature is listed; the real matrix has every feature.
pub fn feature_matrix(_db: &mut Db, _call: &Call, _: &[String]) -> ApiResult {
    let mut matrix = Map::new();
    for (plan, has) in [("FREE", false), ("TEAM", false), ("ENTERPRISE", true)] {
        matrix.insert(plan.into(), Value::Bool(has));
    }
    let feature =
        Obj::new().str("name", "FEATURE_APPROVAL_WORKFLOW").msg("matrix", Value::Object(matrix));
    Ok(Obj::new().list("features", vec![feature.build()]).build())
}

const KNOWN_SETTINGS: [&str; 12] = [
    "WORKSPACE_PROFILE",
    "WORKSPACE_APPROVAL",
    "APP_IM",
    "AI",
    "DATA_CLASSIFICATION",
    "SEMANTIC_TYPES",
    "SQL_RESULT_SIZE_LIMIT",
    "SCIM",
    "PASSWORD_RESTRICTION",
    "ENVIRONMENT",
    "BRANDING_LOGO",
    "WATERMARK",
];

fn approval_json(rules: &[ApprovalRule]) -> Value {
    let rules = rules
        .iter()
        .map(|r| {
            let condition = Obj::new()
                .str("expression", &r.condition.expression)
                .str("title", &r.condition.title)
                .str("description", &r.condition.description)
                .build();
            let flow = Obj::new().strs("roles", &r.template.flow.roles).build();
            let template = Obj::new()
                .str("title", &r.template.title)
                .str("description", &r.template.description)
                .msg("flow", flow)
                .build();
            Obj::new()
                .msg("template", template)
                .msg("condition", condition)
                .enumv("source", &r.source)
                .build()
        })
        .collect();
    let value = Obj::new().msg("workspaceApproval", Obj::new().list("rules", rules).build());
    Obj::new().str("name", "settings/WORKSPACE_APPROVAL").msg("value", value.build()).build()
}

fn environment_json(db: &Db) -> Value {
    let envs = db
        .environments
        .iter()
        .map(|e| {
            let mut tags = Map::new();
            if e.protected {
                tags.insert("protected".into(), Value::String("protected".into()));
            }
            Obj::new()
                .str("name", &format!("environments/{}", e.id))
                .str("id", &e.id)
                .str("title", &e.title)
                .map("tags", tags)
                .build()
        })
        .collect();
    let value = Obj::new().msg("environment", Obj::new().list("environments", envs).build());
    Obj::new().str("name", "settings/ENVIRONMENT").msg("value", value.build()).build()
}

fn setting_name(raw: &str) -> ApiResult<&str> {
    if KNOWN_SETTINGS.contains(&raw) {
        Ok(raw)
    } else {
        Err(ApiError::invalid(format!("invalid setting name {raw:?}")))
    }
}

/// `GET /v1/settings`.
pub fn list_settings(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    call.require(db, "bb.settings.list", None)?;
    let mut settings = Vec::new();
    if let Some(rules) = &db.approval {
        settings.push(approval_json(rules));
    }
    settings.push(environment_json(db));
    Ok(Obj::new().list("settings", settings).build())
}

/// `GET /v1/settings/{name}`.
pub fn get_setting(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let name = setting_name(&args[0])?;
    match name {
        "ENVIRONMENT" => {
            call.require(db, "bb.settings.getEnvironment", None)?;
            Ok(environment_json(db))
        }
        "WORKSPACE_APPROVAL" => {
            call.require(db, "bb.settings.get", None)?;
            db.approval
                .as_deref()
                .map(approval_json)
                .ok_or_else(|| ApiError::not_found(format!("setting {name} not found")))
        }
        _ => {
            call.require(db, "bb.settings.get", None)?;
            Err(ApiError::not_found(format!("setting {name} not found")))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: SettingValue,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingValue {
    workspace_approval: Option<ApprovalValue>,
    environment: Option<EnvironmentValue>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApprovalValue {
    #[serde(default)]
    rules: Vec<ApprovalRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnvironmentValue {
    #[serde(default)]
    environments: Vec<EnvironmentBody>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct EnvironmentBody {
    name: String,
    id: String,
    title: String,
    tags: std::collections::BTreeMap<String, String>,
    color: Option<Value>,
}

const SOURCES: [&str; 6] = [
    "",
    "SOURCE_UNSPECIFIED",
    "CHANGE_DATABASE",
    "CREATE_DATABASE",
    "REQUEST_ROLE",
    "REQUEST_ACCESS",
];

/// `PATCH /v1/settings/{name}` for WORKSPACE_APPROVAL (licence required; replaces the list) and
/// ENVIRONMENT (replaces the list).
pub fn update_setting(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    let name = setting_name(&args[0])?;
    let body: SettingBody = call.body()?;
    if !body.name.is_empty() && body.name != format!("settings/{name}") {
        return Err(ApiError::invalid(format!("setting name {:?} does not match", body.name)));
    }
    match name {
        "WORKSPACE_APPROVAL" => {
            call.require(db, "bb.settings.set", None)?;
            if !db.approval_licensed() {
                return Err(ApiError::denied(
                    "FEATURE_APPROVAL_WORKFLOW is not available in your plan",
                ));
            }
            let rules = body
                .value
                .workspace_approval
                .ok_or_else(|| ApiError::invalid("value.workspaceApproval is required"))?
                .rules;
            for (i, rule) in rules.iter().enumerate() {
                validate_rule(i, rule)?;
            }
            let validate_only = call.param(&["validateOnly", "validate_only"]) == Some("true");
            if !validate_only {
                db.approval = Some(rules.clone());
            }
            Ok(approval_json(&rules))
        }
        "ENVIRONMENT" => {
            call.require(db, "bb.settings.setEnvironment", None)?;
            let envs = body
                .value
                .environment
                .ok_or_else(|| ApiError::invalid("value.environment is required"))?
                .environments;
            let mut next = Vec::new();
            for e in envs {
                let id = if e.id.is_empty() {
                    e.name.strip_prefix("environments/").unwrap_or(&e.name).to_owned()
                } else {
                    e.id
                };
                if id.is_empty() {
                    return Err(ApiError::invalid("environment id is required"));
                }
                let _ = e.color;
                next.push(Environment {
                    protected: e.tags.contains_key("protected"),
                    id,
                    title: e.title,
                    rollout_policy: None,
                });
            }
            let kept: Vec<String> = next.iter().map(|e| e.id.clone()).collect();
            db.rollout_policies.retain(|env, _| kept.contains(env));
            db.environments = next;
            Ok(environment_json(db))
        }
        _ => Err(ApiError::invalid(format!(
            "updating setting {name} is not supported by the emulator"
        ))),
    }
}

fn validate_rule(index: usize, rule: &ApprovalRule) -> ApiResult<()> {
    if !SOURCES.contains(&rule.source.as_str()) {
        return Err(ApiError::invalid(format!("rules[{index}]: invalid source {:?}", rule.source)));
    }
    let expression = rule.condition.expression.trim();
    if expression.is_empty() {
        return Ok(());
    }
    approval::compiles(expression)
        .map_err(|e| ApiError::invalid(format!("rules[{index}]: invalid condition: {e}")))?;
    if rule.source.is_empty() || rule.source == "SOURCE_UNSPECIFIED" {
        let fields = approval::resource_fields(expression).map_err(ApiError::invalid)?;
        if let Some(bad) = fields.iter().find(|f| *f != "resource.project_id") {
            return Err(ApiError::invalid(format!(
                "rules[{index}]: a fallback rule may only use resource.project_id, not {bad}"
            )));
        }
    }
    for role in &rule.template.flow.roles {
        if !role.starts_with("roles/") {
            return Err(ApiError::invalid(format!("rules[{index}]: invalid role {role:?}")));
        }
    }
    Ok(())
}

fn policy_type(raw: &str) -> ApiResult<String> {
    let upper = raw.to_ascii_uppercase();
    const TYPES: [&str; 8] = [
        "ROLLOUT_POLICY",
        "MASKING_RULE",
        "MASKING_EXEMPTION",
        "DISABLE_COPY_DATA",
        "DATA_SOURCE_QUERY",
        "TAG",
        "QUERY_DATA",
        "DATA_QUERY",
    ];
    if TYPES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(ApiError::invalid(format!("invalid policy type {raw:?}")))
    }
}

fn rollout_policy_json(env: &str, policy: Option<&RolloutPolicy>) -> Value {
    let inner = match policy {
        Some(p) => Obj::new().bool("automatic", p.automatic).strs("roles", &p.roles).build(),
        None => Obj::new().build(),
    };
    Obj::new()
        .str("name", &format!("environments/{env}/policies/rollout_policy"))
        .enumv("type", "ROLLOUT_POLICY")
        .msg("rolloutPolicy", inner)
        .bool("enforce", true)
        .enumv("resourceType", "ENVIRONMENT")
        .build()
}

fn environment<'a>(db: &'a Db, id: &str) -> ApiResult<&'a Environment> {
    db.environments
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::not_found(format!("environment {id:?} not found")))
}

/// `GET /v1/environments/{e}/policies/{type}`: a default when no row is stored.
pub fn get_policy(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    call.require(db, "bb.policies.get", None)?;
    environment(db, &args[0])?;
    let kind = policy_type(&args[1])?;
    if kind != "ROLLOUT_POLICY" {
        // NOTE: only rollout policies are emulated; other types read as absent.
        return Err(ApiError::not_found(format!("policy {kind} not found")));
    }
    Ok(rollout_policy_json(&args[0], db.rollout_policies.get(&args[0])))
}

/// `GET /v1/environments/{e}/policies` (no paging; only stored rows).
pub fn list_policies(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    call.require(db, "bb.policies.list", None)?;
    environment(db, &args[0])?;
    if let Some(kind) = call.param(&["policyType", "policy_type"]) {
        if policy_type(kind)? != "ROLLOUT_POLICY" {
            return Ok(Obj::new().build());
        }
    }
    let policies = db
        .rollout_policies
        .get(&args[0])
        .map(|p| vec![rollout_policy_json(&args[0], Some(p))])
        .unwrap_or_default();
    Ok(Obj::new().list("policies", policies).build())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyBody {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    rollout_policy: Option<RolloutPolicy>,
    #[serde(default)]
    inherit_from_parent: bool,
    #[serde(default)]
    enforce: Option<bool>,
    #[serde(default)]
    resource_type: Option<String>,
}

/// `PATCH /v1/environments/{e}/policies/rollout_policy?update_mask=rollout_policy`.
pub fn update_policy(db: &mut Db, call: &Call, args: &[String]) -> ApiResult {
    environment(db, &args[0])?;
    let kind = policy_type(&args[1])?;
    let body: PolicyBody = call.body()?;
    let _ = (&body.name, body.inherit_from_parent, body.enforce, &body.resource_type);
    if body.kind.is_empty() {
        return Err(ApiError::invalid("policy type is required"));
    }
    if body.kind != kind {
        return Err(ApiError::invalid(format!("policy type {:?} does not match", body.kind)));
    }
    if kind != "ROLLOUT_POLICY" {
        return Err(ApiError::invalid(format!("policy type {kind} is not emulated")));
    }
    let exists = db.rollout_policies.contains_key(&args[0]);
    let allow_missing = call.param(&["allowMissing", "allow_missing"]) == Some("true");
    call.require(db, if exists { "bb.policies.update" } else { "bb.policies.create" }, None)?;
    if !exists && !allow_missing {
        return Err(ApiError::not_found(format!("policy {kind} not found")));
    }
    let mask = call.param(&["update_mask", "updateMask"]).unwrap_or("");
    if !mask.split(',').any(|m| m.trim() == "rollout_policy" || m.trim() == "rolloutPolicy") {
        return Err(ApiError::invalid("update_mask must contain rollout_policy"));
    }
    let policy = body.rollout_policy.unwrap_or_default();
    for role in &policy.roles {
        if role == "roles/LAST_APPROVER" || role == "roles/CREATOR" || !role.starts_with("roles/") {
            return Err(ApiError::invalid(format!("invalid rollout policy role {role:?}")));
        }
    }
    db.rollout_policies.insert(args[0].clone(), policy);
    Ok(rollout_policy_json(&args[0], db.rollout_policies.get(&args[0])))
}
