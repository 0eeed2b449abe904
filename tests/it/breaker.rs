//! Integration tests: hostile and careless inputs found by trying to break cabgate as a new user
//! would (deep nesting, huge files, zero durations, secrets in reports). Each test is named after
//! the behaviour it guards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = "fixtures/specs/example.yaml";

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap()
}

/// The text of `fixtures/specs/sim.yaml`, the spec for the emulators' default ports.
fn sim_spec() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/specs/sim.yaml"))
        .unwrap()
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

// --- check --snapshot with the typed reader (differential and hostile files) ---

/// `fixtures/live/example.json`, changed by `edit`, written to a temporary folder.
fn example_snapshot(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live/example.json");
    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut snapshot);
    spec_file("snapshot.json", serde_json::to_string_pretty(&snapshot).unwrap().as_bytes())
}

/// `check fixtures/specs/sim.yaml --snapshot FILE --format json`.
fn check_snapshot(path: &Path) -> Output {
    check_snapshot_with(Path::new("fixtures/specs/sim.yaml"), path)
}

/// `check SPEC --snapshot FILE --format json`.
fn check_snapshot_with(spec: &Path, snapshot: &Path) -> Output {
    let (spec, snapshot) = (spec.to_str().unwrap(), snapshot.to_str().unwrap());
    cabgate(&["check", spec, "--snapshot", snapshot, "--format", "json"])
}

/// stderr with miette's wrapping and box drawing undone, for searching a whole message.
fn flat(output: &Output) -> String {
    let stderr = text(&output.stderr).replace(['│', '×'], " ");
    stderr.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn findings_of(output: &Output) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
    report["findings"].as_array().unwrap().clone()
}

#[test]
fn a_group_listed_twice_keeps_the_members_of_every_listing() {
    // Found by the differential run: a second, empty listing of a group (here with an empty
    // email, so it is keyed by its name) replaced the first, and its members' grant vanished.
    let (_dir, path) = example_snapshot(|s| {
        s["workspaceIamPolicy"]["bindings"].as_array_mut().unwrap().push(serde_json::json!({
            "role": "roles/workspaceAdmin", "members": ["group:dev@acme.example"],
            "condition": {"expression": ""}
        }));
        s["groups"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "groups/dev@acme.example", "email": "", "title": "", "members": []
        }));
    });
    let output = check_snapshot(&path);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let holders: Vec<_> = findings_of(&output)
        .into_iter()
        .filter(|f| f["code"] == "lockdown/unexpected-holder")
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(holders[0]["message"].as_str().unwrap().starts_with("user:dev@acme.example holds"));
    assert_eq!(
        holders[0]["via"],
        serde_json::json!([
            "roles/workspaceAdmin",
            "workspaces/acme:getIamPolicy",
            "group:dev@acme.example"
        ])
    );
}

#[test]
fn an_environment_with_an_empty_id_still_has_its_rollout_holders_checked() {
    // The index named such an environment by its name for the environment checks, but looked
    // its rollout roles up under the empty id, so their holders were never checked.
    let (_dir, path) = example_snapshot(|s| {
        let prod = &mut s["environments"][1];
        assert_eq!(prod["id"], "prod");
        prod["id"] = "".into();
        prod["rolloutPolicy"]["roles"] = serde_json::json!(["roles/projectDeveloper"]);
    });
    let output = check_snapshot(&path);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let messages: Vec<String> = findings_of(&output)
        .iter()
        .filter(|f| f["code"] == "rollout/roles")
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with(
            "user:dev@acme.example can run tasks in environments/prod through its rollout \
             policy role roles/projectDeveloper"
        )),
        "{messages:?}"
    );
}

