//! A local measurement of `check`'s policy evaluation at scale (not a test: speed targets live
//! in benchmarks). Generates a synthetic workspace and times the index and each package.
//!
//! `cargo run --release --example policy_bench -- [SCALE]`; SCALE 1 (default) is the lead's target
//! of 5,000 projects, 50,000 bindings and 100,000 SKIPPED issues; 0.1 is a tenth of it.

use std::path::PathBuf;
use std::time::Instant;

use cabgate::policy::{self, Options};
use cabgate::spec::{LoadedSpec, SpanMap, Spec};
use serde_json::{Value, json};

fn main() {
    let scale: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let projects = (5_000.0 * scale) as usize;
    let issues = (100_000.0 * scale) as usize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("fixtures/policy/base.json")).unwrap(),
    )
    .unwrap();
    let mut spec_json = base["spec"].clone();
    spec_json["bytebase"]["projects"] = json!(["p-*"]);
    let spec: Spec = serde_json::from_value(spec_json).unwrap();
    let document = serde_json::to_value(&spec).unwrap();
    let loaded = LoadedSpec {
        path: "bench.yaml".into(),
        source: String::new(),
        spec,
        document,
        spans: SpanMap::default(),
    };
    let mut live = base["live"].clone();
    let groups: Vec<Value> = (0..200)
        .map(|g| {
            let members: Vec<Value> = (0..20)
                .map(|m| json!({"member": format!("users/u{g}-{m}@acme.example"), "role": "MEMBER"}))
                .collect();
            json!({"name": format!("groups/g{g}@acme.example"), "email": format!("g{g}@acme.example"), "members": members})
        })
        .collect();
    live["groups"] = json!(groups);
    let mut bindings_total = 0;
    let list: Vec<Value> = (0..projects)
        .map(|p| {
            // Mostly compliant: the bridge owns each project, developers and approvers do not
            // run; one project in a hundred has a human owner through a group.
            let bindings: Vec<Value> = (0..10)
                .map(|b| {
                    let (role, members, condition) = match b {
                        0 => ("roles/projectOwner", json!(["serviceAccount:cab-bridge@service.bytebase.com"]), ""),
                        1 if p % 100 == 0 => ("roles/projectOwner", json!([format!("user:dev{p}@acme.example"), format!("group:g{}@acme.example", p % 200)]), ""),
                        2 => ("roles/projectReleaser", json!([format!("user:old{p}@acme.example")]), r#"request.time < timestamp("2026-06-01T00:00:00Z")"#),
                        3 => ("roles/cab-approver", json!(["user:cab@acme.example"]), ""),
                        4 => ("roles/projectDeveloper", json!([format!("group:g{}@acme.example", p % 200)]), ""),
                        _ => ("roles/projectDeveloper", json!([format!("user:d{p}-{b}@acme.example")]), r#"resource.environment_id == "staging""#),
                    };
                    json!({"role": role, "members": members, "condition": {"expression": condition}})
                })
                .collect();
            bindings_total += bindings.len();
            json!({"name": format!("projects/p-{p}"), "requireIssueApproval": p % 50 != 0,
                   "allowSelfApproval": false, "webhooks": [], "iamPolicy": {"bindings": bindings}})
        })
        .collect();
    live["projects"] = json!(list);
    let skipped: Vec<Value> = (0..issues)
        .map(|i| {
            let day = 1 + i % 28;
            json!({"name": format!("projects/p-{}/issues/{i}", i % projects.max(1)), "title": "t",
                   "creator": "users/dev@acme.example", "approvalStatus": "SKIPPED",
                   "createTime": format!("2026-11-{day:02}T10:00:00Z"), "updateTime": format!("2026-11-{day:02}T10:00:00Z")})
        })
        .collect();
    live["skippedIssues"] = json!(skipped);
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().to_utc();
    println!("{projects} projects, {bindings_total} bindings, {issues} SKIPPED issues");
    if std::env::var("TWICE").is_ok() {
        twice(&policy::build_input(&loaded.document, Some(&live), now));
    }
    let started = Instant::now();
    let index = policy::index::build(&loaded.document, Some(&live), now);
    println!("index alone: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    drop(index);
    let options = Options { user_dirs: Vec::new(), now };
    let started = Instant::now();
    let evaluation = policy::evaluate(&loaded, Some(&live), &options).unwrap();
    let total = started.elapsed();
    for (package, took) in &evaluation.profile {
        println!("{package:40} {:>8.1} ms", took.as_secs_f64() * 1000.0);
    }
    println!("{} findings in {:.1} ms", evaluation.findings.len(), total.as_secs_f64() * 1000.0);
}

#[allow(dead_code)]
fn twice(input: &Value) {
    let mut set = policy::PolicySet::load(&[]).unwrap();
    for _ in 0..2 {
        for p in set.evaluate(input).unwrap() {
            println!("  {:40} {:>8.1} ms", p.package, p.elapsed.as_secs_f64() * 1000.0);
        }
    }
}
