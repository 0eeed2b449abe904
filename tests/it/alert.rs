//! Integration tests: SKIPPED-approval alerts through the outbox, to a webhook receiver started on
//! loopback (which verifies the signature and can be down), to the log, and to ServiceNow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cabgate::alert::{
    self, DELIVERY_HEADER, DeliveryOptions, Outbox, SIGNATURE_HEADER, SkippedIssue, sign,
};
use cabgate::spec::model::{LogSink, Sink, SkippedApproval, WebhookSink};
use cabgate::store::{DeliveryState, SqliteStore, Store};
use chrono::{DateTime, TimeDelta, Utc};

const SECRET: &str = "webhook-secret-value";

/// What the receiver saw: one entry per request, accepted or not.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    body: serde_json::Value,
    accepted: bool,
}

#[derive(Clone)]
struct Receiver {
    fail_first: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let signed = header(SIGNATURE_HEADER) == sign(SECRET.as_bytes(), &body);
    let down = rx.fail_first.load(Ordering::SeqCst) > 0;
    if down {
        rx.fail_first.fetch_sub(1, Ordering::SeqCst);
    }
    let accepted = signed && !down;
    rx.seen.lock().unwrap().push(Received {
        delivery: header(DELIVERY_HEADER).to_owned(),
        body: serde_json::from_slice(&body).unwrap_or_default(),
        accepted,
    });
    if !signed {
        StatusCode::UNAUTHORIZED
    } else if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts a receiver on loopback that answers 503 to its first `fail_first` requests.
async fn start_receiver(fail_first: usize) -> (SocketAddr, Receiver) {
    let rx = Receiver {
        fail_first: Arc::new(AtomicUsize::new(fail_first)),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new().route("/hooks/cab", post(receive)).with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

fn env(name: &str) -> Option<String> {
    HashMap::from([("CABGATE_ALERT_SECRET", SECRET)]).get(name).map(|s| s.to_string())
}

fn spec(url: String) -> SkippedApproval {
    SkippedApproval {
        lookback: "7d".into(),
        sinks: vec![
            Sink::Webhook(WebhookSink { url, secret_env: Some("CABGATE_ALERT_SECRET".into()) }),
            Sink::Log(LogSink {}),
        ],
    }
}

fn fast() -> DeliveryOptions {
    DeliveryOptions { timeout: std::time::Duration::from_secs(2), ..DeliveryOptions::default() }
}

fn issue(n: u32) -> SkippedIssue {
    SkippedIssue {
        issue: format!("projects/payments/issues/{n}"),
        title: "Drop the audit table".into(),
        project: "projects/payments".into(),
        creator: "users/dev@acme.example".into(),
        url: Some(format!("https://bytebase.acme.example/projects/payments/issues/{n}")),
        status: Some("DONE".into()),
        created: Some("2026-12-03T09:00:00Z".into()),
        environments: vec!["environments/prod".into()],
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc()
}

#[tokio::test]
async fn webhook_gets_one_signed_alert_per_issue() {
    let (addr, rx) = start_receiver(0).await;
    let spec = spec(format!("http://{addr}/hooks/cab"));
    let store = SqliteStore::open_in_memory().unwrap();
    let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();

    // Three passes see the same SKIPPED issue; it is queued once per sink.
    for _ in 0..3 {
        alert::enqueue_skipped(&store, &spec.sinks, &issue(7), "cabgate@test", t0()).unwrap();
    }
    assert_eq!(store.pending_deliveries().unwrap().len(), 2);

    let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
    assert_eq!((report.delivered, report.failed), (2, 0));
    let again = outbox.deliver_due(&store, "cabgate@test", t0() + TimeDelta::days(1)).await;
    assert_eq!(again.unwrap().delivered, 0);
    alert::enqueue_skipped(&store, &spec.sinks, &issue(7), "cabgate@test", t0()).unwrap();
    outbox.deliver_due(&store, "cabgate@test", t0() + TimeDelta::days(2)).await.unwrap();

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].accepted, "the signature must verify");
    assert_eq!(seen[0].delivery.len(), 32);
    let body = &seen[0].body;
    assert_eq!(body["type"], "skipped-approval");
    assert_eq!(body["issue"], "projects/payments/issues/7");
    assert_eq!(body["deliveryId"], seen[0].delivery.as_str());
    assert_eq!(body["facts"]["title"], "Drop the audit table");
    assert_eq!(body["facts"]["environments"][0], "environments/prod");

    let rows = store.deliveries(&alert::alert_key("projects/payments/issues/7")).unwrap();
    assert!(rows.iter().all(|d| d.state == DeliveryState::Delivered));
    let journal = store.journal(None, 10).unwrap();
    let actions: Vec<&str> = journal.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["alert", "alert_delivered", "alert_delivered"]);
}

#[tokio::test]
async fn webhook_down_is_retried_with_backoff_until_it_takes_the_alert() {
    let (addr, rx) = start_receiver(2).await;
    let spec = spec(format!("http://{addr}/hooks/cab"));
    let store = SqliteStore::open_in_memory().unwrap();
    let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();
    alert::enqueue_skipped(&store, &spec.sinks, &issue(8), "cabgate@test", t0()).unwrap();

    let first = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
    assert_eq!((first.delivered, first.failed), (1, 1)); // the log took it, the webhook not
    // Not due again before the back-off ends.
    let early = outbox.deliver_due(&store, "cabgate@test", t0() + TimeDelta::seconds(29)).await;
    assert_eq!(early.unwrap().failed, 0);
    let second = outbox.deliver_due(&store, "cabgate@test", t0() + TimeDelta::seconds(30)).await;
    assert_eq!(second.unwrap().failed, 1);
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(pending[0].attempts, 2);
    assert_eq!(pending[0].last_error.as_deref(), Some("webhook answered HTTP 503"));
    // The second failure doubled the wait: 60 s after the second attempt.
    assert_eq!(pending[0].next_attempt_at, t0() + TimeDelta::seconds(90));
    let third = outbox.deliver_due(&store, "cabgate@test", t0() + TimeDelta::seconds(90)).await;
    assert_eq!(third.unwrap().delivered, 1);

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|r| r.accepted).collect::<Vec<_>>(), [false, false, true]);
    // Every attempt carries the same delivery id and the same body, so receivers can dedupe.
    assert!(seen.iter().all(|r| r.delivery == seen[0].delivery && r.body == seen[0].body));
}

