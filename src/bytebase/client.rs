//! The HTTP transport of the Bytebase client: login, token renewal, retries, paging, tracing.
//!
//! One [`Client`] is cheap to clone and safe to share between tasks: clones share the token, the
//! connection pool and the concurrency limit. Every call goes through [`Client::call`], which
//! renews the token before it expires (and once on a 401), retries transient failures with
//! backoff, decodes the error body and names the call in every error.
//!
//! What is retried: reads, on any 5xx, 429, timeout or broken connection; writes, only when the
//! server cannot have applied them (429, 503, a connection that never opened). A write whose
//! answer was lost is reported, not re-sent: its caller re-observes and decides (the `apply`
//! engine guards every action with a fresh precondition).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tracing::Instrument;

use super::error::{BytebaseError, Code, Result, Status};
use super::retry::{RetryPolicy, parse_retry_after};
use super::token::AccessToken;
use crate::spec::model::BytebaseSpec;

/// The service key. Its `Debug` prints nothing of it.
#[derive(Clone)]
pub struct ServiceKey(String);

impl ServiceKey {
    /// Wraps a key, without the whitespace around it: a key loaded from a file (a mounted
    /// secret) often ends with a newline, and Bytebase's keys never contain whitespace.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        ServiceKey(key.trim().to_owned())
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(…)")
    }
}

/// How to reach and authenticate to one Bytebase workspace.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://bytebase.acme.example` (a path prefix is kept).
    pub base_url: String,
    /// The service account's email.
    pub service_account: String,
    /// Its service key.
    pub service_key: ServiceKey,
    /// The longest one HTTP exchange may take.
    pub request_timeout: Duration,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// At most this many requests in flight at once (per client and its clones).
    pub concurrency: usize,
    /// Rows asked per page of a list (Bytebase serves at most 1000).
    pub page_size: u32,
}

impl ClientConfig {
    /// A config with default timeouts, retries and concurrency.
    pub fn new(base_url: &str, service_account: &str, service_key: ServiceKey) -> Self {
        ClientConfig {
            base_url: base_url.to_owned(),
            service_account: service_account.to_owned(),
            service_key,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            concurrency: 8,
            page_size: super::api::MAX_PAGE_SIZE,
        }
    }

    /// The config a spec describes, with the key read from the variable `serviceKeyEnv` names.
    pub fn from_spec(spec: &BytebaseSpec) -> Result<Self> {
        let key = std::env::var(&spec.service_key_env).unwrap_or_default();
        if key.trim().is_empty() {
            return Err(BytebaseError::MissingKey { var: spec.service_key_env.clone() });
        }
        Ok(ClientConfig::new(&spec.url, &spec.service_account, ServiceKey::new(key)))
    }
}

/// Counts of what a client did, for benchmarks and `--profile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests sent, retries and logins included.
    pub requests: u64,
    /// Of which retries after a transient failure.
    pub retries: u64,
    /// Of which logins.
    pub logins: u64,
}

/// A Bytebase v1 REST client. Clones share everything.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    account: String,
    key: ServiceKey,
    token: Mutex<Option<AccessToken>>,
    retry: RetryPolicy,
    page_size: u32,
    permits: Semaphore,
    requests: AtomicU64,
    retries: AtomicU64,
    logins: AtomicU64,
}

/// What one attempt produced.
enum Attempt {
    /// A response with its status, `Retry-After` and body.
    Answer { status: StatusCode, retry_after: Option<Duration>, body: Vec<u8> },
    /// No response.
    Failed { error: reqwest::Error },
}

/// `url` without the user and password a URL may carry (`https://user:pw@host`), normalized and
/// without a trailing slash, for messages and the snapshot's `source`; a URL that does not parse
/// loses what sits before the last `@` of its authority.
pub fn without_credentials(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        return parsed.as_str().trim_end_matches('/').to_owned();
    }
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

