//! `cabgate policy …`: tools for the built-in and the user's own Rego.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::cli::{Failure, Outcome, print_stdout};
use crate::finding::Exit;
use crate::policy::testing::{self, Outcome as TestOutcome, TestRun};

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the `test_*` rules of `*_test.rego` files, like `opa test`.
    Test(TestArgs),
}

/// Options of `cabgate policy test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Folders of `*.rego` and `*_test.rego` files (searched recursively). Without one, the
    /// built-in policies' own tests run. The built-in policies are always loaded, so tests may
    /// import `data.cabgate.lib` and the `data.cabgate.rules.*` packages.
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// Runs a policy subcommand.
pub fn run(command: Command) -> Outcome {
    match command {
        Command::Test(args) => test(&args),
    }
}

/// Exit 0 when every test passes, 1 when one fails, 2 when a file does not parse.
fn test(args: &TestArgs) -> Outcome {
    let run = testing::run(&args.dirs).map_err(Failure::invalid)?;
    print_stdout(&render(&run)).map_err(|e| Failure::runtime(miette::miette!("stdout: {e}")))?;
    Ok(if run.success() { Exit::Ok } else { Exit::Findings })
}

/// `opa test -v` style: each file, each test with PASS/FAIL/ERROR and its time, then a summary.
pub fn render(run: &TestRun) -> String {
    let mut out = String::new();
    let mut file = None;
    for result in &run.results {
        if file != Some(&result.file) {
            if file.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}:", result.file);
            file = Some(&result.file);
        }
        let took = format!("{:.1}ms", result.elapsed.as_secs_f64() * 1000.0);
        let _ = match &result.outcome {
            TestOutcome::Pass => writeln!(out, "{}: PASS ({took})", result.rule),
            TestOutcome::Fail => writeln!(out, "{}: FAIL ({took})", result.rule),
            TestOutcome::Error(e) => writeln!(out, "{}: ERROR ({took})\n  {e}", result.rule),
        };
    }
    let _ = writeln!(out, "{}", "-".repeat(80));
    let total = run.results.len();
    let passed = run.passed();
    if total == 0 {
        let _ = writeln!(out, "no tests found");
    } else if passed == total {
        let _ = writeln!(out, "PASS: {passed}/{total}");
    } else {
        let _ = writeln!(out, "PASS: {passed}/{total}");
        let _ = writeln!(out, "FAIL: {}/{total}", total - passed);
    }
    out
}