#[test]
fn a_snapshot_with_a_bom_or_bytes_that_are_not_utf8_is_exit_2_naming_the_place() {
    let example =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live/example.json"))
            .unwrap();
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(&example);
    let (_bom_dir, bom_path) = spec_file("bom.json", &bom);
    let output = check_snapshot(&bom_path);
    assert_eq!(output.status.code(), Some(2));
    let stderr = flat(&output);
    assert!(stderr.contains("bom.json") && stderr.contains("byte order mark"), "{stderr}");
    assert!(output.stdout.is_empty());

    // A Latin-1 byte in the third line (`source`).
    let bad = text(&example).replacen("\"source\": \"", "\"source\": \"caf\u{e9}", 1);
    let bad = bad.replacen('\u{e9}', "\u{1}", 1).into_bytes();
    let bad: Vec<u8> = bad.into_iter().map(|b| if b == 1 { 0xE9 } else { b }).collect();
    let (_dir, path) = spec_file("latin1.json", &bad);
    let output = check_snapshot(&path);
    assert_eq!(output.status.code(), Some(2));
    let stderr = flat(&output);
    assert!(stderr.contains("latin1.json"), "{stderr}");
    assert!(stderr.contains("not UTF-8 text: line 3, column 17"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn hostile_snapshot_files_end_with_exit_2_naming_the_file_and_the_place() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live/example.json"),
    )
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&example).unwrap();
    let with = |pointer: &str, replacement: serde_json::Value| {
        let mut v = value.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match v.pointer_mut(parent).unwrap() {
            serde_json::Value::Array(items) => items[key.parse::<usize>().unwrap()] = replacement,
            object => object[key] = replacement,
        }
        v.to_string()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("truncated", example[..example.len() / 2].to_owned(), "EOF while parsing"),
        ("empty", String::new(), "EOF while parsing"),
        ("deep", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)), "recursion limit"),
        (
            "nested-deep",
            example.replacen(
                "\"version\": 1",
                &format!("\"v\": {}1{}", "[".repeat(5000), "]".repeat(5000)),
                1,
            ),
            "recursion limit",
        ),
        (
            "huge-number",
            example.replacen("\"version\": 1", "\"version\": 1e999", 1),
            "out of range",
        ),
        (
            "big-integer",
            example.replacen("\"version\": 1", "\"version\": 123456789012345678901234567890", 1),
            "/version",
        ),
        (
            "duplicate",
            example.replacen("\"version\": 1,", "\"version\": 1, \"version\": 1,", 1),
            "duplicate field `version`",
        ),
        ("array", "[]".to_owned(), "/: [] is not of type \"object\""),
        (
            "member-type",
            with("/workspaceIamPolicy/bindings/0/members/0", 7.into()),
            "/workspaceIamPolicy/bindings/0/members/0",
        ),
        (
            "condition-type",
            with("/projects/1/iamPolicy/bindings/0/condition", "x".into()),
            "/projects/1/iamPolicy/bindings/0/condition",
        ),
        (
            "issue-time",
            with("/skippedIssues/0/createTime", "2026-12-01 09:30:00Z".into()),
            "/skippedIssues/0/createTime",
        ),
        ("group-members", with("/groups/0/members", serde_json::json!({})), "/groups/0/members"),
        (
            "rollout-roles",
            with("/environments/0/rolloutPolicy/roles", serde_json::json!([null])),
            "/environments/0/rolloutPolicy/roles/0",
        ),
        ("taken-at", with("/takenAt", "2026-12-03T12:00:00+0000".into()), "/takenAt"),
        (
            "unknown-key",
            with("/projects/0/webhooks/0/url", "https://x".into()),
            "/projects/0/webhooks/0",
        ),
    ];
    for (name, content, place) in cases {
        let file = format!("{name}.json");
        let (_dir, path) = spec_file(&file, content.as_bytes());
        let output = check_snapshot(&path);
        let flat = flat(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {flat}");
        assert!(output.stdout.is_empty(), "{name}: findings were written");
        assert!(!flat.contains("panicked"), "{name}: {flat}");
        assert!(flat.contains(&file), "{name}: {flat}");
        assert!(flat.contains(place), "{name}: {flat}");
    }
}

