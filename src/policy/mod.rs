//! The policy layer: built-in and user Rego evaluated with regorus over `{spec, live, index, now}`.
//!
//! Data is indexed in Rust before evaluation ([`index`]): regorus goes quadratic on nested
//! comprehensions over big inputs, and Rego has no globs, CEL or recursion, so every policy stays
//! a linear pass over the input. regorus errors are converted here, once, into diagnostics that
//! name the policy file and line ([`PolicyError`]).
//!
//! The rule convention (docs/policies.md): every package under `cabgate.rules.` defines a partial
//! set `findings` of objects `{code, message, resource?, via?, path?, severity?, remediation?}`.
//! `path` is a JSON Pointer into the spec; the engine turns it into a line and column. Severity and
//! remediation of built-in codes come from `policies/codes.json` (`data.cabgate.codes`) when a
//! finding does not set them. Waivers of the spec are applied after evaluation.

pub mod convert;
pub mod docs;
mod engine;
pub mod index;
pub mod testing;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::finding::{Finding, Severity, code_info};
use crate::live::Snapshot;
use crate::spec::LoadedSpec;

pub use engine::{BUILTIN_POLICIES, BUILTIN_TESTS, EVALUATION_LIMIT, PolicySet, codes_data};

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folders of the user's own Rego (`--policy DIR`), searched recursively for `*.rego` files
    /// other than `*_test.rego`.
    pub user_dirs: Vec<PathBuf>,
    /// The time the checks are made at (waiver expiry, binding expiry, lookback windows).
    pub now: DateTime<Utc>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Findings with their spec locations filled in and waivers applied (unsorted: `Report::new`
    /// fixes the order and drops duplicates).
    pub findings: Vec<Finding>,
    /// Time spent per policy package (for `--profile`), in evaluation order, after two entries:
    /// `(load)`, parsing the policies, and `(index)`, building the input and its index in Rust.
    pub profile: Vec<(String, Duration)>,
}

/// A policy could not be loaded or evaluated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PolicyError {
    /// A policy file or folder could not be read.
    #[error("cannot read policy {path}")]
    #[diagnostic(code(cabgate::policy::read))]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A policy file is not valid Rego (v1).
    #[error("{file}:{line}:{column}: {message}")]
    #[diagnostic(code(cabgate::policy::parse))]
    Parse {
        /// The policy file.
        file: String,
        /// 1-based line (0 when regorus did not say).
        line: u32,
        /// 1-based column (0 when regorus did not say).
        column: u32,
        /// What is wrong.
        message: String,
        /// regorus's own text, with the source excerpt.
        #[help]
        note: String,
    },
    /// Evaluating a package failed (a builtin error, a conflict, the time limit…).
    #[error("policy package {package} failed{}: {message}", at(file, *line))]
    #[diagnostic(code(cabgate::policy::eval))]
    Eval {
        /// The package, e.g. `data.cabgate.rules.lockdown`.
        package: String,
        /// The policy file, when regorus named one.
        file: Option<String>,
        /// The line, when regorus named one.
        line: Option<u32>,
        /// What went wrong.
        message: String,
        /// regorus's own text.
        #[help]
        note: String,
    },
    /// A rule produced a finding that does not follow the convention.
    #[error("policy package {package} produced an invalid finding: {problem}")]
    #[diagnostic(
        code(cabgate::policy::finding),
        help("a finding is an object with string `code` and `message`; see docs/policies.md")
    )]
    Finding {
        /// The package.
        package: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn at(file: &Option<String>, line: Option<u32>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!(" at {file}:{line}"),
        (Some(file), None) => format!(" in {file}"),
        _ => String::new(),
    }
}

/// Evaluates every built-in policy and the user's own over the spec and, for `check`, the live
/// snapshot.
pub fn evaluate(
    spec: &LoadedSpec,
    live: Option<&Snapshot>,
    options: &Options,
) -> Result<Evaluation, PolicyError> {
    let started = std::time::Instant::now();
    let mut policies = PolicySet::load(&options.user_dirs)?;
    let mut profile = vec![("(load)".to_owned(), started.elapsed())];
    let started = std::time::Instant::now();
    let input = input(&spec.document, live, options.now)?;
    profile.push(("(index)".to_owned(), started.elapsed()));
    let raw = policies.evaluate_input(input)?;
    let mut findings = Vec::new();
    for package in raw {
        profile.push((package.package.clone(), package.elapsed));
        for value in &package.findings {
            findings.push(to_finding(&package.package, value, spec)?);
        }
    }
    apply_waivers(&mut findings, &spec.document, options.now);
    Ok(Evaluation { findings, profile })
}

