//! Integration tests: `apply`, the CHG workflow engine, against both emulators over HTTP.
//!
//! Each test starts the emulators from `fixtures/worlds/apply-basic.yaml`, builds the runner as
//! `cabgate apply` does (real clients, a SQLite store in a temporary folder) and drives passes
//! one by one, acting as the CAB and the issue creator through the emulators' control
//! endpoints. Time moves by advancing the sim clock, never by sleeping.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cabgate::sim::{self, Running, World};
use cabgate::workflow::runner::{PassReport, Stop};
use cabgate::workflow::wiring::{Engine, Options, connect};
use serde_json::{Value, json};

const ISSUE: &str = "projects/payments/issues/101";
const SKIPPED: &str = "projects/payments/issues/104";
const BB_KEY: &str = "bbs_simcabbridgekey0001";
const SN_PASSWORD: &str = "sn-integration-pass";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/worlds").join(name)
}

fn world() -> World {
    World::load(fixture("apply-basic.yaml")).expect("the apply world loads")
}

/// One HTTP client for the control calls of every test (building one loads the system's roots).
fn http() -> reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(reqwest::Client::new).clone()
}

struct Harness {
    sim: Running,
    dir: tempfile::TempDir,
    spec: cabgate::spec::LoadedSpec,
    http: reqwest::Client,
}

impl Harness {
    async fn start(world: World) -> Harness {
        Harness::with(world, sim::Options::default(), |s| s).await
    }

    async fn with(
        world: World,
        options: sim::Options,
        edit: impl FnOnce(String) -> String,
    ) -> Harness {
        let sim = sim::start(world, options).await.expect("the emulators start");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let text = std::fs::read_to_string(fixture("apply-spec.yaml")).expect("the spec fixture");
        let text = edit(
            text.replace("BYTEBASE_URL", sim.bytebase_url())
                .replace("SERVICENOW_URL", sim.servicenow_url()),
        );
        let path = dir.path().join("bridge.yaml");
        std::fs::write(&path, &text).expect("the spec is written");
        let spec = cabgate::spec::load(&path).expect("the apply spec is valid");
        Harness { sim, dir, spec, http: http() }
    }

    /// Like [`Harness::with`], but the spec is loaded (and schema-checked) once per process and
    /// only its URLs change: the property test starts hundreds of worlds.
    async fn fast(world: World, options: sim::Options) -> Harness {
        static SPEC: std::sync::OnceLock<cabgate::spec::LoadedSpec> = std::sync::OnceLock::new();
        let template = SPEC.get_or_init(|| {
            let text = std::fs::read_to_string(fixture("apply-spec.yaml")).expect("the spec");
            let text = text
                .replace("BYTEBASE_URL", "http://127.0.0.1:1")
                .replace("SERVICENOW_URL", "http://127.0.0.1:2");
            let path = PathBuf::from("bridge.yaml");
            cabgate::spec::load_bytes(&path, text.as_bytes()).expect("the apply spec is valid")
        });
        let sim = sim::start(world, options).await.expect("the emulators start");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut spec = template.clone();
        spec.path = dir.path().join("bridge.yaml");
        spec.spec.bytebase.url = sim.bytebase_url().to_owned();
        if let Some(sn) = spec.spec.servicenow.as_mut() {
            sn.instance = sim.servicenow_url().to_owned();
        }
        Harness { sim, dir, spec, http: http() }
    }

