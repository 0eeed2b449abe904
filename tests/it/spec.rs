//! Integration tests: spec loading, the schema and the model.

use std::path::{Path, PathBuf};

use cabgate::finding::Finding;
use cabgate::spec::{self, SpecError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/specs").join(name)
}

fn problems(bytes: &[u8]) -> Vec<Finding> {
    match spec::load_bytes(Path::new("t.yaml"), bytes) {
        Ok(_) => Vec::new(),
        Err(SpecError::Invalid(invalid)) => invalid.findings,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn brief(findings: &[Finding]) -> Vec<(usize, usize, String)> {
    findings
        .iter()
        .map(|f| {
            let l = f.location.as_ref().expect("located");
            (l.line, l.column, f.message.clone())
        })
        .collect()
}

#[test]
fn example_loads() {
    let loaded = spec::load(&fixture("example.yaml")).expect("example is valid");
    assert_eq!(loaded.spec.name, "acme-db-cab");
}

#[test]
fn four_errors() {
    let bytes = std::fs::read(fixture("invalid-four.yaml")).unwrap();
    let found = problems(&bytes);
    for f in &found {
        eprintln!("{:?} {} -- {:?}", f.location, f.message, f.remediation);
    }
    assert_eq!(found.len(), 4, "{:?}", brief(&found));
}