impl Client {
    /// A client for the workspace `config` describes. Nothing is sent until the first call.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let url = url::Url::parse(&config.base_url).map_err(|e| BytebaseError::BadUrl {
            url: without_credentials(&config.base_url),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(BytebaseError::BadUrl {
                url: without_credentials(&config.base_url),
                reason: "an http(s) URL with a host is needed".to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("cabgate/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| BytebaseError::BadUrl {
                url: without_credentials(&config.base_url),
                reason: format!("the HTTP client could not be built: {e}"),
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: config.base_url.trim_end_matches('/').to_owned(),
                account: config.service_account,
                key: config.service_key,
                token: Mutex::new(None),
                retry: config.retry,
                page_size: config.page_size.clamp(1, super::api::MAX_PAGE_SIZE),
                permits: Semaphore::new(config.concurrency.max(1)),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                logins: AtomicU64::new(0),
            }),
        })
    }

    /// The base URL, as the snapshot records it.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Rows asked per page of a list.
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// What this client (and its clones) did so far.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            logins: self.inner.logins.load(Ordering::Relaxed),
        }
    }

    /// Logs in now (normally done lazily by the first call); fails fast on a wrong key.
    pub async fn login(&self) -> Result<()> {
        let mut slot = self.inner.token.lock().await;
        *slot = Some(self.fresh_token().await?);
        Ok(())
    }

    /// Sends one authenticated call and decodes its JSON answer (an empty body reads as `{}`).
    ///
    /// `path` is relative to `/v1/` (e.g. `projects/p:getIamPolicy`). Retries transient failures
    /// per the [`RetryPolicy`]; logs in again once if Bytebase answers 401.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T> {
        let call = format!("{method} /v1/{path}");
        let mut relogged = false;
        loop {
            let bearer = self.bearer().await?;
            match self.send(&method, path, &call, query, body, Some(&bearer)).await {
                Err(BytebaseError::Api { code: Code::Unauthenticated, .. }) if !relogged => {
                    relogged = true;
                    self.forget_token(&bearer).await;
                }
                Err(error) => return Err(error),
                Ok(bytes) => return decode(&call, &bytes),
            }
        }
    }

    /// [`Client::call`] that reads a NotFound answer as `None`.
    pub async fn call_optional<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>> {
        match self.call(method, path, query, None).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Follows `nextPageToken` of a GET list until it is absent, collecting the `field` array.
    ///
    /// Pages may be short or empty while a token is set (post-query filters such as
    /// `approval_status`), so only the token's absence ends the list.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
    ) -> Result<Vec<T>> {
        let call = format!("GET /v1/{path}");
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params: Vec<(&str, String)> = query.to_vec();
            if let Some(token) = &token {
                params.push(("pageToken", token.clone()));
            }
            let page: Value = self.call(Method::GET, path, &params, None).await?;
            token = next_page(&call, page, field, &mut items, token.as_deref())?;
            if token.is_none() {
                return Ok(items);
            }
        }
    }

    /// Like [`Client::list_all`] for POST searches, whose paging fields go in the body.
    pub async fn search_all<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        field: &str,
    ) -> Result<Vec<T>> {
        let call = format!("POST /v1/{path}");
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = body.clone();
            if let (Some(token), Some(fields)) = (&token, request.as_object_mut()) {
                fields.insert("pageToken".to_owned(), json!(token));
            }
            let page: Value = self.call(Method::POST, path, &[], Some(&request)).await?;
            token = next_page(&call, page, field, &mut items, token.as_deref())?;
            if token.is_none() {
                return Ok(items);
            }
        }
    }

    async fn bearer(&self) -> Result<String> {
        let mut slot = self.inner.token.lock().await;
        let now = chrono::Utc::now();
        match slot.as_ref() {
            Some(token) if !token.needs_renewal(now) => Ok(token.bearer()),
            _ => {
                let token = self.fresh_token().await?;
                let bearer = token.bearer();
                *slot = Some(token);
                Ok(bearer)
            }
        }
    }

    async fn forget_token(&self, stale: &str) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.bearer() == stale) {
            *slot = None;
        }
    }

    async fn fresh_token(&self) -> Result<AccessToken> {
        #[derive(serde::Deserialize)]
        struct LoginResponse {
            #[serde(default)]
            token: String,
        }
        let call = "POST /v1/auth/login";
        // `web` stays unset: Bytebase refuses web logins for service accounts.
        let body = json!({ "email": self.inner.account, "password": self.inner.key.0 });
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        let bytes = self.send(&Method::POST, "auth/login", call, &[], Some(&body), None).await?;
        let answer: LoginResponse = decode(call, &bytes)?;
        if answer.token.is_empty() {
            return Err(BytebaseError::Decode {
                call: call.to_owned(),
                reason: "the answer carries no token (is multi-factor login required?)".into(),
            });
        }
        Ok(AccessToken::new(answer.token, chrono::Utc::now()))
    }

    /// Sends one request with retries; returns the body of a 2xx answer.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        call: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Vec<u8>> {
        let url = format!("{}/v1/{}", self.inner.base, path);
        // Reads, and login (it only hands out a token), may be sent again whatever happened.
        let repeatable = *method == Method::GET || path == "auth/login";
        let policy = self.inner.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.inner.retries.fetch_add(1, Ordering::Relaxed);
            }
            let span = tracing::debug_span!(
                "bytebase.http",
                http.method = %method,
                url.path = %format!("/v1/{path}"),
                http.status = tracing::field::Empty,
                attempt,
            );
            let started = std::time::Instant::now();
            let outcome =
                self.attempt(method, &url, query, body, bearer).instrument(span.clone()).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (error, retry_after, retryable) = match outcome {
                Attempt::Answer { status, body, .. } if status.is_success() => {
                    span.record("http.status", status.as_u16());
                    tracing::debug!(parent: &span, elapsed_ms, "bytebase answered");
                    return Ok(body);
                }
                Attempt::Answer { status, retry_after, body } => {
                    span.record("http.status", status.as_u16());
                    let error = api_error(call, status, &body);
                    tracing::debug!(parent: &span, elapsed_ms, %error, "bytebase refused");
                    // 429 and 503 say the request was not processed, so any call may be sent
                    // again. Another 5xx may come after a write landed (Bytebase answers 500 to
                    // an approval of a SKIPPED issue, for one), so only reads retry it.
                    let unprocessed = matches!(status.as_u16(), 429 | 503);
                    let retryable = error.is_transient() && (unprocessed || repeatable);
                    (error, retry_after, retryable)
                }
                Attempt::Failed { error } => {
                    // A refused connection sent nothing, so any call may be retried; after a
                    // timeout or a broken answer only a read may be, since a write may have landed.
                    let retryable = error.is_connect() || repeatable;
                    let reason = describe(&error);
                    tracing::debug!(parent: &span, elapsed_ms, %reason, "bytebase unreachable");
                    let base_url = without_credentials(self.base_url());
                    let error =
                        BytebaseError::Transport { call: call.to_owned(), base_url, reason };
                    (error, None, retryable)
                }
            };
            if !retryable || !policy.may_retry(attempt) {
                return Err(error);
            }
            let wait = policy.delay_jittered(attempt, retry_after);
            tracing::debug!(parent: &span, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Attempt {
        // The semaphore is never closed, so acquiring cannot fail; a failure would only lift the
        // limit for this one request.
        let _permit = self.inner.permits.acquire().await.ok();
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self.inner.http.request(method.clone(), url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(bearer) = bearer {
            request = request.header(reqwest::header::AUTHORIZATION, bearer);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::Failed { error },
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        match response.bytes().await {
            Ok(body) => Attempt::Answer { status, retry_after, body: body.to_vec() },
            Err(error) => Attempt::Failed { error },
        }
    }
}

/// Appends a page's `field` items and returns the next token, if any.
fn next_page<T: DeserializeOwned>(
    call: &str,
    mut page: Value,
    field: &str,
    items: &mut Vec<T>,
    previous: Option<&str>,
) -> Result<Option<String>> {
    if let Some(list) = page.get_mut(field).map(Value::take) {
        let mut batch: Vec<T> = serde_json::from_value(list).map_err(|e| {
            BytebaseError::Decode { call: call.to_owned(), reason: format!("`{field}`: {e}") }
        })?;
        items.append(&mut batch);
    }
    let next = page
        .get("nextPageToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if next.is_some() && next.as_deref() == previous {
        return Err(BytebaseError::PageLoop {
            call: call.to_owned(),
            token: next.unwrap_or_default(),
        });
    }
    Ok(next)
}

fn decode<T: DeserializeOwned>(call: &str, bytes: &[u8]) -> Result<T> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(text)
        .map_err(|e| BytebaseError::Decode { call: call.to_owned(), reason: e.to_string() })
}

/// The error for a non-2xx answer: the body's Status when it has one, else the HTTP status.
fn api_error(call: &str, status: StatusCode, body: &[u8]) -> BytebaseError {
    let parsed: Option<Status> = serde_json::from_slice(body).ok();
    let (code, message, details) = match parsed {
        Some(s) if s.code != 0 || !s.message.is_empty() => {
            let code = if s.code == 0 {
                Code::from_http(status.as_u16())
            } else {
                Code::from_number(s.code)
            };
            (code, s.message, s.details)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text
            };
            (Code::from_http(status.as_u16()), message, Vec::new())
        }
    };
    BytebaseError::Api { call: call.to_owned(), status: status.as_u16(), code, message, details }
}

