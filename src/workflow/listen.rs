//! The optional HTTP listener of `cabgate apply --listen`: a webhook that wakes the loop early,
//! `/healthz` and Prometheus `/metrics`.
//!
//! A webhook is a hint, never a fact: it only names issues to reconcile first in an early pass,
//! which then reads both systems like any other pass. Bytebase cannot post to cabgate directly
//! (its webhook hosts are allow-listed), so the usual sender is a Power Automate flow relaying a
//! Teams adaptive card whose only identifier is the issue link; a plain JSON body naming an issue
//! works too. Every string of the body is scanned for `projects/{p}/issues/{id}`. Pipeline events
//! (a rollout failed or completed) link to `projects/{p}/plans/{id}/rollout`, which names no
//! issue: they wake a pass over everything rather than fail, so Bytebase does not retry them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::workflow::metrics::Metrics;

/// The header that carries the shared secret (or pass `?secret=` in the URL).
pub const SECRET_HEADER: &str = "x-cabgate-secret";

/// Largest webhook body accepted; a Teams card is a few KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// Most issue names taken from one body (a flood of names is not a hint any more).
const MAX_NAMES: usize = 50;

/// What the listener shares with the loop.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    issues: Mutex<BTreeSet<String>>,
}

impl Wake {
    /// Asks for an early pass that reconciles `issues` first.
    pub fn wake(&self, issues: impl IntoIterator<Item = String>) {
        if let Ok(mut queue) = self.issues.lock() {
            queue.extend(issues);
        }
        self.notify.notify_one();
    }

    /// Waits until woken.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Takes the issues named since the last call.
    pub fn take(&self) -> BTreeSet<String> {
        self.issues.lock().map(|mut q| std::mem::take(&mut *q)).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Shared {
    wake: Arc<Wake>,
    metrics: Arc<Metrics>,
    secret: Option<Arc<str>>,
}

/// The listener's routes. Without a secret the webhook is refused (403): an open wake-up
/// endpoint would let anyone make the runner poll as fast as they post.
pub fn router(wake: Arc<Wake>, metrics: Arc<Metrics>, secret: Option<String>) -> Router {
    let shared = Shared { wake, metrics, secret: secret.map(Arc::from) };
    Router::new()
        .route("/webhook", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn metrics_text(State(shared): State<Shared>) -> (HeaderMap, String) {
    let mut headers = HeaderMap::new();
    if let Ok(v) = "text/plain; version=0.0.4".parse() {
        headers.insert(axum::http::header::CONTENT_TYPE, v);
    }
    (headers, shared.metrics.render())
}

#[derive(serde::Deserialize)]
struct SecretQuery {
    secret: Option<String>,
}

async fn webhook(
    State(shared): State<Shared>,
    Query(query): Query<SecretQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    let Some(expected) = shared.secret.as_deref() else {
        return (StatusCode::FORBIDDEN, "webhook disabled: no secret configured\n");
    };
    let given = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.secret);
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "bad or missing secret\n");
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON\n");
    };
    let names = issue_names(&value);
    if names.is_empty() {
        if !names_a_plan(&value) {
            return (StatusCode::UNPROCESSABLE_ENTITY, "no issue or plan named in the body\n");
        }
        tracing::debug!("webhook: a plan's rollout changed; early pass over every issue");
        shared.metrics.wakeup();
        shared.wake.wake([]);
        return (StatusCode::ACCEPTED, "queued: a pass over every issue\n");
    }
    tracing::debug!(issues = ?names, "webhook: early pass requested");
    shared.metrics.wakeup();
    shared.wake.wake(names);
    (StatusCode::ACCEPTED, "queued\n")
}

/// True when a string of the body holds `projects/{p}/plans/{id}` (a pipeline event's link).
fn names_a_plan(value: &serde_json::Value) -> bool {
    strings(value).into_iter().any(|text| {
        text.split("projects/").skip(1).any(|rest| {
            let project = project_id(rest);
            let id = rest[project.len()..].strip_prefix("/plans/").unwrap_or("");
            !project.is_empty() && id.starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every `projects/{p}/issues/{id}` in the strings of a JSON body (a Teams card's links, or a
/// plain `{"issue": "projects/p/issues/1"}`), at most 50.
pub fn issue_names(value: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for text in strings(value) {
        scan(text, &mut names);
    }
    names
}

/// Every string of a JSON body, in document order.
fn strings(value: &serde_json::Value) -> Vec<&str> {
    use serde_json::Value;
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => found.push(s.as_str()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => stack.extend(map.values().rev()),
            _ => {}
        }
    }
    found
}

/// The project id at the start of `text` (what follows `projects/` in a link).
fn project_id(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

fn scan(text: &str, names: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("projects/") {
        rest = &rest[at + "projects/".len()..];
        let project = project_id(rest);
        let Some(after) = rest[project.len()..].strip_prefix("/issues/") else { continue };
        // The UI writes `issues/{slug}-{id}`; the id is the trailing run of digits.
        let token: String =
            after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let id: String = token.rsplit('-').next().unwrap_or_default().to_owned();
        if !project.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            if names.len() >= MAX_NAMES {
                return;
            }
            names.insert(format!("projects/{project}/issues/{id}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_issue_in_a_teams_card_and_in_a_plain_body() {
        let card = serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "body": [{ "type": "TextBlock", "text": "Issue approval requested" }],
                    "actions": [{
                        "type": "Action.OpenUrl",
                        "url": "https://bb.acme.example/projects/pay-1/issues/add-index-42?x=1"
                    }]
                }
            }]
        });
        assert_eq!(
            issue_names(&card).into_iter().collect::<Vec<_>>(),
            ["projects/pay-1/issues/42"]
        );
        let plain = serde_json::json!({ "issue": "projects/ledger/issues/7" });
        assert!(issue_names(&plain).contains("projects/ledger/issues/7"));
        let none = serde_json::json!({ "text": "projects/x/plans/1 and projects//issues/2" });
        assert!(issue_names(&none).is_empty());
        assert!(names_a_plan(&none));
        let rollout = serde_json::json!(["https://bb.example/projects/pay/plans/12/rollout"]);
        assert!(names_a_plan(&rollout));
        let neither = serde_json::json!({ "text": "projects//plans/1 projects/x/plans/ plans/3" });
        assert!(!names_a_plan(&neither));
    }

    #[test]
    fn compares_secrets_in_constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
