//! The sinks: a signed webhook, a ServiceNow incident, the log.
//!
//! Each delivery carries an idempotency key derived from (alert, sink), so a repeat after a crash
//! is recognised by the receiver: `X-Cabgate-Delivery` for webhooks, `correlation_id` for
//! incidents (looked up before creating).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::error;

use super::short_hash;
use crate::servicenow::{self, CorrelationId, SysId};
use crate::store::Delivery;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` (when the sink names a secret).
pub const SIGNATURE_HEADER: &str = "X-Cabgate-Signature";
/// Header carrying the delivery's stable id, for receiver-side dedupe.
pub const DELIVERY_HEADER: &str = "X-Cabgate-Delivery";

/// `sha256=<hex>` of `body` under `secret`, as sent in [`SIGNATURE_HEADER`].
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so the error arm is never taken; if it were, an empty
    // signature fails verification at the receiver, which is the safe side.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return "sha256=".to_owned();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The stable id of one (alert, sink) delivery.
pub(crate) fn delivery_id(delivery: &Delivery) -> String {
    let digest = Sha256::digest(format!("{}\n{}", delivery.alert.key, delivery.sink).as_bytes());
    hex::encode(&digest[..16])
}

/// A sink ready to deliver.
pub(crate) enum SinkRuntime {
    Webhook {
        url: url::Url,
        secret: Option<servicenow::Secret>,
    },
    ServiceNow {
        client: servicenow::Client,
        table: String,
        assignment_group: Option<String>,
        urgency: Option<u8>,
        /// The group's sys_id once resolved.
        group_id: Mutex<Option<SysId>>,
    },
    Log,
}

impl SinkRuntime {
    /// Hands the alert to the sink. `Ok` carries a note for the journal (an incident number);
    /// `Err` a reason to record and retry (never a secret or a full webhook URL).
    pub(crate) async fn deliver(
        &self,
        http: &reqwest::Client,
        delivery: &Delivery,
    ) -> Result<String, String> {
        match self {
            SinkRuntime::Webhook { url, secret } => {
                webhook(http, url, secret.as_ref(), delivery).await
            }
            SinkRuntime::ServiceNow { client, table, assignment_group, urgency, group_id } => {
                let group = match assignment_group {
                    Some(name) => Some(resolve_group(client, name, group_id).await?),
                    None => None,
                };
                incident(client, table, group.as_ref(), *urgency, delivery).await
            }
            SinkRuntime::Log => {
                let facts = &delivery.alert.payload;
                let text = |key: &str| facts.get(key).and_then(Value::as_str).unwrap_or("");
                error!(
                    alert = %delivery.alert.key,
                    issue = %delivery.alert.issue,
                    title = text("title"),
                    project = text("project"),
                    creator = text("creator"),
                    url = text("url"),
                    "Bytebase issue bypassed approval (approval status SKIPPED)"
                );
                Ok("logged".to_owned())
            }
        }
    }
}

/// The webhook body: stable across retries (built from the stored alert only), so its signature
/// is too.
pub(crate) fn webhook_body(delivery: &Delivery) -> Value {
    json!({
        "version": 1,
        "type": delivery.alert.kind,
        "deliveryId": delivery_id(delivery),
        "alertKey": delivery.alert.key,
        "issue": delivery.alert.issue,
        "raisedAt": crate::store::format_time(delivery.alert.raised_at),
        "facts": delivery.alert.payload,
    })
}

async fn webhook(
    http: &reqwest::Client,
    url: &url::Url,
    secret: Option<&servicenow::Secret>,
    delivery: &Delivery,
) -> Result<String, String> {
    let body = webhook_body(delivery).to_string();
    let mut request = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, delivery_id(delivery));
    if let Some(secret) = secret {
        request =
            request.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), body.as_bytes()));
    }
    // `without_url`: hook URLs often hold a token; the error must not carry it into the store.
    let response = request.body(body).send().await.map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("HTTP {}", status.as_u16()))
    } else {
        Err(format!("webhook answered HTTP {}", status.as_u16()))
    }
}

async fn resolve_group(
    client: &servicenow::Client,
    name: &str,
    cache: &Mutex<Option<SysId>>,
) -> Result<SysId, String> {
    let mut slot = cache.lock().await;
    if let Some(id) = slot.as_ref() {
        return Ok(id.clone());
    }
    let id = client
        .group_sys_id(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("assignment group {name:?} not found in sys_user_group"))?;
    *slot = Some(id.clone());
    Ok(id)
}

/// The `correlation_id` of the incident of an alert: `cabgate:<alert key>`, or a hash of it when
/// that would not be a valid correlation id (too long, odd characters).
pub(crate) fn incident_correlation(alert_key: &str) -> Result<CorrelationId, String> {
    CorrelationId::parse(&format!("cabgate:{alert_key}"))
        .or_else(|_| CorrelationId::parse(&format!("cabgate:alert:{}", short_hash(alert_key))))
        .map_err(|e| e.to_string())
}

pub(crate) fn incident_fields(
    delivery: &Delivery,
    group: Option<&SysId>,
    urgency: Option<u8>,
) -> Map<String, Value> {
    let facts = &delivery.alert.payload;
    let text = |key: &str| facts.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let title = text("title");
    let mut short =
        format!("Bytebase change bypassed CAB approval: {} ({})", title, delivery.alert.issue);
    if short.chars().count() > 160 {
        short = short.chars().take(157).collect::<String>() + "...";
    }
    let mut description = vec![
        format!(
            "Bytebase issue {} was approved without review: its approval status is SKIPPED, so \
             no approval rule applied and no CHG was reviewed by the CAB.",
            delivery.alert.issue
        ),
        String::new(),
        format!("Title: {title}"),
        format!("Project: {}", text("project")),
        format!("Creator: {}", text("creator")),
    ];
    for (label, key) in [("Status", "status"), ("Created", "created"), ("Link", "url")] {
        let value = text(key);
        if !value.is_empty() {
            description.push(format!("{label}: {value}"));
        }
    }
    if let Some(envs) = facts.get("environments").and_then(Value::as_array) {
        let envs: Vec<&str> = envs.iter().filter_map(Value::as_str).collect();
        if !envs.is_empty() {
            description.push(format!("Environments: {}", envs.join(", ")));
        }
    }
    description.push(format!(
        "Raised by cabgate at {} (alert {}).",
        delivery.alert.raised_at, delivery.alert.key
    ));
    let mut fields = Map::new();
    fields.insert("short_description".into(), Value::String(short));
    fields.insert("description".into(), Value::String(description.join("\n")));
    if let Some(urgency) = urgency {
        fields.insert("urgency".into(), Value::String(urgency.to_string()));
    }
    if let Some(group) = group {
        fields.insert("assignment_group".into(), Value::String(group.to_string()));
    }
    fields
}

async fn incident(
    client: &servicenow::Client,
    table: &str,
    group: Option<&SysId>,
    urgency: Option<u8>,
    delivery: &Delivery,
) -> Result<String, String> {
    let correlation = incident_correlation(&delivery.alert.key)?;
    let fields = incident_fields(delivery, group, urgency);
    let created =
        client.create_record_once(table, &correlation, &fields).await.map_err(|e| e.to_string())?;
    Ok(if created.created {
        format!("opened {}", created.number)
    } else {
        format!("found {} (already opened)", created.number)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn long_alert_keys_get_a_hashed_correlation_id() {
        let short = incident_correlation("skipped-approval:projects/p/issues/7").unwrap();
        assert_eq!(short.as_str(), "cabgate:skipped-approval:projects/p/issues/7");
        let long_key = format!("skipped-approval:projects/{}/issues/7", "x".repeat(120));
        let hashed = incident_correlation(&long_key).unwrap();
        assert!(hashed.as_str().starts_with("cabgate:alert:"));
        assert_eq!(hashed, incident_correlation(&long_key).unwrap());
    }
}
