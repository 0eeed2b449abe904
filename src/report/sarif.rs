//! SARIF 2.1.0, for code-scanning upload (GitHub, GitLab, Azure DevOps…).
//!
//! One run; the rules are the whole code catalogue (so a scanner knows every code, found or not)
//! plus any user code seen; waived findings stay in the log with a suppression, as SARIF asks, so
//! the waiver is visible to auditors. Each result carries a stable fingerprint so a scanner keeps
//! tracking the same finding across runs while lines move.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::finding::{Finding, Report, Severity, catalogue};

/// The published schema this log conforms to.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Renders the report as a SARIF log.
pub fn render(report: &Report) -> String {
    let rules = rules(report);
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| {
            let index = rules.iter().position(|r| r["id"] == finding.code.as_str());
            result(report, finding, index)
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "cabgate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    // Serializing a `Value` cannot fail.
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}

/// The catalogue's rules, then a rule for each user code the report holds.
fn rules(report: &Report) -> Vec<Value> {
    let mut rules: Vec<Value> = catalogue()
        .iter()
        .map(|info| {
            rule(&info.code, &info.title, &info.description, &info.remediation, info.severity)
        })
        .collect();
    let mut user_codes: Vec<&Finding> =
        report.findings.iter().filter(|f| crate::finding::code_info(&f.code).is_none()).collect();
    user_codes.dedup_by(|a, b| a.code == b.code);
    for finding in user_codes {
        let help = finding.remediation.as_deref().unwrap_or("see the policy that produced it");
        rules.push(rule(
            &finding.code,
            &finding.code,
            "A finding of a user policy.",
            help,
            finding.severity,
        ));
    }
    rules
}

fn rule(code: &str, title: &str, description: &str, help: &str, severity: Severity) -> Value {
    json!({
        "id": code,
        "name": rule_name(code),
        "shortDescription": { "text": title },
        "fullDescription": { "text": description },
        "help": { "text": help, "markdown": help },
        "defaultConfiguration": { "level": level(severity) },
        "properties": { "tags": [code.split('/').next().unwrap_or(code)] },
    })
}

fn result(report: &Report, finding: &Finding, rule_index: Option<usize>) -> Value {
    let mut text = finding.message.clone();
    if let Some(remediation) = &finding.remediation {
        text.push_str(&format!(" (fix: {remediation})"));
    }
    let mut physical = json!({ "artifactLocation": { "uri": uri(&report.spec) } });
    if let Some(location) = &finding.location {
        physical["region"] = json!({
            "startLine": location.line.max(1),
            "startColumn": location.column.max(1),
        });
    }
    let mut location = json!({ "physicalLocation": physical });
    if let Some(spec_location) = &finding.location {
        let pointer = if spec_location.path.is_empty() { "/" } else { &spec_location.path };
        location["logicalLocations"] = json!([{ "fullyQualifiedName": pointer, "kind": "member" }]);
    }
    let mut result = json!({
        "ruleId": finding.code,
        "level": level(finding.severity),
        "message": { "text": text },
        "locations": [location],
        "partialFingerprints": { "cabgateFinding/v1": fingerprint(finding) },
    });
    if let Some(index) = rule_index {
        result["ruleIndex"] = json!(index);
    }
    let mut properties = serde_json::Map::new();
    if let Some(resource) = &finding.resource {
        properties.insert("resource".into(), json!(resource));
    }
    if !finding.via.is_empty() {
        properties.insert("via".into(), json!(finding.via));
    }
    if !properties.is_empty() {
        result["properties"] = Value::Object(properties);
    }
    if finding.waived {
        result["suppressions"] = json!([{
            "kind": "inSource",
            "status": "accepted",
            "justification": "waived in the spec's `waivers`",
        }]);
    }
    result
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// `lockdown/unexpected-holder` → `LockdownUnexpectedHolder` (SARIF rule names are identifiers).
fn rule_name(code: &str) -> String {
    code.split(['/', '-', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        })
        .collect()
}

/// The spec path as a relative URI reference: forward slashes, unsafe characters escaped.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What identifies a finding across runs: code, resource, spec path and message, not the line.
fn fingerprint(finding: &Finding) -> String {
    let mut hasher = Sha256::new();
    for part in [
        finding.code.as_str(),
        finding.resource.as_deref().unwrap_or_default(),
        finding.location.as_ref().map_or("", |l| l.path.as_str()),
        finding.message.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_and_uris() {
        assert_eq!(rule_name("lockdown/unexpected-holder"), "LockdownUnexpectedHolder");
        assert_eq!(uri("specs/my bridge.yaml"), "specs/my%20bridge.yaml");
        assert_eq!(uri(r"specs\b.yaml"), "specs/b.yaml");
    }
}
