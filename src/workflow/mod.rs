//! The CHG workflow engine: observe the two systems, decide (a pure function of the spec's state
//! machine and the observed facts) and act (idempotent calls, each behind a fresh precondition).
//!
//! The split keeps the part that must be right under any interleaving — which action, when —
//! free of I/O: [`facts`] and [`decide`] are plain functions over data that unit and property
//! tests drive directly, while observe and act are the only code that talks to Bytebase and
//! ServiceNow.

pub mod act;
pub mod decide;
pub mod facts;
pub mod listen;
pub mod metrics;
pub mod observe;
pub mod port;
pub mod runner;
pub mod template;
pub mod wiring;

pub use decide::{Machine, Record, Step, decide};
pub use facts::{Facts, Governance, Observation};

use crate::spec::model::WorkflowSpec;

/// The text of the default workflow, compiled into the binary.
pub const DEFAULT_WORKFLOW: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/default.yaml"));

/// The default workflow could not be read (a build defect: the file ships with the binary).
#[derive(Debug, thiserror::Error)]
pub enum DefaultWorkflowError {
    /// The YAML does not parse.
    #[error("workflows/default.yaml is not valid YAML: {0}")]
    Yaml(String),
    /// The YAML does not match the workflow grammar.
    #[error("workflows/default.yaml does not match the workflow grammar: {0}")]
    Grammar(#[from] serde_json::Error),
}

/// The default workflow (`initial`, `final`, `transitions`) as a [`WorkflowSpec`].
///
/// NOTE: this reads the YAML with a small converter of its own; `spec::default_workflow` is the
/// shared entry point once the spec loader provides it.
pub fn default_workflow() -> Result<WorkflowSpec, DefaultWorkflowError> {
    use saphyr::{LoadableYamlNode, Yaml};

    let docs = Yaml::load_from_str(DEFAULT_WORKFLOW)
        .map_err(|e| DefaultWorkflowError::Yaml(e.to_string()))?;
    let doc = docs.first().ok_or_else(|| DefaultWorkflowError::Yaml("empty".into()))?;
    Ok(serde_json::from_value(yaml_to_json(doc))?)
}

fn yaml_to_json(node: &saphyr::Yaml<'_>) -> serde_json::Value {
    use saphyr::{Scalar, Yaml};
    use serde_json::Value;

    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Representation(s, _, _) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => yaml_to_json(inner),
        Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}
