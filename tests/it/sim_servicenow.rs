//! Conformance tests of the ServiceNow emulator, over HTTP only, through `sim::start`: one test
//! per pitfall of §7 of the ServiceNow reference, and the Table API, auth, change model and
//! approval behaviours the clients rely on.

use cabgate::sim::clock::Clock;
use cabgate::sim::servicenow::World;
use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The ServiceNow emulator started by `sim::start` (recording layer included, no faults).
struct Sim {
    base: String,
    clock: Clock,
    http: reqwest::Client,
    _running: cabgate::sim::Running,
}

const USER: &str = "cabgate";
const PASSWORD: &str = "s3cret";

fn world() -> Value {
    json!({
        "seed": 42,
        "users": [
            { "user_name": USER, "password": PASSWORD, "name": "CAB Gate",
              "email": "cabgate@acme.example" },
            { "user_name": "alice", "password": "a", "name": "Alice Approver",
              "email": "alice@acme.example", "time_zone": "+02:00",
              "date_format": "%d.%m.%Y %H:%M:%S" },
            { "user_name": "bob", "name": "Bob Board", "email": "bob@acme.example" },
            { "user_name": "carol", "name": "Carol Chair", "email": "carol@acme.example" },
            { "user_name": "admin", "name": "System Administrator", "email": "admin@acme.example" }
        ],
        "groups": [
            { "name": "Change Advisory Board", "members": ["alice", "bob", "carol"],
              "manager": "carol" },
            { "name": "Database CAB", "members": ["bob"] }
        ],
        "cab": { "group": "Change Advisory Board", "rule": "any" },
        "oauth": {
            "clients": [
                { "client_id": "cid", "client_secret": "csecret", "application_user": USER }
            ]
        }
    })
}

async fn start(world: Value) -> Sim {
    let servicenow: World = serde_json::from_value(world).expect("world");
    let world = cabgate::sim::World { servicenow, ..cabgate::sim::World::default() };
    let clock = Clock::new();
    let options =
        cabgate::sim::Options { clock: clock.clone(), ..cabgate::sim::Options::default() };
    let running = cabgate::sim::start(world, options).await.expect("sim starts");
    let base = running.servicenow_url().to_string();
    Sim { base, clock, http: reqwest::Client::new(), _running: running }
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).basic_auth(USER, Some(PASSWORD)).send().await.expect("get")
    }

    async fn send(&self, method: reqwest::Method, path: &str, json: Value) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .header("Accept", "application/json")
            .json(&json)
            .send()
            .await
            .expect("send")
    }

    async fn post(&self, path: &str, json: Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, json).await
    }

    async fn patch(&self, path: &str, json: Value) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, path, json).await
    }

    /// Creates a normal CHG assigned to the CAB and returns its stored values.
    async fn create_chg(&self, extra: Value) -> Value {
        let group = self.group_id("Change Advisory Board").await;
        let mut fields = json!({ "short_description": "Add index", "assignment_group": group });
        if let (Some(f), Some(e)) = (fields.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        let response = self
            .post("/api/now/v2/table/change_request?sysparm_exclude_reference_link=true", fields)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        body(response).await["result"].clone()
    }

    async fn chg(&self, sys_id: &str) -> Value {
        let path = format!(
            "/api/now/v2/table/change_request/{sys_id}?sysparm_exclude_reference_link=true"
        );
        body(self.get(&path).await).await["result"].clone()
    }

    async fn set_state(&self, sys_id: &str, state: &str) -> Value {
        let path = format!("/api/now/v2/table/change_request/{sys_id}");
        let response = self.patch(&path, json!({ "state": state })).await;
        assert_eq!(response.status(), StatusCode::OK);
        self.chg(sys_id).await
    }

    async fn group_id(&self, name: &str) -> String {
        let path = format!("/api/now/v2/table/sys_user_group?sysparm_query=name={name}");
        body(self.get(&path).await).await["result"][0]["sys_id"].as_str().expect("group").into()
    }

    async fn control(&self, path: &str, json: Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(&json).send().await.expect("control")
    }

    async fn approvers(&self, chg: &str) -> Vec<Value> {
        let path = format!(
            "/api/now/v2/table/sysapproval_approver\
             ?sysparm_query=sysapproval={chg}^ORDERBYsys_created_on\
             &sysparm_fields=sys_id,state,approver.user_name,sys_updated_by\
             &sysparm_exclude_reference_link=true"
        );
        body(self.get(&path).await).await["result"].as_array().expect("rows").clone()
    }
}

#[tokio::test]
async fn v1_answers_404_on_zero_hits_and_v2_an_empty_list() {
    let sim = start(world()).await;
    let v1 = sim.get("/api/now/table/change_request?sysparm_query=number=CHG9").await;
    assert_eq!(v1.status(), StatusCode::NOT_FOUND);
    let v1 = body(v1).await;
    assert_eq!(v1["status"], "failure");
    assert_eq!(v1["error"]["message"], "No Record found");
    let v2 = sim.get("/api/now/v2/table/change_request?sysparm_query=number=CHG9").await;
    assert_eq!(v2.status(), StatusCode::OK);
    assert_eq!(body(v2).await, json!({ "result": [] }));
}

#[tokio::test]
async fn a_normal_change_is_approved_by_the_cab_and_scheduled() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({ "correlation_id": "bytebase:p/1" })).await;
    let id = chg["sys_id"].as_str().unwrap();
    assert_eq!(chg["number"], "CHG0030001");
    assert_eq!(chg["state"], "-5");
    assert_eq!(chg["approval"], "not requested");

    let assessed = sim.set_state(id, "-4").await;
    assert_eq!(assessed["state"], "-4");
    assert_eq!(assessed["approval"], "requested");
    let rows = sim.approvers(id).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["state"] == "requested"));

    let approved = sim
        .control(
            "/_sim/change_request/CHG0030001/approve",
            json!({ "approver": "bob", "comment": "fine by me" }),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let chg = sim.chg(id).await;
    assert_eq!(chg["state"], "-2");
    assert_eq!(chg["approval"], "approved");
    let rows = sim.approvers(id).await;
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["approver.user_name"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![("alice", "not_required"), ("bob", "approved"), ("carol", "not_required")]
    );
    let bob = rows.iter().find(|r| r["approver.user_name"] == "bob").unwrap();
    assert_eq!(bob["sys_updated_by"], "bob");
}

