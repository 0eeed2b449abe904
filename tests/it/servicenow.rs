//! Integration tests: the ServiceNow client over real HTTP against the emulator
//! (`sim::servicenow::router`), one test per behaviour the reference asks of a client.
//!
//! A thin layer in front of the emulator records every request (to prove what was or was not
//! sent) and injects the transport faults the emulator itself does not produce: a 429 with a
//! chosen `Retry-After`, a 503, a response lost after the write was applied.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use cabgate::servicenow::retry::RetryPolicy;
use cabgate::servicenow::{
    Approval, ApproverState, Client, ClientOptions, CloseCode, CorrelationId, Credentials,
    EncodedQuery, Error, Grant, Secret, State as ChgState, SysId,
};
use cabgate::sim::clock::Clock;
use cabgate::sim::servicenow::{World, router};
use chrono::TimeDelta;
use serde_json::{Map, Value, json};

const USER: &str = "cabgate";
const PASSWORD: &str = "integration-password-7f3a";
const CLIENT_SECRET: &str = "oauth-client-secret-91c2";

/// A request as the emulator received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: String,
    body: String,
    status: u16,
}

/// A fault to inject on the next request matching `method` and a path containing `path`.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer 429, with `Retry-After` when given, without calling the emulator.
    Throttle(Option<u64>),
    /// Answer 503 without calling the emulator.
    Unavailable,
    /// Let the emulator apply the request, then hold the answer past the client's timeout.
    LoseResponse(Duration),
}

/// Faults waiting for their request: (method, path fragment, fault).
type Faults = Vec<(&'static str, &'static str, Fault)>;

#[derive(Clone, Default)]
struct Wire {
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Faults>>,
}

impl Wire {
    fn inject(&self, method: &'static str, path: &'static str, fault: Fault) {
        self.faults.lock().unwrap().push((method, path, fault));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.path.contains(path)).count()
    }
}

async fn wire_layer(State(wire): State<Wire>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let mut seen = Seen {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
    };
    let fault = {
        let mut faults = wire.faults.lock().unwrap();
        let at = faults.iter().position(|(m, p, _)| *m == method && path.contains(p));
        at.map(|i| faults.remove(i).2)
    };
    let response = match fault {
        Some(Fault::Throttle(retry_after)) => {
            let body = json!({"error": {"message": "Rate limit exceeded", "detail": null}});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            response
        }
        Some(Fault::Unavailable) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Some(Fault::LoseResponse(hold)) => {
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            // Recorded now: the client gives up before the held answer leaves.
            seen.status = response.status().as_u16();
            wire.seen.lock().unwrap().push(seen);
            tokio::time::sleep(hold).await;
            return response;
        }
        None => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    };
    seen.status = response.status().as_u16();
    wire.seen.lock().unwrap().push(seen);
    response
}

struct Sim {
    base: String,
    clock: Clock,
    wire: Wire,
    http: reqwest::Client,
}

fn world() -> Value {
    json!({
        "seed": 11,
        "users": [
            { "user_name": USER, "password": PASSWORD, "name": "CAB Gate",
              "email": "cabgate@acme.example" },
            { "user_name": "alice", "name": "Alice Approver", "email": "alice@acme.example" },
            { "user_name": "bob", "name": "Bob Board", "email": "bob@acme.example" }
        ],
        "groups": [
            { "name": "Change Advisory Board", "members": ["alice", "bob"] },
            { "name": "Database CAB", "members": ["bob"] },
            { "name": "DB Security", "members": ["bob"] }
        ],
        "cab": { "group": "Change Advisory Board", "rule": "any" },
        "oauth": {
            "client_credentials_enabled": true,
            "clients": [{ "client_id": "cabgate-client", "client_secret": CLIENT_SECRET,
                          "application_user": USER }]
        }
    })
}

async fn start(world: Value) -> Sim {
    let world: World = serde_json::from_value(world).unwrap();
    let clock = Clock::new();
    let wire = Wire::default();
    let app = router(world, clock.clone())
        .layer(middleware::from_fn_with_state(wire.clone(), wire_layer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Sim { base: format!("http://{addr}"), clock, wire, http: reqwest::Client::new() }
}

fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy::fast(),
        timeout: Duration::from_secs(1),
        page_size: 2,
        ..ClientOptions::default()
    }
}