#[tokio::test]
async fn an_alert_survives_a_restart_between_enqueue_and_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (addr, rx) = start_receiver(1).await;
    let spec = spec(format!("http://{addr}/hooks/cab"));
    {
        let store = SqliteStore::open(&path).unwrap();
        alert::enqueue_skipped(&store, &spec.sinks, &issue(9), "cabgate@test", t0()).unwrap();
        // The runner dies here, before any sink was called.
    }
    {
        let store = SqliteStore::open(&path).unwrap();
        let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();
        let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
        assert_eq!((report.delivered, report.failed), (1, 1));
        // And dies again mid-delivery: the webhook is still pending.
    }
    let store = SqliteStore::open(&path).unwrap();
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].sink.starts_with("webhook:127.0.0.1:"));
    let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();
    let later = t0() + TimeDelta::minutes(5);
    assert_eq!(outbox.deliver_due(&store, "cabgate@test", later).await.unwrap().delivered, 1);
    assert!(store.pending_deliveries().unwrap().is_empty());
    let accepted = rx.seen.lock().unwrap().iter().filter(|r| r.accepted).count();
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn an_unreachable_webhook_is_recorded_without_its_url() {
    // A port nothing listens on; the URL's path stands for a token some hook URLs carry.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let spec = spec(format!("http://{addr}/services/T0/B0/hook-path-token"));
    let store = SqliteStore::open_in_memory().unwrap();
    let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();
    alert::enqueue_skipped(&store, &spec.sinks, &issue(10), "cabgate@test", t0()).unwrap();
    let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
    assert_eq!(report.failed, 1);
    let pending = store.pending_deliveries().unwrap();
    let error = pending[0].last_error.clone().unwrap();
    assert!(!error.contains("hook-path-token"), "{error}");
    assert!(!pending[0].sink.contains("hook-path-token"));
    for entry in store.journal(None, 100).unwrap() {
        assert!(!format!("{entry:?}").contains("hook-path-token"));
    }
}

