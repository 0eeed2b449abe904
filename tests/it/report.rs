//! Integration tests: the report renderers. Findings are built by hand and placed into the example
//! spec through its span map, as the policies place theirs.

use std::path::Path;

use cabgate::finding::{Finding, Report, Severity, catalogue};
use cabgate::report::{self, Context, Format};
use cabgate::spec::{self, LoadedSpec};
use serde_json::Value;

const SPEC: &str = "fixtures/specs/example.yaml";

fn example() -> LoadedSpec {
    spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC)).expect("example is valid")
}

fn at(loaded: &LoadedSpec, pointer: &str, mut finding: Finding) -> Finding {
    finding.location = loaded.spans.locate(pointer);
    assert!(finding.location.is_some(), "{pointer} is not in the example");
    finding
}

/// Six findings of different codes and shapes: with resource and via, a warning, a waived one,
/// one placed at a default (no node of its own), one of a user policy without a location.
fn findings(loaded: &LoadedSpec) -> Vec<Finding> {
    let mut holder = Finding::new(
        "lockdown/unexpected-holder",
        Severity::Error,
        "user:dev@acme.example can run tasks in governed environments",
    );
    holder.resource = Some("projects/payments".into());
    holder.via = vec!["roles/projectOwner".into(), "group:dba@acme.example".into()];
    holder.remediation = Some("remove the binding, or grant a role without the permission".into());

    let mut flow = Finding::new(
        "approval/catch-all-flow",
        Severity::Error,
        "the catch-all rule's flow is [roles/projectOwner], not [roles/cab-approver]",
    );
    flow.remediation = Some("set the catch-all rule's flow to the roles the spec names".into());

    let mut automatic = Finding::new(
        "rollout/automatic",
        Severity::Error,
        "environments/prod rolls out automatically; the spec says `automatic: false`",
    );
    automatic.resource = Some("environments/prod".into());

    let mut expired = Finding::new(
        "waiver/expired",
        Severity::Warning,
        "the waiver of lockdown/unexpected-holder on projects/sandbox expired on 2027-03-31",
    );
    expired.remediation = Some("fix the finding, or renew the waiver with a new date".into());

    let mut waived = Finding::new(
        "lockdown/unexpected-holder",
        Severity::Error,
        "user:intern@acme.example can run tasks in projects/sandbox",
    );
    waived.resource = Some("projects/sandbox".into());
    waived.waived = true;

    let mut user = Finding::new("acme/naming", Severity::Info, "project ids should be kebab-case");
    user.resource = Some("projects/Ledger_Old".into());

    vec![
        at(loaded, "/lockdown/allow", holder),
        at(loaded, "/approval/catchAll/roles", flow),
        at(loaded, "/environments/prod/rollout/automatic", automatic),
        at(loaded, "/waivers/0/expires", expired),
        at(loaded, "/waivers/0/code", waived),
        user,
    ]
}

fn render(format: Format) -> (Report, String) {
    let loaded = example();
    let report = Report::new(SPEC, findings(&loaded));
    let context =
        Context { source: Some(&loaded.source), spans: Some(&loaded.spans), color: false };
    let text = report::render(&report, format, &context);
    (report, text)
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => "../../fixtures/snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn human_report_snapshot() {
    let (_, text) = render(Format::Human);
    assert!(!text.contains('\u{1b}'), "no color codes off a terminal");
    snapshot("human_findings", &text);
}

#[test]
fn human_report_of_schema_findings_snapshot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/specs/invalid-four.yaml");
    let Err(spec::SpecError::Invalid(invalid)) = spec::load(&path) else {
        panic!("invalid-four.yaml must be invalid");
    };
    let report = Report::new("fixtures/specs/invalid-four.yaml", invalid.findings.clone());
    let context =
        Context { source: invalid.source.as_deref(), spans: Some(&invalid.spans), color: false };
    snapshot("human_schema", &report::render(&report, Format::Human, &context));
}

#[test]
fn every_format_is_deterministic() {
    for format in [Format::Human, Format::Json, Format::Sarif, Format::Junit, Format::Github] {
        assert_eq!(render(format).1, render(format).1, "{format:?}");
    }
    assert_eq!(render(Format::Markdown).1, render(Format::Markdown).1);
}

#[test]
fn json_is_the_contract_report() {
    let (report, text) = render(Format::Json);
    let parsed: Report = serde_json::from_str(&text).expect("the JSON report parses back");
    assert_eq!(parsed, report);
    let value: Value = serde_json::from_str(&text).unwrap();
    let holder = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "lockdown/unexpected-holder")
        .unwrap();
    let location = &holder["location"];
    let keys: Vec<&String> = location.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["path", "line", "column"]);
    assert_eq!(value["summary"], serde_json::json!({ "errors": 3, "warnings": 1, "waived": 1 }));
}

