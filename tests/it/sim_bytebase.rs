//! Conformance of the Bytebase emulator, over HTTP only: one test per pitfall of §11 of the
//! Bytebase reference, plus transport behaviour (errors, paging, auth, faults, replay).
//!
//! Each test starts its own emulators from `fixtures/worlds/basic.yaml` (sometimes adjusted) and
//! talks to them with reqwest, as cabgate's client does; the control endpoints under `/_sim/` act
//! as the humans.

use std::time::Duration;

use cabgate::sim::{self, FaultSpec, Options, Running, World};
use serde_json::{Value, json};

const SA: &str = "cab-bridge@service.bytebase.com";
const SA_KEY: &str = "bbs_simcabbridgekey0001";

fn basic() -> World {
    World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/basic.yaml")).unwrap()
}

struct Env {
    sim: Running,
    http: reqwest::Client,
    token: String,
}

impl Env {
    async fn start(world: World) -> Env {
        Env::with_options(world, Options::default()).await
    }

    async fn with_options(world: World, options: Options) -> Env {
        let sim = sim::start(world, options).await.unwrap();
        let http = reqwest::Client::new();
        let mut env = Env { sim, http, token: String::new() };
        env.token = env.login(SA, SA_KEY).await;
        env
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.bytebase_url())
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .send_as(
                "",
                "POST",
                "/v1/auth/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn token_for(&self, email: &str) -> String {
        let (status, body) = self.control("/_sim/token", json!({ "email": email })).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn send_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send_as(&self.token, "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_as(&self.token, "POST", path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_as(&self.token, "PATCH", path, Some(body)).await
    }

    async fn control(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_as("", "POST", path, Some(body)).await
    }

    /// Creates a DATABASE_CHANGE issue as `creator` targeting `targets`; returns its name.
    async fn create_issue(&self, project: &str, creator: &str, targets: &[&str]) -> String {
        let (status, issue) = self
            .control(
                "/_sim/issues",
                json!({
                    "project": project,
                    "creator": creator,
                    "title": "Add a column",
                    "specs": [{"changeDatabaseConfig": {"targets": targets}}],
                }),
            )
            .await;
        assert_eq!(status, 200, "{issue}");
        assert_eq!(issue["approvalStatus"], "CHECKING", "a new change issue is being checked");
        issue["name"].as_str().unwrap().to_owned()
    }

    async fn issue(&self, name: &str) -> Value {
        let (status, issue) = self.get(&format!("/v1/{name}")).await;
        assert_eq!(status, 200, "{issue}");
        issue
    }

    async fn plan_of(&self, issue: &Value) -> Value {
        let (status, plan) = self.get(&format!("/v1/{}", issue["plan"].as_str().unwrap())).await;
        assert_eq!(status, 200, "{plan}");
        plan
    }
}

/// The `(status, body code)` of an error response, checking its shape on the way.
fn error_code(status: u16, body: &Value) -> (u16, i64) {
    assert!(body["message"].is_string(), "an error body has a message: {body}");
    (status, body["code"].as_i64().unwrap_or(-1))
}

/// Asserts that no value in `v` is a protojson zero value.
fn assert_no_zero_values(v: &Value, path: &str) {
    match v {
        Value::Bool(false) => panic!("{path} is false: zero values are omitted"),
        Value::Number(n) if n.as_f64() == Some(0.0) => panic!("{path} is 0"),
        Value::String(s) if s.is_empty() => panic!("{path} is \"\""),
        Value::String(s) if s.ends_with("_UNSPECIFIED") => panic!("{path} is {s}"),
        Value::Array(items) if items.is_empty() => panic!("{path} is []"),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_no_zero_values(item, &format!("{path}[{i}]"));
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                assert_no_zero_values(item, &format!("{path}.{k}"));
            }
        }
        _ => {}
    }
}

// ---- §11 pitfalls -------------------------------------------------------------------------