/// The policy input `{spec, live, index, now}` in regorus's form: the document [`build_input`]
/// writes as JSON, built without a JSON tree of the snapshot in between.
pub fn input(
    document: &Value,
    live: Option<&Snapshot>,
    now: DateTime<Utc>,
) -> Result<regorus::Value, PolicyError> {
    let cutoff = index::lookback_cutoff(document, now);
    let live = live.map(|snapshot| within_lookback(snapshot, cutoff));
    let live = live.as_deref();
    // The index and the conversion of the snapshot each take a pass over a snapshot that can
    // hold tens of thousands of bindings and issues; they are independent, so they run side by
    // side.
    let (index, live) = std::thread::scope(|scope| {
        let converting = scope.spawn(|| live.map(convert::to_regorus).transpose());
        let index = convert::to_regorus(&index::build(document, live, now));
        // A panic in the conversion is a bug; re-raise it here rather than lose it.
        let live = converting.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (index, live)
    });
    let unconvertible = |e: convert::ConvertError| PolicyError::Eval {
        package: "(input)".to_owned(),
        file: None,
        line: None,
        message: "the policy input has no JSON form".to_owned(),
        note: e.to_string(),
    };
    let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let parts = [
        ("spec", convert::to_regorus(document).map_err(unconvertible)?),
        ("live", live.map_err(unconvertible)?.unwrap_or(regorus::Value::Null)),
        ("index", index.map_err(unconvertible)?),
        ("now", regorus::Value::from(now)),
    ];
    let object = parts.into_iter().map(|(k, v)| (regorus::Value::from(k), v)).collect();
    Ok(regorus::Value::from(std::collections::BTreeMap::from_iter::<Vec<_>>(object)))
}

/// The policy input: `{"spec", "live", "index", "now"}` (docs/policies.md), as JSON, for other
/// engines and tests; [`evaluate`] builds the same document in regorus's form ([`input`]).
pub fn build_input(document: &Value, live: Option<&Snapshot>, now: DateTime<Utc>) -> Value {
    let cutoff = index::lookback_cutoff(document, now);
    let live = live.map(|snapshot| within_lookback(snapshot, cutoff));
    let index = index::build(document, live.as_deref(), now);
    let live = live.map_or(Value::Null, |snapshot| snapshot.to_value());
    let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"spec": document, "live": live, "index": index, "now": now})
}

/// The snapshot with only the SKIPPED issues of the lookback window: older ones concern no
/// policy, and a snapshot file may hold many. Borrowed when there is nothing to cut (a live
/// read asks Bytebase for the window only).
fn within_lookback(snapshot: &Snapshot, cutoff: DateTime<Utc>) -> Cow<'_, Snapshot> {
    if snapshot.skipped_issues.iter().all(|issue| index::in_window(issue, cutoff)) {
        return Cow::Borrowed(snapshot);
    }
    let mut cut = snapshot.clone();
    cut.skipped_issues.retain(|issue| index::in_window(issue, cutoff));
    Cow::Owned(cut)
}

/// Turns one finding object of the convention into a [`Finding`].
fn to_finding(package: &str, value: &Value, spec: &LoadedSpec) -> Result<Finding, PolicyError> {
    let problem = |problem: String| PolicyError::Finding { package: package.to_owned(), problem };
    let Some(object) = value.as_object() else {
        return Err(problem(format!("{value} is not an object")));
    };
    let text = |key: &str| -> Result<Option<String>, PolicyError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(problem(format!("`{key}` is {other}, not a string"))),
        }
    };
    let code = text("code")?.ok_or_else(|| problem(format!("{value} has no `code`")))?;
    let message = text("message")?.ok_or_else(|| problem(format!("{code} has no `message`")))?;
    // `spec/schema` means "the spec cannot be used" (exit 2): only the spec loader says that.
    if code == "spec/schema" {
        return Err(problem(
            "`spec/schema` is reserved for the spec loader; use a code of your own".into(),
        ));
    }
    let info = code_info(&code);
    let severity = match text("severity")?.as_deref() {
        None => info.map_or(Severity::Error, |i| i.severity),
        Some("error") => Severity::Error,
        Some("warning") => Severity::Warning,
        Some("info") => Severity::Info,
        Some(other) => return Err(problem(format!("{code} has the unknown severity {other:?}"))),
    };
    let via = match object.get("via") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| problem(format!("{code} has a `via` that is not all strings")))?,
        Some(other) => return Err(problem(format!("{code} has `via` {other}"))),
    };
    let mut finding = Finding::new(code, severity, message);
    finding.resource = text("resource")?;
    finding.via = via;
    finding.remediation = text("remediation")?.or_else(|| info.map(|i| i.remediation.clone()));
    finding.location = text("path")?.and_then(|path| spec.spans.locate(&path));
    Ok(finding)
}