fn basic() -> Credentials {
    Credentials::Basic { user: USER.into(), password: Secret::new(PASSWORD) }
}

impl Sim {
    fn client(&self) -> Client {
        Client::new(&self.base, basic(), options()).unwrap()
    }

    fn client_with(&self, credentials: Credentials, options: ClientOptions) -> Client {
        Client::new(&self.base, credentials, options).unwrap()
    }

    /// Every row of a table as the emulator holds it (no ACL, no auth).
    async fn dump(&self, table: &str) -> Vec<Value> {
        let url = format!("{}/_sim/table/{table}", self.base);
        let body: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        body["result"].as_array().cloned().unwrap_or_default()
    }

    async fn control(&self, chg: &str, action: &str, body: Value) {
        let url = format!("{}/_sim/change_request/{chg}/{action}", self.base);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{action}: {}", response.text().await.unwrap());
    }
}

fn cid(text: &str) -> CorrelationId {
    CorrelationId::parse(text).unwrap()
}

fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
}

async fn new_change(client: &Client, key: &str) -> SysId {
    let group = client.group_sys_id("Database CAB").await.unwrap().unwrap();
    let body = fields(&[
        ("short_description", "[Bytebase] add index"),
        ("assignment_group", group.as_str()),
    ]);
    let created = client.create_change(&cid(key), &body).await.unwrap();
    assert!(created.created);
    created.sys_id
}

#[tokio::test]
async fn create_looks_up_first_and_never_duplicates() {
    let sim = start(world()).await;
    let client = sim.client();
    let key = cid("projects/payments/issues/1");
    let body = fields(&[("short_description", "[Bytebase] add index")]);
    let first = client.create_change(&key, &body).await.unwrap();
    assert!(first.created);
    assert!(first.number.starts_with("CHG"));
    let second = client.create_change(&key, &body).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.sys_id, first.sys_id);
    assert_eq!(sim.wire.count("POST", "/change_request"), 1);

    let change = client.find_change(&key).await.unwrap().unwrap();
    assert_eq!(change.number, first.number);
    assert_eq!(change.state, ChgState::New);
    assert_eq!(change.approval, Approval::NotRequested);
    assert_eq!(change.correlation_id, key.as_str());
    assert_eq!(client.get_change(&first.sys_id).await.unwrap().unwrap(), change);

    // Every call used the v2 Table API with fields, stored values and bare references.
    for seen in sim.wire.seen() {
        assert!(seen.path.starts_with("/api/now/v2/table/"), "{}", seen.path);
        if seen.method == "GET" {
            assert!(seen.query.contains("sysparm_fields="), "{}", seen.query);
            assert!(seen.query.contains("sysparm_exclude_reference_link=true"));
        }
    }
    let lists = sim
        .wire
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.query.contains("sysparm_query"));
    for seen in lists {
        assert!(seen.query.contains("sysparm_display_value=false"));
        assert!(seen.query.contains("ORDERBY"), "a list must be ordered: {}", seen.query);
    }
}

#[tokio::test]
async fn lost_create_response_is_looked_up_not_posted_again() {
    let sim = start(world()).await;
    let client = sim.client();
    sim.wire.inject("POST", "/change_request", Fault::LoseResponse(Duration::from_secs(3)));
    let key = cid("projects/payments/issues/2");
    let created = client.create_change(&key, &fields(&[("short_description", "x")])).await;
    let created = created.unwrap();
    assert!(!created.created, "the CHG the lost POST made must be found, not made again");
    assert_eq!(sim.wire.count("POST", "/change_request"), 1);
    let rows = sim.dump("change_request").await;
    assert_eq!(rows.iter().filter(|r| r["correlation_id"] == key.as_str()).count(), 1);
}

