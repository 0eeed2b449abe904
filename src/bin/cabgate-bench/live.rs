//! The live read against the Bytebase emulator with latency added to every request: how many
//! requests `cabgate check` makes for a workspace of a given size, how long they take, and how
//! that compares with the bound `requests × latency / concurrency`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cabgate::bytebase::{Client, ClientConfig, ServiceKey};
use cabgate::live::{ReadOptions, read};
use cabgate::sim::{self, World};
use cabgate::spec::Spec;

/// What one measurement found.
pub struct LiveRead {
    /// Projects in the world.
    pub projects: usize,
    /// HTTP requests the read made.
    pub requests: usize,
    /// Wall time of the read.
    pub elapsed: Duration,
    /// `requests × latency / concurrency`.
    pub bound: Duration,
}

const KEY: &str = "bbs_benchreaderkey000001";

/// Reads a workspace of `projects` projects with `latency` added to every request.
pub fn measure(projects: usize, latency: Duration) -> Result<LiveRead, String> {
    let world =
        World::from_yaml(&world_yaml(projects), "bench world").map_err(|e| e.to_string())?;
    let options = sim::Options { latency, record: true, ..sim::Options::default() };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let running = sim::start(world, options).await.map_err(|e| e.to_string())?;
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "version": 1, "name": "bench",
            "bytebase": { "url": running.bytebase_url(),
                          "serviceAccount": "reader@service.bytebase.com",
                          "serviceKeyEnv": "UNUSED", "projects": ["*"] },
            "approval": { "catchAll": { "roles": ["roles/cab-approver"] } },
            "lockdown": { "allow": [] }
        }))
        .map_err(|e| e.to_string())?;
        let config = ClientConfig::new(
            running.bytebase_url(),
            "reader@service.bytebase.com",
            ServiceKey::new(KEY),
        );
        let concurrency = config.concurrency;
        let client = Client::new(config).map_err(|e| e.to_string())?;
        running.reset_requests();
        let start = Instant::now();
        read(&client, &spec, &ReadOptions::default()).await.map_err(|e| e.to_string())?;
        let elapsed = start.elapsed();
        let requests = running.requests().len();
        let bound = latency * requests as u32 / concurrency as u32;
        running.shutdown().await;
        Ok(LiveRead { projects, requests, elapsed, bound })
    })
}

/// A world with `projects` projects, each with two bindings, and the reader's account.
fn world_yaml(projects: usize) -> String {
    let mut text = format!(
        "bytebase:\n  workspace: bench\n  plan: ENTERPRISE\n  users:\n    - email: \
         reader@service.bytebase.com\n      serviceKey: {KEY}\n    - email: dev@bench.example\n      \
         password: x\n  environments:\n    - id: prod\n    - id: staging\n  approvalRules:\n    - \
         condition: {{expression: \"true\"}}\n      template: {{flow: {{roles: [roles/projectOwner]}}}}\n  \
         workspaceIam:\n    - role: roles/workspaceAdmin\n      members: \
         [serviceAccount:reader@service.bytebase.com]\n  projects:\n"
    );
    for p in 0..projects {
        let _ = write!(
            text,
            "    - id: p{p}\n      requireIssueApproval: true\n      iam:\n        - role: \
             roles/projectDeveloper\n          members: [user:dev@bench.example]\n        - role: \
             roles/projectOwner\n          members: [user:dev@bench.example]\n"
        );
    }
    text.push_str("servicenow: {}\n");
    text
}