#[test]
fn a_snapshot_path_that_is_a_directory_or_too_big_is_exit_2_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = check_snapshot(dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read the snapshot"), "{}", text(&output.stderr));
    // Sparse: 300 MiB on paper, nothing on disk.
    let big = dir.path().join("big.json");
    std::fs::File::create(&big).unwrap().set_len(300 << 20).unwrap();
    let output = check_snapshot(&big);
    assert_eq!(output.status.code(), Some(2));
    let stderr = flat(&output);
    assert!(stderr.contains("big.json") && stderr.contains("larger than 256 MiB"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_lookback_beyond_the_calendar_keeps_every_issue_instead_of_panicking() {
    // `99999999999d` matches the spec's duration pattern; `now - lookback` overflowed chrono
    // and both lint and check ended with a panic (exit 101).
    let sim = sim_spec();
    assert!(sim.contains("lookback: 7d"));
    let (dir, spec) =
        spec_file("spec.yaml", sim.replace("lookback: 7d", "lookback: 99999999999d").as_bytes());
    let output = cabgate(&["lint", spec.to_str().unwrap(), "--format", "json"]);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{}", text(&output.stderr));
    let old = dir.path().join("old.json");
    // Without `skippedSince`: the file does not claim to have read only the last week.
    let (_snap_dir, snapshot) = example_snapshot(|s| {
        s["skippedIssues"][0]["createTime"] = "1971-01-01T00:00:00Z".into();
        s.as_object_mut().unwrap().remove("skippedSince");
    });
    std::fs::copy(&snapshot, &old).unwrap();
    let output = cabgate(&[
        "check",
        spec.to_str().unwrap(),
        "--snapshot",
        old.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let bypasses =
        findings_of(&output).into_iter().filter(|f| f["code"] == "bypass/skipped-issue").count();
    assert_eq!(bypasses, 2, "the 1971 issue is inside a lookback of 273 million years");
}

// --- binding conditions ---

/// The unexpected-holder findings of `user:temp@acme.example`, bound to workspaceAdmin under
/// `condition` in the example snapshot (taken on Thursday 2026-12-03 at 12:00 UTC).
fn temp_holders(condition: &str) -> Vec<serde_json::Value> {
    let (_dir, path) = example_snapshot(|s| {
        s["workspaceIamPolicy"]["bindings"].as_array_mut().unwrap().push(serde_json::json!({
            "role": "roles/workspaceAdmin", "members": ["user:temp@acme.example"],
            "condition": {"expression": condition}
        }));
    });
    let output = check_snapshot(&path);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    findings_of(&output)
        .into_iter()
        .filter(|f| f["code"] == "lockdown/unexpected-holder")
        .filter(|f| f["message"].as_str().unwrap().starts_with("user:temp@acme.example "))
        .collect()
}

#[test]
fn a_binding_whose_time_window_is_closed_at_the_check_but_opens_later_still_grants() {
    // A condition that was false at the moment of the check was taken as expired. A grant for
    // business hours, for one weekday or from a later date grants again with no change in
    // Bytebase, so a nightly drift job never saw these holders.
    let windows = [
        "request.time.getHours() >= 13 && request.time.getHours() < 18",
        "request.time.getDayOfWeek() == 5",
        r#"request.time.getHours("Europe/Berlin") >= 20"#,
        r#"request.time > timestamp("2026-12-24T00:00:00Z")"#,
        concat!(
            r#"request.time > timestamp("2026-12-24T00:00:00Z") && "#,
            r#"request.time < timestamp("2026-12-27T00:00:00+01:00")"#
        ),
        r#"resource.environment_id == "prod" && request.time >= timestamp("2027-01-01T00:00:00Z")"#,
    ];
    for window in windows {
        let holders = temp_holders(window);
        assert_eq!(holders.len(), 1, "{window}: {holders:?}");
        let via = holders[0]["via"].as_array().unwrap();
        let note = via.last().unwrap().as_str().unwrap();
        assert!(note.starts_with("condition not in force at the check"), "{window}: {via:?}");
    }
    // Expired for good: false now and at every later time.
    for gone in [
        r#"request.time < timestamp("2026-01-01T00:00:00Z")"#,
        r#"request.time <= timestamp("2026-12-03T11:59:59+00:00")"#,
        "request.time.getFullYear() < 2026",
        r#"resource.environment_id == "prod" && request.time < timestamp("2026-06-01T00:00:00Z")"#,
    ] {
        assert_eq!(temp_holders(gone), Vec::<serde_json::Value>::new(), "{gone}");
    }
}

#[test]
fn a_window_in_hours_that_opens_on_a_later_date_or_day_of_the_month_still_grants() {
    // Hourly times were tried for 8 days from the check only, and later days at the check's own
    // hour (12:00): a window of hours that exists only from a date on, or only on one day of the
    // month, was taken as expired whenever the check ran outside its hours.
    let windows = [
        "request.time.getDayOfMonth() == 0 && request.time.getHours() == 2",
        "request.time.getFullYear() >= 2027 && request.time.getHours() == 3",
        concat!(
            r#"request.time > timestamp("2027-03-01T00:00:00Z") && "#,
            "request.time.getHours() >= 18 && request.time.getHours() < 20"
        ),
        "request.time.getDayOfWeek() == 0 && request.time.getMinutes() >= 40",
    ];
    for window in windows {
        let holders = temp_holders(window);
        assert_eq!(holders.len(), 1, "{window}: {holders:?}");
    }
    // Out of Bytebase's calendar (CEL timestamps end with the year 9999): never in force.
    let never = r#"request.time > timestamp("9999-12-31T23:59:59Z")"#;
    assert_eq!(temp_holders(never), Vec::<serde_json::Value>::new());
}

// --- baselines ---

#[test]
fn a_baseline_does_not_accept_a_new_holder_of_the_permission_in_a_known_resource() {
    // The baseline keyed findings by code, resource and spec path only: once one unexpected
    // holder in a project (or the workspace) was recorded, every later holder there, a new
    // empty approval flow beside a known one, and so on, passed as "not new".
    let grant = |s: &mut serde_json::Value, member: &str| {
        s["workspaceIamPolicy"]["bindings"].as_array_mut().unwrap().push(serde_json::json!({
            "role": "roles/workspaceAdmin", "members": [member],
            "condition": {"expression": ""}
        }));
    };
    let (dir, before) = example_snapshot(|s| grant(s, "user:dev@acme.example"));
    let baseline = dir.path().join("baseline.json");
    let baseline = baseline.to_str().unwrap();
    let spec = "fixtures/specs/sim.yaml";
    let snapshot = before.to_str().unwrap();
    let output = cabgate(&["check", spec, "--snapshot", snapshot, "--write-baseline", baseline]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let output = cabgate(&["check", spec, "--snapshot", snapshot, "--baseline", baseline]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let (_after_dir, after) = example_snapshot(|s| {
        grant(s, "user:dev@acme.example");
        grant(s, "user:mallory@acme.example");
    });
    let after = after.to_str().unwrap();
    let args = ["check", spec, "--snapshot", after, "--baseline", baseline, "--format", "json"];
    let output = cabgate(&args);
    assert_eq!(output.status.code(), Some(1), "the new holder fails the run");
    let unwaived: Vec<String> = findings_of(&output)
        .iter()
        .filter(|f| f["waived"] == false)
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unwaived.len(), 1, "{unwaived:?}");
    assert!(unwaived[0].starts_with("user:mallory@acme.example holds"), "{unwaived:?}");
}

#[test]
fn a_baseline_does_not_accept_a_rollout_runner_bound_in_another_project() {
    // The rollout-role finding named the environment, the principal and the role, not where
    // the role was bound: once eve's binding in payments was accepted, the same role given to
    // her in ledger-eu (she can now run ledger-eu's prod tasks) matched the baseline too.
    let bind = |s: &mut serde_json::Value, project: usize| {
        let bindings = s["projects"][project]["iamPolicy"]["bindings"].as_array_mut().unwrap();
        bindings.push(serde_json::json!({
            "role": "roles/projectDeveloper", "members": ["user:eve@acme.example"],
            "condition": {"expression": ""}
        }));
    };
    let setup = |s: &mut serde_json::Value| {
        s["environments"][1]["rolloutPolicy"]["roles"] =
            serde_json::json!(["roles/projectDeveloper"]);
        let mut ledger = s["projects"][0].clone();
        ledger["name"] = "projects/ledger-eu".into();
        ledger["webhooks"] = serde_json::json!([]);
        ledger["iamPolicy"]["bindings"] = serde_json::json!([]);
        s["projects"].as_array_mut().unwrap().push(ledger);
        bind(s, 0);
    };
    let (dir, before) = example_snapshot(setup);
    let baseline = dir.path().join("baseline.json");
    let baseline = baseline.to_str().unwrap();
    let spec = "fixtures/specs/sim.yaml";
    let output = cabgate(&[
        "check",
        spec,
        "--snapshot",
        before.to_str().unwrap(),
        "--write-baseline",
        baseline,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));

    let (_after_dir, after) = example_snapshot(|s| {
        setup(s);
        bind(s, 2);
    });
    let after = after.to_str().unwrap();
    let args = ["check", spec, "--snapshot", after, "--baseline", baseline, "--format", "json"];
    let output = cabgate(&args);
    assert_eq!(output.status.code(), Some(1), "the new runner fails the run");
    let unwaived: Vec<serde_json::Value> =
        findings_of(&output).into_iter().filter(|f| f["waived"] == false).collect();
    assert_eq!(unwaived.len(), 1, "{unwaived:?}");
    assert_eq!(unwaived[0]["code"], "rollout/roles");
    assert_eq!(unwaived[0]["via"][1], "projects/ledger-eu:getIamPolicy", "{unwaived:?}");
    let message = unwaived[0]["message"].as_str().unwrap();
    assert!(message.contains("projects/ledger-eu"), "{message}");
}

// --- output files ---

#[test]
fn an_output_path_that_is_a_fifo_or_a_symlink_is_written_through_not_replaced() {
    // `-o /dev/stdout`, `-o >(jq …)` or a named pipe: the atomic write renamed a regular file
    // over the pipe (or over `/dev/stdout` itself, as root), the reader got nothing and the
    // path was a regular file afterwards. A symlink was replaced by a file, its target untouched.
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live/example.json");
    let snapshot = snapshot.to_str().unwrap();
    let spec = "fixtures/specs/sim.yaml";
    let fifo_arg = fifo.to_str().unwrap();
    let args = ["check", spec, "--snapshot", snapshot, "--format", "json", "-o", fifo_arg];
    let output = cabgate(&args);
    let still_a_fifo = std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo();
    // Unblock the reader whatever happened (no reader left: ENXIO, ignored).
    let _ = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo);
    assert!(still_a_fifo, "the named pipe was replaced by a file");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(report["summary"]["errors"], 3);

    let target = dir.path().join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let args = ["check", spec, "--snapshot", snapshot, "--format", "json", "-o"];
    let output = cabgate(&[&args[..], &[link.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(report["summary"]["errors"], 3);
}

// --- secrets in errors ---

#[test]
fn credentials_in_the_bytebase_url_are_not_repeated_in_errors() {
    // Lint flags `https://user:password@host` as spec/secret-inline, but `check` and
    // `snapshot` then printed the whole URL, password included, in the unreachable and
    // unusable-URL errors (stderr: the CI log). The snapshot's `source` already dropped them.
    let sim = sim_spec();
    let cases = [
        ("http://admin:Hunter2Pw@127.0.0.1:1", 3, "http://127.0.0.1:1"),
        // Unusable URLs are spec findings, whose snippet shows the line: masked.
        ("http://admin:Hunter2Pw@127.0.0.1:99999", 2, "bytebase.url"),
        ("http://admin:Hunter2Pw@[::1", 2, "bytebase.url"),
    ];
    for (url, code, shown) in cases {
        let text_of_spec = sim.replace("http://127.0.0.1:18080", &format!("\"{url}\""));
        let (_dir, spec) = spec_file("spec.yaml", text_of_spec.as_bytes());
        for command in ["check", "snapshot"] {
            let output = Command::new(env!("CARGO_BIN_EXE_cabgate"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args([command, spec.to_str().unwrap()])
                .env_remove("CABGATE_LOG")
                .env("CABGATE_DEMO_BB_KEY", "bbs_demo0000cabgate0001")
                .output()
                .unwrap();
            let stderr = flat(&output);
            assert_eq!(output.status.code(), Some(code), "{command} {url}: {stderr}");
            assert!(!stderr.contains("Hunter2Pw"), "{command} {url}: {stderr}");
            assert!(!text(&output.stdout).contains("Hunter2Pw"), "{command} {url}");
            let all = format!("{}{stderr}", text(&output.stdout));
            assert!(all.contains(shown), "{command} {url}: {all}");
        }
    }
}

// --- live text in text reports ---

#[test]
fn control_characters_from_bytebase_do_not_reach_text_reports_raw() {
    // An issue title is written by whoever opened the issue, the person a bypass finding is
    // about. Escape sequences and line breaks in it went raw into the human, github and markdown
    // reports: a title could recolor the terminal or CI log, or forge a line of the report
    // (`…\r\nspec.yaml: passed with 0 errors`).
    let (_dir, path) = example_snapshot(|s| {
        s["skippedIssues"][0]["title"] =
            "x\u{1b}]0;t\u{7}\u{1b}[2K\u{9b}31m\r\nspec.yaml: passed\u{202e}".into();
    });
    for format in ["human", "github", "markdown"] {
        let output = cabgate(&[
            "check",
            "fixtures/specs/sim.yaml",
            "--snapshot",
            path.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(output.status.code(), Some(1), "{format}: {}", text(&output.stderr));
        let report = text(&output.stdout);
        for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\r', '\u{202e}'] {
            assert!(!report.contains(bad), "{format}: {bad:?} in\n{report}");
        }
        let forged = report.lines().any(|line| line.trim_start().starts_with("spec.yaml: passed"));
        assert!(!forged, "{format}: a forged line in\n{report}");
        assert!(report.contains("\\u{1b}[2K"), "{format}: shown as escapes\n{report}");
    }
    // The JSON report keeps the title as Bytebase has it (JSON escapes it).
    let output = check_snapshot(&path);
    let title = findings_of(&output)[0]["message"].as_str().unwrap().to_owned();
    assert!(title.contains("\u{1b}[2K") && title.contains("\r\n"), "{title}");
}

#[test]
fn a_temporary_file_left_by_a_killed_run_with_the_same_pid_does_not_fail_the_write() {
    // The temporary file was `.NAME.PID.tmp`, created exclusively. A run killed mid-write
    // leaves it behind; in a container the next scheduled run often has the same PID, and its
    // write failed with "File exists" (exit 3), then deleted the file it did not own.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot.json");
    std::fs::write(&out, "old").unwrap();
    let stale = dir.path().join(format!(".snapshot.json.{}.tmp", std::process::id()));
    std::fs::write(&stale, "partial").unwrap();
    cabgate::cli::lint::write_atomically(&out, b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), "partial", "not ours to delete");
}

#[test]
fn a_snapshot_that_read_a_shorter_lookback_than_the_spec_asks_is_refused() {
    // A snapshot holds the SKIPPED issues created since its `skippedSince` (the lookback of the
    // spec it was taken with). Checked with a spec whose lookback reaches further back, the
    // issues in between were never read, and the check passed them over in silence.
    let sim = sim_spec();
    let (dir, spec) =
        spec_file("spec.yaml", sim.replace("lookback: 7d", "lookback: 30d").as_bytes());
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live/example.json");
    let check = |snapshot: &Path| check_snapshot_with(&spec, snapshot);
    let output = check(&snapshot);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let stderr = flat(&output);
    assert!(stderr.contains("example.json") && stderr.contains("2026-11-26"), "{stderr}");
    assert!(stderr.contains("lookback"), "{stderr}");

    // The same lookback (or a shorter one) is fine, and so is a snapshot that does not say.
    let same = dir.path().join("same.yaml");
    std::fs::write(&same, &sim).unwrap();
    let args = ["check", same.to_str().unwrap(), "--snapshot", snapshot.to_str().unwrap()];
    assert_eq!(cabgate(&args).status.code(), Some(1));
    let (_unsaid_dir, unsaid) = example_snapshot(|s| {
        s.as_object_mut().unwrap().remove("skippedSince");
    });
    assert_eq!(check(&unsaid).status.code(), Some(1));
}

#[test]
fn a_snapshot_that_did_not_read_the_issues_of_a_project_the_spec_governs_is_refused() {
    // `cabgate snapshot` reads SKIPPED issues of the projects its spec governs only. Checked
    // with a spec that governs more (`projects: ["*"]`), a bypass in the others went unreported.
    let sim = sim_spec();
    let governing = sim.replace(r#"projects: ["payments", "ledger-*"]"#, r#"projects: ["*"]"#);
    assert_ne!(governing, sim);
    let (_dir, spec) = spec_file("spec.yaml", governing.as_bytes());
    let check = |snapshot: &Path| check_snapshot_with(&spec, snapshot);
    let (_snap_dir, snapshot) = example_snapshot(|s| {
        assert_eq!(s["projects"][1]["name"], "projects/sandbox");
        assert_eq!(s["projects"][1]["governed"], false);
    });
    let output = check(&snapshot);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let stderr = flat(&output);
    assert!(stderr.contains("snapshot.json") && stderr.contains("projects/sandbox"), "{stderr}");

    // A snapshot that does not say which projects it governed is taken at its word.
    let (_unsaid_dir, unsaid) = example_snapshot(|s| {
        s["projects"][1].as_object_mut().unwrap().remove("governed");
    });
    assert_eq!(check(&unsaid).status.code(), Some(1), "{}", text(&check(&unsaid).stderr));
}

#[test]
fn check_refuses_to_write_over_the_snapshot_or_baseline_it_reads() {
    // `-o live.json` for `--snapshot live.json` replaced the evidence with the report; the
    // spec itself was already protected. (`--write-baseline` over `--baseline` stays allowed:
    // that re-records the baseline.)
    let (dir, snapshot) = example_snapshot(|_| {});
    let evidence = std::fs::read_to_string(&snapshot).unwrap();
    let snapshot = snapshot.to_str().unwrap();
    let baseline = dir.path().join("baseline.json");
    let baseline = baseline.to_str().unwrap();
    let spec = "fixtures/specs/sim.yaml";
    let output = cabgate(&["check", spec, "--snapshot", snapshot, "--write-baseline", baseline]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let recorded = std::fs::read_to_string(baseline).unwrap();
    for args in [
        vec!["check", spec, "--snapshot", snapshot, "-o", snapshot],
        vec!["check", spec, "--snapshot", snapshot, "--write-baseline", snapshot],
        vec!["check", spec, "--snapshot", snapshot, "--baseline", baseline, "-o", baseline],
    ] {
        let output = cabgate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(flat(&output).contains("would overwrite it"), "{args:?}: {}", flat(&output));
        assert_eq!(std::fs::read_to_string(snapshot).unwrap(), evidence, "{args:?}");
        assert_eq!(std::fs::read_to_string(baseline).unwrap(), recorded, "{args:?}");
    }
    let args = ["check", spec, "--snapshot", snapshot, "--baseline", baseline];
    let output = cabgate(&[&args[..], &["--write-baseline", baseline]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

// --- spec errors ---

#[test]
fn a_project_pattern_that_is_not_a_glob_is_a_spec_finding_at_its_line() {
    // `projects: ["[pay"]` passed lint, then `check` and `snapshot` ended with exit 3 (a remote
    // failure) naming neither the file nor the line.
    let sim = sim_spec();
    let bad =
        sim.replace(r#"projects: ["payments", "ledger-*"]"#, r#"projects: ["payments", "[pay"]"#);
    assert_ne!(bad, sim);
    let (_dir, spec) = spec_file("spec.yaml", bad.as_bytes());
    let spec = spec.to_str().unwrap();
    let output = cabgate(&["lint", spec, "--format", "json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let finding = &findings_of(&output)[0];
    assert_eq!(finding["code"], "spec/schema");
    assert_eq!(finding["location"]["path"], "/bytebase/projects/1");
    assert_eq!(finding["location"]["line"], 12);
    assert!(finding["message"].as_str().unwrap().contains("[pay"), "{finding}");
    for args in [vec!["check", spec], vec!["snapshot", spec]] {
        let output = cabgate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        let all = format!("{}{}", text(&output.stdout), flat(&output));
        assert!(all.contains("spec.yaml") && all.contains("12"), "{args:?}: {all}");
    }
}

#[test]
fn a_url_the_schema_pattern_takes_but_no_client_can_use_is_a_spec_finding_at_its_line() {
    // `http://127.0.0.1:99999` matched the schema's URL pattern, passed lint, and `check` then
    // said "bytebase.url … is not a usable URL" with no file or line.
    let sim = sim_spec();
    let cases = [
        ("url: http://127.0.0.1:18080", "url: http://127.0.0.1:99999", "/bytebase/url", 9),
        (
            "instance: http://127.0.0.1:18081",
            "instance: \"http://[::1\"",
            "/servicenow/instance",
            15,
        ),
    ];
    for (from, to, pointer, line) in cases {
        let bad = sim.replace(from, to);
        assert_ne!(bad, sim);
        let (_dir, spec) = spec_file("spec.yaml", bad.as_bytes());
        let spec = spec.to_str().unwrap();
        let output = cabgate(&["lint", spec, "--format", "json"]);
        assert_eq!(output.status.code(), Some(2), "{to}: {}", text(&output.stderr));
        let finding = &findings_of(&output)[0];
        assert_eq!(finding["code"], "spec/schema", "{to}");
        assert_eq!(finding["location"]["path"], pointer, "{to}");
        assert_eq!(finding["location"]["line"], line, "{to}");
        let output = cabgate(&["check", spec, "--format", "json"]);
        assert_eq!(output.status.code(), Some(2), "{to}: {}", text(&output.stderr));
        assert_eq!(findings_of(&output)[0]["location"]["line"], line, "{to}");
    }
}

// --- the live read ---

#[test]
fn a_connection_dropped_during_login_is_retried() {
    // Login is a POST, and a POST whose connection broke was never retried (a write may have
    // landed). Login writes nothing, yet one dropped connection on it ended `check` with
    // exit 3, where a dropped read was retried.
    use cabgate::sim::{self, FaultSpec, Options, World};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for faults in [
        FaultSpec { reset: 1.0, ..FaultSpec::none() },
        FaultSpec { lost: 1.0, ..FaultSpec::none() },
    ] {
        let faults = FaultSpec { paths: vec!["/v1/auth/login".into()], first: Some(1), ..faults };
        let world = World::load(root.join("fixtures/worlds/check-compliant.yaml")).unwrap();
        let sim = sim::start_blocking(world, Options { faults, ..Options::default() }).unwrap();
        let template = std::fs::read_to_string(root.join("fixtures/check/spec.yaml")).unwrap();
        let (_dir, spec) = spec_file(
            "bridge.yaml",
            template.replace("BYTEBASE_URL", sim.bytebase_url()).as_bytes(),
        );
        let output = Command::new(env!("CARGO_BIN_EXE_cabgate"))
            .args(["check", spec.to_str().unwrap()])
            .env("CABGATE_TEST_BB_KEY", "bbs_simcabbridgekey0001")
            .env_remove("CABGATE_LOG")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
}

#[test]
fn a_lookback_of_thousands_of_years_reads_every_issue_instead_of_a_filter_bytebase_refuses() {
    // `1000000d` (2,738 years) fits chrono, so `now - lookback` fell before the year 0: the
    // issue filter then said `create_time >= "-0711-…"`, which Bytebase refuses (HTTP 400), and
    // snapshot and check ended with exit 3. No issue predates 1970.
    use cabgate::sim::{self, Options, World};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let world = World::load(root.join("fixtures/worlds/check-compliant.yaml")).unwrap();
    let sim = sim::start_blocking(world, Options::default()).unwrap();
    let template = std::fs::read_to_string(root.join("fixtures/check/spec.yaml")).unwrap();
    let text_of_spec = template.replace("BYTEBASE_URL", sim.bytebase_url());
    let forever = text_of_spec.replace("lookback: 7d", "lookback: 1000000d");
    assert_ne!(forever, text_of_spec);
    let (dir, spec) = spec_file("bridge.yaml", forever.as_bytes());
    let snapshot = dir.path().join("live.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cabgate"))
            .args(args)
            .env("CABGATE_TEST_BB_KEY", "bbs_simcabbridgekey0001")
            .env_remove("CABGATE_LOG")
            .output()
            .unwrap()
    };
    let (spec, snapshot) = (spec.to_str().unwrap(), snapshot.to_str().unwrap());
    let output = run(&["snapshot", spec, "-o", snapshot]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let taken: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snapshot).unwrap()).unwrap();
    assert_eq!(taken["skippedSince"], "1970-01-01T00:00:00Z");
    // The world's SKIPPED issue from long before a week ago is inside this lookback.
    let from_snapshot = run(&["check", spec, "--snapshot", snapshot, "--format", "json"]);
    assert_eq!(from_snapshot.status.code(), Some(1), "{}", text(&from_snapshot.stderr));
    let live = run(&["check", spec, "--format", "json"]);
    assert_eq!(live.status.code(), Some(1), "{}", text(&live.stderr));
    for output in [&from_snapshot, &live] {
        let codes: Vec<_> = findings_of(output).into_iter().map(|f| f["code"].clone()).collect();
        assert!(codes.contains(&"bypass/skipped-issue".into()), "{codes:?}");
    }
}