/// Marks the findings that a live waiver covers. An expired waiver waives nothing (the
/// `waiver/expired` policy reports it); a waiver never covers `waiver/expired` itself.
fn apply_waivers(findings: &mut [Finding], document: &Value, now: DateTime<Utc>) {
    let today = now.format("%Y-%m-%d").to_string();
    let waivers = document.get("waivers").and_then(Value::as_array);
    let live: Vec<(&str, Option<&str>)> = waivers
        .into_iter()
        .flatten()
        .filter(|w| w.get("expires").and_then(Value::as_str).is_some_and(|e| e >= today.as_str()))
        .filter_map(|w| {
            let code = w.get("code").and_then(Value::as_str)?;
            Some((code, w.get("resource").and_then(Value::as_str)))
        })
        .collect();
    for finding in findings.iter_mut().filter(|f| f.code != "waiver/expired") {
        finding.waived = live.iter().any(|(code, resource)| {
            *code == finding.code && resource.is_none_or(|r| Some(r) == finding.resource.as_deref())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(document: Value) -> LoadedSpec {
        let spec: crate::spec::Spec = serde_json::from_value(json!({
            "version": 1, "name": "t",
            "bytebase": {"url": "u", "serviceAccount": "s", "serviceKeyEnv": "K", "projects": []},
            "approval": {"catchAll": {"roles": []}},
            "lockdown": {"allow": []}
        }))
        .unwrap();
        LoadedSpec {
            path: "t.yaml".into(),
            source: String::new(),
            spec,
            document,
            spans: Default::default(),
        }
    }

    #[test]
    fn catalogue_defaults_fill_severity_and_remediation() {
        let spec = loaded(json!({}));
        let raw = json!({"code": "rollout/undeclared-environment", "message": "m", "via": "one"});
        let finding = to_finding("p", &raw, &spec).unwrap();
        assert_eq!(finding.severity, Severity::Warning);
        assert!(finding.remediation.is_some());
        assert_eq!(finding.via, ["one"]);
        let own = json!({"code": "acme/x", "message": "m", "severity": "info", "resource": null});
        let finding = to_finding("p", &own, &spec).unwrap();
        assert_eq!(
            (finding.severity, finding.remediation, finding.resource),
            (Severity::Info, None, None)
        );
        let bad = json!({"code": "acme/x", "message": "m", "severity": "fatal"});
        assert!(matches!(to_finding("p", &bad, &spec), Err(PolicyError::Finding { .. })));
    }

    #[test]
    fn live_waivers_waive_and_expired_ones_do_not() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T23:00:00Z").unwrap().to_utc();
        let document = json!({"waivers": [
            {"code": "a/b", "resource": "projects/x", "reason": "r", "expires": "2026-12-03"},
            {"code": "c/d", "reason": "r", "expires": "2026-12-02"},
            {"code": "e/f", "reason": "r", "expires": "2027-01-01"},
            {"code": "waiver/expired", "reason": "r", "expires": "2027-01-01"}
        ]});
        let mut findings = vec![
            Finding::new("a/b", Severity::Error, "1"),
            Finding::new("a/b", Severity::Error, "2"),
            Finding::new("c/d", Severity::Error, "3"),
            Finding::new("e/f", Severity::Error, "4"),
            Finding::new("waiver/expired", Severity::Warning, "5"),
        ];
        findings[0].resource = Some("projects/x".into());
        findings[1].resource = Some("projects/y".into());
        findings[3].resource = Some("anything".into());
        apply_waivers(&mut findings, &document, now);
        let waived: Vec<bool> = findings.iter().map(|f| f.waived).collect();
        assert_eq!(waived, [true, false, false, true, false]);
    }
}
