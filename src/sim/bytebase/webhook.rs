//! Project webhooks: which events fire when, the per-type host allowlist, and the bodies.
//!
//! Bytebase posts a webhook only to a host on its type's allowlist, so a runner on loopback can
//! never be a target. The emulator builds exactly what Bytebase would send (the Teams adaptive
//! card for Power Automate hosts, the legacy MessageCard for other Teams hosts) and queues it in
//! the workspace's outbox; [`super::delivery`] then hands it to the relay, standing in for the
//! Power Automate flow. Events follow `bytebase-api.md` §7: ISSUE_CREATED,
//! ISSUE_APPROVAL_REQUESTED (after finding and after each non-final approval, while a step is
//! pending), ISSUE_SENT_BACK, ISSUE_APPROVED (final `:approve` only, never for SKIPPED),
//! PIPELINE_FAILED (once per plan until the next batchRun) and PIPELINE_COMPLETED.

use serde_json::{Value, json};

use super::state::Db;

/// Every event a webhook may subscribe to.
pub const EVENTS: [&str; 6] = [
    "ISSUE_CREATED",
    "ISSUE_APPROVAL_REQUESTED",
    "ISSUE_SENT_BACK",
    "ISSUE_APPROVED",
    "PIPELINE_FAILED",
    "PIPELINE_COMPLETED",
];

/// Webhook types and the hosts each accepts (a leading dot: that host or any subdomain).
const ALLOWLIST: [(&str, &[&str]); 8] = [
    ("SLACK", &["hooks.slack.com", "hooks.slack-gov.com"]),
    ("DISCORD", &["discord.com", "discordapp.com"]),
    ("TEAMS", &[".powerplatform.com", ".logic.azure.com", ".office.com", ".office365.com"]),
    ("DINGTALK", &["oapi.dingtalk.com", "api.dingtalk.com"]),
    ("FEISHU", &["open.feishu.cn"]),
    ("LARK", &["open.larksuite.com"]),
    ("WECOM", &["qyapi.weixin.qq.com"]),
    ("GOOGLE_CHAT", &["chat.googleapis.com"]),
];

/// Whether Bytebase would accept `url` for a webhook of type `kind`; `Err` says why not.
pub fn check_url(kind: &str, url: &str) -> Result<(), String> {
    let Some((_, hosts)) = ALLOWLIST.iter().find(|(k, _)| *k == kind) else {
        return Err(format!("unknown webhook type `{kind}`"));
    };
    let parsed = url::Url::parse(url).map_err(|e| format!("url is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url must be http or https".into());
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let allowed = hosts.iter().any(|h| match h.strip_prefix('.') {
        Some(domain) => host == domain || host.ends_with(&format!(".{domain}")),
        None => host == *h,
    });
    if !allowed {
        return Err(format!(
            "host `{host}` is not allowed for {kind} webhooks ({})",
            hosts.join(", ")
        ));
    }
    if kind == "GOOGLE_CHAT"
        && (parsed.scheme() != "https" || !parsed.path().starts_with("/v1/spaces/"))
    {
        return Err("GOOGLE_CHAT webhooks must be https://chat.googleapis.com/v1/spaces/…".into());
    }
    Ok(())
}

/// Whether a Teams webhook goes to Power Automate (adaptive card, any 2xx is success) rather than
/// a legacy connector (MessageCard, HTTP 200 with body `1`). An empty URL counts as Power
/// Automate: a world may leave the write-only URL out.
pub fn is_power_automate(url: &str) -> bool {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    url.is_empty()
        || ["powerplatform.com", "logic.azure.com"]
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// How a queued delivery must be judged by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Teams adaptive card for Power Automate: any 2xx is success.
    AdaptiveCard,
    /// Teams legacy MessageCard: success is HTTP 200 with body `1`.
    MessageCard,
    /// A type whose body the emulator does not build (Slack, Discord, …): never sent.
    Unsupported,
}

/// One webhook post the workspace queued, in the order events happened.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `projects/{p}/webhooks/{id}`.
    pub webhook: String,
    /// The event.
    pub event: &'static str,
    /// The link in the body (`{externalURL}/projects/{p}/issues/{id}` or `…/plans/{id}/rollout`).
    pub link: String,
    /// What is posted (`Null` for an unsupported type).
    pub body: Value,
    /// How the answer is judged.
    pub format: Format,
}

/// What an event is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// An issue, by id.
    Issue(u64),
    /// The rollout of a plan, by plan id.
    Rollout(u64),
}