async fn token(sim: &Sim, form: &[(&str, &str)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    sim.http
        .post(sim.url("/oauth_token.do"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token")
}

async fn get_with_bearer(sim: &Sim, token: &str) -> reqwest::Response {
    sim.http
        .get(sim.url("/api/now/v2/table/sys_user?sysparm_limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

#[tokio::test]
async fn oauth_tokens_expire_on_the_sim_clock_and_refresh() {
    let sim = start(world()).await;
    let password_grant = [
        ("grant_type", "password"),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("username", USER),
        ("password", PASSWORD),
    ];
    let response = token(&sim, &password_grant).await;
    assert_eq!(response.status(), StatusCode::OK);
    let grant = body(response).await;
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["expires_in"], 1799);
    let access = grant["access_token"].as_str().unwrap().to_string();
    let refresh = grant["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(get_with_bearer(&sim, &access).await.status(), StatusCode::OK);

    sim.clock.advance(TimeDelta::seconds(1800));
    let expired = get_with_bearer(&sim, &access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let expired = body(expired).await;
    assert_eq!(expired["error"]["message"], "User Not Authenticated");
    assert_eq!(expired["status"], "failure");

    let renewed = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let renewed = body(renewed).await;
    let access = renewed["access_token"].as_str().unwrap();
    assert_eq!(get_with_bearer(&sim, access).await.status(), StatusCode::OK);

    let wrong = token(&sim, &[("grant_type", "password"), ("client_id", "cid")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(wrong).await,
        json!({ "error_description": "access_denied", "error": "server_error" })
    );
}

/// `world()` with some keys replaced.
fn world_with(extra: Value) -> Value {
    let mut world = world();
    if let (Some(w), Some(e)) = (world.as_object_mut(), extra.as_object()) {
        w.extend(e.clone());
    }
    world
}

impl Sim {
    async fn get_as(&self, user: &str, password: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).basic_auth(user, Some(password)).send().await.expect("get")
    }

    /// Creates a CHG, moves it to Assess and has bob approve it: it is Scheduled.
    async fn scheduled_chg(&self) -> String {
        let chg = self.create_chg(json!({})).await;
        let id = chg["sys_id"].as_str().unwrap().to_string();
        assert_eq!(self.set_state(&id, "-4").await["state"], "-4");
        let path = format!("/_sim/change_request/{id}/approve");
        let approved = self.control(&path, json!({ "approver": "bob" })).await;
        assert_eq!(approved.status(), StatusCode::OK);
        id
    }

    async fn list(&self, path: &str) -> Vec<Value> {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        body(response).await["result"].as_array().expect("list").clone()
    }
}

fn assert_all_strings(value: &Value, context: &str) {
    match value {
        Value::String(_) => {}
        Value::Object(map) => {
            map.iter().for_each(|(k, v)| assert_all_strings(v, &format!("{context}.{k}")))
        }
        other => panic!("{context} is not a string: {other}"),
    }
}

#[tokio::test]
async fn pitfall_1_every_value_is_a_string() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({ "urgency": 2, "on_hold": false })).await;
    let id = chg["sys_id"].as_str().unwrap();
    for mode in ["false", "true", "all"] {
        let path = format!("/api/now/v2/table/change_request/{id}?sysparm_display_value={mode}");
        let record = body(sim.get(&path).await).await["result"].clone();
        assert_all_strings(&record, mode);
    }
    assert_eq!(chg["state"], "-5");
    assert_eq!(chg["urgency"], "2");
    assert_eq!(chg["on_hold"], "false");
    assert_eq!(chg["active"], "true");
    assert_eq!(chg["sys_mod_count"], "0");
    assert_eq!(chg["close_code"], "");
}

#[tokio::test]
async fn pitfall_2_display_values_follow_the_callers_locale() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({ "start_date": "2026-05-01 22:00:00" })).await;
    let id = chg["sys_id"].as_str().unwrap();
    let path = format!(
        "/api/now/v2/table/change_request/{id}?sysparm_fields=state,start_date,assignment_group"
    );
    let stored = body(sim.get_as("alice", "a", &path).await).await["result"].clone();
    assert_eq!(stored["state"], "-5");
    assert_eq!(stored["start_date"], "2026-05-01 22:00:00");

    let shown = body(sim.get_as("alice", "a", &format!("{path}&sysparm_display_value=true")).await)
        .await["result"]
        .clone();
    assert_eq!(shown["state"], "New");
    assert_eq!(shown["start_date"], "02.05.2026 00:00:00");
    assert_eq!(shown["assignment_group"]["display_value"], "Change Advisory Board");

    let both = body(
        sim.get_as(
            "alice",
            "a",
            &format!("{path}&sysparm_display_value=all&sysparm_exclude_reference_link=true"),
        )
        .await,
    )
    .await["result"]
        .clone();
    assert_eq!(both["state"], json!({ "display_value": "New", "value": "-5" }));
    assert_eq!(both["assignment_group"]["display_value"], "Change Advisory Board");
    assert_eq!(both["assignment_group"]["value"], chg["assignment_group"]);
}

#[tokio::test]
async fn pitfall_3_invalid_query_terms_are_ignored() {
    let sim = start(world()).await;
    sim.create_chg(json!({})).await;
    sim.create_chg(json!({})).await;
    let typo = sim.list("/api/now/v2/table/change_request?sysparm_query=nmber=CHG0030002").await;
    assert_eq!(typo.len(), 2, "a typo matches every row");
    let wrong_case =
        sim.list("/api/now/v2/table/change_request?sysparm_query=Number=CHG0030002").await;
    assert_eq!(wrong_case.len(), 2, "names are case-sensitive; a wrong case is a typo");
    let mixed =
        sim.list("/api/now/v2/table/change_request?sysparm_query=number=CHG0030002^nmber=x").await;
    assert_eq!(mixed.len(), 1, "the valid term still applies");
    assert_eq!(mixed[0]["number"], "CHG0030002");

    let strict = start(world_with(json!({ "invalid_query_returns_no_rows": true }))).await;
    strict.create_chg(json!({})).await;
    let typo = strict.list("/api/now/v2/table/change_request?sysparm_query=nmber=CHG0030001").await;
    assert!(typo.is_empty(), "glide.invalid_query.returns_no_rows turns a typo into no rows");
}

#[tokio::test]
async fn pitfall_4_acls_hide_fields_and_rows() {
    let sim = start(world_with(json!({
        "acl": {
            "hidden_fields": { "change_request": ["risk"] },
            "hidden_rows": { "change_request": "category=Secret" }
        }
    })))
    .await;
    let visible = sim.create_chg(json!({ "risk": "1" })).await;
    assert!(visible.get("risk").is_none(), "a hidden field vanishes");
    let secret = sim.create_chg(json!({ "category": "Secret" })).await;
    sim.create_chg(json!({})).await;

    let id = visible["sys_id"].as_str().unwrap();
    let path = format!("/api/now/v2/table/change_request/{id}?sysparm_fields=number,risk");
    let record = body(sim.get(&path).await).await["result"].clone();
    assert_eq!(record, json!({ "number": "CHG0030001" }));

    let path = format!("/api/now/v2/table/change_request/{}", secret["sys_id"].as_str().unwrap());
    let hidden = sim.get(&path).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let hidden = body(hidden).await;
    assert_eq!(
        hidden["error"]["detail"],
        "Record doesn't exist or ACL restricts the record retrieval"
    );

    let page = sim
        .get(
            "/api/now/v2/table/change_request?sysparm_query=ORDERBYnumber&sysparm_limit=2\
             &sysparm_fields=number",
        )
        .await;
    assert_eq!(page.headers()["x-total-count"], "3");
    let link = page.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    let rows = body(page).await["result"].as_array().unwrap().clone();
    assert_eq!(rows, vec![json!({ "number": "CHG0030001" })], "a short page while more rows exist");
    let next = sim
        .list(
            "/api/now/v2/table/change_request?sysparm_query=ORDERBYnumber&sysparm_limit=2\
             &sysparm_offset=2&sysparm_fields=number",
        )
        .await;
    assert_eq!(next, vec![json!({ "number": "CHG0030003" })]);
}

#[tokio::test]
async fn pitfall_5_a_refused_state_change_answers_200_and_changes_nothing() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.clock.advance(TimeDelta::seconds(5));
    let response = sim
        .patch(&format!("/api/now/v2/table/change_request/{id}"), json!({ "state": "-1" }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answered = body(response).await["result"].clone();
    assert_eq!(answered["state"], "-5", "New → Implement is not in the model");
    let reread = sim.chg(id).await;
    assert_eq!(reread["state"], "-5");
    assert_eq!(reread["sys_mod_count"], "0");
    assert_eq!(reread["sys_updated_on"], chg["sys_updated_on"]);

    let unassigned = sim.create_chg(json!({ "assignment_group": "" })).await;
    let unassigned_id = unassigned["sys_id"].as_str().unwrap();
    assert_eq!(sim.set_state(unassigned_id, "-4").await["state"], "-5", "Assess needs a group");
}

#[tokio::test]
async fn pitfall_6_close_through_review_with_close_fields() {
    let sim = start(world()).await;
    let id = sim.scheduled_chg().await;
    assert_eq!(sim.set_state(&id, "-1").await["state"], "-1");
    assert_eq!(sim.set_state(&id, "3").await["state"], "-1", "Implement → Closed skips Review");
    assert_eq!(sim.set_state(&id, "0").await["state"], "0");
    assert_eq!(sim.set_state(&id, "3").await["state"], "0", "Closed needs a close code");
    let path = format!("/api/now/v2/table/change_request/{id}");
    let closing = json!({ "close_code": "successful", "close_notes": "Rolled out by Bytebase" });
    assert_eq!(sim.patch(&path, closing).await.status(), StatusCode::OK);
    let closed = sim.set_state(&id, "3").await;
    assert_eq!(closed["state"], "3");
    assert_eq!(closed["active"], "false");
    assert_eq!(closed["close_code"], "successful");
}

#[tokio::test]
async fn implement_to_review_is_refused_while_on_hold() {
    let sim = start(world()).await;
    let id = sim.scheduled_chg().await;
    assert_eq!(sim.set_state(&id, "-1").await["state"], "-1");
    let hold = json!({ "on_hold": true, "reason": "waiting for the vendor", "by": "carol" });
    let held = sim.control(&format!("/_sim/change_request/{id}/hold"), hold).await;
    assert_eq!(held.status(), StatusCode::OK);
    assert_eq!(sim.set_state(&id, "0").await["state"], "-1");
    let release = json!({ "on_hold": false });
    sim.control(&format!("/_sim/change_request/{id}/hold"), release).await;
    assert_eq!(sim.set_state(&id, "0").await["state"], "0");
}

#[tokio::test]
async fn pitfall_7_dates_are_utc_without_a_zone_suffix() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    let created = chg["sys_created_on"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );

    let path = format!("/api/now/v2/table/change_request/{id}");
    sim.patch(&path, json!({ "start_date": "2026-05-01T22:00:00Z" })).await;
    assert_eq!(sim.chg(id).await["start_date"], "", "an ISO date is not a stored value");
    sim.patch(&path, json!({ "start_date": "2026-05-01 22:00:00" })).await;
    assert_eq!(sim.chg(id).await["start_date"], "2026-05-01 22:00:00");

    let as_alice = sim
        .http
        .patch(sim.url(&format!("{path}?sysparm_input_display_value=true")))
        .basic_auth("alice", Some("a"))
        .header("Accept", "application/json")
        .json(&json!({ "end_date": "02.05.2026 03:30:00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(as_alice.status(), StatusCode::OK);
    assert_eq!(sim.chg(id).await["end_date"], "2026-05-02 01:30:00", "alice types UTC+2");
}

#[tokio::test]
async fn pitfall_8_correlation_id_is_truncated_to_100_characters() {
    let sim = start(world()).await;
    let long = "bytebase:".to_string() + &"x".repeat(141);
    let description = "d".repeat(5000);
    let chg = sim
        .create_chg(json!({
            "correlation_id": long, "correlation_display": long, "description": description
        }))
        .await;
    assert_eq!(chg["correlation_id"].as_str().unwrap(), &long[..100]);
    assert_eq!(chg["correlation_display"].as_str().unwrap().len(), 100);
    assert_eq!(chg["description"].as_str().unwrap().len(), 5000, "max_length 4000 is not enforced");

    sim.create_chg(json!({ "correlation_id": "bytebase:a^b" })).await;
    let found = sim
        .list("/api/now/v2/table/change_request?sysparm_query=correlation_id=bytebase:a%5Eb")
        .await;
    assert!(found.is_empty(), "a ^ in the key splits the query");
}

#[tokio::test]
async fn pitfall_9_rejection_returns_the_change_to_new_and_resubmission_reruns_approvals() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.set_state(id, "-4").await;
    let rejection = json!({ "approver": "alice", "comment": "no backout plan" });
    let rejected = sim.control(&format!("/_sim/change_request/{id}/reject"), rejection).await;
    assert_eq!(rejected.status(), StatusCode::OK);
    let chg = sim.chg(id).await;
    assert_eq!(chg["state"], "-5");
    assert_eq!(chg["approval"], "rejected");

    let rows = sim.approvers(id).await;
    let alice = rows.iter().find(|r| r["approver.user_name"] == "alice").unwrap();
    assert_eq!(alice["state"], "rejected");
    assert!(
        rows.iter()
            .filter(|r| r["approver.user_name"] != "alice")
            .all(|r| r["state"] == "not_required")
    );
    let row = alice["sys_id"].as_str().unwrap();
    let comments = sim
        .list(&format!(
            "/api/now/v2/table/sys_journal_field\
             ?sysparm_query=name=sysapproval_approver^element_id={row}^element=comments"
        ))
        .await;
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0]["value"], "no backout plan");
    assert_eq!(comments[0]["sys_created_by"], "alice");

    let resubmitted = sim.set_state(id, "-4").await;
    assert_eq!(resubmitted["approval"], "requested");
    let rows = sim.approvers(id).await;
    assert_eq!(rows.len(), 6, "a new round, the old rows kept");
    assert_eq!(rows.iter().filter(|r| r["state"] == "requested").count(), 3);
    sim.control(&format!("/_sim/change_request/{id}/approve"), json!({ "approver": "carol" }))
        .await;
    let chg = sim.chg(id).await;
    assert_eq!((chg["state"].as_str(), chg["approval"].as_str()), (Some("-2"), Some("approved")));
}

#[tokio::test]
async fn pitfall_10_the_key_is_the_sys_id_not_the_number() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({ "correlation_id": "bytebase:h:p/7:prod" })).await;
    let by_number = sim.get("/api/now/v2/table/change_request/CHG0030001").await;
    assert_eq!(by_number.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(by_number).await["error"]["message"], "No Record found");
    let by_key = sim
        .list("/api/now/v2/table/change_request?sysparm_query=correlation_id=bytebase:h:p/7:prod")
        .await;
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0]["sys_id"], chg["sys_id"]);
    let sys_id = chg["sys_id"].as_str().unwrap();
    assert!(sys_id.len() == 32 && sys_id.chars().all(|c| c.is_ascii_hexdigit()));
}

