//! A synthetic Bytebase workspace at the scale of a large enterprise, for the benchmarks: 5,000
//! projects, 50,000 IAM bindings, 200 environments and 100,000 SKIPPED issues spread over a month.
//! The data is generated, never committed, and the same every run (no randomness).

use serde_json::{Value, json};

/// How big the workspace is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Projects; every tenth one is governed through a glob.
    pub projects: usize,
    /// IAM bindings in all, spread evenly over the projects.
    pub bindings: usize,
    /// Environments; the first two are declared in the spec.
    pub environments: usize,
    /// SKIPPED issues, one per 26 seconds going back from `now`.
    pub issues: usize,
}

impl Scale {
    /// The scale the issue tracker asks for.
    pub const LARGE: Scale =
        Scale { projects: 5_000, bindings: 50_000, environments: 200, issues: 100_000 };

    /// A tenth of it, for `--quick`.
    pub const QUICK: Scale =
        Scale { projects: 500, bindings: 5_000, environments: 20, issues: 10_000 };
}

/// A bridge spec governing `gov-*` projects, as YAML.
pub fn spec_yaml() -> String {
    r#"version: 1
name: bench
bytebase:
  url: https://bytebase.bench.example
  serviceAccount: cab-bridge@service.bytebase.com
  serviceKeyEnv: CABGATE_BYTEBASE_KEY
  projects: ["gov-*"]
environments:
  env-0: { governed: true, rollout: { automatic: false } }
  env-1: { governed: false, rollout: { automatic: true } }
approval:
  catchAll: { roles: [roles/cab-approver] }
lockdown:
  allow: ["serviceAccount:cab-bridge@service.bytebase.com"]
alerts:
  skippedApproval: { lookback: 7d }
"#
    .to_owned()
}

/// The live snapshot of the workspace, in the shape `cabgate snapshot` writes.
pub fn snapshot(scale: Scale, now: chrono::DateTime<chrono::Utc>) -> Value {
    let projects: Vec<Value> = (0..scale.projects).map(|p| project(p, scale)).collect();
    let environments: Vec<Value> = (0..scale.environments)
        .map(|e| {
            json!({
                "name": format!("environments/env-{e}"), "id": format!("env-{e}"),
                "title": format!("Env {e}"),
                "rolloutPolicy": { "automatic": e == 1, "roles": [] }
            })
        })
        .collect();
    let groups: Vec<Value> = (0..100)
        .map(|g| {
            let members: Vec<Value> = (0..20)
                .map(|m| json!({ "member": format!("users/u{m}-g{g}@bench.example"), "role": "MEMBER" }))
                .collect();
            json!({
                "name": format!("groups/g{g}@bench.example"), "email": format!("g{g}@bench.example"),
                "title": format!("Group {g}"), "members": members
            })
        })
        .collect();
    let issues: Vec<Value> = (0..scale.issues)
        .map(|i| {
            let project = i % scale.projects;
            let created = now - chrono::TimeDelta::seconds(26 * i as i64);
            let project_name = format!("projects/{}", project_id(project));
            json!({
                "name": format!("{project_name}/issues/{}", i + 1),
                "project": project_name,
                "plan": format!("{project_name}/plans/{}", i + 1),
                "type": "DATABASE_CHANGE",
                "title": format!("Change {i}"),
                "creator": format!("users/u{}@bench.example", i % 500),
                "createTime": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "approvalStatus": "SKIPPED",
                "status": "DONE"
            })
        })
        .collect();
    json!({
        "version": 1,
        "source": "https://bytebase.bench.example",
        "takenAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "workspace": "workspaces/bench",
        "approvalFeature": true,
        "approvalRules": [
            {
                "source": "CHANGE_DATABASE",
                "condition": { "expression": "resource.environment_id == \"env-0\"" },
                "template": { "title": "Prod", "description": "", "flow": { "roles": ["roles/cab-approver"] } }
            },
            {
                "source": "SOURCE_UNSPECIFIED",
                "condition": { "expression": "true" },
                "template": { "title": "Fallback", "description": "", "flow": { "roles": ["roles/cab-approver"] } }
            }
        ],
        "roles": roles(),
        "workspaceIamPolicy": { "bindings": [
            { "role": "roles/workspaceAdmin",
              "members": ["serviceAccount:cab-bridge@service.bytebase.com"],
              "condition": { "expression": "" } }
        ] },
        "projects": projects,
        "groups": groups,
        "environments": environments,
        "skippedIssues": issues
    })
}

fn project_id(p: usize) -> String {
    if p % 10 == 0 { format!("gov-{p}") } else { format!("app-{p}") }
}

fn project(p: usize, scale: Scale) -> Value {
    let per_project = scale.bindings / scale.projects.max(1);
    let roles = ["roles/projectDeveloper", "roles/projectViewer", "roles/projectReleaser"];
    let bindings: Vec<Value> = (0..per_project)
        .map(|b| {
            let member = if b % 4 == 0 {
                format!("group:g{}@bench.example", (p + b) % 100)
            } else {
                format!("user:u{}@bench.example", (p * 7 + b) % 500)
            };
            let condition =
                if b % 5 == 0 { "request.time < timestamp(\"2026-01-01T00:00:00Z\")" } else { "" };
            json!({
                "role": roles[b % roles.len()],
                "members": [member],
                "condition": { "expression": condition }
            })
        })
        .collect();
    json!({
        "name": format!("projects/{}", project_id(p)),
        "title": format!("Project {p}"),
        "state": "ACTIVE",
        "requireIssueApproval": p % 50 != 0,
        "allowSelfApproval": false,
        "webhooks": [],
        "iamPolicy": { "bindings": bindings }
    })
}

fn roles() -> Value {
    json!([
        { "name": "roles/workspaceAdmin", "title": "Workspace Admin", "type": "BUILT_IN",
          "permissions": ["bb.taskRuns.create", "bb.rollouts.create"] },
        { "name": "roles/projectReleaser", "title": "Project Releaser", "type": "BUILT_IN",
          "permissions": ["bb.taskRuns.create", "bb.rollouts.create"] },
        { "name": "roles/projectDeveloper", "title": "Project Developer", "type": "BUILT_IN",
          "permissions": ["bb.issues.create", "bb.plans.create"] },
        { "name": "roles/projectViewer", "title": "Project Viewer", "type": "BUILT_IN",
          "permissions": ["bb.issues.get"] },
        { "name": "roles/cab-approver", "title": "CAB approver", "type": "CUSTOM",
          "permissions": ["bb.issues.get"] }
    ])
}