impl Db {
    /// Queues one post per webhook of `project` subscribed to `event`. `actor` is the email of
    /// who caused it (empty for the system).
    pub fn emit(&mut self, event: &'static str, project: &str, subject: Subject, actor: &str) {
        let Some(record) = self.project(project) else { return };
        let hooks: Vec<_> = record
            .config
            .webhooks
            .iter()
            .filter(|w| w.notification_types.iter().any(|t| t == event))
            .cloned()
            .collect();
        if hooks.is_empty() {
            return;
        }
        let project_title = record.config.title.clone();
        let base = self.external_url.trim_end_matches('/').to_owned();
        let (link, mut facts, description) = match subject {
            Subject::Issue(id) => {
                let Some(issue) = self.issue(project, id) else { return };
                let creator = self.display(&issue.creator);
                let link = format!("{base}/projects/{project}/issues/{id}");
                let description = match event {
                    "ISSUE_CREATED" => format!("{creator} created issue {}", issue.title),
                    "ISSUE_SENT_BACK" => format!("{} sent back the issue", self.display(actor)),
                    _ => String::new(),
                };
                let facts = vec![
                    ("Issue", issue.title.clone()),
                    ("Issue Creator", creator),
                    ("Issue Description", issue.description.clone()),
                ];
                (link, facts, description)
            }
            Subject::Rollout(plan) => {
                let title = self.plans.get(&plan).map(|p| p.title.clone()).unwrap_or_default();
                let link = format!("{base}/projects/{project}/plans/{plan}/rollout");
                let description = if event == "PIPELINE_FAILED" {
                    "Rollout failed"
                } else {
                    "Rollout completed successfully"
                };
                (link, vec![("Rollout", title)], description.to_owned())
            }
        };
        let mut all = vec![("Project Title", project_title), ("Project ID", project.to_owned())];
        all.append(&mut facts);
        let card =
            Card { title: title(event), description, facts: all, actor: self.display(actor), link };
        for hook in hooks {
            let format = match hook.kind.as_str() {
                "TEAMS" if is_power_automate(&hook.url) => Format::AdaptiveCard,
                "TEAMS" => Format::MessageCard,
                _ => Format::Unsupported,
            };
            let body = match format {
                Format::AdaptiveCard => card.adaptive(),
                Format::MessageCard => card.message_card(),
                Format::Unsupported => Value::Null,
            };
            self.outbox.push(Outgoing {
                webhook: format!("projects/{project}/webhooks/{}", hook.id),
                event,
                link: card.link.clone(),
                body,
                format,
            });
        }
    }

    /// `Name (email)` of a user, as the cards show an actor; empty for the system (pipeline
    /// events have no actor).
    fn display(&self, email: &str) -> String {
        if email.is_empty() {
            return String::new();
        }
        let name = self.users.get(email).map(|u| u.title.as_str()).unwrap_or(email);
        let name = if name.is_empty() { email } else { name };
        format!("{name} ({email})")
    }
}

fn title(event: &str) -> String {
    match event {
        "ISSUE_CREATED" => "Issue created",
        "ISSUE_APPROVAL_REQUESTED" => "Approval required",
        "ISSUE_SENT_BACK" => "Issue sent back",
        "ISSUE_APPROVED" => "Issue approved",
        "PIPELINE_FAILED" => "Rollout failed",
        _ => "Rollout completed",
    }
    .into()
}

struct Card {
    title: String,
    description: String,
    facts: Vec<(&'static str, String)>,
    actor: String,
    link: String,
}

impl Card {
    /// The Power Automate envelope around an Adaptive Card v1.4.
    fn adaptive(&self) -> Value {
        let mut body = vec![json!({
            "type": "TextBlock", "text": self.title, "size": "Large", "weight": "Bolder",
            "wrap": true,
        })];
        if !self.description.is_empty() {
            body.push(json!({ "type": "TextBlock", "text": self.description, "wrap": true }));
        }
        let mut facts: Vec<Value> =
            self.facts.iter().map(|(k, v)| json!({ "title": k, "value": v })).collect();
        if !self.actor.is_empty() {
            facts.push(json!({ "title": "Actor", "value": self.actor }));
        }
        body.push(json!({ "type": "FactSet", "facts": facts }));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "actions": [{
                        "type": "Action.OpenUrl", "title": "View in Bytebase", "url": self.link,
                    }],
                },
            }],
        })
    }

    /// The legacy connector MessageCard.
    fn message_card(&self) -> Value {
        let facts: Vec<Value> =
            self.facts.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.title,
            "themeColor": "4f46e5",
            "title": self.title,
            "sections": [{
                "activityTitle": self.actor, "facts": facts, "text": self.description,
            }],
            "potentialAction": [{
                "@type": "OpenUri", "name": "View in Bytebase",
                "targets": [{ "os": "default", "uri": self.link }],
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_is_per_type_and_dot_means_subdomains() {
        let pa = "https://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual";
        assert!(check_url("TEAMS", pa).is_ok());
        assert!(check_url("TEAMS", "https://logic.azure.com/x").is_ok());
        assert!(check_url("TEAMS", "https://evil-logic.azure.com.example/x").is_err());
        assert!(check_url("TEAMS", "http://127.0.0.1:8080/webhook").is_err());
        assert!(check_url("SLACK", "https://hooks.slack.com/services/T/B/x").is_ok());
        assert!(check_url("SLACK", "https://a.hooks.slack.com/services/x").is_err());
        assert!(check_url("SLACK", pa).is_err());
        assert!(check_url("CUSTOM", "https://example.com").is_err());
        assert!(check_url("TEAMS", "ftp://x.office.com/").is_err());
        assert!(
            check_url("GOOGLE_CHAT", "https://chat.googleapis.com/v1/spaces/s/messages").is_ok()
        );
        assert!(check_url("GOOGLE_CHAT", "https://chat.googleapis.com/other").is_err());
        assert!(is_power_automate(pa));
        assert!(!is_power_automate("https://acme.webhook.office.com/webhookb2/x"));
    }
}
