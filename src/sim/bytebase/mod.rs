//! The Bytebase v1 emulator: the REST surface (grpc-gateway on `/v1/*`) cabgate uses, with the
//! semantics of `bytebase-api.md` and Bytebase's source.
//!
//! One axum fallback handler routes every request through a table of `(method, path pattern,
//! verb)` entries, because Bytebase's custom verbs (`…/issues/1:approve`) share a path segment
//! with the id, which axum's router cannot split. The state is one in-memory [`state::Db`]
//! behind a mutex; handlers are synchronous and short. Background work (approval finding,
//! rollout creation, task runs) is a queue of jobs due on the sim clock, run before every
//! request and by a ticker, so `0s` delays are deterministic: done by the next request.

mod approval;
mod auth;
mod b64;
mod control;
pub mod delivery;
mod error;
mod iam;
mod issues;
mod json;
mod projects;
mod roles;
mod rollout;
mod settings;
mod state;
pub mod webhook;
pub mod world;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::clock::Clock;
use error::{ApiError, ApiResult};
use state::Db;

pub use world::World;

/// The running emulator's shared state.
#[derive(Debug)]
pub struct Emulator {
    db: Mutex<Db>,
    clock: Clock,
    /// Where webhook posts go once `sim::start` connected it; before that they are discarded.
    outlet: std::sync::OnceLock<Arc<delivery::Outlet>>,
}

impl Emulator {
    /// Builds the workspace of `world`. `seed` keys the token signatures.
    pub fn new(world: World, clock: Clock, seed: u64) -> Result<Arc<Self>, String> {
        let db = Db::from_world(world, clock.now(), seed)?;
        Ok(Arc::new(Emulator { db: Mutex::new(db), clock, outlet: std::sync::OnceLock::new() }))
    }

    /// Connects the webhook outlet and sets the external URL the posts link to, unless the
    /// world names one. Only the first call connects.
    pub fn connect_webhooks(&self, outlet: Arc<delivery::Outlet>, external_url: &str) {
        let _ = self.outlet.set(outlet);
        let mut db = self.lock();
        if db.external_url.is_empty() {
            db.external_url = external_url.to_owned();
        }
    }

    /// The relay URL of the world, if it names one, and its webhook retry wait.
    pub fn webhook_settings(&self) -> (Option<String>, std::time::Duration) {
        let db = self.lock();
        (db.webhook_relay.clone(), db.timing.webhook_retry)
    }

    /// Hands the posts queued by the last change to the outlet, in order. Called with the
    /// workspace locked, so posts are numbered in the order their events happened.
    fn flush(&self, db: &mut Db) {
        let posts = std::mem::take(&mut db.outbox);
        if let Some(outlet) = self.outlet.get()
            && !posts.is_empty()
        {
            outlet.send(posts);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Db> {
        // Handlers never leave the state half-updated across a panic point that matters here.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the background jobs that are due on the sim clock.
    pub fn tick(&self) {
        let now = self.clock.now();
        let mut db = self.lock();
        rollout::run_due_jobs(&mut db, now, false);
        self.flush(&mut db);
    }

    /// Runs every queued job now, manual ones included; returns how many ran.
    pub fn step(&self) -> usize {
        let now = self.clock.now();
        let mut db = self.lock();
        let ran = rollout::run_due_jobs(&mut db, now, true);
        self.flush(&mut db);
        ran
    }
}

/// The axum router of the emulator (no middleware; `sim::start` adds the shared layer).
pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new().fallback(dispatch).with_state(emulator)
}

/// A decoded request, handed to every handler.
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Raw body.
    pub body: Bytes,
    /// Authenticated caller's email ("" for unauthenticated routes).
    pub caller: String,
    /// The sim clock at arrival.
    pub now: DateTime<Utc>,
    /// The RPC name for permission details, e.g. `ProjectService/ListProjects`.
    pub rpc: &'static str,
}

impl Call {
    /// A query parameter by its JSON or proto name.
    pub fn param(&self, names: &[&str]) -> Option<&str> {
        self.query.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
    }

