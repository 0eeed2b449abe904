//! `cabgate policy test`: runs the `test_*` rules of `*_test.rego` files with regorus, like
//! `opa test`, so users test their own policies with the engine that will run them.
//!
//! A test passes when its rule evaluates to `true`; `false`, undefined or an evaluation error fail
//! it. A file that does not parse is an error of the whole run (exit 2), not a failed test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::PolicyError;
use super::engine::{BUILTIN_POLICIES, BUILTIN_TESTS, PolicySet, read, rego_files};

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rule evaluated to `true`.
    Pass,
    /// The rule evaluated to something else, or was undefined.
    Fail,
    /// Evaluation failed; the text says why.
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The test file.
    pub file: String,
    /// The rule's full path, e.g. `data.cabgate.rules.approval_test.test_x`.
    pub rule: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// Every test of a run, in file then source order.
#[derive(Debug, Clone, Default)]
pub struct TestRun {
    /// The results.
    pub results: Vec<TestResult>,
}

impl TestRun {
    /// Number of tests that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome == Outcome::Pass).count()
    }

    /// True when every test passed (and there was at least one).
    pub fn success(&self) -> bool {
        !self.results.is_empty() && self.passed() == self.results.len()
    }
}

/// Runs the tests of the built-in policies (no `dirs`), or the `*_test.rego` files under `dirs`
/// with the built-in policies and the other `*.rego` files of `dirs` loaded beside them.
pub fn run(dirs: &[PathBuf]) -> Result<TestRun, PolicyError> {
    let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect()
    };
    let mut policies = owned(BUILTIN_POLICIES);
    let tests = if dirs.is_empty() {
        owned(BUILTIN_TESTS)
    } else {
        let mut tests = Vec::new();
        for dir in dirs {
            for path in rego_files(dir, false)? {
                policies.push(read(&path)?);
            }
            for path in rego_files(dir, true)? {
                tests.push(read(&path)?);
            }
        }
        tests
    };
    run_sources(policies, tests)
}

/// Runs the tests of `tests` with `policies` loaded.
pub fn run_sources(
    policies: Vec<(String, String)>,
    tests: Vec<(String, String)>,
) -> Result<TestRun, PolicyError> {
    let mut set = PolicySet::from_sources(policies)?;
    let mut planned = Vec::new();
    for (file, text) in tests {
        let rules = test_rules(&text);
        let package = set.add(file.clone(), text)?;
        for rule in rules {
            planned.push((file.clone(), format!("{package}.{rule}")));
        }
    }
    let mut run = TestRun::default();
    for (file, rule) in planned {
        let started = Instant::now();
        let outcome = match set.eval_rule(&rule) {
            Ok(regorus::Value::Bool(true)) => Outcome::Pass,
            Ok(_) => Outcome::Fail,
            Err(e) => Outcome::Error(e.to_string()),
        };
        run.results.push(TestResult { file, rule, outcome, elapsed: started.elapsed() });
    }
    Ok(run)
}

/// The names of the `test_*` rules a file defines, in source order, each once.
fn test_rules(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String =
            line.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_test_fails_and_a_passing_one_passes() {
        let test = "package t_test\n\ntest_yes if 1 == 1\n\ntest_no if 1 == 2\n".to_owned();
        let run = run_sources(Vec::new(), vec![("t_test.rego".to_owned(), test)]).unwrap();
        let outcomes: Vec<_> = run.results.iter().map(|r| r.outcome.clone()).collect();
        assert_eq!(outcomes, [Outcome::Pass, Outcome::Fail]);
        assert!(!run.success());
    }
}
