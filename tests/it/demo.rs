//! Integration tests: `cabgate demo`, run as a newcomer runs it (the built binary, no
//! environment, any directory), and `demo --keep-running` with the `cabgate check` it prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cabgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cabgate"));
    // From a folder that holds no fixture: the world and spec are compiled in.
    command.current_dir(std::env::temp_dir());
    command.env_remove("CABGATE_LOG");
    command
}

/// The first `CHG` followed by seven digits in `text`.
fn chg_number(text: &str) -> Option<&str> {
    text.match_indices("CHG").map(|(i, _)| &text[i..]).find_map(|rest| {
        let digits = rest[3..].chars().take_while(char::is_ascii_digit).count();
        (digits == 7).then(|| &rest[..10])
    })
}

#[test]
fn demo_runs_every_section_and_shows_the_facts_it_read_back() {
    let output = cabgate().arg("demo").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status.code());

    for heading in [
        "1. Lint the spec",
        "2. Check the live Bytebase workspace",
        "3. The CHG workflow: a change the CAB approves",
        "4. A change the CAB rejects",
        "5. An issue that bypassed approval: the SKIPPED alert",
        "Summary",
        "Where to look next",
    ] {
        assert!(stdout.contains(heading), "missing section {heading:?}\n{stdout}");
    }
    // Lint and check.
    assert!(stdout.contains("result: 0 error(s), 0 warning(s)"), "{stdout}");
    for code in ["lockdown/unexpected-holder", "lockdown/project-setting", "bypass/skipped-issue"] {
        assert!(stdout.contains(&format!("] {code}")), "missing finding {code}\n{stdout}");
    }
    assert!(stdout.contains("why it matters:"), "{stdout}");
    // The approved cycle: a real CHG number, the CAB member, the write-back, the close.
    let number = chg_number(&stdout).unwrap_or_else(|| panic!("no CHG number\n{stdout}"));
    assert!(stdout.contains("state assess (-4), approval requested"), "{stdout}");
    assert!(stdout.contains("carol (carol@acme.example) approved CHG"), "{stdout}");
    assert!(stdout.contains("approved by carol in ServiceNow CHG"), "{stdout}");
    assert!(stdout.contains("plan hasRollout right after the approval: false"), "{stdout}");
    assert!(stdout.contains("plan hasRollout two minutes later: true"), "{stdout}");
    assert!(stdout.contains("close code successful"), "{stdout}");
    // The rejection carries the CAB's reason into Bytebase.
    assert!(stdout.contains("read back from Bytebase: approval REJECTED"), "{stdout}");
    assert!(stdout.contains("No rollback plan for a 41-million-row"), "{stdout}");
    // The SKIPPED alert, once, signed.
    assert!(stdout.contains("approval status in Bytebase: SKIPPED"), "{stdout}");
    assert!(stdout.contains("deliveries the receiver got: 1"), "{stdout}");
    assert!(stdout.contains("signature valid"), "{stdout}");
    // The summary names each outcome.
    let summary = &stdout[stdout.find("Summary").unwrap()..];
    assert!(summary.contains(number), "{summary}");
    assert!(summary.contains("closed successful"), "{summary}");
    assert!(summary.contains("issue REJECTED"), "{summary}");
    assert!(summary.contains("delivered once"), "{summary}");
    // Plain text for a pipe, within 100 columns.
    assert!(!stdout.contains('\x1b'), "colors on a pipe");
    for line in stdout.lines() {
        assert!(line.chars().count() <= 100, "line over 100 columns: {line:?}");
    }
}

/// Stops the demo with SIGTERM (like Ctrl-C) even when an assertion fails first.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let pid = self.0.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn keep_running_prints_urls_and_a_check_command_that_works() {
    let child = cabgate()
        .args(["demo", "--keep-running"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Running(child);
    let stdout = demo.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let mut check_line = None;
    let mut last_curl = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("CABGATE_DEMO_BB_KEY=") {
            check_line = Some(line.trim().to_owned());
        }
        last_curl = line.contains("/_sim/table/sysapproval_approver");
        seen.push(line);
        if last_curl {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(last_curl, "the demo ended before printing its curl examples\n{text}");
    assert!(text.contains("The emulators keep running"), "{text}");
    assert!(text.contains("Bytebase    http://127.0.0.1:"), "{text}");
    assert!(text.contains("ServiceNow  http://127.0.0.1:"), "{text}");
    assert_eq!(text.matches("curl -s").count(), 3, "{text}");

    // `KEY=value cabgate check PATH`, run as printed.
    let check_line = check_line.unwrap_or_else(|| panic!("no check command\n{text}"));
    let words: Vec<&str> = check_line.split_whitespace().collect();
    assert_eq!(words[1..3], ["cabgate", "check"], "{check_line}");
    let (var, key) = words[0].split_once('=').unwrap();
    let spec = words[3];
    let check = cabgate().env(var, key).args(["check", spec]).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    let errors = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "drift is exit 1\n{report}\n{errors}");
    assert!(report.contains("lockdown/project-setting"), "{report}");
    assert!(report.contains("lockdown/unexpected-holder"), "{report}");

    // Ctrl-C (here SIGTERM) stops it cleanly and removes the spec it wrote.
    let pid = demo.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = demo.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(spec).exists(), "{spec} left behind");
}
