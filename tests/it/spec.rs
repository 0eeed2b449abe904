//! Integration tests: spec loading with spans, the schema's findings, and the schema's agreement
//! with the typed model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cabgate::finding::Finding;
use cabgate::spec::{self, SpecError, schema};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/specs").join(name)
}

const VALID: [&str; 2] = ["example.yaml", "full.yaml"];

/// The findings of an invalid spec (panics if it loads).
fn problems(bytes: &[u8]) -> Vec<Finding> {
    match spec::load_bytes(Path::new("t.yaml"), bytes) {
        Ok(_) => panic!("the spec should be invalid"),
        Err(SpecError::Invalid(invalid)) => invalid.findings,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// (line, column, message) of each finding, all of which must be `spec/schema`.
fn places(findings: &[Finding]) -> Vec<(usize, usize, String)> {
    findings
        .iter()
        .map(|f| {
            assert_eq!(f.code, "spec/schema");
            let l = f.location.as_ref().expect("every spec finding is located");
            (l.line, l.column, f.message.clone())
        })
        .collect()
}

const MINIMAL: &str = "version: 1
name: t
bytebase:
  url: https://b.example
  serviceAccount: a@b.example
  serviceKeyEnv: KEY
  projects: [p]
approval:
  catchAll: { roles: [roles/cab] }
lockdown:
  allow: []
";

#[test]
fn valid_fixtures_load_with_defaults_and_the_default_workflow() {
    for name in VALID {
        let loaded = spec::load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let transitions = &loaded.document["workflow"]["transitions"];
        assert!(transitions.as_array().is_some_and(|t| !t.is_empty()), "{name}");
    }
    let loaded = spec::load_bytes(Path::new("m.yaml"), MINIMAL.as_bytes()).expect("minimal");
    assert!(loaded.spec.workflow.transitions.is_none(), "the typed spec stays as written");
    let document = &loaded.document;
    assert_eq!(document["lockdown"]["permission"], "bb.taskRuns.create");
    assert_eq!(document["workflow"]["pollInterval"], "30s");
    assert_eq!(document["alerts"]["skippedApproval"]["lookback"], "7d");
    assert_eq!(document["state"]["url"], "sqlite://cabgate.db");
    let default = spec::default_workflow().transitions.clone().expect("default transitions");
    assert_eq!(document["workflow"]["transitions"], serde_json::to_value(default).unwrap());
}

#[test]
fn four_schema_errors_are_found_at_their_nodes() {
    let bytes = std::fs::read(fixture("invalid-four.yaml")).unwrap();
    let found = places(&problems(&bytes));
    let lines: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(lines, [(6, 1), (14, 20), (19, 3), (23, 17)], "{found:?}");
    assert!(found[0].2.contains("`serviceKeyEnv`"));
    assert!(found[1].2.contains("must be `true` or `false`"));
    assert!(found[2].2.contains("unknown key `projectSetings`"));
    assert!(found[3].2.contains("`30 seconds`"));
}

#[test]
fn unknown_keys_suggest_the_closest_allowed_key() {
    let text = MINIMAL.replace("  serviceKeyEnv: KEY\n", "  serviceKeyEnv: KEY\n  projets: [x]\n");
    let found = problems(text.as_bytes());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].remediation.as_deref(), Some("did you mean `projects`?"));
    let location = found[0].location.as_ref().unwrap();
    assert_eq!(
        (location.path.as_str(), location.line, location.column),
        ("/bytebase/projets", 7, 3)
    );
}

#[test]
fn workflow_grammar_errors_name_facts_and_actions() {
    let text = format!(
        "{MINIMAL}workflow:
  transitions:
    - from: new
      to: done
      when: {{ change.aproval: approved }}
      actions: [run_task, {{ close_chnage: {{ code: x }} }}]
"
    );
    let found = places(&problems(text.as_bytes()));
    assert_eq!(found.len(), 3, "{found:?}");
    let help: Vec<String> =
        problems(text.as_bytes()).into_iter().map(|f| f.remediation.unwrap_or_default()).collect();
    assert!(help.contains(&"did you mean `change.approval`?".to_owned()), "{help:?}");
    assert!(help.contains(&"did you mean `run_tasks`?".to_owned()), "{help:?}");
    assert!(help.contains(&"did you mean `close_change`?".to_owned()), "{help:?}");
}