#[tokio::test]
async fn pitfall_01_has_rollout_is_a_plan_field_and_stages_have_no_status() {
    let env = Env::start(basic()).await;
    let issue = env.issue("projects/payments/issues/102").await;
    assert!(issue.get("rollout").is_none(), "Issue has no rollout field: {issue}");
    assert_no_zero_values(&issue, "issue");
    let plan = env.plan_of(&issue).await;
    assert_eq!(plan["hasRollout"], true);
    assert_no_zero_values(&plan, "plan");
    let (status, rollout) =
        env.get(&format!("/v1/{}/rollout", issue["plan"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{rollout}");
    let stage = &rollout["stages"][0];
    assert_eq!(stage["environment"], "environments/staging");
    assert!(stage.get("status").is_none(), "Stage has no status: {stage}");
    assert_eq!(stage["tasks"][0]["status"], "NOT_STARTED");
    assert_no_zero_values(&rollout, "rollout");
    // A plan without a rollout omits hasRollout (false is a zero value).
    let pending = env.issue("projects/payments/issues/101").await;
    assert!(env.plan_of(&pending).await.get("hasRollout").is_none());
}

#[tokio::test]
async fn pitfall_02_unmatched_issues_are_skipped_not_pending_and_may_roll_out() {
    let mut world = basic();
    world.bytebase.approval_rules = Some(Some(
        serde_json::from_value(json!([{
            "source": "CHANGE_DATABASE",
            "condition": {"expression": "resource.environment_id == \"prod\""},
            "template": {"title": "Prod", "flow": {"roles": ["roles/cab-approver"]}}
        }]))
        .unwrap(),
    ));
    let env = Env::start(world).await;
    let name = env
        .create_issue("ledger", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let issue = env.issue(&name).await;
    assert_eq!(issue["approvalStatus"], "SKIPPED");
    assert!(issue.get("approvalTemplate").is_none());
    // The SKIPPED issue got a rollout with no call at all, and its issue is DONE.
    let plan = env.plan_of(&issue).await;
    assert_eq!(plan["hasRollout"], true, "{plan}");
    assert_eq!(env.issue(&name).await["status"], "DONE");

    // No licence: SKIPPED whatever the rules.
    let mut world = basic();
    world.bytebase.plan = "FREE".into();
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    assert_eq!(env.issue(&name).await["approvalStatus"], "SKIPPED");
    let (_, subscription) = env.get("/v1/subscription").await;
    assert_eq!(subscription["plan"], "FREE");

    // An empty rule list: SKIPPED too.
    let mut world = basic();
    world.bytebase.approval_rules = Some(Some(Vec::new()));
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    assert_eq!(env.issue(&name).await["approvalStatus"], "SKIPPED");
}

fn rules(value: Value) -> Option<Option<Vec<sim::bytebase::world::ApprovalRule>>> {
    Some(Some(serde_json::from_value(value).unwrap()))
}

#[tokio::test]
async fn pitfall_03_only_a_true_condition_matches_and_an_empty_one_never_does() {
    let mut world = basic();
    world.bytebase.approval_rules = rules(json!([
        {"condition": {},
         "template": {"title": "Empty", "flow": {"roles": ["roles/projectOwner"]}}},
        {"source": "CHANGE_DATABASE",
         "condition": {"expression": "resource.db_engine == \"ORACLE\""},
         "template": {"title": "Oracle", "flow": {"roles": ["roles/projectOwner"]}}},
        {"source": "CHANGE_DATABASE", "condition": {"expression": "resource.no_such_field == 1"},
         "template": {"title": "Broken", "flow": {"roles": ["roles/projectOwner"]}}}
    ]));
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    assert_eq!(env.issue(&name).await["approvalStatus"], "SKIPPED");

    let mut world = basic();
    world.bytebase.approval_rules = rules(json!([
        {"condition": {"expression": "true"},
         "template": {"title": "Catch-all", "flow": {"roles": ["roles/projectOwner"]}}}
    ]));
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    let issue = env.issue(&name).await;
    assert_eq!(issue["approvalStatus"], "PENDING");
    assert_eq!(issue["approvalTemplate"]["title"], "Catch-all");
}

#[tokio::test]
async fn pitfall_04_source_rules_beat_fallback_rules_wherever_listed() {
    let mut world = basic();
    world.bytebase.approval_rules = rules(json!([
        {"condition": {"expression": "true"},
         "template": {"title": "Fallback", "flow": {"roles": ["roles/projectOwner"]}}},
        {"source": "CHANGE_DATABASE", "condition": {"expression": "true"},
         "template": {"title": "First change rule", "flow": {"roles": ["roles/cab-approver"]}}},
        {"source": "CHANGE_DATABASE", "condition": {"expression": "true"},
         "template": {"title": "Second change rule", "flow": {"roles": ["roles/workspaceDBA"]}}}
    ]));
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let issue = env.issue(&name).await;
    assert_eq!(issue["approvalTemplate"]["title"], "First change rule");
    assert_eq!(issue["approvalTemplate"]["flow"]["roles"], json!(["roles/cab-approver"]));
}

#[tokio::test]
async fn pitfall_05_the_legacy_approval_setting_name_is_a_400() {
    let env = Env::start(basic()).await;
    let (status, body) = env.get("/v1/settings/bb.workspace.approval").await;
    assert_eq!(error_code(status, &body), (400, 3));
    let (status, body) = env.get("/v1/settings/WORKSPACE_APPROVAL").await;
    assert_eq!(status, 200);
    let rules = body["value"]["workspaceApproval"]["rules"].as_array().unwrap();
    let fallback = &rules[1];
    assert!(fallback.get("source").is_none(), "SOURCE_UNSPECIFIED is omitted: {fallback}");
    assert_eq!(fallback["condition"]["expression"], "true");
    assert_no_zero_values(&body, "setting");

    // No row at all → 404.
    let mut world = basic();
    world.bytebase.approval_rules = Some(None);
    let env = Env::start(world).await;
    let (status, body) = env.get("/v1/settings/WORKSPACE_APPROVAL").await;
    assert_eq!(error_code(status, &body), (404, 5));
}

#[tokio::test]
async fn pitfall_06_export_data_source_is_refused_and_patch_replaces_the_list() {
    let env = Env::start(basic()).await;
    let setting = |source: &str| {
        json!({"name": "settings/WORKSPACE_APPROVAL", "value": {"workspaceApproval": {"rules": [
            {"source": source, "condition": {"expression": "true"},
             "template": {"title": "t", "flow": {"roles": ["roles/projectOwner"]}}}
        ]}}})
    };
    let path = "/v1/settings/WORKSPACE_APPROVAL?update_mask=value";
    let (status, body) = env.patch(path, setting("EXPORT_DATA")).await;
    assert_eq!(error_code(status, &body), (400, 3));
    let (status, body) = env.patch(path, setting("REQUEST_ACCESS")).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = env.get("/v1/settings/WORKSPACE_APPROVAL").await;
    let rules = body["value"]["workspaceApproval"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "PATCH replaces the whole list");
    assert_eq!(rules[0]["source"], "REQUEST_ACCESS");
    // A fallback rule may use only resource.project_id.
    let mut bad = setting("");
    bad["value"]["workspaceApproval"]["rules"][0]["condition"]["expression"] =
        json!("resource.environment_id == \"prod\"");
    let (status, body) = env.patch(path, bad).await;
    assert_eq!(error_code(status, &body), (400, 3));
}

#[tokio::test]
async fn pitfall_07_approving_skipped_is_500_and_checking_is_400() {
    let env = Env::start(basic()).await;
    let (status, body) = env
        .post("/v1/projects/ledger/issues/104:approve", json!({"comment": "CHG0001 approved"}))
        .await;
    assert_eq!(error_code(status, &body), (500, 13));
    assert_eq!(body["message"], "approval template is required");
    let (status, body) =
        env.post("/v1/projects/ledger/issues/105:approve", json!({"comment": "x"})).await;
    assert_eq!(error_code(status, &body), (400, 9));
    let (status, body) =
        env.post("/v1/projects/ledger/issues/105:reject", json!({"comment": "x"})).await;
    assert_eq!(error_code(status, &body), (400, 9));
    // `/_sim/step` finishes the finding: then it is PENDING.
    let (status, _) = env.control("/_sim/step", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(env.issue("projects/ledger/issues/105").await["approvalStatus"], "PENDING");
}

#[tokio::test]
async fn pitfall_08_the_rollout_appears_after_approve_returns_or_never() {
    let mut world = basic();
    world.bytebase.timing.rollout = "manual".into();
    let env = Env::start(world).await;
    let (status, issue) = env
        .post("/v1/projects/payments/issues/101:approve", json!({"comment": "CHG0030001"}))
        .await;
    assert_eq!(status, 200, "{issue}");
    assert_eq!(issue["approvalStatus"], "APPROVED");
    assert_eq!(issue["approvers"][0]["principal"], format!("users/{SA}"));
    let plan_name = issue["plan"].as_str().unwrap().to_owned();
    let (status, body) = env.get(&format!("/v1/{plan_name}/rollout")).await;
    assert_eq!(error_code(status, &body), (404, 5), "GetRollout 404s until hasRollout");
    let (_, missing) = env.get("/v1/projects/payments/plans/999999/rollout").await;
    assert_eq!(missing["code"], body["code"], "the same 404 as a missing plan");
    assert!(env.plan_of(&issue).await.get("hasRollout").is_none());
    env.control("/_sim/step", json!({})).await;
    let (status, rollout) = env.get(&format!("/v1/{plan_name}/rollout")).await;
    assert_eq!(status, 200, "{rollout}");
    assert_eq!(env.plan_of(&issue).await["hasRollout"], true);

    // A plan-check error: the final approval succeeds, the rollout never comes.
    let (_, created) = env
        .control(
            "/_sim/issues",
            json!({"project": "payments", "creator": "alice@acme.example", "title": "t",
                   "planCheck": "ERROR",
                   "specs": [{"changeDatabaseConfig":
                       {"targets": ["instances/prod-pg/databases/payments"]}}]}),
        )
        .await;
    let name = created["name"].as_str().unwrap();
    env.control("/_sim/step", json!({})).await;
    let (status, _) = env.post(&format!("/v1/{name}:approve"), json!({})).await;
    assert_eq!(status, 200);
    env.control("/_sim/step", json!({})).await;
    let issue = env.issue(name).await;
    assert_eq!(issue["approvalStatus"], "APPROVED");
    assert!(env.plan_of(&issue).await.get("hasRollout").is_none(), "silently never created");
    // The fallback: CreateRollout ignores plan checks.
    let (status, rollout) =
        env.post(&format!("/v1/{}/rollout", issue["plan"].as_str().unwrap()), json!({})).await;
    assert_eq!(status, 200, "{rollout}");
}

#[tokio::test]
async fn pitfall_09_issue_done_means_rollout_created_not_finished() {
    let env = Env::start(basic()).await;
    let (status, _) =
        env.post("/v1/projects/payments/issues/101:approve", json!({"comment": "ok"})).await;
    assert_eq!(status, 200);
    let issue = env.issue("projects/payments/issues/101").await;
    assert_eq!(issue["status"], "DONE");
    let plan = env.plan_of(&issue).await;
    let summary = &plan["rolloutStageSummaries"][0];
    assert_eq!(
        summary["stage"],
        format!("{}/rollout/stages/prod", issue["plan"].as_str().unwrap())
    );
    assert_eq!(summary["taskStatusCounts"], json!([{"status": "NOT_STARTED", "count": 1}]));
}

#[tokio::test]
async fn pitfall_10_without_require_issue_approval_anyone_with_task_runs_create_rolls_out() {
    let env = Env::start(basic()).await;
    // ledger has requireIssueApproval off; 105 is CHECKING/PENDING, never approved.
    env.control("/_sim/step", json!({})).await;
    let issue = env.issue("projects/ledger/issues/105").await;
    assert_eq!(issue["approvalStatus"], "PENDING");
    let plan = issue["plan"].as_str().unwrap().to_owned();
    let (status, rollout) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    assert_eq!(status, 200, "{rollout}");
    let task = rollout["stages"][0]["tasks"][0]["name"].as_str().unwrap().to_owned();
    let (status, body) = env
        .post(&format!("/v1/{plan}/rollout/stages/prod/tasks:batchRun"), json!({"tasks": [task]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));

    // payments requires approval: CreateRollout is refused (FailedPrecondition), batchSkip not.
    let issue = env.issue("projects/payments/issues/101").await;
    let plan = issue["plan"].as_str().unwrap().to_owned();
    let (status, body) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    assert_eq!(error_code(status, &body), (400, 9));
    let mut world = basic();
    world.bytebase.projects[0].require_issue_approval = false;
    let env = Env::start(world).await;
    let (status, rollout) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    assert_eq!(status, 200, "{rollout}");
    let task = rollout["stages"][0]["tasks"][0]["name"].as_str().unwrap().to_owned();
    let (status, body) = env
        .post(
            &format!("/v1/{plan}/rollout/stages/prod/tasks:batchSkip"),
            json!({"tasks": [task], "reason": "skipped before approval"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, rollout) = env.get(&format!("/v1/{plan}/rollout")).await;
    assert_eq!(rollout["stages"][0]["tasks"][0]["status"], "SKIPPED");
    assert_eq!(rollout["stages"][0]["tasks"][0]["skippedReason"], "skipped before approval");
}

#[tokio::test]
async fn pitfall_11_rollout_policy_roles_only_widen_who_may_run() {
    let mut world = basic();
    world.bytebase.projects[0].require_issue_approval = false;
    world.bytebase.environments[2].rollout_policy =
        Some(serde_json::from_value(json!({"roles": ["roles/projectDeveloper"]})).unwrap());
    let env = Env::start(world).await;
    let issue = env.issue("projects/payments/issues/101").await;
    let plan = issue["plan"].as_str().unwrap().to_owned();
    let (_, rollout) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    let task = rollout["stages"][0]["tasks"][0]["name"].as_str().unwrap().to_owned();
    let run = format!("/v1/{plan}/rollout/stages/prod/tasks:batchRun");
    // alice is a projectDeveloper through the dev group: no bb.taskRuns.create, but prod's
    // rollout policy lists her role.
    let alice = env.token_for("alice@acme.example").await;
    let (status, body) = env.send_as(&alice, "POST", &run, Some(json!({"tasks": [task]}))).await;
    assert_eq!(status, 200, "{body}");

    // Without the policy role she is refused, with the permission detail.
    let mut world = basic();
    world.bytebase.projects[0].require_issue_approval = false;
    let env = Env::start(world).await;
    let (_, rollout) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    let task = rollout["stages"][0]["tasks"][0]["name"].as_str().unwrap().to_owned();
    let alice = env.token_for("alice@acme.example").await;
    let (status, body) = env.send_as(&alice, "POST", &run, Some(json!({"tasks": [task]}))).await;
    assert_eq!(error_code(status, &body), (403, 7));
    assert_eq!(body["details"][0]["requiredPermissions"], json!(["bb.taskRuns.create"]));
    // bob (projectOwner, a bb.taskRuns.create holder) runs prod although prod's policy has no
    // roles at all.
    let bob = env.token_for("bob@acme.example").await;
    let (status, body) = env.send_as(&bob, "POST", &run, Some(json!({"tasks": [task]}))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn pitfall_11b_resource_conditions_do_not_narrow_and_expired_bindings_do_not_grant() {
    let mut world = basic();
    world.bytebase.projects[0].require_issue_approval = false;
    world.bytebase.projects[0].iam.push(
        serde_json::from_value(json!({
            "role": "roles/projectReleaser",
            "members": ["user:dana@acme.example"],
            "condition": "resource.environment_name == \"environments/dev\""
        }))
        .unwrap(),
    );
    let env = Env::start(world).await;
    let issue = env.issue("projects/payments/issues/101").await;
    let plan = issue["plan"].as_str().unwrap().to_owned();
    let (_, rollout) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    let task = rollout["stages"][0]["tasks"][0]["name"].as_str().unwrap().to_owned();
    let run = format!("/v1/{plan}/rollout/stages/prod/tasks:batchRun");
    let dana = env.token_for("dana@acme.example").await;
    let (status, body) = env.send_as(&dana, "POST", &run, Some(json!({"tasks": [task]}))).await;
    assert_eq!(status, 200, "a dev-scoped releaser still runs prod: {body}");
    // carol's workspace releaser binding expired in 2020: it grants nothing.
    let carol = env.token_for("carol@acme.example").await;
    let (status, body) = env.send_as(&carol, "POST", &run, Some(json!({"tasks": [task]}))).await;
    assert_eq!(error_code(status, &body), (403, 7));
    // The policy is returned as stored: condition kept, groups not expanded.
    let (_, policy) = env.get("/v1/workspaces/acme:getIamPolicy").await;
    let bindings = policy["bindings"].as_array().unwrap();
    assert!(bindings.iter().any(|b| b["members"] == json!(["group:dba@acme.example"])));
    assert!(bindings.iter().all(|b| b["condition"].is_object()), "condition always present");
}

#[tokio::test]
async fn pitfall_12_rollout_policy_defaults_are_omitted_and_never_404() {
    let env = Env::start(basic()).await;
    let (status, prod) = env.get("/v1/environments/prod/policies/rollout_policy").await;
    assert_eq!(status, 200, "{prod}");
    assert_eq!(prod["rolloutPolicy"], json!({}), "automatic:false and roles:[] are omitted");
    assert_eq!(prod["type"], "ROLLOUT_POLICY");
    let (status, dev) = env.get("/v1/environments/dev/policies/ROLLOUT_POLICY").await;
    assert_eq!(status, 200);
    assert_eq!(dev["rolloutPolicy"], json!({"automatic": true}));
    let (_, list) = env.get("/v1/environments/prod/policies?policyType=ROLLOUT_POLICY").await;
    assert_eq!(list, json!({}), "ListPolicies omits environments with no stored row");
    let (_, list) = env.get("/v1/environments/staging/policies").await;
    assert_eq!(list["policies"][0]["rolloutPolicy"]["roles"], json!(["roles/projectOwner"]));
    // PATCH needs the mask and the type.
    let path = concat!(
        "/v1/environments/prod/policies/rollout_policy",
        "?update_mask=rollout_policy&allow_missing=true"
    );
    let (status, body) = env.patch(path, json!({"rolloutPolicy": {"automatic": true}})).await;
    assert_eq!(error_code(status, &body), (400, 3));
    let (status, body) = env
        .patch(path, json!({"type": "ROLLOUT_POLICY", "rolloutPolicy": {"automatic": true}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rolloutPolicy"]["automatic"], true);
}

#[tokio::test]
async fn pitfall_13_changing_labels_resets_approval() {
    let mut world = basic();
    world.bytebase.timing.finding = "manual".into();
    let env = Env::start(world).await;
    let (status, body) = env
        .patch(
            "/v1/projects/payments/issues/101?update_mask=labels",
            json!({"labels": ["CHG0030001"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvalStatus"], "CHECKING");
    assert!(body.get("approvers").is_none());
    // A comment does not reset anything.
    let (status, comment) = env
        .post("/v1/projects/payments/issues/103:comment", json!({"comment": "CHG0030002"}))
        .await;
    assert_eq!(status, 200, "{comment}");
    assert_eq!(comment["comment"], "CHG0030002");
    assert_eq!(env.issue("projects/payments/issues/103").await["approvalStatus"], "REJECTED");
    let (status, body) =
        env.post("/v1/projects/payments/issues/103:comment", json!({"comment": ""})).await;
    assert_eq!(error_code(status, &body), (400, 3));
}

#[tokio::test]
async fn pitfall_14_post_query_filters_give_short_pages_with_a_token() {
    let env = Env::start(basic()).await;
    let filter = "approval_status == \"SKIPPED\"";
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    let mut short_pages = 0;
    loop {
        let (status, page) = env
            .post(
                "/v1/projects/-/issues:search",
                json!({"filter": filter, "pageSize": 1, "pageToken": token}),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let issues = page["issues"].as_array().cloned().unwrap_or_default();
        if issues.is_empty() {
            short_pages += 1;
            assert!(page.get("issues").is_none(), "an empty page omits the list: {page}");
        }
        names.extend(issues.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, ["projects/ledger/issues/104"]);
    assert_eq!(pages, 5, "one page per issue, the filter applied after paging");
    assert_eq!(short_pages, 4);
    // `current_approver`: the CAB service account holds the next role of 101 only.
    let (_, page) = env
        .get(&format!(
            "/v1/projects/payments/issues?filter={}",
            url_escape(&format!("current_approver == \"users/{SA}\""))
        ))
        .await;
    let names: Vec<&str> =
        page["issues"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["projects/payments/issues/101"]);
    // Unsupported filters are a 400.
    let (status, body) = env
        .get(&format!("/v1/projects/payments/issues?filter={}", url_escape("title == \"x\"")))
        .await;
    assert_eq!(error_code(status, &body), (400, 3));
}

fn url_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn pitfall_15_webhook_urls_are_never_returned() {
    let env = Env::start(basic()).await;
    let (status, project) = env.get("/v1/projects/payments").await;
    assert_eq!(status, 200);
    let hook = &project["webhooks"][0];
    assert_eq!(hook["type"], "TEAMS");
    assert_eq!(hook["name"], "projects/payments/webhooks/cab-relay");
    assert!(hook.get("url").is_none(), "url is write-only: {hook}");
    assert!(!project.to_string().contains("logic.azure.com"));
    assert_no_zero_values(&project, "project");
}

#[tokio::test]
async fn pitfall_16_service_account_tokens_last_an_hour_and_web_login_is_refused() {
    let env = Env::start(basic()).await;
    let (status, body) = env
        .send_as(
            "",
            "POST",
            "/v1/auth/login",
            Some(json!({"email": SA, "password": SA_KEY, "web": true})),
        )
        .await;
    assert_eq!(error_code(status, &body), (403, 7));
    let (status, _) = env.get("/v1/workspaces/-").await;
    assert_eq!(status, 200);
    env.control("/_sim/clock/advance", json!({"by": "61m"})).await;
    let (status, body) = env.get("/v1/workspaces/-").await;
    assert_eq!(error_code(status, &body), (401, 16));
    assert_eq!(body["message"], "access token expired");
    let fresh = env.login(SA, SA_KEY).await;
    let (status, _) = env.send_as(&fresh, "GET", "/v1/workspaces/-", None).await;
    assert_eq!(status, 200);
    // No token at all.
    let (status, body) = env.send_as("", "GET", "/v1/workspaces/-", None).await;
    assert_eq!(error_code(status, &body), (401, 16));
}

#[tokio::test]
async fn pitfall_17_failed_precondition_and_invalid_argument_share_http_400() {
    let env = Env::start(basic()).await;
    let (status, precondition) =
        env.post("/v1/projects/ledger/issues/105:approve", json!({"comment": "x"})).await;
    let (status2, invalid) =
        env.post("/v1/projects/payments/issues/103:approve", json!({"comment": "x"})).await;
    assert_eq!((status, status2), (400, 400));
    assert_eq!(precondition["code"], 9);
    assert_eq!(invalid["code"], 3, "approving a rejected issue: {invalid}");
    // Unknown request fields are InvalidArgument too.
    let (status, body) =
        env.post("/v1/projects/payments/issues/101:approve", json!({"coment": "typo"})).await;
    assert_eq!(error_code(status, &body), (400, 3));
}

#[tokio::test]
async fn pitfall_18_only_the_creator_may_request_review_again() {
    let env = Env::start(basic()).await;
    let (status, body) =
        env.post("/v1/projects/payments/issues/103:request", json!({"comment": "please"})).await;
    assert_eq!(error_code(status, &body), (403, 7));
    // Rework: the creator edits the plan and re-requests; the issue is PENDING again.
    let (status, issue) = env
        .control(
            "/_sim/issues/payments/103/request",
            json!({"principal": "alice@acme.example", "comment": "fixed per CAB"}),
        )
        .await;
    assert_eq!(status, 200, "{issue}");
    assert_eq!(issue["approvalStatus"], "PENDING");
    assert!(issue.get("approvers").is_none());
    // Requesting a non-rejected issue is InvalidArgument.
    let (status, body) = env
        .control("/_sim/issues/payments/103/request", json!({"principal": "alice@acme.example"}))
        .await;
    assert_eq!(error_code(status, &body), (400, 3));
    // The review trail is in the comments, with the approval event.
    let (_, comments) = env.get("/v1/projects/payments/issues/103/issueComments").await;
    let last = comments["issueComments"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["approval"]["status"], "PENDING");
    assert_eq!(last["creator"], "users/alice@acme.example");
}

// ---- review rules beyond §11 ------------------------------------------------------------

#[tokio::test]
async fn approvals_need_the_next_role_and_no_self_approval() {
    let env = Env::start(basic()).await;
    // bob is projectOwner, not cab-approver: 403.
    let bob = env.token_for("bob@acme.example").await;
    let approve = "/v1/projects/payments/issues/101:approve";
    let (status, body) = env.send_as(&bob, "POST", approve, Some(json!({}))).await;
    assert_eq!(error_code(status, &body), (403, 7));
    // In sandbox alice owns the project and may approve her own issue.
    let name = env
        .create_issue("sandbox", "alice@acme.example", &["instances/dev-my/databases/sandbox"])
        .await;
    let alice = env.token_for("alice@acme.example").await;
    let (status, body) =
        env.send_as(&alice, "POST", &format!("/v1/{name}:approve"), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvalStatus"], "APPROVED");
    let (status, body) =
        env.send_as(&alice, "POST", &format!("/v1/{name}:approve"), Some(json!({}))).await;
    assert_eq!(error_code(status, &body), (400, 3), "already approved");
    // In ledger bob owns the project; alice (the creator) is a developer there.
    let mut world = basic();
    world.bytebase.projects[1].iam.push(
        serde_json::from_value(
            json!({"role": "roles/projectOwner", "members": ["user:alice@acme.example"]}),
        )
        .unwrap(),
    );
    let env = Env::start(world).await;
    let name = env
        .create_issue("ledger", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let alice = env.token_for("alice@acme.example").await;
    let (status, body) =
        env.send_as(&alice, "POST", &format!("/v1/{name}:approve"), Some(json!({}))).await;
    assert_eq!(error_code(status, &body), (403, 7));
    assert!(body["message"].as_str().unwrap().contains("self-approval"));
}

#[tokio::test]
async fn automatic_environments_get_task_runs_that_progress_on_the_clock() {
    let mut world = basic();
    world.bytebase.timing.task_run = "manual".into();
    let env = Env::start(world).await;
    // A dev change: the fallback rule (projectOwner), bob approves, the rollout runs in dev.
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let bob = env.token_for("bob@acme.example").await;
    let (status, body) =
        env.send_as(&bob, "POST", &format!("/v1/{name}:approve"), Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let issue = env.issue(&name).await;
    let plan = issue["plan"].as_str().unwrap().to_owned();
    let (_, rollout) = env.get(&format!("/v1/{plan}/rollout")).await;
    let task = rollout["stages"][0]["tasks"][0].clone();
    assert_eq!(task["status"], "PENDING", "{rollout}");
    let (_, runs) = env.get(&format!("/v1/{plan}/rollout/stages/-/tasks/-/taskRuns")).await;
    assert_eq!(runs["taskRuns"][0]["status"], "PENDING");
    // The control API ends the run.
    let (status, _) =
        env.control("/_sim/tasks/finish", json!({"task": task["name"], "status": "FAILED"})).await;
    assert_eq!(status, 200);
    let (_, runs) = env.get(&format!("/v1/{plan}/rollout/stages/dev/tasks/-/taskRuns")).await;
    assert_eq!(runs["taskRuns"][0]["status"], "FAILED");
    assert!(runs.get("nextPageToken").is_none(), "ListTaskRuns has no paging");
    // Run it again: a new run, cancel it.
    let (status, _) = env
        .post(
            &format!("/v1/{plan}/rollout/stages/dev/tasks:batchRun"),
            json!({"tasks": [task["name"]]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, runs) = env.get(&format!("/v1/{plan}/rollout/stages/dev/tasks/-/taskRuns")).await;
    let newest = runs["taskRuns"][0]["name"].as_str().unwrap().to_owned();
    let (status, body) = env
        .post(
            &format!("/v1/{plan}/rollout/stages/dev/tasks/-/taskRuns:batchCancel"),
            json!({"taskRuns": [newest]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, plan_json) = env.get(&format!("/v1/{plan}")).await;
    assert_eq!(
        plan_json["rolloutStageSummaries"][0]["taskStatusCounts"],
        json!([{"status": "CANCELED", "count": 1}])
    );
}

#[tokio::test]
async fn automatic_task_runs_finish_when_the_clock_moves() {
    let env = Env::start(basic()).await; // taskRun: 2s
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let bob = env.token_for("bob@acme.example").await;
    env.send_as(&bob, "POST", &format!("/v1/{name}:approve"), Some(json!({}))).await;
    let plan = env.issue(&name).await["plan"].as_str().unwrap().to_owned();
    env.control("/_sim/clock/advance", json!({"by": "5s"})).await;
    env.control("/_sim/clock/advance", json!({"by": "5s"})).await;
    let token = env.login(SA, SA_KEY).await;
    let (_, rollout) = env.send_as(&token, "GET", &format!("/v1/{plan}/rollout"), None).await;
    assert_eq!(rollout["stages"][0]["tasks"][0]["status"], "DONE", "{rollout}");
}

// ---- transport -----------------------------------------------------------------------------

#[tokio::test]
async fn unroutable_paths_answer_code_5_with_404_or_405() {
    let env = Env::start(basic()).await;
    let (status, body) = env.get("/v1/nothing/here").await;
    assert_eq!(error_code(status, &body), (404, 5));
    let (status, body) = env.send_as(&env.token, "DELETE", "/v1/projects", None).await;
    assert_eq!(error_code(status, &body), (405, 5));
    let (status, body) = env.get("/v1/projects/nope").await;
    assert_eq!(error_code(status, &body), (404, 5));
}

#[tokio::test]
async fn projects_page_with_an_opaque_token_absent_on_the_last_page() {
    let mut world = basic();
    for i in 0..25 {
        world.bytebase.projects.push(
            serde_json::from_value(json!({"id": format!("extra-{i:02}"), "title": "Extra"}))
                .unwrap(),
        );
    }
    let env = Env::start(world).await;
    let (_, first) = env.get("/v1/projects").await;
    assert_eq!(first["projects"].as_array().unwrap().len(), 10, "pageSize defaults to 10");
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let (status, page) = env.get(&format!("/v1/projects?pageSize=7&pageToken={token}")).await;
        assert_eq!(status, 200, "{page}");
        seen += page["projects"].as_array().map_or(0, Vec::len);
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 29, "default + 3 + 25");
    let (status, body) = env.get("/v1/projects?pageSize=5&pageToken=garbage").await;
    assert_eq!(error_code(status, &body), (400, 3));
    let (_, all) = env.get("/v1/projects?pageSize=5000").await;
    assert_eq!(all["projects"].as_array().unwrap().len(), 29);
    assert!(all.get("nextPageToken").is_none());
}

#[tokio::test]
async fn the_compliance_reader_reads_with_a_custom_role_only() {
    let env = Env::start(basic()).await;
    let reader = env.login("reader@service.bytebase.com", "bbs_simreaderkey00000001").await;
    for path in [
        "/v1/workspaces/-",
        "/v1/settings/WORKSPACE_APPROVAL",
        "/v1/settings/ENVIRONMENT",
        "/v1/roles",
        "/v1/workspaces/acme:getIamPolicy",
        "/v1/projects?pageSize=1000",
        "/v1/projects/payments:getIamPolicy",
        "/v1/groups?pageSize=1000",
        "/v1/environments/prod/policies/rollout_policy",
    ] {
        let (status, body) = env.send_as(&reader, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = env.send_as(&reader, "GET", "/v1/projects/payments/issues", None).await;
    assert_eq!(error_code(status, &body), (403, 7));
    assert_eq!(body["details"][0]["requiredPermissions"], json!(["bb.issues.list"]));
    let (_, roles) = env.get("/v1/roles").await;
    let roles = roles["roles"].as_array().unwrap();
    assert_eq!(roles[0]["name"], "roles/cab-approver", "custom roles first");
    assert_eq!(roles[0]["type"], "CUSTOM");
    let runners: Vec<&str> = roles
        .iter()
        .filter(|r| r["permissions"].as_array().unwrap().contains(&json!("bb.taskRuns.create")))
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        runners,
        [
            "roles/workspaceAdmin",
            "roles/workspaceDBA",
            "roles/projectOwner",
            "roles/projectReleaser",
            "roles/gitopsServiceAgent"
        ]
    );
}

#[tokio::test]
async fn ten_failed_logins_in_ten_minutes_are_throttled() {
    let env = Env::start(basic()).await;
    for _ in 0..10 {
        let (status, body) = env
            .send_as("", "POST", "/v1/auth/login", Some(json!({"email": SA, "password": "wrong"})))
            .await;
        assert_eq!(error_code(status, &body), (401, 16));
    }
    let (status, body) = env
        .send_as("", "POST", "/v1/auth/login", Some(json!({"email": SA, "password": SA_KEY})))
        .await;
    assert_eq!(error_code(status, &body), (429, 8));
    env.control("/_sim/clock/advance", json!({"by": "11m"})).await;
    env.login(SA, SA_KEY).await;
}

#[tokio::test]
async fn injected_faults_follow_the_seed() {
    let faults: FaultSpec = "5xx=1,first=1,path=/v1/workspaces/*".parse().unwrap();
    let env = Env::with_options(basic(), Options { faults, ..Options::default() }).await;
    let (status, body) = env.get("/v1/workspaces/-").await;
    assert_eq!((status, body["code"].as_i64()), (503, Some(14)));
    let (status, _) = env.get("/v1/workspaces/-").await;
    assert_eq!(status, 200, "only the first eligible request faults");

    let faults: FaultSpec = "429=1,retry-after=7,path=/v1/roles".parse().unwrap();
    let env = Env::with_options(basic(), Options { faults, ..Options::default() }).await;
    let response = env.http.get(env.url("/v1/roles")).bearer_auth(&env.token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    // A reset: the client sees a transport error and the handler never ran.
    let faults: FaultSpec = "reset=1,path=*:comment".parse().unwrap();
    let env = Env::with_options(basic(), Options { faults, ..Options::default() }).await;
    let result = env
        .http
        .post(env.url("/v1/projects/payments/issues/101:comment"))
        .bearer_auth(&env.token)
        .json(&json!({"comment": "lost?"}))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "a reset is a transport error");
    let (_, comments) = env.get("/v1/projects/payments/issues/101/issueComments").await;
    assert!(comments.get("issueComments").is_none(), "the write was not applied: {comments}");

    // A lost response: the write was applied although the client saw an error.
    let faults: FaultSpec = "lost=1,path=*:comment".parse().unwrap();
    let env = Env::with_options(basic(), Options { faults, ..Options::default() }).await;
    let result = env
        .http
        .post(env.url("/v1/projects/payments/issues/101:comment"))
        .bearer_auth(&env.token)
        .json(&json!({"comment": "applied"}))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "a lost response is a transport error");
    let (_, comments) = env.get("/v1/projects/payments/issues/101/issueComments").await;
    assert_eq!(comments["issueComments"][0]["comment"], "applied");
    let recorded = env.sim.requests();
    assert!(recorded.iter().any(|e| e.fault == Some("lost") && e.status == 200));
}

/// Drives a fixed scenario and returns the recorded exchanges with times and tokens masked.
async fn scenario(seed: u64) -> Vec<Value> {
    let faults: FaultSpec = "5xx=0.2,429=0.1,latency=2ms,method=GET".parse().unwrap();
    let env = Env::with_options(basic(), Options { seed, faults, ..Options::default() }).await;
    let paths = [
        "/v1/workspaces/-",
        "/v1/settings/WORKSPACE_APPROVAL",
        "/v1/roles",
        "/v1/projects?pageSize=2",
        "/v1/projects/payments/issues",
        "/v1/projects/payments/issues/101",
        "/v1/groups",
        "/v1/environments/prod/policies/rollout_policy",
    ];
    for _ in 0..3 {
        for path in paths {
            env.get(path).await;
        }
    }
    env.post("/v1/projects/payments/issues/101:comment", json!({"comment": "CHG0001"})).await;
    env.sim
        .requests()
        .into_iter()
        .map(|e| {
            let text = serde_json::to_string(&e).unwrap();
            let masked = mask_times(&text);
            serde_json::from_str(&masked).unwrap()
        })
        .collect()
}

/// Replaces RFC 3339 timestamps (which follow the wall clock) by a placeholder.
fn mask_times(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"20") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let end = tail.find('"').unwrap_or(0);
        if tail[..end].contains('T') && tail[..end].ends_with('Z') {
            out.push_str("\"<time>");
        } else {
            out.push_str(&rest[at..at + 1 + end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_same_world_and_seed_replay_the_same_exchanges() {
    let first = scenario(42).await;
    let second = scenario(42).await;
    assert!(first.len() > 20);
    assert!(first.iter().any(|e| e.get("fault").is_some()), "the seed injected faults");
    assert_eq!(first, second);
    let other = scenario(43).await;
    assert_ne!(first, other, "another seed, another schedule");
    // Secrets are masked in the recording.
    let login = first.iter().find(|e| e["path"] == "/v1/auth/login").unwrap();
    assert_eq!(login["requestBody"]["password"], "***");
    assert_eq!(login["responseBody"]["token"], "***");
}

#[tokio::test]
async fn the_recording_is_served_and_reset_over_http() {
    let env = Env::start(basic()).await;
    env.get("/v1/roles").await;
    let counts: Value =
        env.http.get(env.url("/_sim/requests/count")).send().await.unwrap().json().await.unwrap();
    assert_eq!(counts["byRoute"]["GET /v1/roles"], 1);
    assert_eq!(counts["bytebase"], 2, "login + roles");
    let status = env.http.delete(env.url("/_sim/requests")).send().await.unwrap().status();
    assert_eq!(status, 200);
    let all: Value =
        env.http.get(env.url("/_sim/requests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(all, json!([]));
}

#[test]
fn the_blocking_handle_serves_sync_callers() {
    let sim = sim::start_blocking(basic(), Options::default()).unwrap();
    let url = format!("{}/v1/subscription", sim.bytebase_url());
    let body: Value = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
    })
    .join()
    .unwrap();
    assert_eq!(body["plan"], "ENTERPRISE");
    std::thread::sleep(Duration::from_millis(1));
}

#[test]
fn bad_worlds_are_refused_with_the_field() {
    let err = World::from_yaml("bytebase:\n  projectz: []\n", "w.yaml").unwrap_err().to_string();
    assert!(err.contains("w.yaml") && err.contains("projectz"), "{err}");
    let err = World::from_yaml("bytebase: [\n", "w.yaml").unwrap_err().to_string();
    assert!(err.starts_with("w.yaml:"), "{err}");
    let world = World::from_yaml("bytebase:\n  plan: GOLD\n", "w.yaml").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(sim::start(world, Options::default())).unwrap_err().to_string();
    assert!(err.contains("GOLD"), "{err}");
}

/// Starts `cabgate sim ARGS`; returns the child and the first line it printed (its URLs).
fn cabgate_sim(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .arg("sim")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

#[test]
fn cabgate_sim_prints_its_urls_then_serves_until_sigterm() {
    let world = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/basic.yaml");
    let (mut child, line) =
        cabgate_sim(&["--world", world, "--seed", "3", "--faults", "latency=1ms"]);
    let urls: Value = serde_json::from_str(&line).unwrap();
    let bytebase = urls["bytebase"].as_str().unwrap().to_owned();
    assert!(bytebase.starts_with("http://127.0.0.1:"), "{line}");
    assert!(urls["servicenow"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    let body: Value = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            reqwest::get(format!("{bytebase}/v1/subscription")).await.unwrap().json().await.unwrap()
        })
    })
    .join()
    .unwrap();
    assert_eq!(body["plan"], "ENTERPRISE");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0), "SIGTERM is a clean stop");

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .args(["sim", "--world", world, "--faults", "5xx=2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "a bad --faults is invalid input");
}

#[tokio::test]
async fn create_rollout_is_idempotent_and_batch_run_takes_one_environment() {
    let mut world = basic();
    world.bytebase.projects[0].require_issue_approval = false;
    let env = Env::start(world).await;
    let (_, created) = env
        .control(
            "/_sim/issues",
            json!({"project": "payments", "creator": "alice@acme.example", "title": "Both",
                   "specs": [{"changeDatabaseConfig": {"targets": [
                       "instances/prod-pg/databases/payments",
                       "instances/staging-pg/databases/payments"]}}]}),
        )
        .await;
    let plan = env.plan_of(&created).await["name"].as_str().unwrap().to_owned();
    let (status, first) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    assert_eq!(status, 200, "{first}");
    let stages: Vec<&str> =
        first["stages"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(stages, ["staging", "prod"], "stages follow the environment order");
    let (status, second) = env.post(&format!("/v1/{plan}/rollout"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(first["stages"], second["stages"], "no task is added twice");
    let tasks: Vec<Value> =
        first["stages"].as_array().unwrap().iter().map(|s| s["tasks"][0]["name"].clone()).collect();
    let (status, body) = env
        .post(&format!("/v1/{plan}/rollout/stages/-/tasks:batchRun"), json!({"tasks": tasks}))
        .await;
    assert_eq!(error_code(status, &body), (400, 3), "one environment per batchRun");
}

#[tokio::test]
async fn every_world_fixture_starts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds");
    let mut started = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Other areas keep specs next to their worlds; a world has a top-level system key.
        let is_world =
            text.lines().any(|l| l.starts_with("bytebase:") || l.starts_with("servicenow:"))
                && !text.lines().any(|l| l.starts_with("version:"));
        if path.extension().is_some_and(|e| e == "yaml") && is_world {
            let world = World::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let running = sim::start(world, Options::default()).await.unwrap();
            let status = reqwest::get(format!("{}/v1/subscription", running.bytebase_url()))
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "{}", path.display());
            running.shutdown().await;
            started += 1;
        }
    }
    assert!(started >= 2, "basic.yaml and drift.yaml at least");
}

#[tokio::test]
async fn the_drifted_world_lets_changes_escape() {
    let world = World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/drift.yaml"));
    let env = Env::start(world.unwrap()).await;
    assert_eq!(env.issue("projects/payments/issues/201").await["approvalStatus"], "SKIPPED");
    // A dev change is SKIPPED and rolls out by itself (dev is automatic, runs take 0s).
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    let issue = env.issue(&name).await;
    assert_eq!(issue["approvalStatus"], "SKIPPED");
    let (_, rollout) = env.get(&format!("/v1/{}/rollout", issue["plan"].as_str().unwrap())).await;
    assert_eq!(rollout["stages"][0]["tasks"][0]["status"], "DONE", "{rollout}");
}

/// A stand-in for the Power Automate flow's target: records every body and answers 200 `1`
/// (what a legacy Teams connector must answer, and a 2xx for Power Automate).
async fn relay() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    relay_answering(200, "1").await
}

/// A relay that answers every post with `status` and `text`.
async fn relay_answering(
    status: u16,
    text: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                (status, text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Waits (at most 5 s) until `n` webhook posts have finished; returns them all.
async fn deliveries(sim: &Running, n: usize) -> Vec<sim::Delivery> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let all = sim.deliveries();
        if all.len() >= n || std::time::Instant::now() > deadline {
            assert!(all.len() >= n, "expected {n} webhook posts, got {all:#?}");
            return all;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hook(id: &str, url: &str, events: &[&str]) -> sim::bytebase::world::Webhook {
    serde_json::from_value(json!({
        "id": id, "type": "TEAMS", "title": id, "url": url, "notificationTypes": events,
    }))
    .unwrap()
}

#[tokio::test]
async fn each_event_posts_one_card_per_subscribed_webhook_with_the_issue_link() {
    use cabgate::workflow::listen::issue_names;
    let (relay_url, received) = relay().await;
    let mut world = basic();
    // A legacy Teams connector that only hears about send-backs.
    let legacy = "https://acme.webhook.office.com/webhookb2/x/IncomingWebhook/y";
    world.bytebase.projects[0].webhooks.push(hook("sent-back", legacy, &["ISSUE_SENT_BACK"]));
    let options = Options { webhook_relay: Some(relay_url), ..Options::default() };
    let env = Env::with_options(world, options).await;
    let prod = ["instances/prod-pg/databases/payments"];

    let name = env.create_issue("payments", "alice@acme.example", &prod).await;
    assert_eq!(env.issue(&name).await["approvalStatus"], "PENDING");
    let posts = deliveries(&env.sim, 2).await;
    let events: Vec<&str> = posts.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["ISSUE_CREATED", "ISSUE_APPROVAL_REQUESTED"]);
    let link = format!("{}/{name}", env.sim.bytebase_url());
    for post in &posts {
        assert_eq!(post.webhook, "projects/payments/webhooks/cab-relay");
        assert_eq!((post.outcome.as_str(), post.attempts, post.copy), ("delivered", 1, 0));
        assert_eq!(post.link, link);
        let card = &post.body["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["version"], "1.4");
        assert_eq!(card["content"]["actions"][0]["url"], link.as_str());
        assert_eq!(
            issue_names(&post.body).into_iter().collect::<Vec<_>>(),
            std::slice::from_ref(&name)
        );
    }

    let (status, body) = env.post(&format!("/v1/{name}:approve"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let posts = deliveries(&env.sim, 3).await;
    assert_eq!(posts[2].event, "ISSUE_APPROVED", "the final approval: {posts:#?}");

    // A send-back goes only to the hook subscribed to it, as a legacy MessageCard.
    let other = env.create_issue("payments", "alice@acme.example", &prod).await;
    env.issue(&other).await;
    let (status, body) = env.post(&format!("/v1/{other}:reject"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let posts = deliveries(&env.sim, 6).await;
    let sent_back: Vec<_> = posts.iter().filter(|d| d.event == "ISSUE_SENT_BACK").collect();
    assert_eq!(sent_back.len(), 1, "{posts:#?}");
    assert_eq!(sent_back[0].webhook, "projects/payments/webhooks/sent-back");
    assert_eq!(sent_back[0].body["@type"], "MessageCard");
    assert!(issue_names(&sent_back[0].body).contains(&other));
    assert!(
        posts.iter().all(|d| d.webhook.ends_with("cab-relay") == (d.event != "ISSUE_SENT_BACK")),
        "no hook hears an event it is not subscribed to: {posts:#?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.sim.deliveries().len(), 6, "exactly one post per event and hook");
    assert_eq!(received.lock().unwrap().len(), 6, "the relay got every post once");
}

#[tokio::test]
async fn a_skipped_issue_never_posts_issue_approved() {
    let mut world = basic();
    world.bytebase.approval_rules = Some(Some(Vec::new()));
    let every = ["ISSUE_CREATED", "ISSUE_APPROVAL_REQUESTED", "ISSUE_APPROVED"];
    let all: Vec<&str> = every
        .into_iter()
        .chain(["ISSUE_SENT_BACK", "PIPELINE_FAILED", "PIPELINE_COMPLETED"])
        .collect();
    world.bytebase.projects[0].webhooks = vec![hook("all", "", &all)];
    // No relay: posts are built and recorded, not sent.
    let env = Env::start(world).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/dev-pg/databases/payments"])
        .await;
    assert_eq!(env.issue(&name).await["approvalStatus"], "SKIPPED");
    // The dev task runs by itself (two steps of 2 s on the sim clock); the rollout completes.
    for _ in 0..2 {
        env.control("/_sim/clock/advance", json!({"by": "2s"})).await;
    }
    let posts = deliveries(&env.sim, 2).await;
    let events: Vec<&str> = posts.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["ISSUE_CREATED", "PIPELINE_COMPLETED"], "{posts:#?}");
    assert!(posts[1].link.ends_with("/rollout"), "{}", posts[1].link);
    assert!(posts.iter().all(|d| d.outcome.starts_with("not sent") && d.attempts == 0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(env.sim.deliveries().iter().all(|d| d.event != "ISSUE_APPROVED"));
}

/// Four issues, each created then read (so its finding runs before the next is created): eight
/// posts in a fixed order. Returns `(seq, copy, event, fault)` of every post, and the relay's
/// count.
async fn duplicated_posts(seed: u64, faults: &str) -> (Vec<(u64, u32, String, String)>, usize) {
    let (relay_url, received) = relay().await;
    let options = Options {
        seed,
        faults: faults.parse().unwrap(),
        webhook_relay: Some(relay_url),
        ..Options::default()
    };
    let env = Env::with_options(basic(), options).await;
    for _ in 0..4 {
        let name = env
            .create_issue(
                "payments",
                "alice@acme.example",
                &["instances/prod-pg/databases/payments"],
            )
            .await;
        env.issue(&name).await;
    }
    let spec: FaultSpec = faults.parse().unwrap();
    let expected: usize = (0..8)
        .map(|i| match spec.decide_webhook(seed, i) {
            Some(sim::faults::WebhookFault::Duplicate) => 2,
            _ => 1,
        })
        .sum();
    let posts = deliveries(&env.sim, expected).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(env.sim.deliveries().len(), expected, "no more posts than scheduled");
    for copy in posts.iter().filter(|d| d.copy > 0) {
        let first = posts.iter().find(|d| d.seq == copy.seq && d.copy == 0).unwrap();
        assert_eq!(copy.body, first.body, "a duplicate carries the same body");
    }
    let count = received.lock().unwrap().len();
    let summary = posts
        .into_iter()
        .map(|d| (d.seq, d.copy, d.event, d.fault.unwrap_or_default().to_owned()))
        .collect();
    (summary, count)
}

#[tokio::test]
async fn the_duplicate_fault_repeats_posts_reproducibly_for_a_seed() {
    let (always, count) = duplicated_posts(1, "dup-webhook=1").await;
    assert_eq!(always.len(), 16, "every post twice: {always:#?}");
    assert_eq!(count, 16, "the relay received both copies");
    assert!(always.iter().filter(|p| p.1 == 1).all(|p| p.3 == "dup-webhook"));

    let (first, count) = duplicated_posts(7, "dup-webhook=0.5").await;
    let (again, _) = duplicated_posts(7, "dup-webhook=0.5").await;
    assert_eq!(first, again, "the same seed duplicates the same posts");
    assert_eq!(count, first.len());
    let copies = first.iter().filter(|p| p.1 > 0).count();
    assert!((1..8).contains(&copies), "some posts doubled, not all: {first:#?}");
    let (other, _) = duplicated_posts(8, "dup-webhook=0.5").await;
    let (mut a, mut b) = (first.clone(), other.clone());
    a.retain(|p| p.1 > 0);
    b.retain(|p| p.1 > 0);
    assert_ne!(a, b, "another seed, another schedule");

    let (dropped, count) = duplicated_posts(3, "drop-webhook=1").await;
    assert!(dropped.iter().all(|p| p.3 == "drop-webhook"), "{dropped:#?}");
    assert_eq!(count, 0, "nothing reaches the relay");
}

#[tokio::test]
async fn the_webhooks_world_links_to_its_external_url_and_relays_only_teams() {
    let world =
        World::load(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/webhooks.yaml")).unwrap();
    let (relay_url, received) = relay().await;
    let options = Options { webhook_relay: Some(relay_url), ..Options::default() };
    let env = Env::with_options(world, options).await;
    let name = env
        .create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    env.issue(&name).await;
    let posts = deliveries(&env.sim, 3).await;
    let seen: Vec<(&str, &str, &str)> = posts
        .iter()
        .map(|d| (d.webhook.rsplit('/').next().unwrap(), d.event.as_str(), d.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("cab-relay", "ISSUE_CREATED", "delivered"),
            ("slack", "ISSUE_CREATED", "not sent: only TEAMS webhooks are relayed"),
            ("cab-relay", "ISSUE_APPROVAL_REQUESTED", "delivered"),
        ]
    );
    let link = format!("https://bytebase.acme.example/{name}");
    assert!(posts.iter().all(|d| d.link == link), "{posts:#?}");
    let card = &posts[0].body["attachments"][0]["content"];
    assert_eq!(card["body"][0]["text"], "Issue created");
    let facts = card["body"].as_array().unwrap().last().unwrap()["facts"].to_string();
    assert!(facts.contains("Alice (alice@acme.example)") && facts.contains("payments"), "{facts}");

    // The project owner sends it back; the legacy connector answers 200 `1`: one attempt.
    let id = name.rsplit('/').next().unwrap();
    let reject = format!("/_sim/issues/payments/{id}/reject");
    let (status, body) = env.control(&reject, json!({"principal": "bob@acme.example"})).await;
    assert_eq!(status, 200, "{body}");
    let posts = deliveries(&env.sim, 5).await;
    let dba = posts.iter().find(|d| d.webhook.ends_with("dba-channel")).unwrap();
    assert_eq!(
        (dba.event.as_str(), dba.outcome.as_str(), dba.attempts),
        ("ISSUE_SENT_BACK", "delivered", 1)
    );
    assert_eq!(received.lock().unwrap().len(), 4, "the Slack post never left");
    // The recording is served over HTTP too, without any URL.
    let served: Value =
        env.http.get(env.url("/_sim/webhooks")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served.as_array().unwrap().len(), 5);
    assert!(
        !served.to_string().contains("logic.azure.com") && !served.to_string().contains("/hook")
    );
}

#[test]
fn webhook_urls_off_the_allowlist_and_unknown_events_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let start = |hook: Value| {
        let mut world = basic();
        world.bytebase.projects[0].webhooks = vec![serde_json::from_value(hook).unwrap()];
        rt.block_on(sim::start(world, Options::default())).map(|_| ()).unwrap_err().to_string()
    };
    let loopback = json!({"id": "x", "type": "TEAMS", "url": "http://127.0.0.1:9090/webhook"});
    let err = start(loopback);
    assert!(
        err.contains("webhook `x`") && err.contains("127.0.0.1") && err.contains("TEAMS"),
        "{err}"
    );
    let custom =
        json!({"id": "x", "type": "CUSTOM", "url": "https://cabgate.acme.example/webhook"});
    assert!(start(custom).contains("unknown webhook type"));
    let event = json!({"id": "x", "type": "TEAMS", "notificationTypes": ["ISSUE_UPDATED"]});
    assert!(start(event).contains("ISSUE_UPDATED"));
    let mut world = basic();
    world.bytebase.webhook_relay = Some("ftp://relay.example".into());
    let err = rt.block_on(sim::start(world, Options::default())).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("relay"), "{err}");
}

#[test]
fn cabgate_sim_posts_webhooks_to_the_relay_of_its_flag() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (relay_url, received) = rt.block_on(relay());
    let world = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/webhooks.yaml");
    let (mut child, line) = cabgate_sim(&["--world", world, "--webhook-relay", &relay_url]);
    let urls: Value = serde_json::from_str(&line).unwrap();
    let bytebase = urls["bytebase"].as_str().unwrap().to_owned();
    let issue: Value = rt.block_on(async {
        let body = json!({
            "project": "payments", "creator": "alice@acme.example", "title": "Add a column",
            "specs": [{"changeDatabaseConfig": {
                "targets": ["instances/prod-pg/databases/payments"],
            }}],
        });
        let url = format!("{bytebase}/_sim/issues");
        reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let got = received.lock().unwrap().clone();
    let link = format!("https://bytebase.acme.example/{}", issue["name"].as_str().unwrap());
    assert!(!got.is_empty(), "the relay got the ISSUE_CREATED card");
    assert_eq!(got[0]["attachments"][0]["content"]["actions"][0]["url"], link.as_str());
}

#[tokio::test]
async fn a_legacy_teams_post_not_answered_with_1_is_tried_three_times() {
    // The runner's listener answers 202 `queued`: fine for Power Automate (any 2xx), a failure
    // for a legacy connector, which Bytebase retries: three copies reach the relay.
    let (relay_url, received) = relay_answering(202, "queued\n").await;
    let mut world = basic();
    world.bytebase.timing.webhook_retry = "20ms".into();
    let legacy = "https://acme.webhook.office.com/webhookb2/x/IncomingWebhook/y";
    world.bytebase.projects[0].webhooks = vec![hook("legacy", legacy, &["ISSUE_CREATED"])];
    let options = Options { webhook_relay: Some(relay_url), ..Options::default() };
    let env = Env::with_options(world, options).await;
    env.create_issue("payments", "alice@acme.example", &["instances/prod-pg/databases/payments"])
        .await;
    let posts = deliveries(&env.sim, 1).await;
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let post = &posts[0];
    assert_eq!(
        (post.attempts, post.status, post.outcome.as_str()),
        (3, Some(202), "failed: HTTP 202")
    );
    assert_eq!(received.lock().unwrap().len(), 3, "each attempt reached the relay");
}

#[tokio::test]
async fn pipeline_failed_posts_once_per_plan_until_the_next_batch_run() {
    let mut world = basic();
    world.bytebase.approval_rules = Some(Some(Vec::new()));
    world.bytebase.timing.task_run = "0s".into();
    world.bytebase.timing.task_run_outcome = "FAILED".into();
    let second: sim::bytebase::world::Database = serde_json::from_value(json!({
        "name": "instances/dev-pg/databases/ledger", "environment": "dev", "engine": "POSTGRES",
    }))
    .unwrap();
    world.bytebase.databases.push(second);
    world.bytebase.projects[0].webhooks =
        vec![hook("ops", "", &["PIPELINE_FAILED", "PIPELINE_COMPLETED"])];
    let env = Env::start(world).await;
    let targets = ["instances/dev-pg/databases/payments", "instances/dev-pg/databases/ledger"];
    let name = env.create_issue("payments", "alice@acme.example", &targets).await;
    let plan = env.issue(&name).await["plan"].as_str().unwrap().to_owned();
    let path = format!("/v1/{plan}/rollout");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let tasks = loop {
        let (_, r) = env.get(&path).await;
        let tasks: Vec<Value> = r["stages"][0]["tasks"].as_array().cloned().unwrap_or_default();
        if tasks.len() == 2 && tasks.iter().all(|t| t["status"] == "FAILED") {
            break tasks;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let posts = deliveries(&env.sim, 1).await;
    assert_eq!(posts.len(), 1, "two failed tasks, one PIPELINE_FAILED: {posts:#?}");
    assert_eq!(posts[0].event, "PIPELINE_FAILED");
    assert!(posts[0].link.ends_with(&format!("{plan}/rollout")), "{}", posts[0].link);

    let names: Vec<Value> = tasks.iter().map(|t| t["name"].clone()).collect();
    let bob = env.token_for("bob@acme.example").await;
    let run = format!("/v1/{plan}/rollout/stages/dev/tasks:batchRun");
    let (status, body) = env.send_as(&bob, "POST", &run, Some(json!({"tasks": names}))).await;
    assert_eq!(status, 200, "{body}");
    let posts = deliveries(&env.sim, 2).await;
    assert_eq!(posts[1].event, "PIPELINE_FAILED", "a new batchRun may fail again: {posts:#?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.sim.deliveries().len(), 2);
}