    fn state_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("state.db").display())
    }

    /// A runner as `cabgate apply` builds it; a new one after a "crash" reads the same store.
    fn engine(&self) -> Engine {
        let env: BTreeMap<&str, &str> = BTreeMap::from([
            ("CABGATE_TEST_BB_KEY", BB_KEY),
            ("CABGATE_TEST_SN_USER", "cabgate"),
            ("CABGATE_TEST_SN_PASSWORD", SN_PASSWORD),
        ]);
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let clock = self.sim.clock().clone();
        let options = Options {
            env: Box::new(move |k| env.get(k).cloned()),
            clock: Arc::new(move || clock.now()),
            state_url: Some(self.state_url()),
            fast_retries: true,
        };
        connect(&self.spec, &options).expect("the runner is built")
    }

    async fn pass(&self, engine: &Engine) -> PassReport {
        engine.pass(&Default::default(), &Stop::default()).await.expect("the pass runs")
    }

    /// Passes until one takes no step (at most `max`), returning every report.
    async fn settle(&self, engine: &Engine, max: usize) -> Vec<PassReport> {
        let mut reports = Vec::new();
        for _ in 0..max {
            let report = self.pass(engine).await;
            let idle = report.steps.is_empty();
            reports.push(report);
            if idle {
                break;
            }
        }
        reports
    }

    async fn post(&self, url: String, body: Value) -> Value {
        let response = self.http.post(&url).json(&body).send().await.expect("control call");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {url}: {status} {value}");
        value
    }

    async fn sn(&self, path: &str, body: Value) -> Value {
        self.post(format!("{}/_sim/{path}", self.sim.servicenow_url()), body).await
    }

    async fn bb(&self, path: &str, body: Value) -> Value {
        self.post(format!("{}/_sim/{path}", self.sim.bytebase_url()), body).await
    }

    async fn changes(&self) -> Vec<Value> {
        let url = format!("{}/_sim/table/change_request", self.sim.servicenow_url());
        let value: Value =
            self.http.get(url).send().await.expect("dump").json().await.expect("json");
        value["result"].as_array().cloned().unwrap_or_default()
    }

    async fn change(&self) -> Value {
        let changes = self.changes().await;
        assert_eq!(changes.len(), 1, "exactly one CHG: {changes:#?}");
        changes[0].clone()
    }

    async fn work_notes(&self, sys_id: &str) -> Vec<String> {
        let url = format!("{}/_sim/table/sys_journal_field", self.sim.servicenow_url());
        let value: Value =
            self.http.get(url).send().await.expect("dump").json().await.expect("json");
        value["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["element_id"] == sys_id && r["element"] == "work_notes")
            .filter_map(|r| r["value"].as_str().map(str::to_owned))
            .collect()
    }

    fn bytebase(&self) -> cabgate::bytebase::Client {
        let config = cabgate::bytebase::ClientConfig::new(
            self.sim.bytebase_url(),
            "cab-bridge@service.bytebase.com",
            cabgate::bytebase::ServiceKey::new(BB_KEY),
        );
        cabgate::bytebase::Client::new(config).expect("a client")
    }

    async fn issue(&self) -> cabgate::bytebase::models::Issue {
        self.bytebase().get_issue(ISSUE).await.expect("the issue")
    }

    async fn comments(&self) -> Vec<String> {
        let comments = self.bytebase().list_issue_comments(ISSUE).await.expect("comments");
        comments.into_iter().map(|c| c.comment).collect()
    }

    /// Writes (non-GET requests) each emulator received from cabgate.
    fn writes(&self) -> Vec<sim::Exchange> {
        self.sim
            .requests()
            .into_iter()
            .filter(|e| e.method != "GET" && !e.path.starts_with("/_sim/"))
            .filter(|e| !e.path.ends_with(":search") && !e.path.contains("oauth_token"))
            .filter(|e| e.path != "/v1/auth/login")
            .collect()
    }
}

fn number(change: &Value) -> String {
    change["number"].as_str().expect("a CHG number").to_owned()
}

async fn approve_as_cab(h: &Harness, change: &Value) {
    let body = json!({ "approver": "carol", "comment": "Low risk, approved" });
    h.sn(&format!("change_request/{}/approve", number(change)), body).await;
}