#[test]
fn yaml_syntax_errors_have_a_line_and_column() {
    let found = places(&problems(b"version: 1\nname: [unclosed\nbytebase: {}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.starts_with("YAML syntax error"), "{found:?}");
    assert!(found[0].0 >= 2);
}

#[test]
fn duplicate_keys_anchors_and_aliases_are_all_reported() {
    let text = format!("{MINIMAL}name: again\nstate: &s {{ url: sqlite://x.db }}\nextra: *s\n");
    let found = places(&problems(text.as_bytes()));
    let messages: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
    assert!(
        found.iter().any(|(l, c, m)| (*l, *c) == (12, 1) && m.contains("duplicate key `name`"))
    );
    assert!(messages.iter().any(|m| m.contains("first written on line 2")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("anchors")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("aliases")), "{messages:?}");
    // The schema still runs: `extra` is unknown.
    assert!(messages.iter().any(|m| m.contains("unknown key `extra`")), "{messages:?}");
}

#[test]
fn tabs_in_indentation_are_reported_per_line() {
    let text = MINIMAL.replace("  url: https", "\turl: https").replace("  projects", "\tprojects");
    let found = places(&problems(text.as_bytes()));
    let tabs: Vec<_> = found.iter().filter(|(_, _, m)| m.contains("tab")).collect();
    assert_eq!(tabs.len(), 2, "{found:?}");
    assert_eq!((tabs[0].0, tabs[0].1), (4, 1));
    assert_eq!((tabs[1].0, tabs[1].1), (7, 1));
}

#[test]
fn non_utf8_empty_and_non_mapping_files_are_refused() {
    let found = places(&problems(b"version: 1\nname: caf\xe9\n"));
    assert_eq!((found[0].0, found[0].1), (2, 10));
    assert!(found[0].2.contains("not UTF-8"));
    for empty in [&b""[..], b"\n\n", b"# only a comment\n"] {
        let found = places(&problems(empty));
        assert!(found[0].2.contains("empty"), "{found:?}");
    }
    let found = places(&problems(b"- version: 1\n"));
    assert!(found[0].2.contains("must be a mapping"), "{found:?}");
    let found = places(&problems(format!("{MINIMAL}---\nversion: 1\n").as_bytes()));
    assert!(found[0].2.contains("more than one YAML document"), "{found:?}");
}

#[test]
fn a_byte_order_mark_does_not_shift_columns() {
    let found = places(&problems("\u{feff}version: 2\n".as_bytes()));
    let version = found.iter().find(|(_, _, m)| m.contains("`version` must be 1")).unwrap();
    assert_eq!((version.0, version.1), (1, 10), "{found:?}");
}

#[test]
fn yaml_1_2_keeps_on_and_yes_as_text() {
    let text = format!("{MINIMAL}workflow:\n  change:\n    on: yes\n    off: no\n");
    let loaded = spec::load_bytes(Path::new("t.yaml"), text.as_bytes()).expect("valid");
    assert_eq!(loaded.spec.workflow.change.get("on").map(String::as_str), Some("yes"));
    assert_eq!(loaded.spec.workflow.change.get("off").map(String::as_str), Some("no"));
}

#[test]
fn a_missing_file_is_a_read_error() {
    let error = spec::load(&fixture("does-not-exist.yaml")).unwrap_err();
    assert!(matches!(error, SpecError::Read { .. }));
}

/// Every property of the schema has a description (editors show it as the user types).
#[test]
fn every_schema_property_is_described() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (key, property) in properties {
                if property.get("description").is_none() {
                    missing.push(format!("{path}/{key}"));
                }
                walk(property, &format!("{path}/{key}"), missing);
            }
        }
        for keyword in ["items", "additionalProperties", "else", "then"] {
            if let Some(child) = node.get(keyword).filter(|c| c.is_object()) {
                walk(child, &format!("{path}/{keyword}"), missing);
            }
        }
        if let Some(defs) = node.get("$defs").and_then(Value::as_object) {
            for (key, def) in defs {
                walk(def, &format!("{path}/$defs/{key}"), missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(schema::schema(), "", &mut missing);
    assert!(missing.is_empty(), "properties without a description: {missing:?}");
    assert_eq!(schema::schema()["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(schema::schema()["$id"].is_string());
}

/// Every object path in a JSON document, with array indices as `[]` (`/a/b`, `/a/b[]/c`).
fn key_paths(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}/{key}");
                out.insert(child_path.clone());
                key_paths(child, &child_path, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| key_paths(i, &format!("{path}[]"), out)),
        _ => {}
    }
}

/// Every property path the schema declares, in the same notation (free-form maps excluded:
/// environment ids, the CHG template, `when` facts and action arguments are data, not fields).
fn schema_paths(node: &Value, path: &str, out: &mut BTreeSet<String>, depth: usize) {
    let node = resolve(node);
    if depth > 12 {
        return;
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            let child_path = format!("{path}/{key}");
            out.insert(child_path.clone());
            schema_paths(child, &child_path, out, depth + 1);
        }
    }
    if let Some(items) = node.get("items") {
        schema_paths(items, &format!("{path}[]"), out, depth + 1);
    }
    if let Some(extra) = node.get("additionalProperties").filter(|v| v.is_object()) {
        out.insert(format!("{path}/*"));
        schema_paths(extra, &format!("{path}/*"), out, depth + 1);
    }
}

fn resolve(node: &Value) -> &Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| schema::schema().pointer(r.trim_start_matches('#')))
        .unwrap_or(node)
}