#[tokio::test]
async fn create_refused_by_a_503_is_looked_up_then_posted_again() {
    let sim = start(world()).await;
    let client = sim.client();
    sim.wire.inject("POST", "/change_request", Fault::Unavailable);
    let key = cid("projects/payments/issues/3");
    let created = client.create_change(&key, &fields(&[("short_description", "x")])).await;
    assert!(created.unwrap().created);
    assert_eq!(sim.wire.count("POST", "/change_request"), 2);
    let gets_between = sim
        .wire
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.query.contains("correlation_id%3Dprojects"))
        .count();
    assert_eq!(gets_between, 2, "one lookup before each POST");
    let rows = sim.dump("change_request").await;
    assert_eq!(rows.iter().filter(|r| r["correlation_id"] == key.as_str()).count(), 1);
}

#[tokio::test]
async fn fields_the_instance_drops_are_reported() {
    let sim = start(world()).await;
    let client = sim.client();
    let key = cid("projects/p/issues/40");
    let body = fields(&[("short_description", "x"), ("justifcation", "typo in the template")]);
    let created = client.create_change(&key, &body).await.unwrap();
    assert!(created.created);
    assert_eq!(created.unapplied, ["justifcation"]);

    let err = client
        .update_change(&created.sys_id, &fields(&[("description", "ok"), ("no_such_field", "x")]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::FieldsNotStored { ref fields, .. } if fields == &["no_such_field"])
    );
    let ok = client.update_change(&created.sys_id, &fields(&[("description", "new text")])).await;
    assert!(ok.is_ok(), "{ok:?}");
    let err = client.update_change(&created.sys_id, &fields(&[("state", "-1")])).await;
    assert!(matches!(err, Err(Error::Config(_))), "state goes through set_state");
}

#[tokio::test]
async fn a_read_whose_response_is_lost_is_retried() {
    let sim = start(world()).await;
    let client = sim.client();
    sim.wire.inject("GET", "/change_request", Fault::LoseResponse(Duration::from_secs(3)));
    assert!(client.find_change(&cid("projects/p/issues/41")).await.unwrap().is_none());
    assert_eq!(sim.wire.count("GET", "/change_request"), 2);
}

#[tokio::test]
async fn a_work_note_whose_response_is_lost_is_not_written_twice() {
    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "projects/p/issues/42").await;
    sim.wire.inject("PATCH", "/change_request", Fault::LoseResponse(Duration::from_secs(3)));
    client.add_work_note(&id, "Stage prod started").await.unwrap();
    assert_eq!(sim.wire.count("PATCH", "/change_request"), 1);
    let notes = client.journal(&id).await.unwrap();
    assert_eq!(notes.iter().filter(|e| e.value == "Stage prod started").count(), 1);
}

#[tokio::test]
async fn invalid_ids_are_refused_before_any_request() {
    let sim = start(world()).await;
    let client = sim.client();
    for bad in ["", "a^b", "a,b", "has space", &"x".repeat(101)] {
        assert!(matches!(CorrelationId::parse(bad), Err(Error::InvalidCorrelationId { .. })));
    }
    for bad in ["", "null", "undefined", "0123"] {
        assert!(matches!(SysId::parse(bad), Err(Error::InvalidSysId { .. })));
    }
    assert!(client.find_changes(&[]).await.unwrap().is_empty());
    let err = client.group_sys_id("x^ORname!=y").await.unwrap_err();
    assert!(matches!(err, Error::InvalidQueryValue { .. }), "{err}");
    assert!(client.group_sys_id("").await.is_err());
    assert!(sim.wire.seen().is_empty(), "{:?}", sim.wire.seen());
}

#[tokio::test]
async fn lists_follow_next_links_across_short_and_empty_pages() {
    // Rows an ACL hides are dropped after the limit, so pages come back short or empty.
    let mut world = world();
    world["acl"] = json!({ "hidden_rows": { "change_request": "category=Secret" } });
    let rows: Vec<Value> = (0..12)
        .map(|i| {
            let category = if i % 3 == 0 { "Database" } else { "Secret" };
            json!({ "short_description": format!("chg {i}"), "category": category,
                    "correlation_id": format!("bb:projects/p/issues/{i}") })
        })
        .collect();
    world["change_requests"] = Value::Array(rows);
    let sim = start(world).await;
    let client = sim.client();
    let found = client.changes_updated_since(&cid("bb:"), None).await.unwrap();
    let mut ids: Vec<&str> = found.changes.iter().map(|c| c.correlation_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "bb:projects/p/issues/0",
            "bb:projects/p/issues/3",
            "bb:projects/p/issues/6",
            "bb:projects/p/issues/9"
        ]
    );
    let pages = sim.wire.count("GET", "/change_request");
    assert_eq!(pages, 6, "12 rows at 2 a page, whatever each page held");
}