#[tokio::test]
async fn happy_path_one_change_approved_rolled_out_and_closed() {
    let h = Harness::start(world()).await;
    let engine = h.engine();

    let first = h.pass(&engine).await;
    let opened = first.steps.iter().find(|s| s.issue == ISSUE).expect("the issue moved");
    assert_eq!(opened.transition, "open-change");
    assert!(opened.completed, "{opened:#?}");
    assert!(
        first.steps.iter().all(|s| !s.issue.starts_with("projects/sandbox/")),
        "ungoverned projects get no CHG"
    );
    let change = h.change().await;
    assert_eq!(change["state"], "-4", "sent to the CAB (Assess)");
    assert_eq!(change["approval"], "requested");
    assert!(change["correlation_id"].as_str().unwrap().ends_with(":payments/101"));
    assert_eq!(change["short_description"], "[Bytebase] Add index on payments.created_at");
    let chg = number(&change);
    let comments = h.comments().await;
    assert!(comments.iter().any(|c| c.contains(&chg)), "the CHG is named: {comments:?}");
    assert!(h.issue().await.labels.is_empty(), "never a label: it would reset approval");

    // Waiting for the CAB changes nothing, however many passes run.
    let idle = h.settle(&engine, 3).await;
    assert!(idle.iter().all(|r| r.steps.is_empty()), "{idle:#?}");
    assert_eq!(h.changes().await.len(), 1, "never a second CHG");
    assert!(!h.writes().iter().any(|w| w.path.ends_with(":approve")));
    assert!(!h.writes().iter().any(|w| w.path.contains(":batchRun")));

    approve_as_cab(&h, &change).await;
    let reports = h.settle(&engine, 8).await;
    let issue = h.issue().await;
    assert_eq!(issue.approval_status.as_str(), "APPROVED");
    let approval = h.writes().into_iter().find(|w| w.path.ends_with(":approve")).expect("approve");
    let comment = approval.request_body["comment"].as_str().unwrap_or_default().to_owned();
    assert!(comment.contains("carol") && comment.contains(&chg), "{comment}");

    // Runs only after the rollout exists, only in the governed stage, once.
    let writes = h.writes();
    let runs: Vec<&sim::Exchange> =
        writes.iter().filter(|w| w.path.contains(":batchRun")).collect();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(runs[0].path.contains("/stages/prod/"), "{}", runs[0].path);
    let approved_at = writes.iter().position(|w| w.path.ends_with(":approve")).unwrap();
    let ran_at = writes.iter().position(|w| w.path.contains(":batchRun")).unwrap();
    assert!(approved_at < ran_at);

    let change = h.change().await;
    assert_eq!(change["state"], "3", "closed: {reports:#?}");
    assert_eq!(change["close_code"], "successful");
    let notes = h.work_notes(change["sys_id"].as_str().unwrap()).await;
    assert!(notes.iter().any(|n| n.contains("started 1 task(s) in prod")), "{notes:?}");
    let last = h.settle(&engine, 2).await;
    assert!(last.iter().all(|r| r.steps.is_empty()), "the flow is finished");
}

#[tokio::test]
async fn a_skipped_issue_is_alerted_exactly_once() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    let first = h.pass(&engine).await;
    assert_eq!(first.new_alerts, 1, "{first:#?}");
    let again = h.pass(&engine).await;
    assert_eq!(again.new_alerts, 0);
    drop(engine);
    let rebuilt = h.engine();
    let after_restart = h.pass(&rebuilt).await;
    assert_eq!(after_restart.new_alerts, 0, "the ledger survives a restart");
    let deliveries = rebuilt.store.inner().deliveries(&cabgate::alert::alert_key(SKIPPED));
    let deliveries = deliveries.expect("the outbox reads");
    assert_eq!(deliveries.len(), 1, "one sink, one delivery: {deliveries:#?}");
    assert_eq!(deliveries[0].state, cabgate::store::DeliveryState::Delivered);
}

#[tokio::test]
async fn a_cab_rejection_rejects_the_issue_with_the_reason() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    h.pass(&engine).await;
    let change = h.change().await;
    let body = json!({ "approver": "carol", "comment": "Not during the freeze" });
    h.sn(&format!("change_request/{}/reject", number(&change)), body).await;
    h.settle(&engine, 4).await;
    let issue = h.issue().await;
    assert_eq!(issue.approval_status.as_str(), "REJECTED");
    let reject = h.writes().into_iter().find(|w| w.path.ends_with(":reject")).expect("reject");
    let comment = reject.request_body["comment"].as_str().unwrap_or_default().to_owned();
    assert!(comment.contains("Not during the freeze") && comment.contains(&number(&change)));
    assert!(
        !h.writes().iter().any(|w| w.path.ends_with(":approve") || w.path.contains(":batchRun"))
    );
}