/// Replaces the free-form keys (environment ids) with `*`, as in [`schema_paths`].
fn generalize(path: &str) -> String {
    let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
    if parts.get(1).map(String::as_str) == Some("environments") && parts.len() > 2 {
        parts[2] = "*".to_owned();
    }
    parts.join("/")
}

/// The schema and the model agree in both directions:
/// - every field the model writes (the normalized document of each valid fixture, where every
///   default is filled in) is a property of the schema;
/// - every property of the schema is written in at least one valid fixture, and each of those
///   fixtures deserializes into `Spec` with `deny_unknown_fields` (so the model knows it too);
/// - every invalid fixture fails the schema.
#[test]
fn the_schema_and_the_model_agree() {
    let mut declared = BTreeSet::new();
    schema_paths(schema::schema(), "", &mut declared, 0);
    declared.retain(|p| {
        !p.starts_with("/workflow/change/") && !p.contains("/when/") && !p.contains("/actions[]/")
    });
    let mut written = BTreeSet::new();
    for name in VALID {
        let loaded = spec::load(&fixture(name)).expect("valid fixture");
        let mut model_paths = BTreeSet::new();
        key_paths(&loaded.document, "", &mut model_paths);
        for path in &model_paths {
            let path = generalize(path);
            let free_form = path.starts_with("/workflow/change/")
                || path.contains("/when/")
                || path.contains("/actions[]/");
            assert!(free_form || declared.contains(&path), "{name}: {path} is not in the schema");
        }
        let source_value = spec::yaml::parse(&loaded.source).value.unwrap();
        key_paths(&source_value, "", &mut written);
    }
    let written: BTreeSet<String> = written.iter().map(|p| generalize(p)).collect();
    let unwritten: Vec<&String> = declared.difference(&written).collect();
    assert!(unwritten.is_empty(), "schema properties no valid fixture exercises: {unwritten:?}");

    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("invalid") {
            assert!(spec::load(&path).is_err(), "{name} should be invalid");
        }
    }
}

#[test]
fn anchors_on_keys_and_custom_tags_are_refused() {
    let text = MINIMAL.replace("name: t", "&k name: !custom t");
    let found = places(&problems(text.as_bytes()));
    assert!(found.iter().any(|(l, c, m)| (*l, *c) == (2, 1) && m.contains("anchors")), "{found:?}");
    assert!(found.iter().any(|(_, _, m)| m.contains("tag `!custom`")), "{found:?}");
}

/// Every JSON Pointer in a document.
fn pointers(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}/{}", spec::yaml::escape(key));
                pointers(child, child_path.clone(), out);
                out.push(child_path);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{path}/{i}"), out);
                out.push(format!("{path}/{i}"));
            }
        }
        _ => {}
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 200, ..Default::default() })]

    /// Whatever is removed or replaced in a valid spec, the schema never accepts a document the
    /// model refuses: a spec that passes the schema always loads.
    #[test]
    fn schema_valid_documents_always_deserialize(
        fixture_index in 0..VALID.len(),
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        replacement in 0..8usize,
    ) {
        let text = std::fs::read_to_string(fixture(VALID[fixture_index])).unwrap();
        let parsed = spec::yaml::parse(&text);
        let mut document = parsed.value.unwrap();
        let mut all = Vec::new();
        pointers(&document, String::new(), &mut all);
        let pointer = pick.get(&all).clone();
        let new_value = match replacement {
            0 => None,
            1 => Some(Value::Null),
            2 => Some(Value::from("")),
            3 => Some(Value::from(0)),
            4 => Some(Value::from(true)),
            5 => Some(serde_json::json!([])),
            6 => Some(serde_json::json!({})),
            _ => Some(Value::from("x")),
        };
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/").replace("~0", "~");
        match (document.pointer_mut(parent).unwrap(), new_value) {
            (Value::Object(map), None) => { map.shift_remove(&key); }
            (Value::Array(items), None) => { items.remove(key.parse::<usize>().unwrap()); }
            (_, Some(value)) => *document.pointer_mut(&pointer).unwrap() = value,
            _ => unreachable!("pointers name members of objects and arrays"),
        }
        if schema::validate(&document, &parsed.spans).is_empty() {
            let typed: Result<spec::Spec, _> = serde_json::from_value(document.clone());
            proptest::prop_assert!(typed.is_ok(), "{pointer}: {typed:?}");
        }
    }
}

#[test]
fn the_yaml_fixture_reports_every_problem_up_to_the_syntax_error() {
    let bytes = std::fs::read(fixture("invalid-yaml.yaml")).unwrap();
    let found = places(&problems(&bytes));
    let lines: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(lines, [(5, 1), (7, 11), (13, 11), (17, 1)], "{found:?}");
}

#[test]
fn the_workflow_fixture_names_each_grammar_error() {
    let bytes = std::fs::read(fixture("invalid-workflow.yaml")).unwrap();
    let found = places(&problems(&bytes));
    let lines: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(lines, [(22, 15), (24, 11), (25, 11)], "{found:?}");
    assert!(found[2].2.contains("must have exactly one of"), "{found:?}");
}