    /// The body as `T`; unknown fields and malformed JSON → 400. An empty body reads as `{}`.
    pub fn body<T: DeserializeOwned>(&self) -> ApiResult<T> {
        let bytes: &[u8] =
            if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
    }

    /// Fails with 403 and the permission detail unless the caller holds `permission` on the
    /// workspace (or on `project` when given).
    pub fn require(&self, db: &Db, permission: &str, project: Option<&str>) -> ApiResult<()> {
        if db.has_permission(&self.caller, permission, project, self.now) {
            Ok(())
        } else {
            Err(ApiError::missing_permission(&format!("/bytebase.v1.{}", self.rpc), permission))
        }
    }
}

// NOTE: not emulated (an unroutable 404/405 answers): CreatePlan/CreateIssue (issues come from
// the world or `POST /_sim/issues`), setIamPolicy, role and group writes, service-account
// management, `auth:exchangeToken`, `:retryApproval`, `issues:batchUpdateStatus`, webhook
// writes (`:addWebhook` and friends; webhooks come from the world), and settings other than
// WORKSPACE_APPROVAL and ENVIRONMENT.

/// A handler: the state, the call, and the `*` captures of its path pattern.
type Handler = fn(&mut Db, &Call, &[String]) -> ApiResult;

/// One route: method, path pattern after `/v1/` (`*` = one segment), custom verb, whether a
/// token is required, RPC name, handler.
struct Route(Method, &'static str, Option<&'static str>, bool, &'static str, Handler);

fn routes() -> &'static [Route] {
    use Method as M;
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        vec![
            Route(M::POST, "auth/login", None, false, "AuthService/Login", auth::login),
            Route(
                M::GET,
                "subscription",
                None,
                false,
                "SubscriptionService/GetSubscription",
                settings::subscription,
            ),
            Route(
                M::GET,
                "feature",
                None,
                false,
                "SubscriptionService/GetFeatureMatrix",
                settings::feature_matrix,
            ),
            Route(
                M::GET,
                "workspaces/*",
                None,
                true,
                "WorkspaceService/GetWorkspace",
                iam::get_workspace,
            ),
            Route(
                M::GET,
                "workspaces/*",
                Some("getIamPolicy"),
                true,
                "WorkspaceService/GetIamPolicy",
                iam::workspace_iam,
            ),
            Route(
                M::GET,
                "settings",
                None,
                true,
                "SettingService/ListSettings",
                settings::list_settings,
            ),
            Route(
                M::GET,
                "settings/*",
                None,
                true,
                "SettingService/GetSetting",
                settings::get_setting,
            ),
            Route(
                M::PATCH,
                "settings/*",
                None,
                true,
                "SettingService/UpdateSetting",
                settings::update_setting,
            ),
            Route(M::GET, "roles", None, true, "RoleService/ListRoles", iam::list_roles),
            Route(M::GET, "roles/*", None, true, "RoleService/GetRole", iam::get_role),
            Route(M::GET, "groups", None, true, "GroupService/ListGroups", iam::list_groups),
            Route(M::GET, "groups/*", None, true, "GroupService/GetGroup", iam::get_group),
            Route(
                M::GET,
                "environments/*/policies",
                None,
                true,
                "OrgPolicyService/ListPolicies",
                settings::list_policies,
            ),
            Route(
                M::GET,
                "environments/*/policies/*",
                None,
                true,
                "OrgPolicyService/GetPolicy",
                settings::get_policy,
            ),
            Route(
                M::PATCH,
                "environments/*/policies/*",
                None,
                true,
                "OrgPolicyService/UpdatePolicy",
                settings::update_policy,
            ),
            Route(
                M::GET,
                "projects",
                None,
                true,
                "ProjectService/ListProjects",
                projects::list_projects,
            ),
            Route(
                M::POST,
                "projects",
                Some("search"),
                true,
                "ProjectService/SearchProjects",
                projects::search_projects,
            ),
            Route(
                M::GET,
                "projects/*",
                None,
                true,
                "ProjectService/GetProject",
                projects::get_project,
            ),
            Route(
                M::GET,
                "projects/*",
                Some("getIamPolicy"),
                true,
                "ProjectService/GetIamPolicy",
                iam::project_iam,
            ),
            Route(
                M::GET,
                "projects/*/issues",
                None,
                true,
                "IssueService/ListIssues",
                issues::list_issues,
            ),
            Route(
                M::POST,
                "projects/*/issues",
                Some("search"),
                true,
                "IssueService/SearchIssues",
                issues::search_issues,
            ),
            Route(
                M::GET,
                "projects/*/issues/*",
                None,
                true,
                "IssueService/GetIssue",
                issues::get_issue,
            ),
            Route(
                M::PATCH,
                "projects/*/issues/*",
                None,
                true,
                "IssueService/UpdateIssue",
                issues::update_issue,
            ),
            Route(
                M::POST,
                "projects/*/issues/*",
                Some("comment"),
                true,
                "IssueService/CreateIssueComment",
                issues::create_comment,
            ),
            Route(
                M::GET,
                "projects/*/issues/*/issueComments",
                None,
                true,
                "IssueService/ListIssueComments",
                issues::list_comments,
            ),
            Route(
                M::POST,
                "projects/*/issues/*",
                Some("approve"),
                true,
                "IssueService/ApproveIssue",
                issues::approve,
            ),
            Route(
                M::POST,
                "projects/*/issues/*",
                Some("reject"),
                true,
                "IssueService/RejectIssue",
                issues::reject,
            ),
            Route(
                M::POST,
                "projects/*/issues/*",
                Some("request"),
                true,
                "IssueService/RequestIssue",
                issues::request,
            ),
            Route(
                M::GET,
                "projects/*/plans",
                None,
                true,
                "PlanService/ListPlans",
                rollout::list_plans,
            ),
            Route(
                M::GET,
                "projects/*/plans/*",
                None,
                true,
                "PlanService/GetPlan",
                rollout::get_plan,
            ),
            Route(
                M::GET,
                "projects/*/plans/*/rollout",
                None,
                true,
                "RolloutService/GetRollout",
                rollout::get_rollout,
            ),
            Route(
                M::POST,
                "projects/*/plans/*/rollout",
                None,
                true,
                "RolloutService/CreateRollout",
                rollout::create_rollout,
            ),
            Route(
                M::GET,
                "projects/*/rollouts",
                None,
                true,
                "RolloutService/ListRollouts",
                rollout::list_rollouts,
            ),
            Route(
                M::GET,
                "projects/*/plans/*/rollout/stages/*/tasks/*/taskRuns",
                None,
                true,
                "RolloutService/ListTaskRuns",
                rollout::list_task_runs,
            ),
            Route(
                M::POST,
                "projects/*/plans/*/rollout/stages/*/tasks",
                Some("batchRun"),
                true,
                "RolloutService/BatchRunTasks",
                rollout::batch_run,
            ),
            Route(
                M::POST,
                "projects/*/plans/*/rollout/stages/*/tasks",
                Some("batchSkip"),
                true,
                "RolloutService/BatchSkipTasks",
                rollout::batch_skip,
            ),
            Route(
                M::POST,
                "projects/*/plans/*/rollout/stages/*/tasks/*/taskRuns",
                Some("batchCancel"),
                true,
                "RolloutService/BatchCancelTaskRuns",
                rollout::batch_cancel,
            ),
        ]
    })
}

