//! The layer both emulators share: it records every request and response and injects the seeded
//! faults of [`FaultSpec`](super::faults::FaultSpec).
//!
//! Recording is what lets a test assert "exactly one POST", and what makes a replay comparable:
//! the same world and seed give the same sequence. Secrets (login passwords, tokens, service
//! keys) are masked before anything is stored. Control endpoints (`/_sim/…`) are neither
//! recorded nor faulted.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::faults::{Fault, FaultSpec, Server};

/// The largest request or response body the layer buffers.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// One request and what the emulator answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// Position in the shared recording, from 0.
    pub seq: u64,
    /// Which emulator served it.
    pub server: Server,
    /// HTTP method.
    pub method: String,
    /// Path, percent-encoded as sent.
    pub path: String,
    /// Query string without `?`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Request body (JSON when it parses, else a string), secrets masked.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub request_body: serde_json::Value,
    /// HTTP status sent, or the one the handler produced for a `lost` response.
    pub status: u16,
    /// Response body (JSON when it parses), secrets masked.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub response_body: serde_json::Value,
    /// The injected fault, if any (`5xx`, `429`, `reset`, `lost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
}

/// The shared recording of both emulators.
///
/// NOTE: unbounded; long `cabgate sim` sessions should `DELETE /_sim/requests` now and then (or
/// run with recording off through `Options::record`).
#[derive(Debug, Default)]
pub struct Recorder {
    exchanges: Mutex<Vec<Exchange>>,
    deliveries: Mutex<Vec<Delivery>>,
}

/// One webhook post of the Bytebase emulator (one copy of it, when the schedule duplicates it),
/// recorded when its last attempt ends. The target URL is never recorded (it is write-only in
/// Bytebase and the relay URL may carry a secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Order in which the emulator queued the post, from 0: the same world, seed and request
    /// order give the same numbering.
    pub seq: u64,
    /// 0 for the post itself, 1.. for copies the fault schedule added.
    pub copy: u32,
    /// `projects/{p}/webhooks/{id}`.
    pub webhook: String,
    /// The event, e.g. `ISSUE_APPROVAL_REQUESTED`.
    pub event: String,
    /// The link the body carries.
    pub link: String,
    /// The body posted (`null` when nothing was built).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub body: serde_json::Value,
    /// Attempts made (0 when nothing was sent).
    pub attempts: u32,
    /// HTTP status of the last attempt, if one got an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `delivered`, `failed: …`, `dropped` or `not sent: …`.
    pub outcome: String,
    /// The injected fault, if any (`dup-webhook` on added copies, `drop-webhook`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
}

impl Recorder {
    /// A copy of everything recorded so far, in arrival order.
    pub fn snapshot(&self) -> Vec<Exchange> {
        self.lock().clone()
    }

    /// Forgets everything recorded so far; numbering starts again from 0.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Every webhook post recorded so far, in queueing order (`seq`, then `copy`).
    pub fn deliveries(&self) -> Vec<Delivery> {
        let mut all = self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all.sort_by_key(|d| (d.seq, d.copy));
        all
    }