#[tokio::test]
async fn rework_sends_the_new_plan_back_to_the_same_change() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    h.pass(&engine).await;
    let change = h.change().await;
    let body = json!({ "approver": "carol", "comment": "Please rework: add a rollback script" });
    h.sn(&format!("change_request/{}/reject", number(&change)), body).await;
    h.settle(&engine, 3).await;
    let reject = h.writes().into_iter().find(|w| w.path.ends_with(":reject")).expect("reject");
    assert!(reject.request_body["comment"].as_str().unwrap_or_default().contains("rework"));

    // The creator edits the plan and re-requests (the emulator moves the plan's version on
    // `:request`, as an edit before re-requesting does).
    h.bb("issues/payments/101/request", json!({ "comment": "added the rollback" })).await;
    h.settle(&engine, 4).await;
    let changes = h.changes().await;
    assert_eq!(changes.len(), 1, "onRework: update keeps one CHG");
    assert_eq!(changes[0]["approval"], "requested", "back to the CAB: {:#?}", changes[0]);
    approve_as_cab(&h, &changes[0]).await;
    h.settle(&engine, 8).await;
    assert_eq!(h.issue().await.approval_status.as_str(), "APPROVED");
    assert_eq!(h.change().await["close_code"], "successful");
}

#[tokio::test]
async fn rework_with_on_rework_new_replaces_the_change() {
    let h = Harness::with(world(), sim::Options::default(), |s| {
        s.replace(
            "  onTaskFailure: cancel-remaining",
            "  onTaskFailure: cancel-remaining\n  onRework: new",
        )
    })
    .await;
    let engine = h.engine();
    h.pass(&engine).await;
    let old = h.change().await;
    let body = json!({ "approver": "carol", "comment": "rework: split the migration" });
    h.sn(&format!("change_request/{}/reject", number(&old)), body).await;
    h.settle(&engine, 3).await;
    h.bb("issues/payments/101/request", json!({ "comment": "split" })).await;
    h.settle(&engine, 4).await;
    let changes = h.changes().await;
    assert_eq!(changes.len(), 2, "{changes:#?}");
    let old = changes.iter().find(|c| c["sys_id"] == old["sys_id"]).expect("the old CHG");
    assert_eq!(old["state"], "4", "the old CHG is canceled");
    let new = changes.iter().find(|c| c["sys_id"] != old["sys_id"]).expect("a new CHG");
    assert_eq!(new["approval"], "requested");
    assert!(new["correlation_id"].as_str().unwrap().ends_with(":payments/101:r1"));
    let comments = h.comments().await;
    assert!(comments.iter().any(|c| c.contains(&number(new))), "{comments:?}");
}

#[tokio::test]
async fn a_canceled_issue_cancels_the_change() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    h.pass(&engine).await;
    h.bb("issues/payments/101/cancel", json!({})).await;
    h.settle(&engine, 3).await;
    let change = h.change().await;
    assert_eq!(change["state"], "4", "canceled");
    assert!(!h.writes().iter().any(|w| w.path.ends_with(":approve")));
}

#[tokio::test]
async fn a_canceled_change_rejects_the_issue() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    h.pass(&engine).await;
    let change = h.change().await;
    let body = json!({ "by": "carol", "reason": "superseded by CHG-other" });
    h.sn(&format!("change_request/{}/cancel", number(&change)), body).await;
    h.settle(&engine, 3).await;
    assert_eq!(h.issue().await.approval_status.as_str(), "REJECTED");
    assert!(!h.writes().iter().any(|w| w.path.ends_with(":approve")));
}

#[tokio::test]
async fn a_failed_task_closes_the_change_unsuccessful() {
    let mut w = world();
    w.bytebase.timing.task_run_outcome = "FAILED".into();
    let h = Harness::start(w).await;
    let engine = h.engine();
    h.pass(&engine).await;
    approve_as_cab(&h, &h.change().await).await;
    h.settle(&engine, 8).await;
    let change = h.change().await;
    assert_eq!(change["state"], "3", "closed");
    assert_eq!(change["close_code"], "unsuccessful");
}

#[tokio::test]
async fn dry_run_changes_nothing_on_either_side() {
    let h = Harness::start(world()).await;
    let engine = h.engine();
    h.sim.reset_requests();
    let planned = engine.plan(&BTreeMap::new()).await.expect("a plan");
    let step = planned.iter().find(|p| p.step.issue == ISSUE).expect("the issue would move");
    assert_eq!(step.step.transition, "open-change");
    let payload = &step.payloads[0]["change_request"];
    assert_eq!(payload["short_description"], "[Bytebase] Add index on payments.created_at");
    assert!(payload["correlation_id"].as_str().unwrap().ends_with(":payments/101"));
    assert!(h.writes().is_empty(), "{:#?}", h.writes());
    assert!(h.changes().await.is_empty());
    assert!(engine.store.inner().issues().expect("the store reads").is_empty());
}

