//! Throughput of the Bytebase emulator, for the benchmark binary (speed targets live in
//! benchmarks, never in timed tests).
//!
//! [`synthetic_world`] builds a workspace of any size; [`list_throughput`] starts the emulators
//! on it without recording and hammers the list calls a live check makes (`GET /v1/projects`
//! pages, project IAM policies, rollout policies) from several concurrent clients.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Options, SimError, World};

/// The result of one throughput run.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Requests answered with 200.
    pub requests: u64,
    /// Requests that failed (non-200 or transport error).
    pub failures: u64,
    /// Wall time of the measured part.
    pub elapsed: Duration,
}

impl Throughput {
    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// A workspace with `projects` projects (each with two IAM bindings), three environments, a
/// catch-all rule and the `cab-bridge@service.bytebase.com` service account (key `bbs_bench`).
pub fn synthetic_world(projects: usize) -> Result<World, SimError> {
    let projects: Vec<serde_json::Value> = (0..projects)
        .map(|i| {
            let owner = format!("user:owner{i}@acme.example");
            json!({
                "id": format!("project-{i:05}"),
                "title": format!("Project {i}"),
                "requireIssueApproval": i % 2 == 0,
                "iam": [
                    {"role": "roles/projectOwner", "members": [owner]},
                    {"role": "roles/projectDeveloper", "members": ["group:dev@acme.example"]}
                ]
            })
        })
        .collect();
    let world = json!({
        "bytebase": {
            "workspace": "bench",
            "users": [{"email": "cab-bridge@service.bytebase.com", "serviceKey": "bbs_bench"}],
            "workspaceIam": [{"role": "roles/workspaceAdmin",
                              "members": ["serviceAccount:cab-bridge@service.bytebase.com"]}],
            "groups": [{"email": "dev@acme.example", "title": "Developers"}],
            "environments": [
                {"id": "dev", "title": "Dev", "rolloutPolicy": {"automatic": true}},
                {"id": "staging", "title": "Staging"},
                {"id": "prod", "title": "Prod"}
            ],
            "projects": projects
        }
    });
    World::from_yaml(&world.to_string(), "<synthetic>")
}

/// The calls of a live check, with default-sized pages (the requests/s target is for these).
pub const CHECK_CALLS: &[&str] = &[
    "/v1/projects",
    "/v1/projects/project-00001:getIamPolicy",
    "/v1/environments/prod/policies/rollout_policy",
    "/v1/projects?pageSize=100",
];

/// Full pages of 1000 projects (about 150 kB each): bounded by JSON encoding, not lookups.
pub const FULL_PAGES: &[&str] = &["/v1/projects?pageSize=1000"];

/// Runs `total` GET requests, cycling through `paths`, from `clients` concurrent clients against
/// an emulator serving `world`, and measures them. Needs a multi-threaded tokio runtime.
pub async fn list_throughput(
    world: World,
    clients: usize,
    total: u64,
    paths: &[&'static str],
) -> Result<Throughput, SimError> {
    let options = Options { record: false, ..Options::default() };
    let running = super::start(world, options).await?;
    let base = running.bytebase_url().to_owned();
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "cab-bridge@service.bytebase.com", "password": "bbs_bench"}))
        .send()
        .await;
    let token = match login {
        Ok(response) => response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let paths: Vec<&'static str> =
        if paths.is_empty() { CHECK_CALLS.to_vec() } else { paths.to_vec() };
    let clients = clients.max(1);
    let per_client = total / clients as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, token, paths) = (http.clone(), base.clone(), token.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            for i in 0..per_client {
                let path = paths[(c + i as usize) % paths.len()];
                let response = http.get(format!("{base}{path}")).bearer_auth(&token).send().await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        // Read the body: a client pays for it too.
                        if r.bytes().await.is_ok() { ok += 1 } else { failed += 1 }
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let (mut requests, mut failures) = (0, 0);
    for task in tasks {
        let (ok, failed) = task.await.unwrap_or((0, per_client));
        requests += ok;
        failures += failed;
    }
    let elapsed = started.elapsed();
    running.shutdown().await;
    Ok(Throughput { requests, failures, elapsed })
}