/// A transport error in words, without the URL (it may carry a filter or a page token).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;

    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = error.source();
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() { kind.to_owned() } else { format!("{kind}: {cause}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_key_loses_the_whitespace_around_it() {
        assert_eq!(ServiceKey::new(" bbs_key\n").0, "bbs_key");
    }

    #[test]
    fn error_bodies_are_decoded_by_code_not_status() {
        let body = br#"{"code":9,"message":"plan is stale","details":[]}"#;
        let error =
            api_error("POST /v1/projects/p/issues/1:approve", StatusCode::BAD_REQUEST, body);
        assert_eq!(error.code(), Some(Code::FailedPrecondition));
        assert!(error.to_string().contains("plan is stale"));

        let error = api_error("GET /v1/x", StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(error.code(), Some(Code::Internal));
        assert!(error.is_transient());
        assert!(error.to_string().contains("bad gateway"));
    }

    #[test]
    fn pages_end_only_when_the_token_is_absent() {
        let mut items: Vec<u32> = Vec::new();
        let next =
            next_page("GET /v1/x", json!({"nextPageToken": "b"}), "xs", &mut items, None).unwrap();
        assert_eq!(next.as_deref(), Some("b"));
        let next = next_page(
            "GET /v1/x",
            json!({"xs": [1, 2], "nextPageToken": ""}),
            "xs",
            &mut items,
            Some("b"),
        )
        .unwrap();
        assert_eq!(next, None);
        assert_eq!(items, [1, 2]);
        let looped = next_page::<u32>(
            "GET /v1/x",
            json!({"nextPageToken": "b"}),
            "xs",
            &mut items,
            Some("b"),
        );
        assert!(matches!(looped, Err(BytebaseError::PageLoop { .. })));
    }

    #[test]
    fn config_debug_hides_the_key() {
        let config = ClientConfig::new(
            "http://127.0.0.1:1",
            "a@service.bytebase.com",
            ServiceKey::new("bbs_secret"),
        );
        assert!(!format!("{config:?}").contains("bbs_secret"));
        assert!(Client::new(ClientConfig { base_url: "ftp://x".into(), ..config }).is_err());
    }
}