#[tokio::test]
async fn a_redirecting_webhook_is_a_failure_not_followed() {
    let (addr, rx) = start_receiver(0).await;
    let target = format!("http://{addr}/hooks/cab");
    let app = axum::Router::new().route(
        "/moved",
        post(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let spec = spec(format!("http://{redirector}/moved"));
    let store = SqliteStore::open_in_memory().unwrap();
    let outbox = Outbox::from_spec(&spec, &env, None, fast()).unwrap();
    alert::enqueue_skipped(&store, &spec.sinks, &issue(12), "cabgate@test", t0()).unwrap();
    let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
    assert_eq!(report.failed, 1);
    assert!(rx.seen.lock().unwrap().is_empty(), "the redirect must not be followed");
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(pending[0].last_error.as_deref(), Some("webhook answered HTTP 307"));
}

#[tokio::test]
async fn a_missing_webhook_secret_is_a_configuration_error() {
    let spec = spec("http://127.0.0.1:9/hooks".into());
    let err = Outbox::from_spec(&spec, &|_| None, None, fast()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "alerts.skippedApproval.sinks: environment variable CABGATE_ALERT_SECRET (webhook \
         secret) is not set"
    );
}

#[tokio::test]
async fn a_removed_sink_leaves_its_deliveries_pending() {
    let (addr, _rx) = start_receiver(0).await;
    let full = spec(format!("http://{addr}/hooks/cab"));
    let store = SqliteStore::open_in_memory().unwrap();
    alert::enqueue_skipped(&store, &full.sinks, &issue(11), "cabgate@test", t0()).unwrap();
    let log_only = SkippedApproval { lookback: "7d".into(), sinks: vec![Sink::Log(LogSink {})] };
    let outbox = Outbox::from_spec(&log_only, &env, None, fast()).unwrap();
    let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
    assert_eq!((report.delivered, report.orphaned), (1, 1));
    assert_eq!(store.pending_deliveries().unwrap().len(), 1);
}

mod incident {
    //! The ServiceNow sink against the emulator.

    use cabgate::servicenow::retry::RetryPolicy;
    use cabgate::servicenow::{Client, ClientOptions, Credentials, Secret};
    use cabgate::sim::clock::Clock;
    use cabgate::sim::servicenow::{World, router};
    use cabgate::spec::model::ServiceNowSink;
    use serde_json::{Value, json};

    use super::*;

    async fn start_instance() -> (String, Client) {
        let world: World = serde_json::from_value(json!({
            "seed": 3,
            "users": [{ "user_name": "cabgate", "password": "pw", "name": "CAB Gate" }],
            "groups": [{ "name": "DB Security", "members": [] }]
        }))
        .unwrap();
        let app = router(world, Clock::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let credentials =
            Credentials::Basic { user: "cabgate".into(), password: Secret::new("pw") };
        let options = ClientOptions { retry: RetryPolicy::fast(), ..ClientOptions::default() };
        (base.clone(), Client::new(&base, credentials, options).unwrap())
    }

    async fn incidents(base: &str) -> Vec<Value> {
        let body: Value = reqwest::get(format!("{base}/_sim/table/incident"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["result"].as_array().cloned().unwrap()
    }

    fn sinks(group: &str) -> SkippedApproval {
        SkippedApproval {
            lookback: "7d".into(),
            sinks: vec![Sink::Servicenow(ServiceNowSink {
                table: "incident".into(),
                assignment_group: Some(group.into()),
                urgency: Some(1),
            })],
        }
    }

    #[tokio::test]
    async fn one_incident_per_alert_even_when_the_delivered_mark_was_lost() {
        let (base, client) = start_instance().await;
        let spec = sinks("DB Security");
        let outbox = Outbox::from_spec(&spec, &env, Some(client.clone()), fast()).unwrap();
        let store = SqliteStore::open_in_memory().unwrap();
        alert::enqueue_skipped(&store, &spec.sinks, &issue(21), "cabgate@test", t0()).unwrap();
        let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
        assert_eq!(report.delivered, 1);

        let rows = incidents(&base).await;
        assert_eq!(rows.len(), 1);
        let incident = &rows[0];
        assert_eq!(
            incident["correlation_id"],
            "cabgate:skipped-approval:projects/payments/issues/21"
        );
        assert_eq!(incident["urgency"], "1");
        let group = client.group_sys_id("DB Security").await.unwrap().unwrap();
        assert_eq!(incident["assignment_group"], group.as_str());
        let short = incident["short_description"].as_str().unwrap();
        assert!(short.contains("projects/payments/issues/21") && short.contains("Drop the audit"));
        let description = incident["description"].as_str().unwrap();
        assert!(description.contains("SKIPPED"));
        assert!(description.contains("Creator: users/dev@acme.example"));
        assert!(description.contains("Environments: environments/prod"));
        let journal = store.journal(None, 10).unwrap();
        assert!(journal.last().unwrap().outcome.contains("opened INC"), "{journal:?}");

        // The runner died after the incident was opened but before the mark: a store without the
        // mark delivers again, and the sink finds the incident instead of opening another.
        let forgetful = SqliteStore::open_in_memory().unwrap();
        alert::enqueue_skipped(&forgetful, &spec.sinks, &issue(21), "cabgate@test", t0()).unwrap();
        assert_eq!(outbox.deliver_due(&forgetful, "x", t0()).await.unwrap().delivered, 1);
        assert_eq!(incidents(&base).await.len(), 1);
        let journal = forgetful.journal(None, 10).unwrap();
        assert!(journal.last().unwrap().outcome.contains("already opened"), "{journal:?}");
    }

    #[tokio::test]
    async fn an_unknown_assignment_group_fails_the_delivery_and_keeps_it() {
        let (base, client) = start_instance().await;
        let spec = sinks("No Such Group");
        let outbox = Outbox::from_spec(&spec, &env, Some(client), fast()).unwrap();
        let store = SqliteStore::open_in_memory().unwrap();
        alert::enqueue_skipped(&store, &spec.sinks, &issue(22), "cabgate@test", t0()).unwrap();
        let report = outbox.deliver_due(&store, "cabgate@test", t0()).await.unwrap();
        assert_eq!(report.failed, 1);
        let pending = store.pending_deliveries().unwrap();
        assert_eq!(
            pending[0].last_error.as_deref(),
            Some("assignment group \"No Such Group\" not found in sys_user_group")
        );
        assert!(incidents(&base).await.is_empty());
    }

    #[tokio::test]
    async fn a_servicenow_sink_needs_the_servicenow_client() {
        let err = Outbox::from_spec(&sinks("DB Security"), &env, None, fast()).unwrap_err();
        assert!(err.to_string().contains("needs the servicenow section"), "{err}");
    }
}