#[tokio::test]
async fn batched_read_splits_long_in_lists() {
    let mut world = world();
    let rows: Vec<Value> = (0..30)
        .map(|i| {
            let key = format!("projects/p/issues/{i}");
            json!({ "short_description": "x", "correlation_id": key })
        })
        .collect();
    world["change_requests"] = Value::Array(rows);
    let sim = start(world).await;
    let options = ClientOptions { page_size: 100, max_in_list_len: 300, ..options() };
    let client = sim.client_with(basic(), options);
    let wanted: Vec<CorrelationId> = (0..30)
        .map(|i| cid(&format!("projects/p/issues/{i}")))
        .chain([cid("projects/p/issues/99")])
        .collect();
    let found = client.find_changes(&wanted).await.unwrap();
    assert_eq!(found.len(), 30);
    let calls: Vec<Seen> = sim.wire.seen();
    assert!(calls.len() > 1 && calls.len() < 31, "{} calls", calls.len());
    assert!(calls.iter().all(|s| s.query.contains("correlation_idIN")));
}

#[tokio::test]
async fn active_changes_and_batched_reads_by_sys_id() {
    let sim = start(world()).await;
    let options = ClientOptions { max_in_list_len: 80, ..options() };
    let client = sim.client_with(basic(), options);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(new_change(&client, &format!("bb:projects/p/issues/{i}")).await);
    }
    new_change(&client, "other:projects/p/issues/9").await;
    client.cancel_change(&ids[1], "issue canceled").await.unwrap();

    let active = client.active_changes(&cid("bb:")).await.unwrap();
    let mut keys: Vec<&str> = active.iter().map(|c| c.correlation_id.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["bb:projects/p/issues/0", "bb:projects/p/issues/2"]);
    assert!(active.iter().all(|c| c.active));

    let before = sim.wire.count("GET", "/change_request");
    let mut wanted = ids.clone();
    wanted.push(SysId::parse("ffffffffffffffffffffffffffffffff").unwrap());
    let found = client.get_changes(&wanted).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().any(|c| c.sys_id == ids[1] && !c.active));
    let calls = sim.wire.count("GET", "/change_request") - before;
    assert!(calls >= 2, "an 80-byte budget splits four ids: {calls} calls");
    assert!(client.get_changes(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn watermark_never_passes_the_newest_row_seen() {
    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "bb:projects/p/issues/1").await;
    let scope = cid("bb:");
    let first = client.changes_updated_since(&scope, None).await.unwrap();
    assert_eq!(first.changes.len(), 1);
    let mark = first.watermark.unwrap();
    assert_eq!(Some(mark), first.changes[0].sys_updated_on);

    // Time passes with no update: the mark stays, the last second is read again.
    sim.clock.advance(TimeDelta::minutes(10));
    let quiet = client.changes_updated_since(&scope, Some(mark)).await.unwrap();
    assert_eq!(quiet.watermark, Some(mark));
    assert_eq!(quiet.changes.len(), 1);
    assert!(sim.wire.seen().last().unwrap().query.contains("sys_updated_on%3E%3D"));

    client.update_change(&id, &fields(&[("description", "updated")])).await.unwrap();
    let moved = client.changes_updated_since(&scope, Some(mark)).await.unwrap();
    let newest = moved.changes.last().unwrap().sys_updated_on.unwrap();
    assert!(newest > mark);
    assert_eq!(moved.watermark, Some(newest));
}

#[tokio::test]
async fn full_cycle_with_verified_states_approver_and_journal() {
    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "projects/p/issues/5").await;
    let chg = client.set_state(&id, &ChgState::Assess).await.unwrap();
    assert_eq!(chg.approval, Approval::Requested);

    sim.control(&chg.number, "approve", json!({"approver": "bob", "comment": "LGTM, CAB 12/3"}))
        .await;
    let approved = client.get_change(&id).await.unwrap().unwrap();
    assert_eq!(approved.approval, Approval::Approved);
    assert_eq!(approved.state, ChgState::Scheduled);

    let approvers = client.approvers(&id).await.unwrap();
    let decisive: Vec<_> = approvers.iter().filter(|a| a.state.is_decisive()).collect();
    assert_eq!(decisive.len(), 1, "{approvers:?}");
    assert_eq!(decisive[0].state, ApproverState::Approved);
    assert_eq!(decisive[0].user_name, "bob");
    assert_eq!(decisive[0].email, "bob@acme.example");
    assert_eq!(decisive[0].comments, "LGTM, CAB 12/3");
    assert_eq!(decisive[0].display_name(), "bob");

    client.add_work_note(&id, "Rollout started by cabgate").await.unwrap();
    let journal = client.journal(&id).await.unwrap();
    let notes: Vec<&str> =
        journal.iter().filter(|e| e.element == "work_notes").map(|e| e.value.as_str()).collect();
    assert_eq!(notes, ["Rollout started by cabgate"]);
    assert_eq!(journal.last().unwrap().created_by, USER);

    let closed = client.close_change(&id, CloseCode::Successful, "All tasks done").await.unwrap();
    assert_eq!(closed.state, ChgState::Closed);
    assert_eq!(closed.close_code, "successful");
    assert_eq!(closed.close_notes, "All tasks done");
    // Close fields went in one PATCH before any state change; state moved one step at a time.
    let patches: Vec<Value> = sim
        .wire
        .seen()
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    let tail: Vec<&Value> = patches.iter().rev().take(4).rev().collect();
    assert!(tail[0].get("close_code").is_some() && tail[0].get("state").is_none());
    let states: Vec<&str> = tail[1..].iter().map(|p| p["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["-1", "0", "3"]);
    // Closing again is a no-op.
    assert_eq!(client.close_change(&id, CloseCode::Successful, "x").await.unwrap(), closed);
}

#[tokio::test]
async fn a_state_change_answered_200_but_refused_is_an_error() {
    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "projects/p/issues/6").await;
    // New → Implement is not in the model: the instance answers 200 and changes nothing.
    let err = client.set_state(&id, &ChgState::Implement).await.unwrap_err();
    assert!(matches!(err, Error::StateNotChanged { .. }), "{err}");
    assert!(err.to_string().contains("still new (-5)"), "{err}");
    let patch = sim.wire.seen().into_iter().rfind(|s| s.method == "PATCH").unwrap();
    assert_eq!(patch.status, 200);

    // On hold blocks Implement → Review: closing must fail, not report success.
    client.set_state(&id, &ChgState::Assess).await.unwrap();
    let number = client.get_change(&id).await.unwrap().unwrap().number;
    sim.control(&number, "approve", json!({"approver": "alice", "comment": "ok"})).await;
    client.set_state(&id, &ChgState::Implement).await.unwrap();
    sim.control(&number, "hold", json!({"on_hold": true, "reason": "freeze"})).await;
    let err = client.close_change(&id, CloseCode::Successful, "done").await.unwrap_err();
    assert!(matches!(err, Error::StateNotChanged { .. }), "{err}");
    let chg = client.get_change(&id).await.unwrap().unwrap();
    assert_eq!(chg.state, ChgState::Implement);
    assert!(chg.on_hold);
}

#[tokio::test]
async fn rejection_and_cancel() {
    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "projects/p/issues/7").await;
    let chg = client.set_state(&id, &ChgState::Assess).await.unwrap();
    sim.control(&chg.number, "reject", json!({"approver": "alice", "comment": "no rollback plan"}))
        .await;
    let rejected = client.get_change(&id).await.unwrap().unwrap();
    // A rejected normal change drops back to New: the approval says it, not the state.
    assert_eq!(rejected.approval, Approval::Rejected);
    assert_eq!(rejected.state, ChgState::New);
    let approvers = client.approvers(&id).await.unwrap();
    let who = approvers.iter().find(|a| a.state == ApproverState::Rejected).unwrap();
    assert_eq!((who.user_name.as_str(), who.comments.as_str()), ("alice", "no rollback plan"));

    let canceled = client.cancel_change(&id, "Issue canceled in Bytebase").await.unwrap();
    assert_eq!(canceled.state, ChgState::Canceled);
    assert!(client.cancel_change(&id, "again").await.is_ok());
}