#[tokio::test]
async fn pitfall_11_a_blind_retry_creates_a_duplicate_change() {
    let sim = start(world()).await;
    let first = sim.create_chg(json!({ "correlation_id": "bytebase:h:p/8:prod" })).await;
    let second = sim.create_chg(json!({ "correlation_id": "bytebase:h:p/8:prod" })).await;
    assert_ne!(first["sys_id"], second["sys_id"]);
    assert_ne!(first["number"], second["number"]);
    let found = sim
        .list("/api/now/v2/table/change_request?sysparm_query=correlation_id=bytebase:h:p/8:prod")
        .await;
    assert_eq!(found.len(), 2, "the instance does not deduplicate");
}

#[tokio::test]
async fn pitfall_12_a_custom_state_reads_back_as_is_and_blocks_the_model() {
    let sim = start(world_with(json!({
        "extra_states": [{ "value": "-6", "label": "Peer Review" }]
    })))
    .await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    let forced =
        sim.control(&format!("/_sim/change_request/{id}/state"), json!({ "state": "-6" })).await;
    assert_eq!(forced.status(), StatusCode::OK);
    let chg = sim.chg(id).await;
    assert_eq!(chg["state"], "-6");
    assert_eq!(chg["approval"], "not requested");
    let path = format!(
        "/api/now/v2/table/change_request/{id}?sysparm_fields=state&sysparm_display_value=all"
    );
    let shown = body(sim.get(&path).await).await["result"].clone();
    assert_eq!(shown["state"], json!({ "display_value": "Peer Review", "value": "-6" }));
    assert_eq!(sim.set_state(id, "-1").await["state"], "-6");
}

