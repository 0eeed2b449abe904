//! The regorus engine with the built-in policies compiled in and the user's added from disk.
//!
//! One [`PolicySet`] is loaded per run; every package under `cabgate.rules.` is evaluated on its
//! own so its time can be reported (`--profile`). Evaluation is capped by regorus's execution
//! timer ([`EVALUATION_LIMIT`] per package): a runaway user policy fails the run with a clear
//! error instead of hanging a CI job.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

use super::PolicyError;

/// The built-in policies, by repo-relative path, compiled into the binary.
pub const BUILTIN_POLICIES: &[(&str, &str)] = &[
    ("policies/lib.rego", include_str!("../../policies/lib.rego")),
    ("policies/spec.rego", include_str!("../../policies/spec.rego")),
    ("policies/workflow.rego", include_str!("../../policies/workflow.rego")),
    ("policies/waiver.rego", include_str!("../../policies/waiver.rego")),
    ("policies/approval.rego", include_str!("../../policies/approval.rego")),
    ("policies/lockdown.rego", include_str!("../../policies/lockdown.rego")),
    ("policies/rollout.rego", include_str!("../../policies/rollout.rego")),
    ("policies/bypass.rego", include_str!("../../policies/bypass.rego")),
];

/// The unit tests of the built-in policies (`cabgate policy test` with no folder).
pub const BUILTIN_TESTS: &[(&str, &str)] = &[
    ("policies/lib_test.rego", include_str!("../../policies/lib_test.rego")),
    ("policies/spec_test.rego", include_str!("../../policies/spec_test.rego")),
    ("policies/workflow_test.rego", include_str!("../../policies/workflow_test.rego")),
    ("policies/waiver_test.rego", include_str!("../../policies/waiver_test.rego")),
    ("policies/approval_test.rego", include_str!("../../policies/approval_test.rego")),
    ("policies/lockdown_test.rego", include_str!("../../policies/lockdown_test.rego")),
    ("policies/rollout_test.rego", include_str!("../../policies/rollout_test.rego")),
    ("policies/bypass_test.rego", include_str!("../../policies/bypass_test.rego")),
];

/// The code catalogue, loaded as `data.cabgate.codes` (code → `{severity, title, …}`).
const CODES: &str = include_str!("../../policies/codes.json");

/// Wall-clock cap on the evaluation of one package.
pub const EVALUATION_LIMIT: Duration = Duration::from_secs(30);

/// The package prefix whose `findings` the engine collects.
pub const RULES_PREFIX: &str = "data.cabgate.rules.";

/// The findings of one package and the time they took.
#[derive(Debug, Clone)]
pub struct PackageFindings {
    /// The package, e.g. `data.cabgate.rules.lockdown`.
    pub package: String,
    /// The raw finding objects, as the policy wrote them.
    pub findings: Vec<Value>,
    /// Evaluation time.
    pub elapsed: Duration,
}

/// A loaded engine: the built-in policies, the user's, and the code catalogue as data.
pub struct PolicySet {
    engine: regorus::Engine,
    packages: Vec<String>,
}

impl PolicySet {
    /// Loads the built-in policies and every `*.rego` (not `*_test.rego`) under `user_dirs`.
    pub fn load(user_dirs: &[PathBuf]) -> Result<PolicySet, PolicyError> {
        let mut files: Vec<(String, String)> = BUILTIN_POLICIES
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        for dir in user_dirs {
            for path in rego_files(dir, false)? {
                files.push(read(&path)?);
            }
        }
        PolicySet::from_sources(files)
    }

    /// Loads the given `(path, text)` modules and the code catalogue.
    pub fn from_sources(files: Vec<(String, String)>) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet::empty()?;
        for (path, text) in files {
            set.add(path, text)?;
        }
        Ok(set)
    }

    /// An engine with the code catalogue and no policy.
    pub fn empty() -> Result<PolicySet, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: EVALUATION_LIMIT,
            check_interval: NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN),
        });
        engine.add_data(regorus::Value::from(codes_data())).map_err(|e| PolicyError::Eval {
            package: "data.cabgate.codes".to_owned(),
            file: None,
            line: None,
            message: "cannot load the code catalogue".to_owned(),
            note: e.to_string(),
        })?;
        Ok(PolicySet { engine, packages: Vec::new() })
    }

    /// Adds one module; returns its package (`data.x.y`).
    pub fn add(&mut self, path: String, text: String) -> Result<String, PolicyError> {
        let package =
            self.engine.add_policy(path.clone(), text).map_err(|e| parse_error(&path, &e))?;
        let collected = package.starts_with(RULES_PREFIX) && !package.ends_with("_test");
        if collected && !self.packages.contains(&package) {
            self.packages.push(package.clone());
        }
        Ok(package)
    }

    /// The packages whose findings are collected, in load order.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// Evaluates `findings` of every package over `input`.
    pub fn evaluate(&mut self, input: &Value) -> Result<Vec<PackageFindings>, PolicyError> {
        self.evaluate_input(regorus_value(input))
    }

    /// Evaluates `findings` of every package over an input already in regorus's form (see
    /// [`super::input`]: big snapshots are converted once, without a JSON tree in between).
    pub fn evaluate_input(
        &mut self,
        input: regorus::Value,
    ) -> Result<Vec<PackageFindings>, PolicyError> {
        self.engine.set_input(input);
        let mut out = Vec::with_capacity(self.packages.len());
        for package in self.packages.clone() {
            let started = Instant::now();
            let rule = format!("{package}.findings");
            let value = self.engine.eval_rule(rule).map_err(|e| eval_error(&package, &e))?;
            let findings = match serde_json::to_value(&value) {
                Ok(Value::Array(items)) => items,
                Ok(Value::Null) | Ok(Value::String(_)) if value == regorus::Value::Undefined => {
                    Vec::new()
                }
                Ok(other) => {
                    let problem = format!("`findings` is {other}, not a set");
                    return Err(PolicyError::Finding { package, problem });
                }
                Err(e) => {
                    let problem = format!("`findings` cannot be read: {e}");
                    return Err(PolicyError::Finding { package, problem });
                }
            };
            out.push(PackageFindings { package, findings, elapsed: started.elapsed() });
        }
        Ok(out)
    }

    /// Evaluates one rule by its full path (`data.pkg.rule`), for the test runner.
    pub(crate) fn eval_rule(&mut self, rule: &str) -> Result<regorus::Value, PolicyError> {
        self.engine.eval_rule(rule.to_owned()).map_err(|e| eval_error(rule, &e))
    }
}

