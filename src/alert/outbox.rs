//! Delivering the outbox: every due delivery goes to its sink; a success is marked delivered (and
//! never sent again), a failure is recorded with the next attempt's time, backing off
//! exponentially up to a cap, forever, until the sink takes it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::sink::SinkRuntime;
use super::{AlertError, sink_id};
use crate::servicenow;
use crate::spec::model::{Sink, SkippedApproval};
use crate::store::{JournalEntry, Store};

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Wait after the first failure; doubles with each further one.
    pub base_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
    /// Timeout of one webhook call.
    pub timeout: Duration,
    /// Most deliveries handled per pass.
    pub batch: usize,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            batch: 100,
        }
    }
}

impl DeliveryOptions {
    /// When to try again after the `attempts`-th failure.
    pub fn next_attempt(&self, attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
        let delay = self
            .base_delay
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
            .min(self.max_delay);
        now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::hours(1))
    }
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries a sink took.
    pub delivered: usize,
    /// Deliveries that failed and were rescheduled.
    pub failed: usize,
    /// Due deliveries for a sink no longer in the spec (left pending, in case it comes back).
    pub orphaned: usize,
}

/// The spec's sinks, ready to deliver the outbox.
pub struct Outbox {
    sinks: BTreeMap<String, SinkRuntime>,
    http: reqwest::Client,
    options: DeliveryOptions,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("sinks", &self.sinks.keys().collect::<Vec<_>>()).finish()
    }
}

impl Outbox {
    /// Sets up the sinks of `alerts.skippedApproval`, reading webhook secrets through `env`. A
    /// `servicenow` sink needs `servicenow` (the runner's client).
    pub fn from_spec(
        spec: &SkippedApproval,
        env: &dyn Fn(&str) -> Option<String>,
        servicenow: Option<servicenow::Client>,
        options: DeliveryOptions,
    ) -> Result<Self, AlertError> {
        // No redirects: a redirected webhook would carry the signed alert to another URL.
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cabgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Config(format!("HTTP client: {e}")))?;
        let mut sinks = BTreeMap::new();
        for sink in &spec.sinks {
            let runtime = match sink {
                Sink::Webhook(hook) => {
                    let url = url::Url::parse(&hook.url).map_err(|e| {
                        AlertError::Config(format!("webhook url is not a URL: {e}"))
                    })?;
                    let secret = match &hook.secret_env {
                        Some(name) => Some(servicenow::Secret::new(
                            env(name).filter(|s| !s.is_empty()).ok_or_else(|| {
                                AlertError::Config(format!(
                                    "environment variable {name} (webhook secret) is not set"
                                ))
                            })?,
                        )),
                        None => None,
                    };
                    SinkRuntime::Webhook { url, secret }
                }
                Sink::Servicenow(sn) => SinkRuntime::ServiceNow {
                    client: servicenow.clone().ok_or_else(|| {
                        AlertError::Config(
                            "a servicenow sink needs the servicenow section of the spec".into(),
                        )
                    })?,
                    table: sn.table.clone(),
                    assignment_group: sn.assignment_group.clone(),
                    urgency: sn.urgency,
                    group_id: Mutex::new(None),
                },
                Sink::Log(_) => SinkRuntime::Log,
            };
            sinks.insert(sink_id(sink), runtime);
        }
        Ok(Outbox { sinks, http, options })
    }

    /// The ids of the configured sinks.
    pub fn sink_ids(&self) -> Vec<String> {
        self.sinks.keys().cloned().collect()
    }

    /// Delivers every delivery due at `now` (at most [`DeliveryOptions::batch`]). Each outcome
    /// is written to the store before the next sink is called.
    ///
    /// NOTE: two runners delivering from one store at the same time could both call a sink for
    /// the same row (no claim or lease is taken); the idempotency keys make the repeat harmless
    /// for the webhook and incident sinks, and the log sink would log twice. A leader lease is
    /// part of the PostgreSQL store that is not written yet.
    pub async fn deliver_due(
        &self,
        store: &dyn Store,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<DeliveryReport, AlertError> {
        let mut report = DeliveryReport::default();
        for delivery in store.due_deliveries(now, self.options.batch)? {
            let Some(sink) = self.sinks.get(&delivery.sink) else {
                warn!(alert = %delivery.alert.key, sink = %delivery.sink,
                    "pending alert for a sink no longer in the spec; left pending");
                report.orphaned += 1;
                continue;
            };
            match sink.deliver(&self.http, &delivery).await {
                Ok(note) => {
                    let journal = JournalEntry::new(
                        now,
                        actor,
                        "alert_delivered",
                        format!("{} alert for {}", delivery.alert.kind, delivery.alert.issue),
                        format!("{}: {note}", delivery.sink),
                    )
                    .issue(&delivery.alert.issue);
                    if store.mark_delivered(&delivery.alert.key, &delivery.sink, now, &journal)? {
                        info!(alert = %delivery.alert.key, sink = %delivery.sink, %note,
                            "alert delivered");
                    }
                    report.delivered += 1;
                }
                Err(reason) => {
                    let attempts = delivery.attempts + 1;
                    let next = self.options.next_attempt(attempts, now);
                    warn!(alert = %delivery.alert.key, sink = %delivery.sink, attempts,
                        %reason, next_attempt = %next, "alert delivery failed; will retry");
                    store.mark_failed(&delivery.alert.key, &delivery.sink, &reason, next)?;
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let options = DeliveryOptions::default();
        let now = Utc::now();
        assert_eq!(options.next_attempt(1, now) - now, TimeDelta::seconds(30));
        assert_eq!(options.next_attempt(2, now) - now, TimeDelta::seconds(60));
        assert_eq!(options.next_attempt(3, now) - now, TimeDelta::seconds(120));
        assert_eq!(options.next_attempt(40, now) - now, TimeDelta::seconds(3600));
    }
}
