//! Integration tests: `cabgate lint`, run as the built binary on the spec fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const EXAMPLE: &str = "fixtures/specs/example.yaml";
const FOUR: &str = "fixtures/specs/invalid-four.yaml";

fn lint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("lint")
        .args(args)
        .env_remove("CABGATE_LOG")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn the_valid_fixtures_lint_clean_with_the_built_in_policies() {
    for spec in [EXAMPLE, "fixtures/specs/full.yaml"] {
        let output = lint(&[spec, "--format", "json"]);
        let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(report["findings"], serde_json::json!([]), "{spec}: {report:#}");
        assert_eq!(output.status.code(), Some(0), "{spec}");
        assert_eq!(report["spec"], spec);
    }
}

#[test]
fn warnings_fail_only_with_fail_on_warning() {
    let spec = "fixtures/specs/expired-waiver.yaml";
    let output = lint(&[spec, "--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["findings"][0]["code"], "waiver/expired");
    assert_eq!(report["findings"][0]["location"]["line"], 64);
    assert_eq!(lint(&[spec, "--fail-on", "warning"]).status.code(), Some(1));
}

#[test]
fn user_policies_add_findings_and_bad_ones_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("naming.rego"),
        "package cabgate.rules.acme\n\nfindings contains f if {\n  input.spec.name != \"acme\"\n  \
         f := {\"code\": \"acme/name\", \"severity\": \"error\", \"message\": \"not acme\",\n  \
         \"path\": \"/name\"}\n}\n",
    )
    .unwrap();
    let policy_dir = dir.path().to_str().unwrap();
    let output = lint(&[EXAMPLE, "--policy", policy_dir, "--format", "sarif"]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let log: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "acme/name");
    assert_eq!(result["locations"][0]["physicalLocation"]["region"]["startLine"], 4);
    let rules = log["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "acme/name"), "user codes become rules");

    std::fs::write(
        dir.path().join("broken.rego"),
        "package cabgate.rules.broken\nthis is not rego\n",
    )
    .unwrap();
    let output = lint(&[EXAMPLE, "--policy", policy_dir]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
}

#[test]
fn four_schema_errors_exit_2_in_every_format() {
    let expected = [(6, 1), (14, 20), (19, 3), (23, 17)];

    let json = lint(&[FOUR, "--format", "json"]);
    assert_eq!(json.status.code(), Some(2));
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let places: Vec<(u64, u64)> = findings
        .iter()
        .map(|f| {
            assert_eq!(f["code"], "spec/schema");
            (f["location"]["line"].as_u64().unwrap(), f["location"]["column"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(places, expected.map(|(l, c)| (l as u64, c as u64)));

    let sarif = lint(&[FOUR, "--format", "sarif"]);
    assert_eq!(sarif.status.code(), Some(2));
    let log: Value = serde_json::from_str(&stdout(&sarif)).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let regions: Vec<(u64, u64)> = results
        .iter()
        .map(|r| {
            let region = &r["locations"][0]["physicalLocation"]["region"];
            (region["startLine"].as_u64().unwrap(), region["startColumn"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(regions, expected.map(|(l, c)| (l as u64, c as u64)));

    let junit = lint(&[FOUR, "--format", "junit"]);
    assert_eq!(junit.status.code(), Some(2));
    let xml = stdout(&junit);
    assert_eq!(xml.matches("<failure ").count(), 4);
    for (line, column) in expected {
        assert!(xml.contains(&format!("{FOUR}:{line}:{column}: ")), "{line}:{column} in {xml}");
    }

    let github = lint(&[FOUR, "--format", "github"]);
    assert_eq!(github.status.code(), Some(2));
    let annotations = stdout(&github);
    let lines: Vec<&str> = annotations.lines().collect();
    assert_eq!(lines.len(), 4);
    for (annotation, (line, column)) in lines.iter().zip(expected) {
        let head = format!("::error file={FOUR},line={line},col={column},title=spec/schema::");
        assert!(annotation.starts_with(&head), "{annotation}");
    }

    let markdown = lint(&[FOUR, "--format", "markdown"]);
    assert_eq!(markdown.status.code(), Some(2));
    let text = stdout(&markdown);
    assert!(text.contains("4 errors, 0 warnings, 0 waived"));
    for (line, column) in expected {
        assert!(text.contains(&format!("`{FOUR}:{line}:{column}`")), "{text}");
    }

    let human = lint(&[FOUR]);
    assert_eq!(human.status.code(), Some(2));
    let text = stdout(&human);
    assert_eq!(text.matches("spec/schema").count(), 4, "{text}");
    for (line, column) in expected {
        assert!(text.contains(&format!("[{FOUR}:{line}:{column}]")), "{text}");
    }
    assert!(text.contains("did you mean `projectSettings`?"));
    assert!(text.ends_with("failed with 4 errors, 0 warnings, 0 waived (4 findings)\n"));
    assert!(!text.contains('\u{1b}'), "no colors when stdout is not a terminal");
}

#[test]
fn a_missing_spec_is_a_usage_error() {
    let output = lint(&["fixtures/specs/no-such-spec.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read the spec fixtures/specs/no-such-spec.yaml"), "{stderr}");
}

#[test]
fn bad_options_are_usage_errors() {
    assert_eq!(lint(&[EXAMPLE, "--format", "xml"]).status.code(), Some(2));
    assert_eq!(lint(&[EXAMPLE, "--fail-on", "info"]).status.code(), Some(2));
    assert_eq!(lint(&[]).status.code(), Some(2));
}

#[test]
fn output_is_written_to_the_file_and_not_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let target: PathBuf = dir.path().join("lint.sarif");
    let target_arg = target.to_str().unwrap();
    let output = lint(&[FOUR, "--format", "sarif", "--output", target_arg]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let log: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");

    // A folder that does not exist: nothing is written, and the run fails (exit 3).
    let missing = dir.path().join("missing/lint.json");
    let output = lint(&[EXAMPLE, "--format", "json", "--output", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(!Path::new(&missing).exists());
}

#[test]
fn invalid_yaml_is_reported_as_findings_with_places() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("dup.yaml");
    std::fs::write(&spec, "version: 1\nversion: 1\n").unwrap();
    let output = lint(&[spec.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let duplicate = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["message"].as_str().unwrap().contains("duplicate key `version`"))
        .expect("the duplicate key is reported");
    assert_eq!(duplicate["location"]["line"], 2);
}

#[test]
fn an_unsafe_workflow_fails_with_the_transition_located() {
    let output = lint(&["fixtures/specs/unsafe-workflow.yaml", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let unsafe_finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "workflow/unsafe")
        .expect("workflow/unsafe is reported");
    assert_eq!(unsafe_finding["location"]["line"], 28, "{unsafe_finding:#}");
    assert!(unsafe_finding["message"].as_str().unwrap().contains("approve-early"));
}