/// A JSON value in regorus's form, converted from a reference (no copy of the JSON tree).
pub fn regorus_value(value: &Value) -> regorus::Value {
    use serde::Deserialize as _;
    // Every JSON value has a regorus form; the fallback is unreachable but keeps this total.
    regorus::Value::deserialize(value).unwrap_or(regorus::Value::Null)
}

/// `{"cabgate": {"codes": {code: info}}}` from the catalogue.
pub fn codes_data() -> Value {
    let list: Vec<Value> = serde_json::from_str(CODES).unwrap_or_default();
    let codes: serde_json::Map<String, Value> = list
        .into_iter()
        .filter_map(|info| Some((info.get("code")?.as_str()?.to_owned(), info)))
        .collect();
    serde_json::json!({"cabgate": {"codes": codes}})
}

/// Every `*.rego` file under `dir`, recursively, sorted; `tests` picks `*_test.rego` files only,
/// otherwise they are left out.
pub fn rego_files(dir: &Path, tests: bool) -> Result<Vec<PathBuf>, PolicyError> {
    let read_error = |source| PolicyError::Read { path: dir.to_owned(), source };
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(read_error)?;
        for entry in entries {
            let path = entry.map_err(read_error)?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".rego") && name.ends_with("_test.rego") == tests {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads one policy file as `(display path, text)`.
pub fn read(path: &Path) -> Result<(String, String), PolicyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
    Ok((path.display().to_string(), text))
}

/// Where regorus says an error is: `(file, line, column, message)` out of its text
/// (`\n--> file:line:col\n … \nerror: message`).
fn locate(text: &str) -> Option<(String, u32, u32, String)> {
    let after = text.split("--> ").nth(1)?;
    let place = after.lines().next()?.trim();
    let mut parts = place.rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_owned();
    let message = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.split_once(": ").map_or(l, |(_, m)| m).trim().to_owned())
        .unwrap_or_default();
    Some((file, line, column, message))
}

fn parse_error(path: &str, error: &impl std::fmt::Display) -> PolicyError {
    let note = error.to_string();
    match locate(&note) {
        Some((file, line, column, message)) => {
            PolicyError::Parse { file, line, column, message, note }
        }
        None => PolicyError::Parse {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: note.lines().last().unwrap_or("invalid Rego").to_owned(),
            note,
        },
    }
}

fn eval_error(package: &str, error: &impl std::fmt::Display) -> PolicyError {
    let note = format!("{error:#}");
    match locate(&note) {
        Some((file, line, _, message)) => PolicyError::Eval {
            package: package.to_owned(),
            file: Some(file),
            line: Some(line),
            message,
            note,
        },
        None => PolicyError::Eval {
            package: package.to_owned(),
            file: None,
            line: None,
            message: note.lines().last().unwrap_or("evaluation failed").to_owned(),
            note,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regorus_error_text_is_located() {
        let text =
            "\n--> policies/x.rego:12:5\n   |\n12 | foo if\n   |     ^\nerror: unexpected eof";
        let (file, line, column, message) = locate(text).unwrap();
        assert_eq!((file.as_str(), line, column), ("policies/x.rego", 12, 5));
        assert_eq!(message, "unexpected eof");
    }

    #[test]
    fn a_parse_error_names_the_file_and_line() {
        let broken = ("user/broken.rego".to_owned(), "package cabgate.rules.x\nf if {".to_owned());
        let Err(PolicyError::Parse { file, line, .. }) = PolicySet::from_sources(vec![broken])
        else {
            panic!("expected a parse error");
        };
        assert_eq!(file, "user/broken.rego");
        assert!(line >= 2, "line {line}");
    }
}
