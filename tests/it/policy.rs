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
    pub live: Option<cabgate::live::Snapshot>,
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
            let document = cabgate::spec::normalize::document(&typed).unwrap();
            let now = case.get("now").or(base.get("now")).and_then(Value::as_str).unwrap();
            let lint = case.get("lint").and_then(Value::as_bool).unwrap_or(false);
            let live = (!lint).then(|| {
                serde_json::from_value(live).unwrap_or_else(|e| {
                    panic!("{}: the live part is no snapshot: {e}", path.display())
                })
            });
            Case {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                spec: LoadedSpec {
                    path: PathBuf::from("bridge.yaml"),
                    source: String::new(),
                    spec: typed,
                    document,
                    spans: SpanMap::default(),
                },
                live,
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

/// The OPA wheel the differential test runs (pinned so a new release cannot change the verdict).
const OPA_WHEEL: &str = "opa-golib-python-bindings==0.4.4";

/// `target/opa/pkg`, with the `opa_bindings` module unpacked from PyPI on first use. Fails loudly
/// when python3, pip or the network is missing: a skipped differential test proves nothing.
fn opa_bindings() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned();
    let root = target.join("opa");
    let pkg = root.join("pkg");
    if pkg.join("opa_bindings/__init__.py").is_file() {
        return pkg;
    }
    let scratch = root.join(format!("download-{}", std::process::id()));
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--python-version", "3.14", "--disable-pip-version-check", "-q", OPA_WHEEL])
        .arg("-d")
        .arg(&scratch)
        .status()
        .expect("the OPA differential test needs python3 with pip on PATH");
    assert!(status.success(), "pip could not download {OPA_WHEEL} (PyPI unreachable?)");
    let wheel = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("pip downloaded no wheel");
    let unpacked = scratch.join("pkg");
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success(), "cannot unzip {}", wheel.display());
    // A rename is atomic: a concurrent run sees either no package or a whole one.
    if std::fs::rename(&unpacked, &pkg).is_err() {
        assert!(pkg.join("opa_bindings/__init__.py").is_file(), "cannot install into {pkg:?}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    pkg
}

/// Runs `fixtures/policy/opa_eval.py` under real OPA.
fn opa_eval(request: &Value) -> Value {
    use std::io::Write as _;
    let mut child = std::process::Command::new("python3")
        .arg(fixtures().join("opa_eval.py"))
        .env("PYTHONPATH", opa_bindings())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "OPA failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("OPA output: {e}\n{stderr}"))
}

/// A set of findings in a canonical order, to compare two engines' outputs.
fn canonical(findings: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = findings.iter().map(Value::to_string).collect();
    out.sort();
    out.dedup();
    out
}

/// The built-in policies are portable Rego v1: real OPA and regorus produce the same findings on
/// every fixture input, and OPA passes every built-in Rego unit test too.
#[test]
fn opa_and_regorus_agree_on_every_fixture() {
    let cases = cases();
    let inputs: Vec<Value> = cases
        .iter()
        .map(|c| policy::build_input(&c.spec.document, c.live.as_ref(), c.now))
        .collect();
    let mut regorus = policy::PolicySet::load(&[]).unwrap();
    let packages = regorus.packages().to_vec();
    let mut modules: Vec<(&str, &str)> = policy::BUILTIN_POLICIES.to_vec();
    modules.extend_from_slice(policy::BUILTIN_TESTS);
    let builtin_tests = testing::run(&[]).unwrap();
    let rules: Vec<&str> = builtin_tests.results.iter().map(|r| r.rule.as_str()).collect();
    let request = serde_json::json!({
        "modules": modules,
        "data": policy::codes_data(),
        "packages": packages,
        "inputs": inputs,
        "rules": rules,
    });
    let opa = opa_eval(&request);

    let opa_total: usize = opa["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|f| f.as_array().map_or(0, Vec::len))
        .sum();
    assert!(opa_total >= cases.len(), "OPA found only {opa_total} findings: is it evaluating?");

    let mut differences = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ours = regorus.evaluate(&inputs[i]).unwrap();
        for package in ours {
            let theirs =
                opa["findings"][i][&package.package].as_array().cloned().unwrap_or_default();
            let (a, b) = (canonical(&package.findings), canonical(&theirs));
            if a != b {
                differences.push(format!(
                    "{} {}:\n  regorus: {a:#?}\n  opa:     {b:#?}",
                    case.name, package.package
                ));
            }
        }
    }
    for rule in rules {
        if opa["rules"][rule] != Value::Bool(true) {
            differences.push(format!("OPA fails the Rego test {rule}: {}", opa["rules"][rule]));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// The input regorus evaluates (built straight from the typed snapshot) is the JSON document OPA
/// gets, value for value, on every fixture.
#[test]
fn the_regorus_input_is_the_json_input() {
    use serde::Deserialize as _;
    for case in cases() {
        let json = policy::build_input(&case.spec.document, case.live.as_ref(), case.now);
        let direct = policy::input(&case.spec.document, case.live.as_ref(), case.now).unwrap();
        assert!(direct == regorus::Value::deserialize(&json).unwrap(), "{}", case.name);
    }
}

/// `docs/codes.md` is generated from the catalogue; every code a built-in policy produces is in
/// the catalogue, and every catalogue code but `spec/schema` is produced by a policy.
#[test]
fn codes_reference() {
    use cabgate::policy::docs;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/codes.md");
    let generated = docs::codes_markdown();
    if std::env::var_os("CABGATE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/codes.md is stale: run CABGATE_BLESS=1 cargo test --test it policy::codes_reference"
    );
    let known: Vec<&str> = cabgate::finding::catalogue().iter().map(|c| c.code.as_str()).collect();
    let produced = docs::produced_codes();
    let unknown: Vec<&String> = produced.iter().filter(|c| !known.contains(&c.as_str())).collect();
    assert!(unknown.is_empty(), "codes missing from policies/codes.json: {unknown:?}");
    let silent: Vec<&&str> = known
        .iter()
        .filter(|c| **c != "spec/schema" && !produced.iter().any(|p| p == *c))
        .collect();
    assert!(silent.is_empty(), "codes no built-in policy produces: {silent:?}");
}

/// The example spec of bridge-spec.md, loaded from YAML, lints clean (the default workflow
/// included), and a live finding points at its line in the file.
#[test]
fn example_spec_lints_clean_and_findings_carry_lines() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/specs/example.yaml");
    let spec = cabgate::spec::load(&path).expect("the example spec loads");
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().to_utc();
    let options = Options { user_dirs: Vec::new(), now };
    let lint = policy::evaluate(&spec, None, &options).unwrap();
    assert!(lint.findings.is_empty(), "{:#?}", lint.findings);

    let mut live = read_json(&fixtures().join("base.json"))["live"].clone();
    live["workspaceIamPolicy"]["bindings"][0]["members"] = serde_json::json!(["allUsers"]);
    let live = serde_json::from_value(live).unwrap();
    let check = policy::evaluate(&spec, Some(&live), &options).unwrap();
    let all_users = check.findings.iter().find(|f| f.code == "lockdown/all-users").unwrap();
    let location = all_users.location.as_ref().expect("a location in the spec");
    assert_eq!(location.path, "/lockdown/allow");
    // The list under `allow:` starts on the next line, with its first item.
    let lines: Vec<&str> = spec.source.lines().collect();
    assert!(lines[location.line - 2].contains("allow:"), "line {}", location.line);
    assert!(lines[location.line - 1].contains("- serviceAccount:"), "line {}", location.line);
    assert_eq!(all_users.remediation.as_deref(), Some("remove `allUsers` from the binding"));
}

/// A user policy from `--policy DIR` sees the same input; its findings get the catalogue's
/// defaults only for built-in codes; its tests run with `cabgate policy test DIR`.
#[test]
fn user_policies_are_evaluated_and_tested() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("acme");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(
        nested.join("names.rego"),
        r#"package cabgate.rules.acme.names

findings contains f if {
	not startswith(input.spec.name, "acme-")
	f := {"code": "acme/name", "message": "the bridge name must start with acme-", "path": "/name"}
}

findings contains f if {
	input.spec.name == "acme-db-cab"
	f := {"code": "acme/seen", "severity": "info", "message": concat("", ["saw ", input.now])}
}
"#,
    )
    .unwrap();
    std::fs::write(
        nested.join("names_test.rego"),
        r#"package cabgate.rules.acme.names_test

import data.cabgate.rules.acme.names

test_other_names_are_reported if {
	fs := names.findings with input as {"spec": {"name": "x"}, "now": "t"}
	count(fs) == 1
}

test_a_failing_test if {
	false
}
"#,
    )
    .unwrap();
    let case = cases().into_iter().find(|c| c.name == "clean").unwrap();
    let options = Options { user_dirs: vec![dir.path().to_owned()], now: case.now };
    let evaluation = policy::evaluate(&case.spec, case.live.as_ref(), &options).unwrap();
    let codes: Vec<(&str, cabgate::finding::Severity)> =
        evaluation.findings.iter().map(|f| (f.code.as_str(), f.severity)).collect();
    assert_eq!(codes, [("acme/seen", cabgate::finding::Severity::Info)]);
    assert!(evaluation.profile.iter().any(|(p, _)| p == "data.cabgate.rules.acme.names"));

    let run = testing::run(&[dir.path().to_owned()]).unwrap();
    let outcomes: Vec<(&str, &Outcome)> =
        run.results.iter().map(|r| (r.rule.rsplit('.').next().unwrap(), &r.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("test_other_names_are_reported", &Outcome::Pass),
            ("test_a_failing_test", &Outcome::Fail)
        ]
    );
}

/// A user policy that does not parse is an error naming its file and line, not a panic.
#[test]
fn a_broken_user_policy_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rego"),
        "package cabgate.rules.bad\n\nfindings contains f if {\n",
    )
    .unwrap();
    let case = cases().into_iter().find(|c| c.name == "clean").unwrap();
    let options = Options { user_dirs: vec![dir.path().to_owned()], now: case.now };
    let error = policy::evaluate(&case.spec, None, &options).unwrap_err();
    let policy::PolicyError::Parse { file, line, .. } = &error else { panic!("{error:?}") };
    assert!(file.ends_with("bad.rego"), "{file}");
    assert!(*line >= 3, "line {line}");
}