/// The `<url>` of a `rel` in a `Link` header.
fn link_rel(link: &str, rel: &str) -> Option<String> {
    link.split(',')
        .find(|part| part.ends_with(&format!("rel=\"{rel}\"")))
        .and_then(|part| part.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(url, _)| url.to_string())
}

#[tokio::test]
async fn the_link_header_pages_through_a_list() {
    let sim = start(world()).await;
    for _ in 0..5 {
        sim.create_chg(json!({})).await;
    }
    let first = sim
        .get(
            "/api/now/v2/table/change_request?sysparm_query=ORDERBYnumber&sysparm_limit=2\
             &sysparm_fields=number",
        )
        .await;
    assert_eq!(first.headers()["x-total-count"], "5");
    let link = first.headers()["link"].to_str().unwrap().to_string();
    assert!(link_rel(&link, "prev").is_none(), "{link}");
    assert!(link_rel(&link, "last").unwrap().contains("sysparm_offset=4"), "{link}");
    let mut numbers = Vec::new();
    let mut page = Some(first);
    while let Some(response) = page {
        let link = response.headers()["link"].to_str().unwrap().to_string();
        for row in body(response).await["result"].as_array().unwrap() {
            numbers.push(row["number"].as_str().unwrap().to_string());
        }
        page = match link_rel(&link, "next") {
            Some(next) => {
                assert!(next.starts_with(&sim.base), "{next}");
                Some(sim.http.get(next).basic_auth(USER, Some(PASSWORD)).send().await.unwrap())
            }
            None => {
                assert!(link_rel(&link, "prev").is_some(), "{link}");
                None
            }
        };
    }
    let expected: Vec<String> = (1..=5).map(|n| format!("CHG003000{n}")).collect();
    assert_eq!(numbers, expected);

    let uncounted = sim.get("/api/now/v2/table/change_request?sysparm_no_count=true").await;
    assert!(uncounted.headers().get("x-total-count").is_none());
    let default_limit = sim.get("/api/now/v2/table/change_request").await;
    let link = default_limit.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("sysparm_limit=10000"), "{link}");
    let descending = sim
        .list(
            "/api/now/v2/table/change_request?sysparm_query=ORDERBYDESCnumber&sysparm_limit=1\
             &sysparm_fields=number",
        )
        .await;
    assert_eq!(descending, vec![json!({ "number": "CHG0030005" })]);
}

