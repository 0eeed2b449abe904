//! `cabgate check` and `cabgate snapshot` against the Bytebase emulator over real HTTP.
//!
//! Each fixture world (`fixtures/worlds/check-*.yaml`) differs from the compliant one by one gap;
//! running the binary on it must produce exactly the findings of `fixtures/check/<world>.json`
//! (code, resource, via) and the exit code they imply. The client's own behaviour (paging past
//! empty filtered pages, retries, token renewal) is tested in-process against the same emulator.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cabgate::bytebase::retry::RetryPolicy;
use cabgate::bytebase::{Client, ClientConfig, ServiceKey};
use cabgate::live::{self, ReadOptions};
use cabgate::sim::{self, FaultSpec, Options, World};
use serde_json::Value;

const ACCOUNT: &str = "cab-bridge@service.bytebase.com";
const KEY: &str = "bbs_simcabbridgekey0001";
const KEY_ENV: &str = "CABGATE_TEST_BB_KEY";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn world(name: &str) -> World {
    World::load(root().join(format!("fixtures/worlds/check-{name}.yaml"))).unwrap()
}

/// `fixtures/check/spec.yaml` pointed at `url`, written into `folder`.
fn spec_file(folder: &Path, url: &str) -> PathBuf {
    let template = std::fs::read_to_string(root().join("fixtures/check/spec.yaml")).unwrap();
    let path = folder.join("bridge.yaml");
    std::fs::write(&path, template.replace("BYTEBASE_URL", url)).unwrap();
    path
}

fn loaded_spec(folder: &Path, url: &str) -> cabgate::spec::LoadedSpec {
    cabgate::spec::load(&spec_file(folder, url)).unwrap()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stderr with miette's wrapping and box drawing undone, for searching a whole message.
    fn message(&self) -> String {
        self.stderr
            .replace(['│', '×', '╰', '─', '▶'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }
}

/// Runs the binary with the test key in the environment.
fn cabgate(args: &[&str], key: &str) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .args(args)
        .env(KEY_ENV, key)
        .env_remove("CABGATE_LOG")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The findings of a JSON report as `{code, resource, via}`, sorted, for comparison.
fn essentials(report: &Value) -> Vec<Value> {
    let mut findings: Vec<Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            serde_json::json!({
                "code": f["code"],
                "resource": f.get("resource").cloned().unwrap_or(Value::Null),
                "via": f.get("via").cloned().unwrap_or_else(|| Value::Array(vec![])),
            })
        })
        .collect();
    findings.sort_by_key(|f| f.to_string());
    findings
}

/// Runs `check` on a fixture world and compares with `fixtures/check/<name>.json`. With
/// `CABGATE_BLESS=1` the expectation file is (re)written instead: review its diff before
/// committing.
fn check_world(name: &str) {
    let sim = sim::start_blocking(world(name), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let run = cabgate(&["check", spec.to_str().unwrap(), "--format", "json"], KEY);
    assert!(run.code == 0 || run.code == 1, "{name}: exit {}\n{}", run.code, run.stderr);
    let actual = serde_json::json!({ "exit": run.code, "findings": essentials(&run.json()) });
    let expected_path = root().join(format!("fixtures/check/{name}.json"));
    if std::env::var_os("CABGATE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(&expected_path, text).unwrap();
        return;
    }
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
    assert_eq!(actual, expected, "{name}: findings differ; report:\n{}", run.stdout);
}

macro_rules! world_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_world($name);
            }
        )*
    };
}

world_tests! {
    compliant_world_is_clean => "compliant",
    approval_feature_missing => "approval-feature-missing",
    approval_no_catch_all => "approval-no-catch-all",
    approval_catch_all_flow => "approval-catch-all-flow",
    approval_empty_flow => "approval-empty-flow",
    approval_shadowed_catch_all => "approval-shadowed-catch-all",
    lockdown_unexpected_holder => "lockdown-unexpected-holder",
    lockdown_all_users => "lockdown-all-users",
    lockdown_project_setting => "lockdown-project-setting",
    lockdown_missing_project => "lockdown-missing-project",
    rollout_missing_environment => "rollout-missing-environment",
    rollout_automatic => "rollout-automatic",
    rollout_roles => "rollout-roles",
    rollout_undeclared_environment => "rollout-undeclared-environment",
    bypass_skipped_issue => "bypass-skipped-issue",
}

