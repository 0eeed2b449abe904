//! The spec as policies see it, the default workflow, and durations.
//!
//! Policies read `input.spec`: the typed spec serialized back to JSON, so every default is
//! written out and no policy re-implements one. When the spec declares no transitions, the
//! default workflow's (`workflows/default.yaml`, compiled in) are filled in, so the workflow
//! safety policy proves the workflow that will actually run.

use std::sync::OnceLock;
use std::time::Duration;

use super::model::{Spec, WorkflowSpec};
use super::yaml;

/// The default workflow's source, as shipped.
pub const DEFAULT_WORKFLOW: &str = include_str!("../../workflows/default.yaml");

/// The workflow that applies when a spec declares no `workflow.transitions`: every field at its
/// default, `initial`, `final` and `transitions` from `workflows/default.yaml`.
pub fn default_workflow() -> &'static WorkflowSpec {
    static DEFAULT: OnceLock<WorkflowSpec> = OnceLock::new();
    DEFAULT.get_or_init(|| {
        // Compiled in and checked by a test (it must also pass the schema and lint clean), so a
        // failure here is a build bug, not bad input.
        let parsed = yaml::parse(DEFAULT_WORKFLOW);
        let value = match (parsed.value, parsed.problems.first()) {
            (Some(value), None) => value,
            (_, problem) => panic!("workflows/default.yaml does not parse: {problem:?}"),
        };
        serde_json::from_value(value)
            .unwrap_or_else(|e| panic!("workflows/default.yaml is not a workflow: {e}"))
    })
}

/// The spec with the default workflow's transitions filled in when it declares none.
pub fn effective(spec: &Spec) -> Spec {
    let mut effective = spec.clone();
    if effective.workflow.transitions.is_none() {
        let default = default_workflow();
        effective.workflow.initial.clone_from(&default.initial);
        effective.workflow.final_states.clone_from(&default.final_states);
        effective.workflow.transitions.clone_from(&default.transitions);
    }
    effective
}

/// The document policies read as `input.spec`.
pub fn document(spec: &Spec) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(effective(spec))
}

/// A duration does not have the spec's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason}")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a spec duration: numbers with units `ms`, `s`, `m`, `h`, `d`, e.g. `30s`, `10m`, `7d`,
/// `1h30m` (the schema's `duration` form).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = |reason: &str| DurationError { text: text.to_owned(), reason: reason.to_owned() };
    let well_formed = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || matches!(c, 'm' | 's' | 'h' | 'd'))
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text.ends_with(['s', 'm', 'h', 'd']);
    if !well_formed {
        return Err(error("write a number and a unit (ms, s, m, h, d), e.g. `30s` or `7d`"));
    }
    humantime::parse_duration(text).map_err(|e| error(&e.to_string()))
}

/// The start of a lookback window that ends at `now`, never before 1970: a lookback beyond the
/// calendar (`99999999999d` is a valid spec duration) or one reaching before 1970 keeps every
/// issue, instead of overflowing or sending Bytebase a filter with a year it refuses.
pub fn window_start(
    now: chrono::DateTime<chrono::Utc>,
    lookback: Duration,
) -> chrono::DateTime<chrono::Utc> {
    let epoch = chrono::DateTime::UNIX_EPOCH;
    chrono::TimeDelta::from_std(lookback)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .map_or(epoch, |start| start.max(epoch))
}

/// The duration fields of a spec, by JSON Pointer, for the check that they parse (a value such
/// as `99999999999999999d` has the schema's form but no `Duration`).
pub fn durations(spec: &Spec) -> Vec<(String, &str)> {
    vec![
        ("/workflow/pollInterval".to_owned(), spec.workflow.poll_interval.as_str()),
        ("/workflow/rolloutWait/timeout".to_owned(), spec.workflow.rollout_wait.timeout.as_str()),
        (
            "/alerts/skippedApproval/lookback".to_owned(),
            spec.alerts.skipped_approval.lookback.as_str(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::schema;

    #[test]
    fn durations_of_the_spec_form_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn a_window_never_starts_before_1970() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T00:00:00Z").unwrap().to_utc();
        let week = window_start(now, Duration::from_secs(7 * 86_400));
        assert_eq!(week.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        let epoch = chrono::DateTime::UNIX_EPOCH;
        assert_eq!(window_start(now, Duration::from_secs(1_000_000 * 86_400)), epoch);
        assert_eq!(window_start(now, Duration::MAX), epoch);
    }

    #[test]
    fn other_durations_are_refused() {
        for text in ["", "10", "ten minutes", "10 m", "m10", "1.5h", "-3s", "10min"] {
            assert!(parse_duration(text).is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn the_default_workflow_parses_and_passes_the_schema() {
        let workflow = default_workflow();
        assert_eq!(workflow.initial, "new");
        assert!(workflow.transitions.as_ref().is_some_and(|t| t.len() >= 5));
        // The default workflow passes the spec's schema, as a spec's own transitions must.
        let parsed = yaml::parse(DEFAULT_WORKFLOW);
        let wrapper = serde_json::json!({
            "version": 1, "name": "default",
            "bytebase": { "url": "https://b.example", "serviceAccount": "a@b.example",
                          "serviceKeyEnv": "K", "projects": ["*"] },
            "approval": { "catchAll": { "roles": ["roles/x"] } },
            "lockdown": { "allow": [] },
            "workflow": parsed.value.expect("the default workflow parses"),
        });
        let findings = schema::validate(&wrapper, &parsed.spans);
        assert!(findings.is_empty(), "{findings:#?}");
    }
}
