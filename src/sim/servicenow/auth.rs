//! Authentication and inbound rate limiting.
//!
//! - Basic: `Authorization: Basic` with a world user's password (unless the world turns basic
//!   auth off, as a REST API access policy can).
//! - OAuth: `POST /oauth_token.do` (form-encoded) with the `password`, `refresh_token` and —
//!   only when the world enables `glide.oauth.inbound.client.credential.grant_type.enabled` and
//!   the client has an application user — `client_credentials` grants. Access tokens live 1800 s
//!   by default (`expires_in: 1799`), refresh tokens 100 days, on the sim clock. Every failure
//!   answers 401 `{"error_description":"access_denied","error":"server_error"}`, as instances do.
//! - A missing or wrong credential on the REST API answers 401 with the Table API envelope
//!   (`User Not Authenticated` / `Required to provide Auth information`).
//! - Rate limits: per clock hour and per user; a user rule beats the rule for everyone. Matching
//!   responses carry `X-RateLimit-Limit`, `X-RateLimit-Reset` (Unix time) and `X-RateLimit-Rule`;
//!   a denied call gets 429 with `Retry-After` (seconds). There is no `X-RateLimit-Remaining`.
//!   NOTE: a real instance flushes its counters every 30 s, so its limits bite up to 30 s late;
//!   this one counts exactly.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ApiError, Shared};

const DEFAULT_ACCESS_LIFESPAN: i64 = 1800;
const DEFAULT_REFRESH_LIFESPAN: i64 = 8_640_000;

#[derive(Debug, Clone)]
struct Grant {
    user: String,
    client_id: String,
    expires: DateTime<Utc>,
}

/// Issued tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    access: BTreeMap<String, Grant>,
    refresh: BTreeMap<String, Grant>,
}

/// Requests counted per (rule, user, clock hour).
#[derive(Debug, Default)]
pub struct RateCounters {
    counts: BTreeMap<(usize, String, i64), u64>,
}

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's `user_name`.
    pub user_name: String,
}

/// `POST /oauth_token.do`.
pub fn routes() -> Router<Shared> {
    Router::new().route("/oauth_token.do", post(token))
}

fn unauthenticated() -> ApiError {
    let mut error = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "User Not Authenticated",
        Some("Required to provide Auth information"),
    );
    error.headers.push(("www-authenticate", "BASIC realm=\"Service-now\"".into()));
    error
}

/// Who is calling, from the `Authorization` header.
pub fn authenticate(inst: &Shared, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthenticated)?;
    let (scheme, credentials) = value.split_once(' ').ok_or_else(unauthenticated)?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        if inst.world.basic_auth == Some(false) {
            return Err(unauthenticated());
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(unauthenticated)?;
        let (user, password) = decoded.split_once(':').ok_or_else(unauthenticated)?;
        return if password_ok(inst, user, password) {
            Ok(Caller { user_name: user.to_string() })
        } else {
            Err(unauthenticated())
        };
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let now = inst.clock.now();
        let db = inst.db();
        return match db.tokens.access.get(credentials) {
            Some(grant) if grant.expires > now => Ok(Caller { user_name: grant.user.clone() }),
            _ => Err(unauthenticated()),
        };
    }
    Err(unauthenticated())
}

fn password_ok(inst: &Shared, user_name: &str, password: &str) -> bool {
    inst.world.users.iter().any(|u| {
        u.user_name == user_name
            && u.active != Some(false)
            && u.password.as_deref().is_some_and(|p| p == password)
    })
}

/// Counts a request against the caller's rate limit rule, if any. `Ok` carries the headers to
/// add to the response.
pub fn count_request(inst: &Shared, user: &str) -> Result<Vec<(&'static str, String)>, ApiError> {
    let rules = &inst.world.rate_limits;
    let rule = rules
        .iter()
        .position(|r| r.user.as_deref() == Some(user))
        .or_else(|| rules.iter().position(|r| r.user.is_none()));
    let Some(index) = rule else { return Ok(Vec::new()) };
    let limit = rules[index].per_hour;
    let now = inst.clock.now();
    let hour = now.timestamp().div_euclid(3600);
    let reset = (hour + 1) * 3600;
    let rule_id = hex::encode(&Sha256::digest(format!("sys_rate_limit_rules/{index}"))[..16]);
    let headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-rule", rule_id),
    ];
    let mut db = inst.db();
    let count = db.rate.counts.entry((index, user.to_string(), hour)).or_insert(0);
    if *count >= limit {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
            Some("Inbound REST API rate limit exceeded for this user; try again later"),
        );
        error.headers = headers;
        error.headers.push(("retry-after", (reset - now.timestamp()).max(1).to_string()));
        return Err(error);
    }
    *count += 1;
    Ok(headers)
}

/// Middleware of the REST API: authenticates, counts the request, and adds the rate limit
/// headers to the answer.
pub async fn require_auth(State(inst): State<Shared>, mut req: Request, next: Next) -> Response {
    let caller = match authenticate(&inst, req.headers()) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let rate_headers = match count_request(&inst, &caller.user_name) {
        Ok(headers) => headers,
        Err(error) => return error.into_response(),
    };
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    for (name, value) in rate_headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn access_denied() -> Response {
    let body = json!({ "error_description": "access_denied", "error": "server_error" });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

async fn token(State(inst): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return access_denied();
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let Some(client) =
        inst.world.oauth.clients.iter().find(|c| {
            c.client_id == field("client_id") && c.client_secret == field("client_secret")
        })
    else {
        return access_denied();
    };
    let access_life = client.access_token_lifespan.unwrap_or(DEFAULT_ACCESS_LIFESPAN);
    let refresh_life = client.refresh_token_lifespan.unwrap_or(DEFAULT_REFRESH_LIFESPAN);
    let now = inst.clock.now();
    let (user, refresh) = match field("grant_type") {
        "password" => {
            if !password_ok(&inst, field("username"), field("password")) {
                return access_denied();
            }
            (field("username").to_string(), None)
        }
        "refresh_token" => {
            let db = inst.db();
            match db.tokens.refresh.get(field("refresh_token")) {
                Some(g) if g.expires > now && g.client_id == client.client_id => {
                    (g.user.clone(), Some(field("refresh_token").to_string()))
                }
                _ => return access_denied(),
            }
        }
        "client_credentials" => {
            let app_user = client.application_user.as_deref().filter(|u| {
                inst.world.users.iter().any(|w| w.user_name == *u && w.active != Some(false))
            });
            match app_user {
                Some(user) if inst.world.oauth.client_credentials_enabled => {
                    (user.to_string(), Some(String::new()))
                }
                _ => return access_denied(),
            }
        }
        _ => return access_denied(),
    };
    let expires_in = access_life - 1;
    let mut db = inst.db();
    let access_token = db.new_token();
    let grant = |life: i64| Grant {
        user: user.clone(),
        client_id: client.client_id.clone(),
        expires: now + TimeDelta::seconds(life),
    };
    db.tokens.access.insert(access_token.clone(), grant(expires_in));
    let mut body = json!({
        "access_token": access_token,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    let refresh_token = match refresh {
        // client_credentials: no refresh token.
        Some(existing) if existing.is_empty() => None,
        Some(existing) => Some(existing),
        None => {
            let token = db.new_token();
            db.tokens.refresh.insert(token.clone(), grant(refresh_life));
            Some(token)
        }
    };
    if let Some(token) = refresh_token {
        body["refresh_token"] = json!(token);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}
