//! The transport: authentication, retries, error envelopes and Link-header paging.
//!
//! Every call goes through [`Client::send`], which decides retries by the call's idempotency: a
//! GET or PATCH is repeated after a 5xx or a lost connection; a POST is repeated only when it
//! certainly did not reach the instance (connection refused, 429), otherwise it fails with
//! [`Error::Unconfirmed`] and its caller looks the record up before trying again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tracing::{Instrument, debug, debug_span, warn};
use url::Url;

use super::auth::{Credentials, Token, TokenResponse};
use super::error::Error;
use super::query::{EncodedQuery, next_link};
use super::retry::{RetryPolicy, is_retryable_status, jitter_rng};
use crate::spec::model::ServiceNowSpec;

/// A list that pages further than this is a server bug, not data: stop rather than loop.
const MAX_PAGES: usize = 100_000;

/// Tunables of the client; the defaults suit a production instance.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Retry and back-off policy.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP exchange.
    pub timeout: Duration,
    /// `sysparm_limit` of list calls.
    pub page_size: u32,
    /// Budget in bytes of an encoded `IN` list; longer lists are split over several calls.
    pub max_in_list_len: usize,
    /// Refresh an OAuth token this long before it expires.
    pub refresh_margin: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            page_size: 100,
            max_in_list_len: 4000,
            refresh_margin: Duration::from_secs(60),
        }
    }
}

/// A ServiceNow client. Cheap to clone; clones share the token and the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    token: Mutex<Option<Token>>,
    options: ClientOptions,
    rng: std::sync::Mutex<rand::rngs::SmallRng>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("instance", &self.inner.base.as_str()).finish()
    }
}

/// Whether repeating a call after a lost response is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// GET, PATCH of plain fields: repeat freely.
    Safe,
    /// POST, journal appends: repeat only when the request surely did not arrive.
    Unsafe,
}

/// A decoded successful response.
pub(crate) struct Reply {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Client {
    /// A client for `instance` (e.g. `https://acme.service-now.com`).
    pub fn new(
        instance: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let mut base = Url::parse(instance)
            .map_err(|e| Error::Config(format!("instance URL {instance:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Config(format!("instance URL {instance:?} is not http(s)")));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // No redirects: an instance that redirects (an SSO page, a renamed instance) is
        // misconfigured, and following would resend credentials and writes elsewhere.
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cabgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                credentials,
                token: Mutex::new(None),
                options,
                rng: std::sync::Mutex::new(jitter_rng()),
            }),
        })
    }

    /// A client from the spec's `servicenow` section, reading credentials through `env`.
    pub fn from_spec(
        spec: &ServiceNowSpec,
        env: &dyn Fn(&str) -> Option<String>,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let credentials = Credentials::from_spec(&spec.auth, env)?;
        Client::new(&spec.instance, credentials, options)
    }

    /// The options this client runs with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// `…/api/now/v2/table/{table}[/{sys_id}]`.
    pub(crate) fn table_url(&self, table: &str, sys_id: Option<&str>) -> Result<Url, Error> {
        let mut path = format!("api/now/v2/table/{table}");
        if let Some(id) = sys_id {
            path.push('/');
            path.push_str(id);
        }
        self.inner.base.join(&path).map_err(|e| Error::Config(format!("table URL: {e}")))
    }