/// Splits `/v1/a/b:verb` into decoded segments and the verb.
fn split_path(path: &str) -> Option<(Vec<String>, Option<String>)> {
    let rest = path.strip_prefix("/v1/")?;
    let mut segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let mut verb = None;
    if let Some(last) = segments.last_mut()
        && let Some((id, v)) = last.split_once(':')
    {
        verb = Some(v.to_owned());
        *last = id.to_owned();
    }
    Some((segments, verb))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Matches segments against a pattern; returns the `*` captures.
fn match_pattern(pattern: &str, segments: &[String]) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut captures = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if *part == "*" {
            if segment.is_empty() {
                return None;
            }
            captures.push(segment.clone());
        } else if part != segment {
            return None;
        }
    }
    Some(captures)
}

async fn dispatch(
    State(emulator): State<Arc<Emulator>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if path.starts_with("/_sim/") {
        return control::handle(&emulator, &method, &path, &query, &body).into_response();
    }
    let Some((segments, verb)) = split_path(&path) else {
        return ApiError::unroutable(StatusCode::NOT_FOUND).into_response();
    };
    let mut wrong_method = false;
    for Route(route_method, pattern, route_verb, needs_auth, rpc, handler) in routes() {
        if *route_verb != verb.as_deref() {
            continue;
        }
        let Some(captures) = match_pattern(pattern, &segments) else { continue };
        if *route_method != method {
            wrong_method = true;
            continue;
        }
        let now = emulator.clock.now();
        let mut db = emulator.lock();
        rollout::run_due_jobs(&mut db, now, false);
        let caller = if *needs_auth {
            match auth::authenticate(&db, &headers, now) {
                Ok(email) => email,
                Err(e) => {
                    emulator.flush(&mut db);
                    return e.into_response();
                }
            }
        } else {
            String::new()
        };
        let call = Call { method, query, body, caller, now, rpc };
        let result = handler(&mut db, &call, &captures);
        emulator.flush(&mut db);
        return match result {
            Ok(value) => {
                ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
            }
            Err(e) => e.into_response(),
        };
    }
    let status = if wrong_method { StatusCode::METHOD_NOT_ALLOWED } else { StatusCode::NOT_FOUND };
    ApiError::unroutable(status).into_response()
}

