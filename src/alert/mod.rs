//! Alerts on issues that bypassed approval (Bytebase approval status `SKIPPED`).
//!
//! An alert is written to the durable outbox in [`crate::store`] before any sink is called, and is
//! retried until every sink of the spec has taken it, so a crash or a sink that is down loses none.
//!
//! Delivery is at least once, made effectively once by idempotency keys: a sink that took an alert
//! is marked delivered and never called again for it; if cabgate dies between a sink taking the
//! alert and the mark, the next pass repeats the call, and each sink recognises the repeat (the
//! webhook's `X-Cabgate-Delivery` id, the incident's `correlation_id`).
//!
//! - [`enqueue_skipped`] records the alert once per (issue, sink);
//! - [`Outbox::deliver_due`] calls the sinks for every due delivery and records the outcome.

mod outbox;
mod sink;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::model::Sink;
use crate::store::{Alert, JournalEntry, Store, StoreError};

pub use outbox::{DeliveryOptions, DeliveryReport, Outbox};
pub use sink::{DELIVERY_HEADER, SIGNATURE_HEADER, sign};

/// The kind of alert raised for an issue whose approval was SKIPPED.
pub const SKIPPED_APPROVAL: &str = "skipped-approval";

/// What went wrong raising or delivering alerts (a sink being down is not an error: it is
/// recorded on the delivery and retried).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sink of the spec cannot be set up.
    #[error("alerts.skippedApproval.sinks: {0}")]
    Config(String),
}

/// The facts of an issue that bypassed approval, as sinks show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedIssue {
    /// The issue's resource name (`projects/p/issues/42`).
    pub issue: String,
    /// Its title.
    pub title: String,
    /// Its project (`projects/p`).
    pub project: String,
    /// Who created it.
    pub creator: String,
    /// Link to the issue in Bytebase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its status (`OPEN`, `DONE`, …) when seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Environments it changes, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
}

/// The ledger key of the SKIPPED alert of `issue`: one per issue, forever.
pub fn alert_key(issue: &str) -> String {
    format!("{SKIPPED_APPROVAL}:{issue}")
}

/// The stable id of a sink, under which the outbox tracks its deliveries.
///
/// A webhook is named by its host and a hash of its full URL, never the URL itself: hook URLs
/// often carry a token in their path, and the id appears in logs and the journal.
pub fn sink_id(sink: &Sink) -> String {
    match sink {
        Sink::Webhook(hook) => {
            let host = url::Url::parse(&hook.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "invalid-url".to_owned());
            format!("webhook:{host}:{}", short_hash(&hook.url))
        }
        Sink::Servicenow(sn) => format!("servicenow:{}", sn.table),
        Sink::Log(_) => "log".to_owned(),
    }
}

/// The first 16 hex digits of the SHA-256 of `text`.
pub(crate) fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

/// The alert for a SKIPPED issue, raised at `now`.
pub fn skipped_alert(issue: &SkippedIssue, now: DateTime<Utc>) -> Alert {
    Alert {
        key: alert_key(&issue.issue),
        issue: issue.issue.clone(),
        kind: SKIPPED_APPROVAL.to_owned(),
        payload: serde_json::to_value(issue).unwrap_or_default(),
        raised_at: now,
    }
}

/// Records the SKIPPED alert of `issue` for every sink, once: a later call for the same issue
/// queues nothing (unless a sink was added to the spec since). Returns how many deliveries were
/// newly queued.
pub fn enqueue_skipped(
    store: &dyn Store,
    sinks: &[Sink],
    issue: &SkippedIssue,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<usize, AlertError> {
    let mut ids: Vec<String> = sinks.iter().map(sink_id).collect();
    ids.sort();
    ids.dedup();
    let alert = skipped_alert(issue, now);
    let journal = JournalEntry::new(
        now,
        actor,
        "alert",
        format!("issue {} was approved without review (approval status SKIPPED)", issue.issue),
        format!("queued for {}", ids.join(", ")),
    )
    .issue(&issue.issue);
    Ok(store.enqueue_alert(&alert, &ids, &journal)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{LogSink, ServiceNowSink, WebhookSink};

    #[test]
    fn sink_ids_are_stable_and_hide_webhook_paths() {
        let hook = Sink::Webhook(WebhookSink {
            url: "https://hooks.example/services/T000/B000/secret-token".into(),
            secret_env: None,
        });
        let id = sink_id(&hook);
        assert!(id.starts_with("webhook:hooks.example:"));
        assert!(!id.contains("secret-token"));
        assert_eq!(id, sink_id(&hook.clone()));
        let sn = Sink::Servicenow(ServiceNowSink {
            table: "incident".into(),
            assignment_group: None,
            urgency: Some(1),
        });
        assert_eq!(sink_id(&sn), "servicenow:incident");
        assert_eq!(sink_id(&Sink::Log(LogSink {})), "log");
    }

    #[test]
    fn alert_key_is_one_per_issue() {
        assert_eq!(alert_key("projects/p/issues/7"), "skipped-approval:projects/p/issues/7");
    }
}