#[tokio::test]
async fn the_command_runs_once_and_keeps_secrets_out_of_every_line() {
    let h = Harness::start(world()).await;
    let spec = h.dir.path().join("bridge.yaml");
    let run = move |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"));
        cmd.arg("apply").arg(&spec).args(extra);
        cmd.env("CABGATE_TEST_BB_KEY", BB_KEY)
            .env("CABGATE_TEST_SN_USER", "cabgate")
            .env("CABGATE_TEST_SN_PASSWORD", SN_PASSWORD)
            .env("CABGATE_LOG", "trace");
        cmd.output().expect("cabgate runs")
    };
    let dry = tokio::task::spawn_blocking(move || run(&["--dry-run", "--format", "json"]));
    let dry = dry.await.expect("joined");
    assert_eq!(dry.status.code(), Some(0), "{}", String::from_utf8_lossy(&dry.stderr));
    let plan: Value = serde_json::from_slice(&dry.stdout).expect("a JSON plan");
    assert_eq!(plan["dryRun"], true);
    assert!(h.changes().await.is_empty(), "dry run opened no CHG");
    assert!(!h.dir.path().join("cabgate-test.db").exists(), "dry run created no store");

    let spec = h.dir.path().join("bridge.yaml");
    let once = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"));
        cmd.arg("apply").arg(&spec).arg("--once");
        cmd.env("CABGATE_TEST_BB_KEY", BB_KEY)
            .env("CABGATE_TEST_SN_USER", "cabgate")
            .env("CABGATE_TEST_SN_PASSWORD", SN_PASSWORD)
            .env("CABGATE_LOG", "trace");
        cmd.output().expect("cabgate runs")
    })
    .await
    .expect("joined");
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert_eq!(once.status.code(), Some(0), "{stderr}");
    assert_eq!(h.changes().await.len(), 1);
    for output in [&dry.stdout, &dry.stderr, &once.stdout, &once.stderr] {
        let text = String::from_utf8_lossy(output);
        for secret in [BB_KEY, SN_PASSWORD] {
            assert!(!text.contains(secret), "a secret leaked into the output");
        }
    }
}