#[tokio::test]
async fn writes_need_json_in_accept_and_content_type() {
    let sim = start(world()).await;
    let path = sim.url("/api/now/v2/table/change_request");
    // reqwest sends `Accept: */*` unless told otherwise, which allows JSON.
    let no_accept = sim
        .http
        .post(&path)
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", "text/plain")
        .json(&json!({ "short_description": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), StatusCode::BAD_REQUEST);
    let envelope = body(no_accept).await;
    assert_eq!(envelope["status"], "failure");
    assert!(envelope["error"]["message"].is_string());
    let text = sim
        .http
        .post(&path)
        .basic_auth(USER, Some(PASSWORD))
        .header("Accept", "application/json")
        .header("Content-Type", "text/plain")
        .body("{\"short_description\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::BAD_REQUEST);
    let many = sim.post("/api/now/v2/table/change_request", json!([{}, {}])).await;
    assert_eq!(many.status(), StatusCode::BAD_REQUEST, "one record per POST");
    let rows = sim.list("/api/now/v2/table/change_request").await;
    assert!(rows.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_create_answers_201_with_a_location() {
    let sim = start(world()).await;
    let response =
        sim.post("/api/now/table/change_request", json!({ "short_description": "x" })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created = body(response).await["result"].clone();
    let sys_id = created["sys_id"].as_str().unwrap();
    assert_eq!(location, sim.url(&format!("/api/now/table/change_request/{sys_id}")));
    let read = sim.http.get(&location).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(body(read).await["result"]["number"], "CHG0030001");
}

#[tokio::test]
async fn references_render_as_link_and_value_unless_excluded() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    let group = chg["assignment_group"].as_str().unwrap();
    let path = format!(
        "/api/now/v2/table/change_request/{id}?sysparm_fields=assignment_group,requested_by"
    );
    let linked = body(sim.get(&path).await).await["result"].clone();
    assert_eq!(
        linked["assignment_group"],
        json!({
            "link": sim.url(&format!("/api/now/table/sys_user_group/{group}")),
            "value": group
        })
    );
    assert_eq!(linked["requested_by"], "", "an empty reference is an empty string");
    let bare = body(sim.get(&format!("{path}&sysparm_exclude_reference_link=true")).await).await;
    assert_eq!(bare["result"]["assignment_group"], group);
}

#[tokio::test]
async fn sysparm_fields_drops_unknown_names_and_dot_walks() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    let path = format!(
        "/api/now/v2/table/change_request/{id}\
         ?sysparm_fields=number,nope,assignment_group.name,assignment_group.manager.user_name"
    );
    let record = body(sim.get(&path).await).await["result"].clone();
    assert_eq!(
        record,
        json!({
            "number": "CHG0030001",
            "assignment_group.name": "Change Advisory Board",
            "assignment_group.manager.user_name": "carol"
        })
    );
    sim.set_state(id, "-4").await;
    let bobs = sim
        .list(&format!(
            "/api/now/v2/table/sysapproval_approver\
             ?sysparm_query=sysapproval={id}^approver.user_name=bob"
        ))
        .await;
    assert_eq!(bobs.len(), 1, "dot-walking works in queries");
}

#[tokio::test]
async fn journal_fields_append_entries_and_read_empty() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({ "work_notes": "created by cabgate" })).await;
    assert_eq!(chg["work_notes"], "");
    let id = chg["sys_id"].as_str().unwrap();
    let path = format!("/api/now/v2/table/change_request/{id}");
    sim.patch(&path, json!({ "work_notes": "rollout started" })).await;
    sim.patch(&path, json!({ "comments": "visible to the requester" })).await;
    let updated = sim.chg(id).await;
    assert_eq!(updated["work_notes"], "");
    assert_eq!(updated["comments"], "");
    assert_eq!(updated["sys_mod_count"], "2", "each journal write is an update");

    let entries = sim
        .list(&format!(
            "/api/now/v2/table/sys_journal_field?sysparm_query=name=change_request\
             ^element_id={id}^elementINcomments,work_notes^ORDERBYsys_created_on\
             &sysparm_fields=element,value,sys_created_by"
        ))
        .await;
    assert_eq!(
        entries,
        vec![
            json!({ "element": "work_notes", "value": "created by cabgate",
                    "sys_created_by": USER }),
            json!({ "element": "work_notes", "value": "rollout started", "sys_created_by": USER }),
            json!({ "element": "comments", "value": "visible to the requester",
                    "sys_created_by": USER }),
        ]
    );
    let shown = body(
        sim.get(&format!("{path}?sysparm_fields=work_notes&sysparm_display_value=true")).await,
    )
    .await["result"]["work_notes"]
        .as_str()
        .unwrap()
        .to_string();
    let newest = shown.find("rollout started").unwrap();
    let oldest = shown.find("created by cabgate").unwrap();
    assert!(newest < oldest, "{shown}");
    assert!(shown.contains("CAB Gate (Work notes)"), "{shown}");
}

#[tokio::test]
async fn under_rule_all_every_member_approves_and_any_rejection_rejects() {
    let sim =
        start(world_with(json!({ "cab": { "group": "Change Advisory Board", "rule": "all" } })))
            .await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.set_state(id, "-4").await;
    for approver in ["alice", "bob"] {
        let path = format!("/_sim/change_request/{id}/approve");
        sim.control(&path, json!({ "approver": approver })).await;
        assert_eq!(sim.chg(id).await["approval"], "requested");
    }
    let again = sim
        .control(&format!("/_sim/change_request/{id}/approve"), json!({ "approver": "bob" }))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "bob has already decided");
    sim.control(&format!("/_sim/change_request/{id}/approve"), json!({ "approver": "carol" }))
        .await;
    let chg = sim.chg(id).await;
    assert_eq!((chg["state"].as_str(), chg["approval"].as_str()), (Some("-2"), Some("approved")));

    let other = sim.create_chg(json!({})).await;
    let other = other["sys_id"].as_str().unwrap();
    sim.set_state(other, "-4").await;
    sim.control(&format!("/_sim/change_request/{other}/approve"), json!({ "approver": "alice" }))
        .await;
    let rejection = json!({ "approver": "bob", "comment": "not in the freeze", "by": "admin" });
    sim.control(&format!("/_sim/change_request/{other}/reject"), rejection).await;
    let chg = sim.chg(other).await;
    assert_eq!((chg["state"].as_str(), chg["approval"].as_str()), (Some("-5"), Some("rejected")));
    let rows = sim.approvers(other).await;
    let bob = rows.iter().find(|r| r["approver.user_name"] == "bob").unwrap();
    assert_eq!(bob["state"], "rejected");
    assert_eq!(bob["sys_updated_by"], "admin", "an override shows who acted");
    let carol = rows.iter().find(|r| r["approver.user_name"] == "carol").unwrap();
    assert_eq!(carol["state"], "not_required");
}

