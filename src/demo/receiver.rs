//! The demo's alert receiver: a webhook endpoint on loopback that records what cabgate's webhook
//! sink delivers, so the demo can show the SKIPPED alert arriving (once) and its signature
//! checking out, without any service outside the process.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::task::JoinHandle;

use crate::alert::{DELIVERY_HEADER, SIGNATURE_HEADER};

/// The path alerts are posted to.
pub const PATH: &str = "/cab-alerts";

/// One delivery as the receiver got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `X-Cabgate-Delivery` header (the sink's idempotency key).
    pub id: String,
    /// The `X-Cabgate-Signature` header, `sha256=<hex>`.
    pub signature: String,
    /// The body, as sent.
    pub body: Bytes,
}

/// The receiver, serving until dropped.
#[derive(Debug)]
pub struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts the receiver on a free loopback port.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route(PATH, post(receive)).with_state(received.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the demo's alert receiver stopped");
            }
        });
        Ok(Receiver { url: format!("http://{addr}{PATH}"), received, task })
    }

    /// The URL the webhook sink posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every delivery so far, in arrival order.
    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(received): State<Arc<Mutex<Vec<Delivery>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let delivery =
        Delivery { id: header(DELIVERY_HEADER), signature: header(SIGNATURE_HEADER), body };
    if let Ok(mut list) = received.lock() {
        list.push(delivery);
    }
    StatusCode::NO_CONTENT
}