#[tokio::test]
async fn unknown_states_are_kept_and_missing_fields_named() {
    let mut world = world();
    world["extra_states"] = json!([{ "value": "-6", "label": "Peer Review" }]);
    world["change_requests"] = json!([
        { "short_description": "custom", "state": "-6", "correlation_id": "projects/p/issues/8" }
    ]);
    let sim = start(world.clone()).await;
    let change = sim.client().find_change(&cid("projects/p/issues/8")).await.unwrap().unwrap();
    assert_eq!(change.state, ChgState::Other("-6".into()));
    assert_eq!(change.state.name(), "unknown");

    world["acl"] = json!({ "hidden_fields": { "change_request": ["on_hold"] } });
    let sim = start(world).await;
    let err = sim.client().find_change(&cid("projects/p/issues/8")).await.unwrap_err();
    assert!(matches!(err, Error::MissingField { ref field, .. } if field == "on_hold"), "{err}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sim = start(world()).await;
    let client = sim.client();
    sim.wire.inject("GET", "/change_request", Fault::Throttle(Some(1)));
    let started = Instant::now();
    assert!(client.find_change(&cid("projects/p/issues/9")).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(sim.wire.count("GET", "/change_request"), 2);
}

#[tokio::test]
async fn a_429_without_timing_waits_at_least_the_floor() {
    let sim = start(world()).await;
    let retry = RetryPolicy { rate_limit_floor: Duration::from_millis(300), ..RetryPolicy::fast() };
    let client = sim.client_with(basic(), ClientOptions { retry, ..options() });
    sim.wire.inject("GET", "/change_request", Fault::Throttle(None));
    let started = Instant::now();
    client.find_change(&cid("projects/p/issues/9")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_instance_rate_limit_gives_up_then_recovers_next_hour() {
    let mut world = world();
    world["rate_limits"] = json!([{ "user": USER, "per_hour": 2 }]);
    let sim = start(world).await;
    let retry = RetryPolicy {
        max_attempts: 3,
        rate_limit_cap: Duration::from_millis(50),
        ..RetryPolicy::fast()
    };
    let client = sim.client_with(basic(), ClientOptions { retry, ..options() });
    let key = cid("projects/p/issues/10");
    client.find_change(&key).await.unwrap();
    client.find_change(&key).await.unwrap();
    let err = client.find_change(&key).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { attempts: 3, .. }), "{err}");
    assert!(err.is_transient());
    let throttled = sim.wire.seen().into_iter().filter(|s| s.status == 429).count();
    assert_eq!(throttled, 3);
    sim.clock.advance(TimeDelta::hours(1));
    assert!(client.find_change(&key).await.is_ok());
}

#[tokio::test]
async fn server_errors_are_retried_client_errors_are_not() {
    let sim = start(world()).await;
    let client = sim.client();
    sim.wire.inject("GET", "/change_request", Fault::Unavailable);
    sim.wire.inject("GET", "/change_request", Fault::Unavailable);
    client.find_change(&cid("projects/p/issues/11")).await.unwrap();
    assert_eq!(sim.wire.count("GET", "/change_request"), 3);

    let query = EncodedQuery::new().constant("active=true").order_by("sys_id");
    let err = client.list_records("no_such_table", &query, &["sys_id"]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "ServiceNow GET no_such_table: HTTP 400: Invalid table no_such_table"
    );
    assert_eq!(sim.wire.count("GET", "/no_such_table"), 1);

    let missing = SysId::parse("0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(client.get_change(&missing).await.unwrap(), None);
}

#[tokio::test]
async fn wrong_credentials_fail_once_without_retry() {
    let sim = start(world()).await;
    let wrong = Credentials::Basic { user: USER.into(), password: Secret::new("wrong") };
    let client = sim.client_with(wrong, options());
    let err = client.find_change(&cid("projects/p/issues/12")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.is_transient());
    assert_eq!(sim.wire.seen().len(), 1);
}

fn oauth_password() -> Credentials {
    Credentials::OAuth {
        client_id: "cabgate-client".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        grant: Grant::Password { user: USER.into(), password: Secret::new(PASSWORD) },
    }
}

fn grants(sim: &Sim) -> Vec<String> {
    sim.wire
        .seen()
        .iter()
        .filter(|s| s.path == "/oauth_token.do")
        .map(|s| {
            url::form_urlencoded::parse(s.body.as_bytes())
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn oauth_token_is_refreshed_once_on_401_after_expiry() {
    let sim = start(world()).await;
    let client = sim.client_with(oauth_password(), options());
    let key = cid("projects/p/issues/13");
    client.find_change(&key).await.unwrap();
    client.find_change(&key).await.unwrap();
    assert_eq!(grants(&sim), ["password"], "the token is cached");
    // The instance's clock passes the token's 30 minutes; the client's own clock has not.
    sim.clock.advance(TimeDelta::minutes(31));
    client.find_change(&key).await.unwrap();
    assert_eq!(grants(&sim), ["password", "refresh_token"]);
    let unauthorized = sim.wire.seen().iter().filter(|s| s.status == 401).count();
    assert_eq!(unauthorized, 1);
    assert!(
        sim.wire
            .seen()
            .iter()
            .filter(|s| s.path.starts_with("/api/"))
            .all(|s| s.authorization.starts_with("Bearer "))
    );
}

#[tokio::test]
async fn oauth_token_is_refreshed_ahead_of_expiry() {
    let sim = start(world()).await;
    // A margin longer than the token's life: every call finds it about to expire.
    let options = ClientOptions { refresh_margin: Duration::from_secs(1800), ..options() };
    let client = sim.client_with(oauth_password(), options);
    let key = cid("projects/p/issues/14");
    client.find_change(&key).await.unwrap();
    client.find_change(&key).await.unwrap();
    assert_eq!(grants(&sim), ["password", "refresh_token"]);
    assert!(sim.wire.seen().iter().all(|s| s.status != 401));
}

#[tokio::test]
async fn oauth_client_credentials_grant() {
    let sim = start(world()).await;
    let credentials = Credentials::OAuth {
        client_id: "cabgate-client".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        grant: Grant::ClientCredentials,
    };
    let client = sim.client_with(credentials, options());
    let id = new_change(&client, "projects/p/issues/15").await;
    assert!(client.get_change(&id).await.unwrap().is_some());
    assert_eq!(grants(&sim), ["client_credentials"]);

    let wrong = Credentials::OAuth {
        client_id: "cabgate-client".into(),
        client_secret: Secret::new("nope"),
        grant: Grant::ClientCredentials,
    };
    let err = sim.client_with(wrong, options()).get_change(&id).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn no_credential_appears_in_trace_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // NOTE: with a single scoped dispatcher alive, tracing computes a callsite's interest from
    // the default of whichever thread hits it first; a test on another thread (no subscriber)
    // would cache "never" for the client's callsites. A second live dispatcher makes tracing
    // ask every dispatcher instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let sim = start(world()).await;
    let client = sim.client();
    let id = new_change(&client, "projects/p/issues/16").await;
    client.add_work_note(&id, "note").await.unwrap();
    let wrong = Credentials::Basic { user: USER.into(), password: Secret::new("wrong-pw-123") };
    let _ = sim.client_with(wrong, options()).get_change(&id).await;
    let oauth = sim.client_with(oauth_password(), options());
    oauth.get_change(&id).await.unwrap();
    sim.clock.advance(TimeDelta::minutes(31));
    oauth.get_change(&id).await.unwrap();
    sim.wire.inject("GET", "/change_request", Fault::Throttle(Some(0)));
    oauth.get_change(&id).await.unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("ServiceNow answered"), "no client events captured: {logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"));
    let mut secrets = vec![PASSWORD.to_owned(), CLIENT_SECRET.to_owned(), "wrong-pw-123".into()];
    for seen in sim.wire.seen() {
        if let Some(token) = seen.authorization.strip_prefix("Bearer ") {
            secrets.push(token.to_owned());
        }
        if let Some(basic) = seen.authorization.strip_prefix("Basic ") {
            secrets.push(basic.to_owned());
        }
        for (key, value) in url::form_urlencoded::parse(seen.body.as_bytes()) {
            if key == "refresh_token" {
                secrets.push(value.into_owned());
            }
        }
    }
    assert!(secrets.len() > 5, "tokens were captured: {secrets:?}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a credential leaked into the logs");
    }
}

/// Starts both emulators with `sim::start` and seeded faults on ServiceNow (5xx, 429,
/// connection resets before the handler, responses lost after it).
async fn start_faulty(seed: u64) -> cabgate::sim::Running {
    use cabgate::sim::faults::{FaultSpec, Server};
    let world = cabgate::sim::World {
        servicenow: serde_json::from_value(world()).unwrap(),
        ..Default::default()
    };
    let faults = FaultSpec {
        error_5xx: 0.08,
        too_many: 0.04,
        reset: 0.08,
        lost: 0.1,
        server: Some(Server::Servicenow),
        ..FaultSpec::none()
    };
    let options = cabgate::sim::Options { seed, faults, ..Default::default() };
    cabgate::sim::start(world, options).await.unwrap()
}

#[tokio::test]
async fn seeded_faults_never_yield_two_changes_or_a_false_success() {
    let http = reqwest::Client::new();
    for seed in 1..=4 {
        let sim = start_faulty(seed).await;
        let base = sim.servicenow_url().to_owned();
        // The fault layer's 429s ask for 1 s; the cap keeps this test fast.
        let retry = RetryPolicy {
            max_attempts: 8,
            rate_limit_cap: Duration::from_millis(20),
            ..RetryPolicy::fast()
        };
        let client = Client::new(&base, basic(), ClientOptions { retry, ..options() }).unwrap();
        for issue in 0..3 {
            let key = cid(&format!("projects/p/issues/{issue}"));
            let group = client.group_sys_id("Database CAB").await.unwrap().unwrap();
            let body = fields(&[("short_description", "x"), ("assignment_group", group.as_str())]);
            // Two runners' worth of creates for the same issue.
            let first = client.create_change(&key, &body).await.unwrap();
            let again = client.create_change(&key, &body).await.unwrap();
            assert_eq!(first.sys_id, again.sys_id, "seed {seed}");
            let chg = client.set_state(&first.sys_id, &ChgState::Assess).await.unwrap();
            let url = format!("{base}/_sim/change_request/{}/approve", chg.number);
            let approve = http.post(url).json(&json!({"approver": "alice", "comment": "ok"}));
            assert!(approve.send().await.unwrap().status().is_success());
            client.add_work_note(&first.sys_id, "rolling out").await.unwrap();
            let closed = client.close_change(&first.sys_id, CloseCode::Successful, "done").await;
            assert_eq!(closed.unwrap().state, ChgState::Closed, "seed {seed}");
            let notes = client.journal(&first.sys_id).await.unwrap();
            let count = notes.iter().filter(|n| n.value == "rolling out").count();
            assert_eq!(count, 1, "seed {seed}: a work note must not be duplicated");
        }
        let rows: Value = http
            .get(format!("{base}/_sim/table/change_request"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = rows["result"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "seed {seed}: one CHG per issue");
        assert!(rows.iter().all(|r| r["state"] == "3"));
        let faults: Vec<&str> = sim.requests().iter().filter_map(|e| e.fault).collect();
        for kind in ["5xx", "reset", "lost"] {
            assert!(faults.contains(&kind), "seed {seed}: no {kind} was injected: {faults:?}");
        }
    }
}
