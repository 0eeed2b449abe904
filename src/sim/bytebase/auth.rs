//! Login and bearer tokens (`backend/api/auth`): service accounts log in with their service key
//! and get an HS256 JWT valid one hour of the sim clock, with no refresh; `web:true` is refused
//! for them; ten failed logins per email within ten minutes → 429.

use axum::http::{HeaderMap, header};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::error::{ApiError, ApiResult, Code};
use super::json::Obj;
use super::state::Db;
use super::{Call, b64};

/// Token lifetime of service accounts (fixed) and of users (the default).
const TOKEN_TTL: TimeDelta = TimeDelta::hours(1);
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoginRequest {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    web: bool,
    #[serde(default)]
    idp_name: String,
    #[serde(default)]
    idp_context: Option<Value>,
    #[serde(default)]
    otp_code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
    #[serde(default)]
    mfa_temp_token: Option<String>,
}

/// `POST /v1/auth/login`.
pub fn login(db: &mut Db, call: &Call, _: &[String]) -> ApiResult {
    let request: LoginRequest = call.body()?;
    let _ = (&request.idp_name, &request.idp_context, &request.otp_code);
    let _ = (&request.recovery_code, &request.mfa_temp_token);
    let now = call.now;
    let failures = db.login_failures.entry(request.email.clone()).or_default();
    failures.retain(|t| now - *t < FAILURE_WINDOW);
    if failures.len() >= MAX_FAILURES {
        return Err(ApiError::new(
            Code::ResourceExhausted,
            "too many login attempts, please try again later",
        ));
    }
    let user = db.users.get(&request.email).cloned();
    let ok = user.as_ref().is_some_and(|u| {
        let secret = if u.is_service_account() { &u.service_key } else { &u.password };
        secret.as_deref().is_some_and(|s| !s.is_empty() && s == request.password)
    });
    let Some(user) = user.filter(|_| ok) else {
        db.login_failures.entry(request.email.clone()).or_default().push(now);
        return Err(ApiError::unauthenticated("the email or password is not valid"));
    };
    if request.web && user.is_service_account() {
        return Err(ApiError::denied("service account cannot log in to the web console"));
    }
    db.login_failures.remove(&request.email);
    let token = issue_token(db, &user.email, now);
    Ok(Obj::new().str("token", &token).msg("user", user_json(&user)).build())
}

fn user_json(user: &super::state::UserRec) -> Value {
    Obj::new()
        .str("name", &format!("users/{}", user.email))
        .str("email", &user.email)
        .str("title", &user.title)
        .str("userType", if user.is_service_account() { "SERVICE_ACCOUNT" } else { "USER" })
        .str("state", "ACTIVE")
        .build()
}

fn sign(secret: &[u8], data: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(data.as_bytes());
            b64::encode(&mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; a failure here would make every token invalid.
        Err(_) => "unsigned".into(),
    }
}

/// An HS256 JWT for `email`, valid one hour from `now`.
pub fn issue_token(db: &Db, email: &str, now: DateTime<Utc>) -> String {
    let header = b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({
        "aud": ["bb.user.access"],
        "sub": email,
        "iss": "bytebase",
        "workspace_id": db.workspace,
        "iat": now.timestamp(),
        "exp": (now + TOKEN_TTL).timestamp(),
    });
    let payload = b64::encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = sign(&db.secret, &signed);
    format!("{signed}.{signature}")
}

/// Checks `Authorization: Bearer <token>`; returns the caller's email.
pub fn authenticate(db: &Db, headers: &HeaderMap, now: DateTime<Utc>) -> ApiResult<String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthenticated("authorization header not found"))?;
    let parts: Vec<&str> = value.split(' ').collect();
    let token = match parts.as_slice() {
        [scheme, token] if scheme.eq_ignore_ascii_case("bearer") => *token,
        _ => {
            return Err(ApiError::unauthenticated(
                "authorization header format must be Bearer {token}",
            ));
        }
    };
    let invalid = || ApiError::unauthenticated("failed to parse claim");
    let pieces: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = pieces.as_slice() else { return Err(invalid()) };
    if sign(&db.secret, &format!("{header}.{payload}")) != *signature {
        return Err(invalid());
    }
    let claims: Value = b64::decode(payload)
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(invalid)?;
    let exp = claims["exp"].as_i64().ok_or_else(invalid)?;
    if now.timestamp() >= exp {
        return Err(ApiError::unauthenticated("access token expired"));
    }
    let email = claims["sub"].as_str().ok_or_else(invalid)?;
    if !db.users.contains_key(email) {
        return Err(ApiError::unauthenticated(format!("user {email} not found")));
    }
    Ok(email.to_owned())
}