    /// Lists every row of `table` matching `query`, following `Link: rel="next"` (pages can be
    /// short or empty while more rows exist, because ACLs filter after the limit).
    pub(crate) async fn list(
        &self,
        table: &str,
        query: &EncodedQuery,
        fields: &[&str],
    ) -> Result<Vec<Map<String, Value>>, Error> {
        if !query.is_ordered() {
            return Err(Error::Config(format!("list of {table} without ORDERBY cannot page")));
        }
        let mut url = self.table_url(table, None)?;
        url.query_pairs_mut()
            .append_pair("sysparm_query", &query.encode())
            .append_pair("sysparm_fields", &fields.join(","))
            .append_pair("sysparm_limit", &self.inner.options.page_size.to_string())
            .append_pair("sysparm_offset", "0")
            .append_pair("sysparm_display_value", "false")
            .append_pair("sysparm_exclude_reference_link", "true");
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            if seen.len() >= MAX_PAGES || !seen.insert(url.to_string()) {
                return Err(Error::Decode {
                    method: "GET".into(),
                    table: table.into(),
                    reason: format!(
                        "the next-page links repeat a page or run past {MAX_PAGES} pages"
                    ),
                });
            }
            let reply = self.send(Method::GET, table, url.clone(), None, Idempotency::Safe).await?;
            rows.extend(result_list(&reply.body, "GET", table)?);
            let Some(next) =
                reply.headers.get(LINK).and_then(|v| v.to_str().ok()).and_then(next_link)
            else {
                break;
            };
            url = self.same_instance(table, &next, &url)?;
        }
        Ok(rows)
    }

    /// Resolves a next-page link and refuses one that leaves the instance (it would receive our
    /// credentials). Parameters the link dropped are put back.
    fn same_instance(&self, table: &str, link: &str, current: &Url) -> Result<Url, Error> {
        let next = self.inner.base.join(link).map_err(|_| Error::Decode {
            method: "GET".into(),
            table: table.into(),
            reason: "unparsable next-page link".into(),
        })?;
        if next.origin() != self.inner.base.origin() {
            let mut shown = next.clone();
            shown.set_query(None);
            return Err(Error::ForeignLink { table: table.into(), link: shown.to_string() });
        }
        let present: Vec<String> = next.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let missing: Vec<(String, String)> = current
            .query_pairs()
            .filter(|(k, _)| k != "sysparm_offset" && !present.iter().any(|p| p == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut next = next;
        if !missing.is_empty() {
            let mut pairs = next.query_pairs_mut();
            for (k, v) in &missing {
                pairs.append_pair(k, v);
            }
        }
        Ok(next)
    }

    /// One call with authentication and retries. Error statuses become [`Error`]s.
    pub(crate) async fn send(
        &self,
        method: Method,
        table: &str,
        url: Url,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<Reply, Error> {
        let span = debug_span!("servicenow", method = %method, table, path = url.path());
        self.send_inner(method, table, url, body, idempotency).instrument(span).await
    }

    async fn send_inner(
        &self,
        method: Method,
        table: &str,
        url: Url,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<Reply, Error> {
        let policy = &self.inner.options.retry;
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.header(CONTENT_TYPE, "application/json").json(body);
            }
            request = self.authorize(request).await?;
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    let arrived = !error.is_connect();
                    if idempotency == Idempotency::Unsafe && arrived {
                        return Err(unconfirmed(&method, table, &error));
                    }
                    if attempt >= policy.max_attempts {
                        return Err(Error::Transport {
                            method: method.to_string(),
                            table: table.to_owned(),
                            attempts: attempt,
                            source: error,
                        });
                    }
                    let wait = self.backoff(attempt);
                    warn!(attempt, ?wait, error = %error, "ServiceNow call failed; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let status = response.status();
            debug!(status = status.as_u16(), attempt, "ServiceNow answered");
            if status == StatusCode::UNAUTHORIZED
                && !reauthenticated
                && matches!(self.inner.credentials, Credentials::OAuth { .. })
            {
                // The token may have expired early or been revoked: get a new one, once.
                reauthenticated = true;
                attempt -= 1;
                self.invalidate_token().await;
                continue;
            }
            if is_retryable_status(status.as_u16()) {
                let is_throttle = status == StatusCode::TOO_MANY_REQUESTS;
                if !is_throttle && idempotency == Idempotency::Unsafe {
                    return Err(Error::Unconfirmed {
                        method: method.to_string(),
                        table: table.to_owned(),
                        reason: format!("HTTP {}", status.as_u16()),
                    });
                }
                if attempt < policy.max_attempts {
                    let wait = if is_throttle {
                        self.rate_limit_wait(response.headers())
                    } else {
                        self.backoff(attempt)
                    };
                    warn!(status = status.as_u16(), attempt, ?wait, "ServiceNow asks to retry");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                if is_throttle {
                    return Err(Error::RateLimited {
                        method: method.to_string(),
                        table: table.to_owned(),
                        attempts: attempt,
                    });
                }
            }
            let headers = response.headers().clone();
            let text = match response.text().await {
                Ok(text) => text,
                Err(error) if idempotency == Idempotency::Unsafe => {
                    return Err(unconfirmed(&method, table, &error));
                }
                Err(error) if attempt < policy.max_attempts => {
                    warn!(attempt, error = %error, "ServiceNow response body lost; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(error) => {
                    return Err(Error::Transport {
                        method: method.to_string(),
                        table: table.to_owned(),
                        attempts: attempt,
                        source: error,
                    });
                }
            };
            if !status.is_success() {
                return Err(api_error(&method, table, status, &text));
            }
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| Error::Decode {
                    method: method.to_string(),
                    table: table.to_owned(),
                    reason: format!("body is not JSON: {e}"),
                })?
            };
            return Ok(Reply { headers, body });
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.options.retry.backoff(attempt, &mut *rng)
    }

    fn rate_limit_wait(&self, headers: &HeaderMap) -> Duration {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.options.retry.rate_limit_wait(
            header("retry-after"),
            header("x-ratelimit-reset"),
            chrono::Utc::now(),
            &mut *rng,
        )
    }

    /// Adds the credentials: basic auth, or a bearer token fetched or refreshed as needed.
    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        match &self.inner.credentials {
            Credentials::Basic { user, password } => {
                Ok(request.basic_auth(user, Some(password.expose())))
            }
            Credentials::OAuth { .. } => {
                let token = self.access_token().await?;
                Ok(request.bearer_auth(token.expose()))
            }
        }
    }

    async fn invalidate_token(&self) {
        let mut slot = self.inner.token.lock().await;
        // Keep the refresh token: the next grant tries it first.
        if let Some(token) = slot.as_mut() {
            token.expires_at = Instant::now();
        }
    }

    /// A usable access token: cached, refreshed, or granted anew.
    async fn access_token(&self) -> Result<super::auth::Secret, Error> {
        let margin = self.inner.options.refresh_margin;
        let mut slot = self.inner.token.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| t.is_fresh(Instant::now(), margin)) {
            return Ok(token.access.clone());
        }
        let refresh = slot.as_ref().and_then(|t| t.refresh.clone());
        let mut fresh = None;
        if let Some(refresh) = refresh {
            if let Some(form) = self.inner.credentials.refresh_form(&refresh) {
                match self.token_grant(form).await {
                    Ok(token) => fresh = Some(token),
                    Err(error) => debug!(error = %error, "refresh grant refused; granting anew"),
                }
            }
        }
        let token = match fresh {
            Some(token) => token,
            None => {
                let form = self.inner.credentials.grant_form().ok_or_else(|| {
                    Error::Config("OAuth token asked for basic credentials".to_owned())
                })?;
                self.token_grant(form).await?
            }
        };
        let access = token.access.clone();
        *slot = Some(token);
        Ok(access)
    }

    /// `POST /oauth_token.do` with a form. The response body is never logged.
    async fn token_grant(&self, form: Vec<(&'static str, String)>) -> Result<Token, Error> {
        let grant = form.iter().find(|(k, _)| *k == "grant_type").map(|(_, v)| v.clone());
        let url = self
            .inner
            .base
            .join("oauth_token.do")
            .map_err(|e| Error::Config(format!("token URL: {e}")))?;
        let policy = &self.inner.options.retry;
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent = self
                .inner
                .http
                .post(url.clone())
                .header(ACCEPT, "application/json")
                .form(&form)
                .send()
                .await;
            match sent {
                Ok(r)
                    if is_retryable_status(r.status().as_u16())
                        && attempt < policy.max_attempts =>
                {
                    let wait = if r.status() == StatusCode::TOO_MANY_REQUESTS {
                        self.rate_limit_wait(r.headers())
                    } else {
                        self.backoff(attempt)
                    };
                    tokio::time::sleep(wait).await;
                }
                Ok(r) => break r,
                Err(error) if attempt < policy.max_attempts => {
                    warn!(attempt, error = %error, "OAuth token call failed; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(error) => {
                    return Err(Error::Transport {
                        method: "POST".into(),
                        table: "oauth_token.do".into(),
                        attempts: attempt,
                        source: error,
                    });
                }
            }
        };
        let status = response.status();
        debug!(status = status.as_u16(), grant = grant.as_deref(), "OAuth token endpoint answered");
        let text = response.text().await.map_err(|error| Error::Transport {
            method: "POST".into(),
            table: "oauth_token.do".into(),
            attempts: attempt,
            source: error,
        })?;
        if !status.is_success() {
            // The body of a refused grant says why (`error_description`), never a credential.
            let why = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error_description").or_else(|| v.get("error")).cloned())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            return Err(Error::Unauthorized {
                method: "POST".into(),
                table: "oauth_token.do".into(),
                message: format!("{} grant refused: {why}", grant.as_deref().unwrap_or("token")),
            });
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|_| Error::Decode {
            method: "POST".into(),
            table: "oauth_token.do".into(),
            reason: "token response without access_token".into(),
        })?;
        Ok(parsed.into_token(Instant::now()))
    }
}