#[test]
fn sarif_is_valid_against_the_official_schema() {
    let (_, text) = render(Format::Sarif);
    let log: Value = serde_json::from_str(&text).unwrap();
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schemas/sarif-2.1.0-rtm.5.json");
    let mut schema: Value = serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    // The schema's patterns for `language` end in a stray `]` (`…-[a-zA-Z]{2}]?$`) that
    // JavaScript reads as a literal and the Rust regex engine refuses; the same patterns with the
    // bracket escaped mean the same thing. cabgate does not write `language` anyway.
    escape_stray_brackets(&mut schema);
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&broken), "the schema check is not vacuous");

    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), catalogue().len() + 1, "every catalogue code plus the user code");
    for rule in rules {
        for field in ["id", "name", "shortDescription", "fullDescription", "help"] {
            assert!(rule.get(field).is_some(), "{field} missing in {rule}");
        }
        assert!(rule["defaultConfiguration"]["level"].is_string());
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let holder = results.iter().find(|r| r["ruleId"] == "lockdown/unexpected-holder").unwrap();
    let physical = &holder["locations"][0]["physicalLocation"];
    assert_eq!(physical["artifactLocation"]["uri"], SPEC);
    assert!(physical["region"]["startLine"].as_u64().unwrap() > 1);
    let index = holder["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "lockdown/unexpected-holder");
    let suppressed: Vec<&Value> =
        results.iter().filter(|r| r.get("suppressions").is_some()).collect();
    assert_eq!(suppressed.len(), 1, "the waived finding carries a suppression");
    let user = results.iter().find(|r| r["ruleId"] == "acme/naming").unwrap();
    assert_eq!(user["level"], "note");
}

fn escape_stray_brackets(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(pattern) if key == "pattern" && pattern.ends_with("}]?$") => {
                        *pattern = pattern.replace("}]?$", "}\\]?$");
                    }
                    other => escape_stray_brackets(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(escape_stray_brackets),
        _ => {}
    }
}

#[test]
fn junit_is_well_formed_with_a_case_per_code() {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    let (_, text) = render(Format::Junit);
    let mut reader = Reader::from_str(&text);
    let (mut cases, mut failures, mut case_names) = (0, 0, Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                cases += 1;
                let name = e.try_get_attribute("name").unwrap().unwrap();
                case_names.push(String::from_utf8(name.value.into_owned()).unwrap());
            }
            Event::Start(e) if e.name().as_ref() == b"failure" => failures += 1,
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(cases, catalogue().len() + 1);
    assert_eq!(failures, 5, "one failure per unwaived finding");
    assert!(case_names.contains(&"acme/naming".to_owned()));
    assert!(text.contains("failures=\"5\"") || text.contains("failures=\""));
}

#[test]
fn github_annotations_are_escaped_workflow_commands() {
    let (_, text) = render(Format::Github);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "waived findings are not annotated");
    assert!(
        lines.iter().any(|l| l.starts_with("::warning file=fixtures/specs/example.yaml,line="))
    );
    assert!(
        lines.iter().any(|l| l.starts_with("::notice file=fixtures/specs/example.yaml,title="))
    );
    let holder = lines.iter().find(|l| l.contains("title=lockdown/unexpected-holder")).unwrap();
    assert!(holder.contains("%0Avia: roles/projectOwner"), "{holder}");
    assert!(lines.iter().all(|l| !l.contains('\n')));
}

#[test]
fn markdown_has_a_verdict_and_a_row_per_finding() {
    let (_, text) = render(Format::Markdown);
    assert!(text.contains("**❌ failed**: 3 errors, 1 warning, 1 waived"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("| ")).count(), 1 + 6);
    assert!(text.contains("| ➖ waived |"));
}

/// The human report of real policy findings, end to end: load, evaluate, render.
#[test]
fn human_report_of_policy_findings_snapshot() {
    let name = "fixtures/specs/unsafe-workflow.yaml";
    let loaded = spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap();
    let options = cabgate::policy::Options {
        user_dirs: Vec::new(),
        now: "2026-12-01T00:00:00Z".parse().unwrap(),
    };
    let evaluation = cabgate::policy::evaluate(&loaded, None, &options).unwrap();
    let report = Report::new(name, evaluation.findings);
    let context =
        Context { source: Some(&loaded.source), spans: Some(&loaded.spans), color: false };
    snapshot("human_policy", &report::render(&report, Format::Human, &context));
}