#[tokio::test]
async fn an_unreachable_api_exits_3() {
    let h = Harness::with(world(), sim::Options::default(), |s| {
        s.replace("instance: http://", "instance: http://127.0.0.1:9/unreachable/")
    })
    .await;
    let spec = h.dir.path().join("bridge.yaml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"))
            .arg("apply")
            .arg(&spec)
            .arg("--once")
            .env("CABGATE_TEST_BB_KEY", BB_KEY)
            .env("CABGATE_TEST_SN_USER", "cabgate")
            .env("CABGATE_TEST_SN_PASSWORD", SN_PASSWORD)
            .output()
            .expect("cabgate runs")
    })
    .await
    .expect("joined");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_listener_wakes_the_loop_only_for_a_caller_with_the_secret() {
    use cabgate::workflow::listen::{SECRET_HEADER, Wake, router};
    use cabgate::workflow::metrics::Metrics;

    let wake = Arc::new(Wake::default());
    let metrics = Arc::new(Metrics::default());
    let app = router(wake.clone(), metrics.clone(), Some("s3cret".into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = http();
    let card = json!({ "attachments": [{ "content": { "actions": [{
        "type": "Action.OpenUrl",
        "url": "https://bb.acme.example/projects/payments/issues/add-index-101"
    }]}}]});

    let denied = client.post(format!("{base}/webhook")).json(&card).send().await.expect("sent");
    assert_eq!(denied.status(), 401);
    assert!(wake.take().is_empty(), "a caller without the secret wakes nothing");
    let big = "x".repeat(100 * 1024);
    let too_big = client
        .post(format!("{base}/webhook"))
        .header(SECRET_HEADER, "s3cret")
        .json(&json!({ "issue": ISSUE, "padding": big }))
        .send()
        .await
        .expect("sent");
    assert_eq!(too_big.status(), 413, "bodies are size-limited");
    let accepted = client
        .post(format!("{base}/webhook"))
        .header(SECRET_HEADER, "s3cret")
        .json(&card)
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), 202);
    assert_eq!(wake.take().into_iter().collect::<Vec<_>>(), [ISSUE]);
    let plain = client
        .post(format!("{base}/webhook?secret=s3cret"))
        .json(&json!({ "issue": ISSUE }))
        .send()
        .await
        .expect("sent");
    assert_eq!(plain.status(), 202);
    assert!(wake.take().contains(ISSUE));
    // A pipeline event links to the plan's rollout, not an issue: a pass over everything.
    let pipeline = json!({ "attachments": [{ "content": { "actions": [{
        "type": "Action.OpenUrl",
        "url": "https://bb.acme.example/projects/payments/plans/101/rollout"
    }]}}]});
    let rollout = client
        .post(format!("{base}/webhook?secret=s3cret"))
        .json(&pipeline)
        .send()
        .await
        .expect("sent");
    assert_eq!(rollout.status(), 202);
    assert!(wake.take().is_empty(), "no issue to put first");
    let unrelated = client
        .post(format!("{base}/webhook?secret=s3cret"))
        .json(&json!({ "text": "hello" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(unrelated.status(), 422, "a body naming nothing is refused");

    let health = client.get(format!("{base}/healthz")).send().await.expect("sent");
    assert_eq!(health.status(), 200);
    let text = client.get(format!("{base}/metrics")).send().await.expect("sent");
    let text = text.text().await.expect("text");
    assert!(text.contains("cabgate_wakeups_total 3"), "{text}");
}

/// Polls `check` every 20 ms until it holds; fails after 5 s (the poll interval of these tests is
/// ten minutes, so holding within seconds means a webhook woke the runner).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The runner as `cabgate apply --listen` runs it, fed by the Bytebase emulator's webhook posts:
/// the payments project has a TEAMS webhook to a Power Automate flow, and the emulator's relay
/// (standing in for that flow) forwards each card to the runner's `/webhook`. The poll interval
/// is ten minutes, so only a webhook can make the loop move within the test.
struct Listening {
    h: Harness,
    engine: Engine,
    wake: Arc<cabgate::workflow::listen::Wake>,
    stop: Arc<Stop>,
    base: String,
}

impl Listening {
    async fn start(faults: &str) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let mut world = world();
        let hook = json!({
            "id": "cab-relay", "type": "TEAMS", "title": "CAB relay",
            "url": "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual",
            "notificationTypes": ["ISSUE_CREATED", "ISSUE_APPROVAL_REQUESTED", "ISSUE_APPROVED"],
        });
        let payments = world.bytebase.projects.iter_mut().find(|p| p.id == "payments");
        payments.expect("payments").webhooks.push(serde_json::from_value(hook).expect("a hook"));
        let options = sim::Options {
            seed: 5,
            faults: faults.parse().expect("a fault spec"),
            webhook_relay: Some(format!("{base}/webhook?secret=s3cret")),
            ..sim::Options::default()
        };
        let h =
            Harness::with(world, options, |s| s.replace("pollInterval: 1s", "pollInterval: 10m"))
                .await;
        let engine = h.engine();
        let wake = Arc::new(cabgate::workflow::listen::Wake::default());
        let app = cabgate::workflow::listen::router(
            wake.clone(),
            engine.metrics.clone(),
            Some("s3cret".into()),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Listening { h, engine, wake, stop: Arc::new(Stop::default()), base }
    }

    /// Creates an issue like 101 (staging and prod) as alice; returns its name and its plan's.
    async fn create_issue(&self) -> (String, String) {
        let issue = self
            .h
            .bb(
                "issues",
                json!({
                    "project": "payments",
                    "creator": "alice@acme.example",
                    "title": "Drop a stale index",
                    "specs": [{ "changeDatabaseConfig": { "targets": [
                        "instances/staging-pg/databases/payments",
                        "instances/prod-pg/databases/payments",
                    ]}}],
                }),
            )
            .await;
        let name = issue["name"].as_str().expect("an issue name").to_owned();
        (name, issue["plan"].as_str().expect("a plan name").to_owned())
    }

    /// Waits for the loop's first pass, which opens a CHG for the world's issue 101.
    async fn first_pass(&self) {
        eventually("the first pass opens a CHG for 101", async || {
            self.changes_for(ISSUE).await.len() == 1
        })
        .await;
    }

    async fn changes_for(&self, name: &str) -> Vec<Value> {
        let key = name.replace("projects/", "").replace("/issues/", "/");
        let changes = self.h.changes().await;
        changes
            .into_iter()
            .filter(|c| {
                c["correlation_id"].as_str().is_some_and(|id| id.ends_with(&format!(":{key}")))
            })
            .collect()
    }

    async fn comments_of(&self, name: &str) -> Vec<String> {
        let comments = self.h.bytebase().list_issue_comments(name).await.expect("comments");
        comments.into_iter().map(|c| c.comment).collect()
    }

    fn writes_to(&self, needle: &str) -> usize {
        self.h.writes().iter().filter(|w| w.path.contains(needle)).count()
    }
}

#[tokio::test]
async fn a_delivered_webhook_wakes_the_loop_long_before_the_poll_interval() {
    let l = Listening::start("").await;
    let started = std::time::Instant::now();
    let drive = async {
        l.first_pass().await;
        let (name, _) = l.create_issue().await;
        eventually("a webhook wakes the loop, which opens a CHG", async || {
            l.changes_for(&name).await.len() == 1
        })
        .await;
        let posts = l.h.sim.deliveries();
        assert!(posts.iter().any(|d| d.link.ends_with(&name) && d.outcome == "delivered"));
        let metrics = l.h.http.get(format!("{}/metrics", l.base)).send().await.expect("metrics");
        let text = metrics.text().await.expect("text");
        let wakeups = text
            .lines()
            .find_map(|l| l.strip_prefix("cabgate_wakeups_total "))
            .and_then(|n| n.trim().parse::<u64>().ok());
        assert!(wakeups.is_some_and(|n| n >= 1), "woken by the webhook: {text}");
        l.stop.request();
    };
    let (run, ()) = tokio::join!(l.engine.run_loop(l.wake.clone(), l.stop.clone()), drive);
    run.expect("the loop ends cleanly");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test]
async fn duplicated_webhooks_open_one_change_and_act_once() {
    let l = Listening::start("dup-webhook=1").await;
    let drive = async {
        l.first_pass().await;
        let (name, plan) = l.create_issue().await;
        eventually("the CHG is opened and named on the issue", async || {
            let opened = l.changes_for(&name).await.len() == 1;
            opened && !l.comments_of(&name).await.is_empty()
        })
        .await;
        // Every card arrived twice: ISSUE_CREATED and ISSUE_APPROVAL_REQUESTED.
        eventually("both copies of both cards are delivered", async || {
            let posts = l.h.sim.deliveries();
            let ours = posts.iter().filter(|d| d.link.ends_with(&name));
            ours.filter(|d| d.outcome == "delivered").count() == 4
        })
        .await;
        let change = l.changes_for(&name).await.remove(0);

        // The CAB approves; a plain wake stands in for a ServiceNow notification. The runner
        // approves the issue, whose ISSUE_APPROVED card (twice) wakes it to run prod.
        approve_as_cab(&l.h, &change).await;
        l.wake.wake([name.clone()]);
        eventually("the prod task runs after the duplicated ISSUE_APPROVED", async || {
            l.writes_to(&format!("{plan}/rollout/stages/prod/tasks:batchRun")) == 1
        })
        .await;
        eventually("ISSUE_APPROVED is delivered twice", async || {
            let posts = l.h.sim.deliveries();
            let approved = posts.iter().filter(|d| d.event == "ISSUE_APPROVED");
            approved.filter(|d| d.link.ends_with(&name) && d.outcome == "delivered").count() == 2
        })
        .await;
        // Let any pass the copies started finish, then count.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(l.changes_for(&name).await.len(), 1, "never a second CHG");
        assert_eq!(l.writes_to(&format!("{name}:approve")), 1, "one approval");
        assert_eq!(l.writes_to(&format!("{plan}/rollout/stages/prod/tasks:batchRun")), 1);
        let comments = l.comments_of(&name).await;
        let unique: std::collections::BTreeSet<&String> = comments.iter().collect();
        assert_eq!(unique.len(), comments.len(), "no comment twice: {comments:#?}");
        let chg = number(&change);
        let naming = comments.iter().filter(|c| c.contains(&chg)).count();
        assert!((1..=2).contains(&naming), "{comments:#?}");
        l.stop.request();
    };
    let (run, ()) = tokio::join!(l.engine.run_loop(l.wake.clone(), l.stop.clone()), drive);
    run.expect("the loop ends cleanly");
}

mod faults;
