//! Sending the webhook posts the workspace queued: asynchronously, one task per post, through
//! the relay that stands in for the Power Automate flow.
//!
//! As in Bytebase, a post never blocks the API call that caused it, each attempt has a 3 s
//! timeout, a post is tried at most 3 times (5 s, then 10 s apart), and a failure is only logged
//! and recorded: nothing is persisted or retried later. Power Automate accepts any 2xx; a legacy
//! Teams connector needs HTTP 200 with body `1`, so a relay answering otherwise sees the same body
//! retried, a real source of duplicates. The seeded fault schedule may add a copy of a post or
//! drop it; the decision depends only on the seed and the post's queueing number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::webhook::{Format, Outgoing};
use crate::sim::faults::{FaultSpec, WebhookFault};
use crate::sim::record::{Delivery, Recorder};

/// Timeout of one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per post.
const ATTEMPTS: u32 = 3;

/// Where queued posts go.
pub struct Outlet {
    /// The relay URL and the client that posts to it; `None` = posts are recorded, not sent.
    relay: Option<(String, reqwest::Client)>,
    /// Wait before the second attempt; doubled before the third (5 s in Bytebase).
    backoff: Duration,
    faults: FaultSpec,
    seed: u64,
    next: AtomicU64,
    recorder: Arc<Recorder>,
    /// Whether finished posts are recorded (benchmarks turn recording off).
    record: bool,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Outlet {
    /// Leaves the relay URL out: it may carry the listener's secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet")
            .field("relay", &self.relay.as_ref().map(|_| "<set>"))
            .field("backoff", &self.backoff)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Outlet {
    /// An outlet posting to `relay` (when given) on the current tokio runtime, waiting `backoff`
    /// before a second attempt; `record` = keep every finished post in `recorder`.
    pub fn new(
        relay: Option<String>,
        backoff: Duration,
        faults: FaultSpec,
        seed: u64,
        recorder: Arc<Recorder>,
        record: bool,
    ) -> Result<Outlet, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "webhook delivery needs a tokio runtime".to_owned())?;
        let relay = match relay.filter(|r| !r.trim().is_empty()) {
            None => None,
            Some(url) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|e| format!("webhook relay `{url}` is not a URL ({e})"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err("the webhook relay must be an http or https URL".into());
                }
                let client = reqwest::Client::builder()
                    .timeout(ATTEMPT_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("cannot build the webhook client: {e}"))?;
                Some((url, client))
            }
        };
        Ok(Outlet {
            relay,
            backoff,
            faults,
            seed,
            next: AtomicU64::new(0),
            recorder,
            record,
            runtime,
        })
    }

    /// Numbers the posts in queueing order, decides their faults, and starts one task each.
    /// Called with the workspace locked, so the numbering follows the order of events.
    pub fn send(self: &Arc<Self>, posts: Vec<Outgoing>) {
        for post in posts {
            let seq = self.next.fetch_add(1, Ordering::SeqCst);
            let fault = self.faults.decide_webhook(self.seed, seq);
            let outlet = self.clone();
            self.runtime.spawn(async move { outlet.deliver(seq, post, fault).await });
        }
    }

    async fn deliver(&self, seq: u64, post: Outgoing, fault: Option<WebhookFault>) {
        let record = |copy: u32, attempts, status, outcome: String, fault| Delivery {
            seq,
            copy,
            webhook: post.webhook.clone(),
            event: post.event.to_owned(),
            link: post.link.clone(),
            body: post.body.clone(),
            attempts,
            status,
            outcome,
            fault,
        };
        if fault == Some(WebhookFault::Drop) {
            let fault = Some(WebhookFault::Drop.name());
            self.keep(record(0, 0, None, "dropped".into(), fault));
            return;
        }
        if post.format == Format::Unsupported {
            let why = "not sent: only TEAMS webhooks are relayed".to_owned();
            self.keep(record(0, 0, None, why, None));
            return;
        }
        let Some((url, client)) = &self.relay else {
            let why = "not sent: no webhook relay configured".to_owned();
            self.keep(record(0, 0, None, why, None));
            return;
        };
        let copies = if fault == Some(WebhookFault::Duplicate) { 2 } else { 1 };
        for copy in 0..copies {
            let (attempts, status, outcome) = self.post(client, url, &post).await;
            let fault = (copy > 0).then(|| WebhookFault::Duplicate.name());
            self.keep(record(copy, attempts, status, outcome, fault));
        }
    }

    fn keep(&self, delivery: Delivery) {
        if self.record {
            self.recorder.push_delivery(delivery);
        }
    }

    /// Up to three attempts; returns (attempts, last status, outcome).
    async fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        post: &Outgoing,
    ) -> (u32, Option<u16>, String) {
        let mut last = (None, String::new());
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(self.backoff * (attempt - 1)).await;
            }
            let result = client.post(url).json(&post.body).send().await;
            let (status, outcome) = match result {
                Err(e) => (None, format!("failed: {}", transport_error(&e))),
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let ok = match post.format {
                        Format::AdaptiveCard => status.is_success(),
                        _ => status.as_u16() == 200 && text == "1",
                    };
                    let outcome = if ok {
                        "delivered".to_owned()
                    } else {
                        format!("failed: HTTP {}", status.as_u16())
                    };
                    (Some(status.as_u16()), outcome)
                }
            };
            if outcome == "delivered" {
                return (attempt, status, outcome);
            }
            tracing::warn!(
                webhook = %post.webhook, event = post.event, attempt, %outcome,
                "the emulator's webhook post failed"
            );
            last = (status, outcome);
        }
        (ATTEMPTS, last.0, last.1)
    }
}

/// A transport error without the URL (the relay URL may carry a secret).
fn transport_error(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    }
}