#[tokio::test]
async fn an_approver_can_decide_through_the_table_api() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.set_state(id, "-4").await;
    let rows = sim.approvers(id).await;
    let row = rows.iter().find(|r| r["approver.user_name"] == "alice").unwrap();
    let row = row["sys_id"].as_str().unwrap();
    let response = sim
        .http
        .patch(sim.url(&format!("/api/now/v2/table/sysapproval_approver/{row}")))
        .basic_auth("alice", Some("a"))
        .header("Accept", "application/json")
        .json(&json!({ "state": "approved", "comments": "LGTM" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await["result"]["state"], "approved");
    assert_eq!(sim.chg(id).await["state"], "-2");
}

#[tokio::test]
async fn cancel_is_impossible_from_review_and_closed() {
    let sim = start(world()).await;
    let id = sim.scheduled_chg().await;
    sim.set_state(&id, "-1").await;
    sim.set_state(&id, "0").await;
    assert_eq!(sim.set_state(&id, "4").await["state"], "0", "silently refused");
    let human =
        sim.control(&format!("/_sim/change_request/{id}/cancel"), json!({ "by": "carol" })).await;
    assert_eq!(human.status(), StatusCode::CONFLICT);

    let fresh = sim.create_chg(json!({})).await;
    let fresh = fresh["sys_id"].as_str().unwrap();
    sim.set_state(fresh, "-4").await;
    let reason = json!({ "by": "carol", "reason": "superseded" });
    let cancelled = sim.control(&format!("/_sim/change_request/{fresh}/cancel"), reason).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let chg = sim.chg(fresh).await;
    assert_eq!((chg["state"].as_str(), chg["active"].as_str()), (Some("4"), Some("false")));
    assert_eq!(chg["sys_updated_by"], "carol");
    assert!(sim.approvers(fresh).await.iter().all(|r| r["state"] == "cancelled"));
}

#[tokio::test]
async fn the_planned_window_is_set_by_the_control_endpoint() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    let window = json!({
        "start_date": "2026-06-01 20:00:00", "end_date": "2026-06-01 22:00:00", "by": "carol"
    });
    let set = sim.control(&format!("/_sim/change_request/{id}/window"), window).await;
    assert_eq!(set.status(), StatusCode::OK);
    let chg = sim.chg(id).await;
    assert_eq!(chg["start_date"], "2026-06-01 20:00:00");
    assert_eq!(chg["end_date"], "2026-06-01 22:00:00");
    assert_eq!(chg["sys_mod_count"], "1");
    let bad = sim
        .control(&format!("/_sim/change_request/{id}/window"), json!({ "start_date": "tomorrow" }))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn input_display_value_resolves_names_and_labels() {
    let sim = start(world()).await;
    let named = sim
        .post("/api/now/v2/table/change_request", json!({ "assignment_group": "Database CAB" }))
        .await;
    let named = body(named).await["result"].clone();
    assert_eq!(
        named["assignment_group"]["value"], "Database CAB",
        "stored as given: a dangling ref"
    );
    let resolved = sim
        .post(
            "/api/now/v2/table/change_request\
             ?sysparm_input_display_value=true&sysparm_exclude_reference_link=true",
            json!({ "assignment_group": "Database CAB", "urgency": "1 - High" }),
        )
        .await;
    let resolved = body(resolved).await["result"].clone();
    assert_eq!(resolved["assignment_group"], sim.group_id("Database CAB").await);
    assert_eq!(resolved["urgency"], "1");
}

#[tokio::test]
async fn incidents_are_created_and_read() {
    let sim = start(world()).await;
    let group = sim.group_id("Database CAB").await;
    let caller = body(sim.get("/api/now/v2/table/sys_user?sysparm_query=user_name=cabgate").await)
        .await["result"][0]["sys_id"]
        .clone();
    let created = sim
        .post(
            "/api/now/v2/table/incident?sysparm_exclude_reference_link=true",
            json!({
                "short_description": "Approval bypassed", "description": "issue 42 was SKIPPED",
                "urgency": "1", "assignment_group": group, "caller_id": caller,
                "correlation_id": "bytebase:skipped:42"
            }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let incident = body(created).await["result"].clone();
    assert_eq!(incident["number"], "INC0010001");
    assert_eq!(incident["state"], "1");
    assert_eq!(incident["urgency"], "1");
    assert_eq!(incident["priority"], "3", "impact 3 × urgency 1");
    assert_eq!(incident["caller_id"], caller);
    let id = incident["sys_id"].as_str().unwrap();
    let read = sim.get(&format!("/api/now/v2/table/incident/{id}")).await;
    assert_eq!(body(read).await["result"]["correlation_id"], "bytebase:skipped:42");
    let update =
        sim.patch(&format!("/api/now/v2/table/incident/{id}"), json!({ "urgency": "3" })).await;
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn read_only_tables_unknown_tables_and_deletes() {
    let sim = start(world()).await;
    let user = sim.post("/api/now/v2/table/sys_user", json!({ "user_name": "mallory" })).await;
    assert_eq!(user.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(user).await["status"], "failure");
    let unknown = sim.get("/api/now/v2/table/change_requests").await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(unknown).await["error"]["message"], "Invalid table change_requests");

    let chg = sim.create_chg(json!({})).await;
    let path = format!("/api/now/v2/table/change_request/{}", chg["sys_id"].as_str().unwrap());
    let deleted =
        sim.http.delete(sim.url(&path)).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.get(&path).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn put_updates_like_patch() {
    let sim = start(world()).await;
    let chg = sim.create_chg(json!({})).await;
    let path = format!("/api/now/v2/table/change_request/{}", chg["sys_id"].as_str().unwrap());
    let put =
        sim.send(reqwest::Method::PUT, &path, json!({ "short_description": "renamed" })).await;
    assert_eq!(put.status(), StatusCode::OK);
    let result = body(put).await["result"].clone();
    assert_eq!(result["short_description"], "renamed");
    assert_eq!(result["sys_mod_count"], "1");
    assert_eq!(result["sys_updated_by"], USER);
}

#[tokio::test]
async fn wrong_or_missing_credentials_answer_401() {
    let sim = start(world()).await;
    let none = sim.http.get(sim.url("/api/now/v2/table/change_request")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body(none).await,
        json!({
            "error": {
                "message": "User Not Authenticated",
                "detail": "Required to provide Auth information"
            },
            "status": "failure"
        })
    );
    let wrong = sim.get_as(USER, "nope", "/api/now/v2/table/change_request").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let no_password = sim.get_as("bob", "", "/api/now/v2/table/change_request").await;
    assert_eq!(no_password.status(), StatusCode::UNAUTHORIZED);

    let blocked = start(world_with(json!({ "basic_auth": false }))).await;
    let basic = blocked.get("/api/now/v2/table/change_request").await;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED, "an access policy blocks basic auth");
}

#[tokio::test]
async fn client_credentials_needs_the_property() {
    let grant =
        [("grant_type", "client_credentials"), ("client_id", "cid"), ("client_secret", "csecret")];
    let off = start(world()).await;
    let refused = token(&off, &grant).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(refused).await["error_description"], "access_denied");

    let on = start(world_with(json!({
        "oauth": { "client_credentials_enabled": true,
                   "clients": [{ "client_id": "cid", "client_secret": "csecret",
                                 "application_user": USER }] }
    })))
    .await;
    let granted = token(&on, &grant).await;
    assert_eq!(granted.status(), StatusCode::OK);
    let granted = body(granted).await;
    assert!(granted.get("refresh_token").is_none());
    let access = granted["access_token"].as_str().unwrap();
    assert_eq!(get_with_bearer(&on, access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let sim = start(world_with(
        json!({ "rate_limits": [{ "user": USER, "per_hour": 2 }, { "per_hour": 100 }] }),
    ))
    .await;
    for _ in 0..2 {
        let ok = sim.get("/api/now/v2/table/sys_user").await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["x-ratelimit-limit"], "2");
        assert!(ok.headers().get("x-ratelimit-rule").is_some());
        assert!(ok.headers().get("x-ratelimit-remaining").is_none());
    }
    let denied = sim.get("/api/now/v2/table/sys_user").await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = denied.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let reset: i64 = denied.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert_eq!(reset % 3600, 0);
    assert_eq!(body(denied).await["error"]["message"], "Rate limit exceeded");

    let alice = sim.get_as("alice", "a", "/api/now/v2/table/sys_user").await;
    assert_eq!(alice.headers()["x-ratelimit-limit"], "100", "the rule for everyone");
    sim.clock.advance(TimeDelta::seconds(retry));
    assert_eq!(sim.get("/api/now/v2/table/sys_user").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_seeded_change_in_assess_awaits_the_cab() {
    let sim = start(world_with(json!({
        "change_requests": [
            { "short_description": "Seeded", "state": -4, "assignment_group": "Database CAB",
              "requested_by": "alice", "correlation_id": "bytebase:seed" }
        ]
    })))
    .await;
    let seeded = sim
        .list(
            "/api/now/v2/table/change_request?sysparm_query=correlation_id=bytebase:seed\
             &sysparm_exclude_reference_link=true",
        )
        .await;
    assert_eq!(seeded.len(), 1);
    let chg = &seeded[0];
    assert_eq!(chg["state"], "-4");
    assert_eq!(chg["approval"], "requested");
    assert_eq!(chg["assignment_group"], sim.group_id("Database CAB").await);
    let id = chg["sys_id"].as_str().unwrap();
    assert_eq!(sim.approvers(id).await.len(), 3, "the CAB group's members");
    let dump: Value = sim
        .http
        .get(sim.url("/_sim/table/change_request"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dump["result"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn only_the_approver_or_an_admin_writes_an_approval_row() {
    let sim = start(world_with(json!({
        "users": [
            { "user_name": USER, "password": PASSWORD, "name": "CAB Gate" },
            { "user_name": "alice", "name": "Alice Approver" },
            { "user_name": "bob", "name": "Bob Board" },
            { "user_name": "carol", "name": "Carol Chair" },
            { "user_name": "admin", "password": "root", "name": "System Administrator",
              "roles": ["admin"] }
        ]
    })))
    .await;
    let chg = sim.create_chg(json!({})).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.set_state(id, "-4").await;
    let rows = sim.approvers(id).await;
    let row = rows.iter().find(|r| r["approver.user_name"] == "alice").unwrap();
    let path =
        format!("/api/now/v2/table/sysapproval_approver/{}", row["sys_id"].as_str().unwrap());
    let forged = sim.patch(&path, json!({ "state": "approved" })).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "the integration user is not the approver");
    assert_eq!(sim.chg(id).await["approval"], "requested");

    let admin = sim
        .http
        .patch(sim.url(&path))
        .basic_auth("admin", Some("root"))
        .header("Accept", "application/json")
        .json(&json!({ "state": "approved" }))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    let row = body(admin).await["result"].clone();
    assert_eq!(row["sys_updated_by"], "admin");
    assert_eq!(sim.chg(id).await["approval"], "approved");
}

#[tokio::test]
async fn choice_lists_are_readable_from_sys_choice() {
    let sim = start(world_with(json!({
        "extra_states": [{ "value": "-6", "label": "Peer Review" }]
    })))
    .await;
    let states = sim
        .list(
            "/api/now/v2/table/sys_choice?sysparm_query=name=change_request^element=state\
             ^ORDERBYsequence&sysparm_fields=value,label",
        )
        .await;
    let pairs: Vec<(&str, &str)> = states
        .iter()
        .map(|c| (c["value"].as_str().unwrap(), c["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("-5", "New"),
            ("-4", "Assess"),
            ("-3", "Authorize"),
            ("-2", "Scheduled"),
            ("-1", "Implement"),
            ("0", "Review"),
            ("3", "Closed"),
            ("4", "Canceled"),
            ("-6", "Peer Review"),
        ]
    );
}

#[tokio::test]
async fn an_unknown_uri_answers_400() {
    let sim = start(world()).await;
    let response = sim.get("/api/now/v2/tables/change_request").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let envelope = body(response).await;
    assert_eq!(envelope["error"]["message"], "Requested URI does not represent any resource");
    assert_eq!(envelope["status"], "failure");
}

#[tokio::test]
async fn without_a_cab_group_the_assignment_group_approves() {
    let mut world = world();
    world.as_object_mut().unwrap().remove("cab");
    let sim = start(world).await;
    let group = sim.group_id("Database CAB").await;
    let chg = sim.create_chg(json!({ "assignment_group": group })).await;
    let id = chg["sys_id"].as_str().unwrap();
    sim.set_state(id, "-4").await;
    let rows = sim.approvers(id).await;
    let approvers: Vec<&str> =
        rows.iter().map(|r| r["approver.user_name"].as_str().unwrap()).collect();
    assert_eq!(approvers, vec!["bob"]);
}

#[tokio::test]
async fn the_fixture_world_loads_with_a_change_awaiting_the_cab() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/worlds/servicenow-cab.yaml");
    let world = cabgate::sim::World::load(path).expect("the fixture is a world");
    assert_eq!(world.servicenow.problems(), Vec::<String>::new());
    assert_eq!(world.servicenow.users.len(), 5);
    let running = cabgate::sim::start(world, cabgate::sim::Options::default()).await.unwrap();
    let sim = Sim {
        base: running.servicenow_url().to_string(),
        clock: running.clock().clone(),
        http: reqwest::Client::new(),
        _running: running,
    };
    let waiting = sim
        .http
        .get(sim.url("/api/now/v2/table/change_request?sysparm_query=approval=requested"))
        .basic_auth("cabgate", Some("cabgate-sim"))
        .send()
        .await
        .unwrap();
    let waiting = body(waiting).await["result"].as_array().unwrap().clone();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["state"], "-4");
}

#[tokio::test]
async fn queries_compare_states_as_numbers_and_join_with_or_and_nq() {
    let sim = start(world()).await;
    let first = sim.create_chg(json!({ "short_description": "one" })).await;
    sim.create_chg(json!({ "short_description": "two" })).await;
    sim.create_chg(json!({ "short_description": "three", "category": "Database" })).await;
    sim.set_state(first["sys_id"].as_str().unwrap(), "-4").await;
    let numbers = |rows: Vec<Value>| -> Vec<String> {
        rows.iter().map(|r| r["number"].as_str().unwrap().to_string()).collect()
    };
    let base = "/api/now/v2/table/change_request?sysparm_fields=number&sysparm_query=";
    let assessed = sim.list(&format!("{base}state>-5^ORDERBYnumber")).await;
    assert_eq!(numbers(assessed), vec!["CHG0030001"]);
    let either = sim
        .list(&format!(
            "{base}short_descriptionSTARTSWITHtw^ORshort_descriptionENDSWITHree^ORDERBYnumber"
        ))
        .await;
    assert_eq!(numbers(either), vec!["CHG0030002", "CHG0030003"]);
    let new_query =
        sim.list(&format!("{base}category=Database^NQstate=-4^ORDERBYDESCnumber")).await;
    assert_eq!(numbers(new_query), vec!["CHG0030003", "CHG0030001"]);
    let empty =
        sim.list(&format!("{base}categoryISEMPTY^numberNOT INCHG0030001^ORDERBYnumber")).await;
    assert_eq!(numbers(empty), vec!["CHG0030002"]);
    let like = sim.list(&format!("{base}short_descriptionLIKEhre")).await;
    assert_eq!(numbers(like), vec!["CHG0030003"]);
}