    /// Forgets the recorded webhook posts (queueing numbers go on).
    pub fn reset_deliveries(&self) {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Records one finished webhook post.
    pub fn push_delivery(&self, delivery: Delivery) {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(delivery);
    }

    fn push(&self, mut exchange: Exchange) {
        let mut all = self.lock();
        exchange.seq = all.len() as u64;
        all.push(exchange);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        // A panic while holding the lock cannot leave the vector half-written.
        self.exchanges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What one server's layer needs.
#[derive(Debug)]
pub struct LayerState {
    /// Which server this layer wraps.
    pub server: Server,
    /// The shared recording.
    pub recorder: Arc<Recorder>,
    /// The faults to inject.
    pub faults: FaultSpec,
    /// The fault seed.
    pub seed: u64,
    /// A fixed delay added to every request (before faults).
    pub latency: std::time::Duration,
    /// Whether exchanges are stored (benchmarks turn it off).
    pub record: bool,
    eligible: AtomicU64,
}

impl LayerState {
    /// A layer state for `server`.
    pub fn new(
        server: Server,
        recorder: Arc<Recorder>,
        faults: FaultSpec,
        seed: u64,
        latency: std::time::Duration,
        record: bool,
    ) -> Self {
        LayerState { server, recorder, faults, seed, latency, record, eligible: AtomicU64::new(0) }
    }
}

/// The middleware function; mount with `axum::middleware::from_fn_with_state`.
pub async fn layer(State(state): State<Arc<LayerState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim/") || path == "/_sim" {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let query = request.uri().query().map(str::to_owned);
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let decision = if state.faults.matches(state.server, &method, &path) {
        let index = state.eligible.fetch_add(1, Ordering::SeqCst);
        state.faults.decide(state.seed, state.server, index)
    } else {
        Default::default()
    };
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let (parts, body) = request.into_parts();
    let request_bytes = axum::body::to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let mut exchange = Exchange {
        seq: 0,
        server: state.server,
        method,
        path,
        query,
        request_body: masked_json(&request_bytes),
        status: 0,
        response_body: serde_json::Value::Null,
        fault: decision.fault.map(Fault::name),
    };
    let response = match decision.fault {
        Some(Fault::Unavailable) => fault_response(&state, StatusCode::SERVICE_UNAVAILABLE),
        Some(Fault::Internal) => fault_response(&state, StatusCode::INTERNAL_SERVER_ERROR),
        Some(Fault::TooManyRequests) => fault_response(&state, StatusCode::TOO_MANY_REQUESTS),
        Some(Fault::Reset) => {
            record(&state, exchange);
            return broken_response();
        }
        Some(Fault::Lost) | None => {
            next.run(Request::from_parts(parts, Body::from(request_bytes))).await
        }
    };
    let (parts, body) = response.into_parts();
    let response_bytes = axum::body::to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    exchange.status = parts.status.as_u16();
    exchange.response_body = masked_json(&response_bytes);
    record(&state, exchange);
    if decision.fault == Some(Fault::Lost) {
        return broken_response();
    }
    Response::from_parts(parts, Body::from(response_bytes))
}

fn record(state: &LayerState, exchange: Exchange) {
    if state.record {
        state.recorder.push(exchange);
    }
}

/// The error body each API uses for an injected 5xx or 429.
fn fault_response(state: &LayerState, status: StatusCode) -> Response {
    let throttled = status == StatusCode::TOO_MANY_REQUESTS;
    // Bytebase's Connect codes: 8 ResourceExhausted, 13 Internal, 14 Unavailable.
    let (code, bytebase_message, servicenow_message) = match status {
        StatusCode::TOO_MANY_REQUESTS => (8, "rate limit exceeded", "Rate limit exceeded"),
        StatusCode::INTERNAL_SERVER_ERROR => (13, "internal error", "Internal Server Error"),
        _ => (14, "service unavailable", "Service Unavailable"),
    };
    let body = match state.server {
        Server::Bytebase => serde_json::json!({ "code": code, "message": bytebase_message }),
        Server::Servicenow => serde_json::json!({
            "error": {
                "message": servicenow_message,
                "detail": "injected by the emulator's fault schedule",
            },
            "status": "failure",
        }),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if throttled {
        let secs = state.faults.retry_after_secs.max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// A response whose body fails at once, which makes hyper close the connection before a complete
/// response reaches the client: the client sees a transport error.
fn broken_response() -> Response {
    let mut response = Response::new(Body::new(FailingBody));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A body that errors on its first poll.
struct FailingBody;

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped by the emulator's fault schedule",
        ))))
    }
}

/// Parses a body as JSON (or keeps it as a string) and masks secret fields.
fn masked_json(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value) => {
            mask(&mut value);
            value
        }
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

const SECRET_FIELDS: [&str; 6] =
    ["password", "token", "serviceKey", "accessToken", "url", "mfaTempToken"];

fn mask(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) && field.is_string() {
                    *field = serde_json::Value::String("***".into());
                } else {
                    mask(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}
