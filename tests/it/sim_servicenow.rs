//! Conformance tests of the ServiceNow emulator, over HTTP only: one test per pitfall of §7 of
//! the ServiceNow reference, and the Table API, auth, change model and approval behaviours the
//! clients rely on.

use cabgate::sim::clock::Clock;
use cabgate::sim::servicenow::{World, router};
use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running emulator on a loopback port.
struct Sim {
    base: String,
    clock: Clock,
    http: reqwest::Client,
}

const USER: &str = "cabgate";
const PASSWORD: &str = "s3cret";

fn world() -> Value {
    json!({
        "seed": 42,
        "users": [
            { "user_name": USER, "password": PASSWORD, "name": "CAB Gate", "email": "cabgate@acme.example" },
            { "user_name": "alice", "password": "a", "name": "Alice Approver", "email": "alice@acme.example",
              "time_zone": "+02:00", "date_format": "%d.%m.%Y %H:%M:%S" },
            { "user_name": "bob", "name": "Bob Board", "email": "bob@acme.example" },
            { "user_name": "carol", "name": "Carol Chair", "email": "carol@acme.example" },
            { "user_name": "admin", "name": "System Administrator", "email": "admin@acme.example" }
        ],
        "groups": [
            { "name": "Change Advisory Board", "members": ["alice", "bob", "carol"], "manager": "carol" },
            { "name": "Database CAB", "members": ["bob"] }
        ],
        "cab": { "group": "Change Advisory Board", "rule": "any" },
        "oauth": { "clients": [ { "client_id": "cid", "client_secret": "csecret", "application_user": USER } ] }
    })
}

async fn start(world: Value) -> Sim {
    let world: World = serde_json::from_value(world).expect("world");
    let clock = Clock::new();
    let app = router(world, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Sim { base: format!("http://{addr}"), clock, http: reqwest::Client::new() }
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
            "/api/now/v2/table/sysapproval_approver?sysparm_query=sysapproval={chg}^ORDERBYsys_created_on\
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
