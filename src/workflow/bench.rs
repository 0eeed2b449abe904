//! The runner's numbers for the benchmark table: calls per pass to each API with many issues in
//! flight, pass wall time, and the delay from a CAB approval to `batchRun`.
//!
//! Measured against both emulators over loopback HTTP with the real clients, store and runner,
//! so the counts are the requests the emulators received. `cabgate-bench` prints them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sim::{self, Server};
use crate::workflow::runner::{Stop, system_clock};
use crate::workflow::wiring::{Options, connect};

const WORLD: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/apply-basic.yaml"));
const SPEC: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/apply-spec.yaml"));

/// What one measurement found.
#[derive(Debug, Clone, Default)]
pub struct RunnerNumbers {
    /// Issues in flight.
    pub issues: usize,
    /// The pass that opens a CHG for each issue.
    pub open_pass: PassNumbers,
    /// A pass with every issue waiting for the CAB (the steady state).
    pub steady_pass: PassNumbers,
    /// From the CAB's approval in ServiceNow to the `batchRun` call, with a 1 s poll interval.
    pub approval_to_run: Duration,
}

/// Calls and time of one pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassNumbers {
    /// Requests to ServiceNow (token grants included).
    pub servicenow_calls: usize,
    /// Requests to Bytebase (logins included).
    pub bytebase_calls: usize,
    /// Wall time.
    pub wall: Duration,
}

fn world_with(issues: usize) -> Result<sim::World, String> {
    let mut text = String::with_capacity(WORLD.len() + issues * 260);
    for line in WORLD.lines() {
        text.push_str(line);
        text.push('\n');
        if line == "  issues:" {
            for i in 0..issues {
                let id = 10_000 + i;
                text.push_str(&format!(
                    "    - {{project: payments, id: {id}, title: \"Bench change {id}\", creator: \
                     alice@acme.example, createTime: \"2026-12-01T09:00:00Z\", specs: \
                     [{{changeDatabaseConfig: {{targets: [instances/prod-pg/databases/payments], \
                     sheet: projects/payments/sheets/11}}}}]}}\n"
                ));
            }
        }
    }
    sim::World::from_yaml(&text, "bench world").map_err(|e| e.to_string())
}

fn count(sim: &sim::Running, from: usize) -> (usize, usize) {
    let all = sim.requests();
    let fresh = all.iter().skip(from);
    let mut sn = 0;
    let mut bb = 0;
    for e in fresh.filter(|e| !e.path.starts_with("/_sim/")) {
        match e.server {
            Server::Servicenow => sn += 1,
            Server::Bytebase => bb += 1,
        }
    }
    (sn, bb)
}

/// Measures the runner with `issues` governed issues in flight.
pub async fn measure(issues: usize) -> Result<RunnerNumbers, String> {
    let sim = sim::start(world_with(issues)?, sim::Options::default())
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("cabgate-bench-runner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let spec_text = SPEC
        .replace("BYTEBASE_URL", sim.bytebase_url())
        .replace("SERVICENOW_URL", sim.servicenow_url());
    let spec_path = dir.join("bridge.yaml");
    let loaded = crate::spec::load_bytes(&spec_path, spec_text.as_bytes())
        .map_err(|e| format!("bench spec: {e}"))?;
    let db = dir.join("state.db");
    let _ = std::fs::remove_file(&db);
    let options = Options {
        env: Box::new(|k| match k {
            "CABGATE_TEST_BB_KEY" => Some("bbs_simcabbridgekey0001".into()),
            "CABGATE_TEST_SN_USER" => Some("cabgate".into()),
            "CABGATE_TEST_SN_PASSWORD" => Some("sn-integration-pass".into()),
            _ => None,
        }),
        clock: system_clock(),
        state_url: Some(format!("sqlite://{}", db.display())),
        fast_retries: false,
    };
    let engine = Arc::new(connect(&loaded, &options).map_err(|e| e.to_string())?);
    let mut numbers = RunnerNumbers { issues, ..RunnerNumbers::default() };

    let measure_pass = async |engine: &crate::workflow::wiring::Engine| {
        let from = sim.requests().len();
        let started = Instant::now();
        let report = engine.pass(&Default::default(), &Stop::default()).await;
        let wall = started.elapsed();
        let (servicenow_calls, bytebase_calls) = count(&sim, from);
        report.map(|r| (r, PassNumbers { servicenow_calls, bytebase_calls, wall }))
    };
    let (report, open) = measure_pass(&engine).await.map_err(|e| e.to_string())?;
    if !report.errors.is_empty() {
        return Err(format!("the opening pass failed: {:?}", report.errors));
    }
    numbers.open_pass = open;
    let (_, steady) = measure_pass(&engine).await.map_err(|e| e.to_string())?;
    numbers.steady_pass = steady;

    // One CHG approved by the CAB; the loop (1 s poll) approves the issue and runs its tasks.
    let http = reqwest::Client::new();
    let dump = format!("{}/_sim/table/change_request", sim.servicenow_url());
    let rows: serde_json::Value = http
        .get(&dump)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let number = rows["result"][0]["number"].as_str().unwrap_or_default().to_owned();
    let from = sim.requests().len();
    let wake = Arc::new(crate::workflow::listen::Wake::default());
    let stop = Arc::new(Stop::default());
    let runner = {
        let (engine, wake, stop) = (engine.clone(), wake.clone(), stop.clone());
        tokio::spawn(async move { engine.run_loop(wake, stop).await })
    };
    // Approve mid-interval, not right as the loop starts its first pass.
    while engine.metrics.passes() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let approve = format!("{}/_sim/change_request/{number}/approve", sim.servicenow_url());
    let started = Instant::now();
    http.post(approve)
        .json(&serde_json::json!({ "approver": "carol" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let deadline = started + Duration::from_secs(120);
    loop {
        let ran = sim.requests().iter().skip(from).any(|e| e.path.contains(":batchRun"));
        if ran {
            numbers.approval_to_run = started.elapsed();
            break;
        }
        if Instant::now() > deadline {
            stop.request();
            return Err("no batchRun within 120 s of the approval".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.request();
    let _ = runner.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(numbers)
}
