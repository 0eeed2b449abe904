//! The words cabgate writes: the CHG from the spec's template, the correlation id that makes
//! CHG creation idempotent, and the comments and work notes on both sides.
//!
//! All pure, so `--dry-run` prints exactly what `apply` would send.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::workflow::facts::IssueView;

/// The longest `correlation_id` ServiceNow stores.
pub const CORRELATION_MAX: usize = 100;

/// What `{{ … }}` placeholders can read.
#[derive(Debug, Clone, Default)]
pub struct Context {
    values: BTreeMap<String, String>,
}

impl Context {
    /// The issue's facts: `issue.title`, `issue.description`, `issue.creator`, `issue.project`,
    /// `issue.name`, `issue.id`, `issue.url`, `issue.plan`.
    pub fn for_issue(issue: &IssueView, bytebase_url: &str) -> Context {
        let id = issue.name.rsplit('/').next().unwrap_or_default();
        let creator = issue.creator.strip_prefix("users/").unwrap_or(&issue.creator);
        let url = format!("{}/{}", bytebase_url.trim_end_matches('/'), issue.name);
        let values = [
            ("issue.title", issue.title.as_str()),
            ("issue.description", issue.description.as_str()),
            ("issue.creator", creator),
            ("issue.project", issue.project()),
            ("issue.name", issue.name.as_str()),
            ("issue.id", id),
            ("issue.url", url.as_str()),
            ("issue.plan", issue.plan.as_str()),
        ];
        Context { values: values.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    /// Adds (or replaces) a value, e.g. `change.number`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.values.insert(key.to_owned(), value.into());
        self
    }

    /// Replaces every `{{ key }}` by its value; an unknown key is left as written, so a typo shows
    /// in the CHG instead of vanishing.
    pub fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                out.push_str(&rest[open..]);
                return out;
            };
            let key = after[..close].trim();
            match self.values.get(key) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[open..open + 2 + close + 2]),
            }
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// Renders the spec's CHG template into `change_request` fields.
pub fn change_fields(
    template: &BTreeMap<String, String>,
    context: &Context,
) -> BTreeMap<String, String> {
    template.iter().map(|(field, text)| (field.clone(), context.render(text))).collect()
}

/// The prefix every correlation id of this Bytebase workspace starts with, so one ServiceNow
/// query (`correlation_idSTARTSWITH…`) finds every CHG the runner manages, and two workspaces
/// never collide: `bytebase:<8 hex of the workspace URL's hash>:`.
pub fn correlation_prefix(bytebase_url: &str) -> String {
    let digest = Sha256::digest(bytebase_url.trim_end_matches('/').as_bytes());
    format!("bytebase:{}:", &hex::encode(digest)[..8])
}

/// The correlation id of an issue's CHG: `<prefix><project>/<issue id>`, with `:r<n>` for the
/// n-th CHG opened after a rework (`onRework: new`). When that would exceed 100 characters or
/// contain a character ServiceNow queries treat as syntax, the issue part is a hash instead.
pub fn correlation_id(bytebase_url: &str, issue: &str, generation: u32) -> String {
    let prefix = correlation_prefix(bytebase_url);
    let short = issue.strip_prefix("projects/").unwrap_or(issue).replacen("/issues/", "/", 1);
    let suffix = if generation == 0 { String::new() } else { format!(":r{generation}") };
    let plain = format!("{prefix}{short}{suffix}");
    let clean = plain.bytes().all(|b| b.is_ascii_graphic() && b != b'^' && b != b',');
    if clean && plain.len() <= CORRELATION_MAX {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(issue.as_bytes()));
    format!("{prefix}h{}{suffix}", &digest[..40])
}

/// The comment on the issue that names its CHG.
pub fn change_opened_comment(number: &str, instance: &str, sys_id: &str) -> String {
    format!(
        "cabgate: this change needs CAB approval in ServiceNow {number} \
         ({}/change_request.do?sys_id={sys_id}). It is approved here once the CAB approves it.",
        instance.trim_end_matches('/')
    )
}

/// The approval comment: the CAB approver(s) and the CHG.
pub fn approval_comment(number: &str, approvers: &[String]) -> String {
    let who = if approvers.is_empty() { "the CAB".to_owned() } else { approvers.join(", ") };
    format!("cabgate: approved by {who} in ServiceNow {number}.")
}

/// The rejection comment: the CAB's reason, and what a rework needs.
pub fn rejection_comment(number: &str, reason: &str, rework: bool) -> String {
    if rework {
        format!(
            "cabgate: the CAB asks for rework in ServiceNow {number}: {reason}. Change the plan \
             and re-request review; the CHG goes back to the CAB."
        )
    } else {
        format!("cabgate: rejected by the CAB in ServiceNow {number}: {reason}.")
    }
}

/// True when a CAB rejection asks for rework rather than saying no.
pub fn asks_for_rework(reason: &str) -> bool {
    let lower = reason.to_lowercase();
    ["rework", "re-work", "resubmit", "please change", "fix and"].iter().any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue() -> IssueView {
        IssueView {
            name: "projects/payments/issues/42".into(),
            title: "Add index".into(),
            description: "Speeds up lookups".into(),
            creator: "users/dev@acme.example".into(),
            status: "OPEN".into(),
            approval_status: "PENDING".into(),
            plan: "projects/payments/plans/42".into(),
            create_time: None,
        }
    }

    #[test]
    fn the_template_reads_issue_facts_and_keeps_unknown_keys() {
        let ctx = Context::for_issue(&issue(), "https://bb.acme.example/");
        assert_eq!(ctx.render("[Bytebase] {{ issue.title }}"), "[Bytebase] Add index");
        assert_eq!(
            ctx.render("{{issue.url}} by {{ issue.creator }} in {{ issue.project }}"),
            "https://bb.acme.example/projects/payments/issues/42 by dev@acme.example in payments"
        );
        assert_eq!(ctx.render("{{ issue.nope }} {{ open"), "{{ issue.nope }} {{ open");
    }

    #[test]
    fn correlation_ids_are_bounded_and_query_safe() {
        let url = "https://bb.acme.example";
        let id = correlation_id(url, "projects/payments/issues/42", 0);
        assert!(id.starts_with(&correlation_prefix(url)));
        assert!(id.ends_with(":payments/42"), "{id}");
        assert!(correlation_id(url, "projects/payments/issues/42", 2).ends_with("/42:r2"));
        let long = format!("projects/{}/issues/1", "p".repeat(120));
        let bounded = correlation_id(url, &long, 3);
        assert!(bounded.len() <= CORRELATION_MAX, "{}", bounded.len());
        assert!(bounded.ends_with(":r3"));
        let odd = correlation_id(url, "projects/a b^c,d/issues/1", 0);
        assert!(!odd.contains([' ', '^', ',']), "{odd}");
        assert_ne!(correlation_prefix(url), correlation_prefix("https://other.example"));
    }

    #[test]
    fn rework_is_a_rejection_that_says_so() {
        assert!(asks_for_rework("Please rework: add a rollback script"));
        assert!(!asks_for_rework("Not during the freeze"));
    }
}
