//! The ServiceNow emulator: the Table API subset cabgate uses, its authentication (basic and
//! OAuth), the normal change model's approval and state rules, and control endpoints that play
//! the CAB.
//!
//! It follows `shared/reference/servicenow-api.md`, quiet pitfalls included: invalid query terms
//! are ignored, unknown fields vanish, every value is a string, a refused state change answers
//! 200 and changes nothing, v1 answers 404 on zero hits. Everything is in memory and lives as long
//! as the router; times come from the shared sim [`Clock`].
//!
//! Modules by concern: [`schema`] (the dictionary), [`records`] (the store and writes),
//! [`query`] (encoded queries), [`render`] (the JSON shapes), [`table`] (the Table API),
//! [`auth`] (basic, OAuth, rate limits), [`change`] (the change model), [`approvals`],
//! [`journal`], [`control`] (`/_sim/…`), [`world`] (the initial state).

pub mod approvals;
pub mod auth;
pub mod change;
pub mod control;
pub mod journal;
pub mod query;
pub mod records;
pub mod render;
pub mod schema;
pub mod table;
pub mod world;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

use crate::sim::clock::Clock;

pub use world::{
    Acl, ApprovalRule, Cab, ExtraState, Group, OAuth, OAuthClient, RateLimit, User, World,
};

/// The emulator's shared state: the world's settings and the record store.
#[derive(Debug)]
pub struct Instance {
    /// The world it was built from (settings are read from it).
    pub world: World,
    /// The sim clock.
    pub clock: Clock,
    db: Mutex<records::Db>,
}

impl Instance {
    /// Locks the store. A panic in another handler poisons nothing that matters here: the store
    /// is plain data, so the lock is taken over.
    pub fn db(&self) -> MutexGuard<'_, records::Db> {
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Shared handle passed to every handler.
pub type Shared = Arc<Instance>;

/// The emulator's router: the Table API (`/api/now/table/…`, `/api/now/v1/table/…`,
/// `/api/now/v2/table/…`), `POST /oauth_token.do`, and the control endpoints under `/_sim/`.
///
/// Problems in the world ([`World::problems`]) are logged as warnings and the bad names skipped.
pub fn router(world: World, clock: Clock) -> Router {
    for problem in world.problems() {
        tracing::warn!(%problem, "servicenow world");
    }
    let db = records::Db::seeded(&world, &clock);
    let shared: Shared = Arc::new(Instance { world, clock, db: Mutex::new(db) });
    Router::new()
        .merge(table::routes(shared.clone()))
        .merge(auth::routes())
        .merge(control::routes())
        .fallback(table::unknown_uri)
        .with_state(shared)
}

/// An error answer in the Table API's envelope:
/// `{"error":{"message","detail"},"status":"failure"}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: axum::http::StatusCode,
    /// `error.message`.
    pub message: String,
    /// `error.detail` (`null` when absent).
    pub detail: Option<String>,
    /// Extra response headers (`Retry-After`…).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with a message and a detail.
    pub fn new(status: axum::http::StatusCode, message: &str, detail: Option<&str>) -> ApiError {
        ApiError {
            status,
            message: message.to_string(),
            detail: detail.map(str::to_string),
            headers: Vec::new(),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({
            "error": { "message": self.message, "detail": self.detail },
            "status": "failure",
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}
