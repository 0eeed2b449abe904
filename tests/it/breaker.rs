//! Integration tests: hostile and careless inputs found by trying to break cabgate as a new user
//! would (deep nesting, huge files, zero durations, secrets in reports). Each test is named after
//! the behaviour it guards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = "fixtures/specs/example.yaml";

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap()
}

fn cabgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cabgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env_remove("CABGATE_LOG")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the binary runs")
}

/// Writes `text` as `name` in a fresh temporary folder (kept alive by the returned guard).
fn spec_file(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn thousands_of_nested_block_sequences_are_a_finding_not_a_stack_overflow() {
    // Compact nested block sequences (`- - - x`): 40 KB that overflowed the loader's stack.
    let yaml = format!("version: 1\nname: x\nbytebase:\n  {}x\n", "- ".repeat(20_000));
    let (_dir, path) = spec_file("deep.yaml", yaml.as_bytes());
    let output = cabgate(&["lint", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["code"], "spec/schema");
    assert!(finding["message"].as_str().unwrap().contains("nests more than"), "{finding}");
    assert_eq!(finding["location"]["line"], 4);
}

#[test]
fn a_spec_larger_than_the_limit_is_refused_without_reading_it_all() {
    let mut big = example().into_bytes();
    big.extend(b"\n# ");
    big.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let (_dir, path) = spec_file("big.yaml", &big);
    let output = cabgate(&["lint", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("big.yaml") && stderr.contains("larger than"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_zero_poll_interval_and_a_zero_lookback_are_findings_at_their_lines() {
    let spec = example()
        .replace("pollInterval: 30s", "pollInterval: 0s")
        .replace("lookback: 7d", "lookback: 0d");
    let (_dir, path) = spec_file("zero.yaml", spec.as_bytes());
    let output = cabgate(&["lint", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let paths: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/workflow/pollInterval", "/alerts/skippedApproval/lookback"]);
}

#[test]
fn no_report_format_reprints_an_inline_secret() {
    let secrets = ["bbs_AbCdEf0123456789SECRETname", "p4ssw0rdSECRET", "hunter2SuperSecret"];
    let spec = example()
        .replace("name: acme-db-cab", &format!("name: {}", secrets[0]))
        .replace(
            "url: https://hooks.acme.example/cab",
            &format!("url: https://user:{}@hooks.acme.example/cab", secrets[1]),
        )
        .replace("category: Database", &format!("category: \"password={}\"", secrets[2]));
    let (_dir, path) = spec_file("secret.yaml", spec.as_bytes());
    for format in ["human", "json", "sarif", "junit", "github", "markdown"] {
        let output = cabgate(&["lint", path.to_str().unwrap(), "--format", format]);
        assert_eq!(output.status.code(), Some(1), "{format}: {}", text(&output.stderr));
        let all = text(&output.stdout) + &text(&output.stderr);
        assert!(all.contains("spec/secret-inline"), "{format}: {all}");
        for secret in secrets {
            assert!(!all.contains(secret), "{format} prints {secret}:\n{all}");
        }
    }
}

#[test]
fn an_invalid_spec_with_a_password_key_does_not_show_the_password_in_its_snippets() {
    let secret = "hunter2SuperSecret";
    let spec =
        example().replace("passwordEnv: CABGATE_SN_PASSWORD", &format!("password: {secret}"));
    let (_dir, path) = spec_file("password.yaml", spec.as_bytes());
    let output = cabgate(&["lint", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("unknown key `password`"), "{stdout}");
    assert!(stdout.contains("password: ****"), "{stdout}");
    assert!(!stdout.contains(secret), "{stdout}");
}

#[test]
fn a_value_the_yaml_loader_refuses_is_reported_once_not_again_by_the_schema() {
    let spec = example().replace("urgency: 1 }", "urgency: 1e400 }");
    let (_dir, path) = spec_file("float.yaml", spec.as_bytes());
    let output = cabgate(&["lint", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["`1e400` is not a finite number"]);
}

#[test]
fn lint_refuses_an_output_path_that_is_the_spec_itself() {
    let spec = example();
    let (dir, path) = spec_file("self.yaml", spec.as_bytes());
    let alias = dir.path().join(".").join("self.yaml");
    let output = cabgate(&["lint", path.to_str().unwrap(), "-o", alias.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("is the spec itself"), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), spec, "the spec was overwritten");
}

#[test]
fn snapshot_and_check_refuse_output_paths_that_are_the_spec_itself() {
    let (_dir, path) = spec_file("spec.yaml", example().as_bytes());
    let spec = path.to_str().unwrap();
    for args in [
        vec!["snapshot", spec, "-o", spec],
        vec!["check", spec, "--output", spec],
        vec!["check", spec, "--write-baseline", spec],
    ] {
        let output = cabgate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("is the spec itself"), "{args:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), example(), "{args:?}");
    }
}

#[test]
fn check_refuses_an_endless_snapshot_file_instead_of_reading_it_forever() {
    let (_dir, path) = spec_file("spec.yaml", example().as_bytes());
    let output = cabgate(&["check", path.to_str().unwrap(), "--snapshot", "/dev/zero"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("larger than"), "{}", text(&output.stderr));
}

#[test]
fn a_world_with_a_dangling_servicenow_name_is_refused_with_its_field() {
    let world = "servicenow:\n  users:\n    - { user_name: carol }\n  groups:\n    - { name: CAB, \
                 members: [carol, ghost] }\n";
    let (_dir, path) = spec_file("world.yaml", world.as_bytes());
    let output = cabgate(&["sim", "--world", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("world.yaml") && stderr.contains("ghost"), "{stderr}");
}

#[test]
fn a_user_policy_cannot_claim_the_spec_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let rego = "package cabgate.rules.x\n\nfindings contains {\"code\": \"spec/schema\", \
                \"message\": \"gotcha\"} if true\n";
    std::fs::write(dir.path().join("x.rego"), rego).unwrap();
    let output = cabgate(&["lint", EXAMPLE, "--policy", dir.path().to_str().unwrap()]);
    assert_ne!(output.status.code(), Some(2), "a user rule must not turn into exit 2");
    assert_ne!(output.status.code(), Some(0));
    assert!(text(&output.stderr).contains("reserved for the spec loader"));
}