/// A finding object that breaks the convention stops the run with an error naming the package.
#[test]
fn a_malformed_finding_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("odd.rego"),
        "package cabgate.rules.odd\n\nfindings contains {\"message\": \"no code\"}\n",
    )
    .unwrap();
    let case = cases().into_iter().find(|c| c.name == "clean").unwrap();
    let options = Options { user_dirs: vec![dir.path().to_owned()], now: case.now };
    let error = policy::evaluate(&case.spec, None, &options).unwrap_err();
    assert!(
        matches!(&error, policy::PolicyError::Finding { package, .. } if package == "data.cabgate.rules.odd"),
        "{error:?}"
    );
}

/// `cabgate policy test`: exit 0 when all pass, 1 on a failure, 2 on a parse error.
#[test]
fn policy_test_command_exit_codes() {
    let cabgate = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cabgate"))
            .args(["policy", "test"])
            .args(args)
            .output()
            .unwrap()
    };
    let builtin = cabgate(&[]);
    let stdout = String::from_utf8_lossy(&builtin.stdout);
    assert_eq!(builtin.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(": PASS (") && stdout.contains("\nPASS: "), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_test.rego"), "package a_test\n\ntest_no if false\n").unwrap();
    let failing = cabgate(&[dir.path().as_os_str()]);
    let stdout = String::from_utf8_lossy(&failing.stdout);
    assert_eq!(failing.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("data.a_test.test_no: FAIL") && stdout.contains("FAIL: 1/1"),
        "{stdout}"
    );

    std::fs::write(dir.path().join("b_test.rego"), "package b_test\n\ntest_x if {\n").unwrap();
    let broken = cabgate(&[dir.path().as_os_str()]);
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("b_test.rego"), "{stderr}");
}