/// Page size: default 10, at most 1000, negative → 400.
pub fn page_size(call: &Call) -> ApiResult<usize> {
    match call.param(&["pageSize", "page_size"]) {
        None | Some("") => Ok(10),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 0 => Err(ApiError::invalid("page size must be non-negative")),
            Ok(0) => Ok(10),
            Ok(n) => Ok(n.min(1000) as usize),
            Err(_) => Err(ApiError::invalid(format!("invalid page size {text:?}"))),
        },
    }
}

/// The offset of an opaque page token ("" = 0); the page size must not change between pages.
pub fn page_offset(token: Option<&str>, size: usize) -> ApiResult<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(0) };
    let invalid = || ApiError::invalid(format!("invalid page token {token:?}"));
    let raw = b64::decode(token).ok_or_else(invalid)?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (offset, limit) =
        text.strip_prefix("offset=").and_then(|r| r.split_once("&limit=")).ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let limit: usize = limit.parse().map_err(|_| invalid())?;
    if limit != size {
        return Err(ApiError::invalid("page size changed between pages"));
    }
    Ok(offset)
}

/// The token of the page after `offset + size`.
pub fn page_token(offset: usize, size: usize) -> String {
    b64::encode(format!("offset={}&limit={size}", offset + size).as_bytes())
}

/// Cuts one page out of `total` items: (range, next token if more remain).
pub fn page(total: usize, offset: usize, size: usize) -> (std::ops::Range<usize>, Option<String>) {
    let start = offset.min(total);
    let end = (offset + size).min(total);
    let next = (end < total).then(|| page_token(offset, size));
    (start..end, next)
}

/// A list response: `{key: items, nextPageToken?}`.
pub fn list_response(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    json::Obj::new().list(key, items).str("nextPageToken", next.as_deref().unwrap_or("")).build()
}
