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