#[test]
fn every_live_finding_code_has_a_world() {
    let live_codes = [
        "approval/feature-missing",
        "approval/no-catch-all",
        "approval/catch-all-flow",
        "approval/empty-flow",
        "approval/shadowed-catch-all",
        "lockdown/unexpected-holder",
        "lockdown/all-users",
        "lockdown/project-setting",
        "lockdown/missing-project",
        "rollout/missing-environment",
        "rollout/automatic",
        "rollout/roles",
        "rollout/undeclared-environment",
        "bypass/skipped-issue",
    ];
    for code in live_codes {
        let name = code.replace('/', "-");
        assert!(root().join(format!("fixtures/worlds/check-{name}.yaml")).exists(), "{code}");
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(format!("fixtures/check/{name}.json"))).unwrap(),
        )
        .unwrap();
        let codes: Vec<&str> = expected["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["code"].as_str())
            .collect();
        assert!(codes.contains(&code), "{name}.json does not expect {code}: {codes:?}");
        assert!(cabgate::finding::code_info(code).is_some(), "{code} is not in the catalogue");
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
    }
}

fn test_client(url: &str, page_size: u32) -> Client {
    let mut config = ClientConfig::new(url, ACCOUNT, ServiceKey::new(KEY));
    config.retry = fast_retries();
    config.page_size = page_size;
    Client::new(config).unwrap()
}

