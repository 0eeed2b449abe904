//! Findings are the product of `lint` and `check`: data, never errors.
//!
//! A finding names a gap between the bridge spec and what it governs (or a flaw in the spec
//! itself), where in the spec it relates to, and how to close it. Everything a renderer prints
//! comes from these types, so every output format carries the same facts. The JSON report's shape
//! is a contract (`bridge-spec.md`): change it only with a new `version`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// How much a finding matters. `error` fails the run; `warning` fails it with `--fail-on warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A way a change can escape the CAB, or a spec that cannot be used.
    Error,
    /// Worth a look; does not fail the run by default.
    Warning,
    /// For the record only.
    Info,
}

impl Severity {
    /// Higher is more severe; used for `--fail-on` and for sorting.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Error => 2,
            Severity::Warning => 1,
            Severity::Info => 0,
        }
    }

    /// The lowercase name, as it appears in every report.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A place in the spec: a JSON Pointer into the document and the line and column (1-based) of the
/// YAML node it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// JSON Pointer (RFC 6901) into the spec, e.g. `/lockdown/allow/0`.
    pub path: String,
    /// 1-based line of the node in the spec file.
    pub line: usize,
    /// 1-based column of the node in the spec file.
    pub column: usize,
}

/// One gap, with its stable code and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, kebab-case code such as `lockdown/unexpected-holder` (API: never renamed).
    pub code: String,
    /// How much it matters.
    pub severity: Severity,
    /// One sentence on what is wrong, naming the principal or resource.
    pub message: String,
    /// The Bytebase (or spec) resource concerned, e.g. `projects/payments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The chain that leads to the gap: role, binding, group…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// Where in the spec this relates to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How to close the gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// True when a live waiver of the spec covers this finding.
    #[serde(default)]
    pub waived: bool,
}

impl Finding {
    /// A finding with the required fields; the rest start empty.
    pub fn new(code: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            code: code.into(),
            severity,
            message: message.into(),
            resource: None,
            via: Vec::new(),
            location: None,
            remediation: None,
            waived: false,
        }
    }

    /// The deterministic report order: code, then resource, then place in the spec, then message.
    pub fn report_order(&self, other: &Self) -> Ordering {
        let place = |f: &Finding| f.location.as_ref().map(|l| (l.line, l.column, l.path.clone()));
        self.code
            .cmp(&other.code)
            .then_with(|| self.resource.cmp(&other.resource))
            .then_with(|| place(self).cmp(&place(other)))
            .then_with(|| self.message.cmp(&other.message))
            .then_with(|| self.via.cmp(&other.via))
    }
}

/// Counts for the end of a report. Waived findings count only as waived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Unwaived findings of severity `error`.
    pub errors: usize,
    /// Unwaived findings of severity `warning`.
    pub warnings: usize,
    /// Findings a waiver covers.
    pub waived: usize,
}

impl Summary {
    /// Counts the findings.
    pub fn of(findings: &[Finding]) -> Self {
        let mut summary = Summary::default();
        for finding in findings {
            if finding.waived {
                summary.waived += 1;
            } else if finding.severity == Severity::Error {
                summary.errors += 1;
            } else if finding.severity == Severity::Warning {
                summary.warnings += 1;
            }
        }
        summary
    }
}

/// The whole result of a `lint` or `check`: the JSON report of `bridge-spec.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Report format version; 1.
    pub version: u32,
    /// The spec file as given on the command line.
    pub spec: String,
    /// Sorted by [`Finding::report_order`].
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
}

impl Report {
    /// Sorts the findings, drops exact duplicates and counts them.
    pub fn new(spec: impl Into<String>, mut findings: Vec<Finding>) -> Self {
        findings.sort_by(Finding::report_order);
        findings.dedup();
        let summary = Summary::of(&findings);
        Report { version: 1, spec: spec.into(), findings, summary }
    }

    /// True when an unwaived finding is at least as severe as `threshold`.
    pub fn fails_at(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| !f.waived && f.severity.rank() >= threshold.rank())
    }

    /// True when the spec itself is invalid (any `spec/schema` finding).
    pub fn spec_invalid(&self) -> bool {
        self.findings.iter().any(|f| f.code == "spec/schema")
    }
}

/// The process exit codes, the same for every command (ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Compliant, or the job succeeded.
    Ok = 0,
    /// Policy violations or drift found.
    Findings = 1,
    /// The spec or the command line is invalid.
    Invalid = 2,
    /// A remote API failed: unreachable, auth, 5xx after retries.
    Remote = 3,
}

impl Exit {
    /// The exit code for a finished report.
    pub fn for_report(report: &Report, fail_on: Severity) -> Exit {
        if report.spec_invalid() {
            Exit::Invalid
        } else if report.fails_at(fail_on) {
            Exit::Findings
        } else {
            Exit::Ok
        }
    }
}

/// What the catalogue says of one finding code (`policies/codes.json`, the codes reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// The stable code.
    pub code: String,
    /// Its default severity.
    pub severity: Severity,
    /// A short title (SARIF rule name, JUnit test case).
    pub title: String,
    /// What it means and why it matters.
    pub description: String,
    /// The usual fix.
    pub remediation: String,
}

/// Every built-in finding code, in catalogue order. User policies may add codes of their own.
pub fn catalogue() -> &'static [CodeInfo] {
    static CATALOGUE: std::sync::OnceLock<Vec<CodeInfo>> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // The catalogue is compiled in and checked by a test, so a parse failure is a build bug.
        serde_json::from_str(include_str!("../policies/codes.json"))
            .unwrap_or_else(|e| panic!("policies/codes.json is invalid: {e}"))
    })
}

/// The catalogue entry of a built-in code.
pub fn code_info(code: &str) -> Option<&'static CodeInfo> {
    catalogue().iter().find(|info| info.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_parses_and_codes_are_unique() {
        let codes: Vec<&str> = catalogue().iter().map(|c| c.code.as_str()).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(codes.len(), unique.len());
        assert!(codes.contains(&"lockdown/unexpected-holder"));
    }

    #[test]
    fn report_sorts_and_counts() {
        let mut waived = Finding::new("b/x", Severity::Error, "w");
        waived.waived = true;
        let report = Report::new(
            "s.yaml",
            vec![
                Finding::new("b/x", Severity::Warning, "two"),
                Finding::new("a/x", Severity::Error, "one"),
                waived,
            ],
        );
        let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["a/x", "b/x", "b/x"]);
        assert_eq!(report.summary, Summary { errors: 1, warnings: 1, waived: 1 });
        assert_eq!(Exit::for_report(&report, Severity::Error), Exit::Findings);
    }
}