fn unconfirmed(method: &Method, table: &str, error: &reqwest::Error) -> Error {
    let reason = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    Error::Unconfirmed { method: method.to_string(), table: table.to_owned(), reason }
}

/// Decodes `{"error":{"message","detail"},"status":"failure"}`; 401 becomes
/// [`Error::Unauthorized`].
fn api_error(method: &Method, table: &str, status: StatusCode, text: &str) -> Error {
    let envelope: Option<Value> = serde_json::from_str(text).ok();
    let error = envelope.as_ref().and_then(|v| v.get("error"));
    let field =
        |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_owned);
    let message =
        field("message").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    if status == StatusCode::UNAUTHORIZED {
        return Error::Unauthorized {
            method: method.to_string(),
            table: table.to_owned(),
            message,
        };
    }
    Error::Api {
        method: method.to_string(),
        table: table.to_owned(),
        status: status.as_u16(),
        message,
        detail: field("detail").filter(|d| !d.is_empty()),
    }
}

/// `result` as a list of objects.
pub(crate) fn result_list(
    body: &Value,
    method: &str,
    table: &str,
) -> Result<Vec<Map<String, Value>>, Error> {
    let decode = |reason: &str| Error::Decode {
        method: method.to_owned(),
        table: table.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(Value::Array(items)) = body.get("result") else {
        return Err(decode("no `result` list"));
    };
    items
        .iter()
        .map(|item| {
            item.as_object().cloned().ok_or_else(|| decode("a `result` item is not an object"))
        })
        .collect()
}

/// `result` as one object.
pub(crate) fn result_object(
    body: &Value,
    method: &str,
    table: &str,
) -> Result<Map<String, Value>, Error> {
    body.get("result").and_then(Value::as_object).cloned().ok_or_else(|| Error::Decode {
        method: method.to_owned(),
        table: table.to_owned(),
        reason: "no `result` object".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_names_method_table_and_message() {
        let text = serde_json::json!({
            "error": {
                "message": "No Record found",
                "detail": "Record doesn't exist or ACL restricts the record retrieval"
            },
            "status": "failure"
        })
        .to_string();
        let text = text.as_str();
        let err = api_error(&Method::GET, "change_request", StatusCode::NOT_FOUND, text);
        assert_eq!(
            err.to_string(),
            "ServiceNow GET change_request: HTTP 404: No Record found (Record doesn't exist or \
             ACL restricts the record retrieval)"
        );
    }

    #[test]
    fn error_without_envelope_uses_status_text() {
        let err = api_error(&Method::PATCH, "incident", StatusCode::FORBIDDEN, "<html>");
        assert_eq!(err.to_string(), "ServiceNow PATCH incident: HTTP 403: Forbidden");
        let err = api_error(&Method::GET, "incident", StatusCode::UNAUTHORIZED, "");
        assert!(matches!(err, Error::Unauthorized { .. }));
    }

    #[test]
    fn next_link_to_another_host_is_refused() {
        let creds =
            Credentials::Basic { user: "u".into(), password: super::super::Secret::new("p") };
        let client = Client::new("http://127.0.0.1:9", creds, ClientOptions::default()).unwrap();
        let current = client.table_url("t", None).unwrap();
        let err = client.same_instance("t", "http://evil.example/api?x=1", &current).unwrap_err();
        assert!(matches!(err, Error::ForeignLink { .. }));
        let ok = client.same_instance("t", "/api/now/v2/table/t?sysparm_offset=5", &current);
        assert!(ok.is_ok());
    }

    #[test]
    fn next_link_gets_dropped_parameters_back() {
        let creds =
            Credentials::Basic { user: "u".into(), password: super::super::Secret::new("p") };
        let client = Client::new("http://127.0.0.1:9", creds, ClientOptions::default()).unwrap();
        let mut current = client.table_url("t", None).unwrap();
        current
            .query_pairs_mut()
            .append_pair("sysparm_fields", "a,b")
            .append_pair("sysparm_offset", "0");
        let next =
            client.same_instance("t", "/api/now/v2/table/t?sysparm_offset=5", &current).unwrap();
        let pairs: Vec<(String, String)> =
            next.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        assert!(pairs.contains(&("sysparm_fields".into(), "a,b".into())));
        assert_eq!(pairs.iter().filter(|(k, _)| k == "sysparm_offset").count(), 1);
    }
}