/// A world of `projects` governed projects (`ledger-000`…), each with one IAM binding, plus
/// `payments` with `pending` issues waiting for approval and, older (lower ids, so last in
/// Bytebase's id-descending order), `skipped` issues that bypassed it.
fn big_world(projects: usize, pending: usize, skipped: usize) -> World {
    let mut yaml = String::from(
        "bytebase:\n  workspace: acme\n  plan: ENTERPRISE\n  defaultProject: false\n  users:\n    \
         - {email: cab-bridge@service.bytebase.com, serviceKey: bbs_simcabbridgekey0001}\n  \
         workspaceIam:\n    - {role: roles/workspaceAdmin, members: \
         [serviceAccount:cab-bridge@service.bytebase.com]}\n  environments:\n    \
         - {id: staging, rolloutPolicy: {automatic: true}}\n    - {id: prod}\n  databases:\n    \
         - {name: instances/prod-pg/databases/payments, environment: prod, engine: POSTGRES}\n  \
         approvalRules:\n    - condition: {expression: \"true\"}\n      \
         template: {title: CAB, flow: {roles: [roles/projectOwner]}}\n  projects:\n    \
         - {id: payments, requireIssueApproval: true}\n",
    );
    for n in 0..projects {
        yaml.push_str(&format!(
            "    - {{id: ledger-{n:03}, requireIssueApproval: true, iam: [{{role: \
             roles/projectDeveloper, members: [user:dev{n}@acme.example]}}]}}\n"
        ));
    }
    yaml.push_str(if skipped + pending == 0 { "  issues: []\n" } else { "  issues:\n" });
    for n in 0..skipped {
        yaml.push_str(&format!(
            "    - {{project: payments, id: {}, title: bypass {n}, creator: a@acme.example}}\n",
            1000 + n
        ));
    }
    for n in 0..pending {
        yaml.push_str(&format!(
            "    - {{project: payments, id: {}, title: change {n}, creator: a@acme.example, \
             specs: [{{changeDatabaseConfig: {{targets: \
             [instances/prod-pg/databases/payments], sheet: projects/payments/sheets/1}}}}]}}\n",
            2000 + n
        ));
    }
    World::from_yaml(&yaml, "big world").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_reads_every_project_and_skipped_issues_behind_empty_pages() {
    let sim = sim::start(big_world(23, 30, 2), Options::default()).await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = loaded_spec(folder.path(), sim.bytebase_url());
    let client = test_client(sim.bytebase_url(), 4);
    let snapshot = live::read(&client, &spec.spec, &ReadOptions::default()).await.unwrap();

    assert_eq!(snapshot.projects.len(), 24, "23 ledger projects and payments");
    assert!(snapshot.projects.iter().all(|p| p.governed == Some(true)));
    let skipped: Vec<&str> = snapshot.skipped_issues.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(skipped, ["projects/payments/issues/1000", "projects/payments/issues/1001"]);

    // The project list took several pages, and the issue list went through empty filtered
    // pages that still carried a token.
    let exchanges = sim.requests();
    let project_pages = exchanges.iter().filter(|e| e.method == "GET" && e.path == "/v1/projects");
    assert_eq!(project_pages.count(), 6, "24 projects in pages of 4");
    let empty_with_token = exchanges
        .iter()
        .filter(|e| e.path == "/v1/projects/payments/issues")
        .filter(|e| {
            e.response_body.get("issues").and_then(Value::as_array).is_none_or(Vec::is_empty)
                && e.response_body.get("nextPageToken").is_some()
        })
        .count();
    assert!(empty_with_token >= 5, "expected empty filtered pages, saw {empty_with_token}");
    // The snapshot is what the schema says.
    live::validate(&snapshot.to_value()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_503_and_429_with_retry_after_are_survived() {
    let faults = FaultSpec {
        error_5xx: 1.0,
        paths: vec!["/v1/roles".into()],
        first: Some(2),
        ..FaultSpec::none()
    };
    let sim =
        sim::start(world("compliant"), Options { faults, ..Options::default() }).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    let roles = client.list_roles().await.unwrap();
    assert!(roles.iter().any(|r| r.name == "roles/cab-approver"));
    assert_eq!(client.stats().retries, 2);
    sim.shutdown().await;

    let faults = FaultSpec {
        too_many: 1.0,
        retry_after_secs: 1,
        paths: vec!["/v1/projects".into()],
        first: Some(1),
        ..FaultSpec::none()
    };
    let sim =
        sim::start(world("compliant"), Options { faults, ..Options::default() }).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    let started = Instant::now();
    let projects = client.list_projects().await.unwrap();
    assert_eq!(projects.len(), 3);
    // The client waited as long as Retry-After asked, not its own 10 ms backoff.
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    let statuses: Vec<u16> =
        sim.requests().iter().filter(|e| e.path == "/v1/projects").map(|e| e.status).collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_renewed_once_and_4xx_is_never_retried() {
    let sim = sim::start(world("compliant"), Options::default()).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    client.get_workspace().await.unwrap();
    // Two hours later on the emulator's clock the token has expired: one 401, one new login.
    sim.clock().advance(chrono::TimeDelta::hours(2));
    client.get_workspace().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.logins, 2);
    assert_eq!(stats.retries, 0);

    // A 400 (legacy setting name) fails at once, with the call and Bytebase's message.
    let before = client.stats().requests;
    let error = client.get_setting("bb.workspace.approval").await.unwrap_err();
    assert_eq!(client.stats().requests, before + 1);
    let text = error.to_string();
    assert!(text.contains("GET /v1/settings/bb.workspace.approval"), "{text}");
    assert_eq!(error.code(), Some(cabgate::bytebase::Code::InvalidArgument), "{text}");
    // A rollout that does not exist yet reads as None, not as an error.
    assert!(client.get_rollout("projects/payments/plans/999999").await.unwrap().is_none());
    // Login never sends `web`.
    let login = sim.requests().into_iter().find(|e| e.path == "/v1/auth/login").unwrap();
    assert!(login.request_body.get("web").is_none(), "{:?}", login.request_body);
}

#[test]
fn a_persistent_500_or_503_ends_with_exit_3_naming_the_call_and_the_message() {
    let internal = FaultSpec { error_500: 1.0, ..FaultSpec::none() };
    let unavailable = FaultSpec { error_5xx: 1.0, ..FaultSpec::none() };
    for (faults, status) in [(internal, 500), (unavailable, 503)] {
        let faults = FaultSpec { paths: vec!["/v1/roles".into()], ..faults };
        let options = Options { faults, ..Options::default() };
        let sim = sim::start_blocking(world("compliant"), options).unwrap();
        let folder = tempfile::tempdir().unwrap();
        let spec = spec_file(folder.path(), sim.bytebase_url());
        let run = cabgate(&["check", spec.to_str().unwrap(), "--format", "json"], KEY);
        assert_eq!(run.code, 3, "{status}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "no report on a failed read: {}", run.stdout);
        assert!(run.stderr.contains("GET /v1/roles"), "{}", run.stderr);
        assert!(run.message().contains(&format!("HTTP {status}")), "{}", run.stderr);
        let faults: Vec<_> = sim.requests().into_iter().filter(|e| e.path == "/v1/roles").collect();
        assert!(faults.len() > 1, "a 5xx is retried before giving up: {faults:?}");
        assert!(faults.iter().all(|e| e.status == status), "{faults:?}");
        let message = faults[0].response_body["message"].as_str().unwrap().to_owned();
        assert!(run.message().contains(&message), "{message:?} not in:\n{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn a_wrong_key_ends_with_exit_3_naming_login_and_the_message() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let run = cabgate(&["check", spec.to_str().unwrap()], "bbs_wrongwrongwrongwrong");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("POST /v1/auth/login"), "{}", run.stderr);
    let login = sim.requests().into_iter().find(|e| e.path == "/v1/auth/login").unwrap();
    let message = login.response_body["message"].as_str().unwrap().to_owned();
    assert!(run.message().contains(&message), "{message:?} not in:\n{}", run.stderr);
    assert!(!run.stderr.contains("bbs_wrong"), "the key leaked: {}", run.stderr);
}

#[test]
fn a_key_read_from_a_secret_file_with_a_trailing_newline_logs_in() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let run = cabgate(&["check", spec.to_str().unwrap()], &format!("{KEY}\n"));
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn an_unreachable_bytebase_or_a_missing_key_is_exit_3() {
    let folder = tempfile::tempdir().unwrap();
    // Port 9 (discard) is closed on loopback.
    let spec = spec_file(folder.path(), "http://127.0.0.1:9");
    let run = cabgate(&["check", spec.to_str().unwrap()], KEY);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("POST /v1/auth/login") && run.stderr.contains("reached"));

    let run = cabgate(&["check", spec.to_str().unwrap()], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains(KEY_ENV), "{}", run.stderr);
}

#[test]
fn an_invalid_spec_stops_before_any_request_with_exit_2() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = folder.path().join("bad.yaml");
    std::fs::write(&spec, "version: 1\nname: x\nbytebase: {url: 3}\n").unwrap();
    let run = cabgate(&["check", spec.to_str().unwrap(), "--format", "json"], KEY);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let codes: Vec<String> =
        essentials(&run.json()).iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect();
    assert!(!codes.is_empty() && codes.iter().all(|c| c == "spec/schema"), "{codes:?}");
    assert!(sim.requests().is_empty());
}

#[test]
fn snapshot_then_check_of_the_file_gives_the_live_findings() {
    let sim = sim::start_blocking(world("lockdown-unexpected-holder"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let spec = spec.to_str().unwrap();
    let file = folder.path().join("evidence/snap.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let run = cabgate(&["snapshot", spec, "-o", file.to_str().unwrap()], KEY);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    live::validate(&document).unwrap();
    assert_eq!(document["workspace"], "workspaces/acme");
    assert_eq!(document["approvalFeature"], true);
    let environments: Vec<&str> = document["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(environments, ["staging", "prod"], "stage order");
    assert!(!std::fs::read_to_string(&file).unwrap().contains(KEY));

    // Without -o the same document goes to stdout.
    let run = cabgate(&["snapshot", spec], KEY);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(printed["projects"], document["projects"]);

    let live_run = cabgate(&["check", spec, "--format", "json"], KEY);
    let file_run =
        cabgate(&["check", spec, "--format", "json", "--snapshot", file.to_str().unwrap()], "");
    assert_eq!(live_run.code, 1, "{}", live_run.stderr);
    assert_eq!(file_run.code, 1, "{}", file_run.stderr);
    assert_eq!(essentials(&live_run.json()), essentials(&file_run.json()));
    assert!(!essentials(&live_run.json()).is_empty());
    assert!(!file_run.stderr.contains("another Bytebase"), "{}", file_run.stderr);

    // The same file checked with a spec for another Bytebase: same findings, and a warning.
    let other = spec_file(folder.path(), "https://bytebase.other.example");
    let args = ["check", other.to_str().unwrap(), "--format", "json", "--snapshot"];
    let other_run = cabgate(&[&args[..], &[file.to_str().unwrap()]].concat(), "");
    assert_eq!(essentials(&other_run.json()), essentials(&file_run.json()));
    assert!(other_run.stderr.contains("another Bytebase"), "{}", other_run.stderr);
}

#[test]
fn a_file_that_is_not_a_snapshot_is_exit_2_naming_the_place() {
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), "http://127.0.0.1:9");
    let file = folder.path().join("snap.json");
    let mut document: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/live/example.json")).unwrap(),
    )
    .unwrap();
    document["projects"][0]["requireIssueApproval"] = "yes".into();
    std::fs::write(&file, document.to_string()).unwrap();
    let run = cabgate(&["check", spec.to_str().unwrap(), "--snapshot", file.to_str().unwrap()], "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("/projects/0/requireIssueApproval"), "{}", run.stderr);
}

#[test]
fn a_baseline_accepts_known_findings_but_not_new_ones() {
    let sim = sim::start_blocking(world("lockdown-project-setting"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let spec = spec.to_str().unwrap();
    let baseline = folder.path().join("baseline.json");
    let baseline = baseline.to_str().unwrap();

    let first = cabgate(&["check", spec, "--format", "json", "--write-baseline", baseline], KEY);
    assert_eq!(first.code, 1, "{}", first.stderr);
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(baseline).unwrap()).unwrap();
    assert_eq!(recorded["findings"].as_array().unwrap().len(), 2, "{recorded}");

    let second = cabgate(&["check", spec, "--format", "json", "--baseline", baseline], KEY);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let report = second.json();
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["baselined"], 2);
    assert!(report["findings"].as_array().unwrap().iter().all(|f| f["baseline"] == true));

    // A finding the baseline does not hold still fails the run.
    let mut trimmed = recorded.clone();
    trimmed["findings"].as_array_mut().unwrap().pop();
    std::fs::write(baseline, trimmed.to_string()).unwrap();
    let third = cabgate(&["check", spec, "--format", "json", "--baseline", baseline], KEY);
    assert_eq!(third.code, 1, "{}", third.stderr);
    assert_eq!(third.json()["summary"]["errors"], 1);

    let missing = cabgate(&["check", spec, "--baseline", "/nonexistent/b.json"], KEY);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
}

#[test]
fn profile_prints_each_policy_package_on_stderr_only() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let run = cabgate(&["check", spec.to_str().unwrap(), "--format", "json", "--profile"], KEY);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("policy evaluation time"), "{}", run.stderr);
    assert!(run.stderr.contains("total"), "{}", run.stderr);
    run.json();
}

/// Reads a 300-project world through an emulator with `latency` per request; returns the
/// request count and the wall time.
async fn timed_read(projects: usize, latency: Duration) -> (u64, Duration) {
    let options = Options { latency, record: false, ..Options::default() };
    let sim = sim::start(big_world(projects, 0, 0), options).await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = loaded_spec(folder.path(), sim.bytebase_url());
    let client = test_client(sim.bytebase_url(), 1000);
    let started = Instant::now();
    let snapshot = live::read(&client, &spec.spec, &ReadOptions::default()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(snapshot.projects.len(), projects + 1);
    (client.stats().requests, took)
}

/// Request count and wall time of a live read of a few hundred projects with 20 ms of latency
/// per request, against the bound `requests × latency / concurrency`, and the same read without
/// latency (what the two processes' CPU costs on this machine). Run with `--nocapture` to see the
/// numbers; the assertion is on the request count, which is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_read_of_300_projects_costs_two_requests_per_project() {
    let projects = 300;
    let latency = Duration::from_millis(20);
    let (requests, took) = timed_read(projects, latency).await;
    // login, workspace, subscription, feature matrix, approval, roles, workspace IAM, projects,
    // groups, environments, 2 rollout policies; then per project its IAM and its SKIPPED issues.
    let fixed = 12;
    assert_eq!(requests, fixed + 2 * (projects as u64 + 1));
    let (_, cpu_only) = timed_read(projects, Duration::ZERO).await;
    let sequential = latency * requests as u32;
    let bound = sequential / 8;
    println!(
        "live read: {} projects, {requests} requests, {took:?} wall with {latency:?} latency \
         (bound {bound:?} at concurrency 8, {sequential:?} one at a time), {cpu_only:?} without \
         latency",
        projects + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_read_is_retried_but_a_write_whose_answer_was_lost_is_not() {
    let faults = FaultSpec {
        reset: 1.0,
        paths: vec!["/v1/groups".into()],
        first: Some(2),
        ..FaultSpec::none()
    };
    let sim =
        sim::start(world("compliant"), Options { faults, ..Options::default() }).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    assert_eq!(client.list_groups().await.unwrap().len(), 2);
    assert_eq!(client.stats().retries, 2);
    sim.shutdown().await;

    // The comment lands but its answer is lost: sending it again would post it twice, so the
    // client reports the failure and leaves the decision to its caller.
    let issue = "projects/payments/issues/201";
    let faults = FaultSpec {
        lost: 1.0,
        paths: vec![format!("/v1/{issue}:comment")],
        first: Some(1),
        ..FaultSpec::none()
    };
    let sim =
        sim::start(world("compliant"), Options { faults, ..Options::default() }).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    let error = client.create_issue_comment(issue, "CHG0001 opened").await.unwrap_err();
    assert!(error.to_string().contains(&format!("POST /v1/{issue}:comment")), "{error}");
    let comments = client.list_issue_comments(issue).await.unwrap();
    assert_eq!(comments.iter().filter(|c| c.comment == "CHG0001 opened").count(), 1);
    let posts = sim
        .requests()
        .iter()
        .filter(|e| e.method == "POST" && e.path.ends_with(":comment"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn debug_logs_show_each_call_and_never_a_secret() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let output = Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .args(["check", spec.to_str().unwrap(), "--format", "json"])
        .env(KEY_ENV, KEY)
        .env("CABGATE_LOG", "cabgate=trace")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let calls: Vec<&str> = stderr.lines().filter(|l| l.contains("bytebase answered")).collect();
    assert!(calls.iter().any(|l| l.contains("/v1/roles") && l.contains("http.status=200")));
    assert!(calls.iter().any(|l| l.contains("/v1/auth/login") && l.contains("attempt=1")));
    // The token is a JWT (`eyJ…`); neither it nor the key may appear anywhere.
    assert!(!stderr.contains(KEY) && !stderr.contains("eyJ") && !stderr.contains("Bearer"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(KEY) && !stdout.contains("eyJ"));
}

#[test]
fn user_policies_see_the_live_snapshot_and_fail_on_sets_the_threshold() {
    let sim = sim::start_blocking(world("compliant"), Options::default()).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), sim.bytebase_url());
    let spec = spec.to_str().unwrap();
    let policies = folder.path().join("acme");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("webhooks.rego"),
        r#"package cabgate.rules.acme.webhooks

findings contains f if {
	some project in input.live.projects
	input.index.governedProjects[project.name]
	not has_teams_hook(project)
	f := {
		"code": "acme/no-relay-webhook",
		"severity": "warning",
		"message": concat("", [project.name, " has no Teams webhook to wake the bridge"]),
		"resource": project.name,
		"path": "/bytebase/projects",
	}
}

has_teams_hook(project) if {
	some hook in project.webhooks
	hook.type == "TEAMS"
}
"#,
    )
    .unwrap();
    let dir = policies.to_str().unwrap();
    let run = cabgate(&["check", spec, "--format", "json", "--policy", dir], KEY);
    assert_eq!(run.code, 0, "a warning does not fail the run by default: {}", run.stderr);
    let findings = essentials(&run.json());
    assert_eq!(
        findings,
        [
            serde_json::json!({"code": "acme/no-relay-webhook", "resource": "projects/ledger-eu", "via": []})
        ]
    );
    let strict =
        cabgate(&["check", spec, "--format", "json", "--policy", dir, "--fail-on", "warning"], KEY);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answered_with_500_is_not_sent_again() {
    let sim = sim::start(world("compliant"), Options::default()).await.unwrap();
    let client = test_client(sim.bytebase_url(), 1000);
    // Approving a SKIPPED issue is a 500 in Bytebase ("approval template is required").
    let issue = "projects/sandbox/issues/202";
    assert_eq!(
        client.get_issue(issue).await.unwrap().approval_status,
        cabgate::bytebase::models::ApprovalStatus::Skipped
    );
    let error = client.approve_issue(issue, "CAB approved CHG0001").await.unwrap_err();
    assert_eq!(error.code(), Some(cabgate::bytebase::Code::Internal), "{error}");
    assert!(error.to_string().contains(&format!("POST /v1/{issue}:approve")), "{error}");
    assert_eq!(client.stats().retries, 0);
    let approvals = sim.requests().iter().filter(|e| e.path.ends_with(":approve")).count();
    assert_eq!(approvals, 1);
}

#[test]
fn a_snapshot_file_is_held_to_the_schema_date_times_included() {
    let folder = tempfile::tempdir().unwrap();
    let spec = spec_file(folder.path(), "http://127.0.0.1:9");
    let spec = spec.to_str().unwrap();
    let file = folder.path().join("snap.json");
    let example = std::fs::read_to_string(root().join("fixtures/live/example.json")).unwrap();
    let check = |text: &str| {
        std::fs::write(&file, text).unwrap();
        cabgate(&["check", spec, "--format", "json", "--snapshot", file.to_str().unwrap()], "")
    };

    // Keys the schema allows in an approval rule are read past; the file is checked.
    let extended = example.replacen(
        r#""source": "CHANGE_DATABASE","#,
        r#""source": "CHANGE_DATABASE", "note": {"by": ["cab"]},"#,
        1,
    );
    let run = check(&extended);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    assert!(run.json()["findings"].is_array());

    // chrono alone would read a space for `T`; the schema's date-time does not.
    let spaced = example.replacen("2026-12-03T12:00:00Z", "2026-12-03 12:00:00Z", 1);
    let run = check(&spaced);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("/takenAt"), "{}", run.stderr);
    assert!(run.stderr.contains("date-time"), "{}", run.stderr);

    // A skipped issue's createTime may be null but not missing.
    let missing = example.replacen(r#" "createTime": null,"#, "", 1);
    let run = check(&missing);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("/skippedIssues/1"), "{}", run.stderr);
    assert!(run.stderr.contains("createTime"), "{}", run.stderr);

    let run = check("{\n  \"version\": 1,\n}");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is not JSON: line 3, column 1"), "{}", run.stderr);
}

/// `fixtures/check/differential/seed-*`: random snapshots and specs from
/// `fixtures/check/gen_differential.py`, with the findings the Value-based reader of 7dba8ed
/// gave (captured by `run_differential.py --capture`, normalized for the intended changes: an
/// empty issue title reads "untitled", an empty creator is left out). The typed reader, the
/// Rust-built input and the Rust-expanded grants must give exactly these findings, to the line.
/// `lockdown/missing-project` came later than that reader, so it is left out of the comparison.
#[test]
fn typed_snapshot_reader_gives_the_findings_the_value_reader_gave() {
    let folder = root().join("fixtures/check/differential");
    let mut seeds: Vec<PathBuf> =
        std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "{seeds:?}");
    let key = |f: &Value| {
        let location = f.get("location").cloned().unwrap_or(Value::Null);
        serde_json::json!([
            f["code"],
            f.get("resource").cloned().unwrap_or(Value::Null),
            f.get("via").cloned().unwrap_or(Value::Null),
            f["message"],
            location.get("path").cloned().unwrap_or(Value::Null),
            location.get("line").cloned().unwrap_or(Value::Null),
        ])
    };
    for seed in seeds {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(seed.join("expected.json")).unwrap())
                .unwrap();
        let spec = seed.join("spec.yaml");
        let snapshot = seed.join("snapshot.json");
        let args = ["check", spec.to_str().unwrap(), "--snapshot", snapshot.to_str().unwrap()];
        let run = cabgate(&[&args[..], &["--format", "json"]].concat(), KEY);
        assert_eq!(Some(run.code), expected["exit"].as_i64().map(|c| c as i32), "{seed:?}");
        let findings = run.json()["findings"].as_array().unwrap().clone();
        let mut got: Vec<String> = findings
            .iter()
            .filter(|f| f["code"] != "lockdown/missing-project")
            .map(|f| key(f).to_string())
            .collect();
        let mut want: Vec<String> =
            expected["findings"].as_array().unwrap().iter().map(Value::to_string).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{seed:?}");
    }
}
