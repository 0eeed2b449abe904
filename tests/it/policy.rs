//! Integration tests: policy.

use cabgate::policy::testing::{self, Outcome};

/// `cabgate policy test` over the built-in policies: every Rego unit test passes.
#[test]
fn builtin_rego_unit_tests_pass() {
    let run = testing::run(&[]).expect("the built-in policies parse");
    let failed: Vec<String> = run
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{} {:?}", r.rule, r.outcome))
        .collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
    assert!(run.results.len() >= 30, "only {} tests", run.results.len());
}

use std::path::{Path, PathBuf};

use cabgate::finding::Finding;
use cabgate::policy::{self, Options};
use cabgate::spec::{LoadedSpec, SpanMap, Spec};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/policy")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// RFC 7386 JSON merge patch: objects merge, everything else (arrays included) replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// One fixture case: the base input with the case's patches applied.
pub struct Case {
    pub name: String,
    pub spec: LoadedSpec,
    pub live: Option<Value>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub expect: Vec<Value>,
}

/// Every case of `fixtures/policy/` (all files but `base.json`), sorted by name.
pub fn cases() -> Vec<Case> {
    let base = read_json(&fixtures().join("base.json"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.file_name().is_some_and(|n| n != "base.json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let case = read_json(path);
            let mut spec = base["spec"].clone();
            let mut live = base["live"].clone();
            if let Some(patch) = case.get("spec") {
                merge(&mut spec, patch);
            }
            if let Some(patch) = case.get("live") {
                merge(&mut live, patch);
            }
            let typed: Spec = serde_json::from_value(spec)
                .unwrap_or_else(|e| panic!("{}: the spec is not a Spec: {e}", path.display()));
            let document = serde_json::to_value(&typed).unwrap();
            let now = case.get("now").or(base.get("now")).and_then(Value::as_str).unwrap();
            let lint = case.get("lint").and_then(Value::as_bool).unwrap_or(false);
            Case {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                spec: LoadedSpec {
                    path: PathBuf::from("bridge.yaml"),
                    source: String::new(),
                    spec: typed,
                    document,
                    spans: SpanMap::default(),
                },
                live: (!lint).then_some(live),
                now: chrono::DateTime::parse_from_rfc3339(now).unwrap().to_utc(),
                expect: case["expect"].as_array().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

fn matches(expected: &Value, finding: &Finding) -> bool {
    let text = |key: &str| expected.get(key).and_then(Value::as_str);
    text("code") == Some(finding.code.as_str())
        && text("resource") == finding.resource.as_deref()
        && expected.get("via").is_none_or(|via| *via == serde_json::json!(finding.via))
        && expected.get("waived").is_none_or(|w| w.as_bool() == Some(finding.waived))
}

/// Each fixture yields exactly the findings it expects (code, resource, via, waived).
#[test]
fn fixtures_yield_their_expected_findings() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} fixture cases", cases.len());
    let mut problems = Vec::new();
    for case in &cases {
        let options = Options { user_dirs: Vec::new(), now: case.now };
        let evaluation = policy::evaluate(&case.spec, case.live.as_ref(), &options)
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let mut unmatched: Vec<&Finding> = evaluation.findings.iter().collect();
        for expected in &case.expect {
            match unmatched.iter().position(|f| matches(expected, f)) {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => problems.push(format!("{}: missing {expected}", case.name)),
            }
        }
        for finding in unmatched {
            problems.push(format!(
                "{}: unexpected {} {:?} {:?}: {}",
                case.name, finding.code, finding.resource, finding.via, finding.message
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every built-in code has at least one fixture that produces it.
#[test]
fn every_builtin_code_has_a_fixture() {
    let covered: std::collections::BTreeSet<String> = cases()
        .iter()
        .flat_map(|c| c.expect.iter().filter_map(|e| e["code"].as_str().map(str::to_owned)))
        .collect();
    let missing: Vec<&str> = cabgate::finding::catalogue()
        .iter()
        .map(|c| c.code.as_str())
        .filter(|code| *code != "spec/schema" && !covered.contains(*code))
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}
