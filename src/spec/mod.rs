//! The bridge spec: loading with spans, schema validation, and the typed model.
//!
//! Loading happens in two phases: the YAML becomes a JSON value plus a map from JSON Pointer to
//! line and column, the JSON Schema checks it (each error becomes a `spec/schema` finding at its
//! node), and only then is the typed [`Spec`] built. Code downstream accepts only the typed spec.

pub mod model;

use std::path::PathBuf;

pub use model::Spec;

use crate::finding::Location;

/// A spec that passed its schema, with everything needed to point back into its file.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file as given on the command line (reports print it as is).
    pub path: PathBuf,
    /// The file's text, for diagnostics with snippets.
    pub source: String,
    /// The typed spec.
    pub spec: Spec,
    /// The spec as JSON with defaults filled in (the default workflow included): what policies see
    /// as `input.spec`.
    pub document: serde_json::Value,
    /// Where each node of the document is in the file.
    pub spans: SpanMap,
}

/// JSON Pointer → place in the spec file.
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    entries: std::collections::BTreeMap<String, Location>,
}

impl SpanMap {
    /// Records the place of a node.
    pub fn insert(&mut self, location: Location) {
        self.entries.insert(location.path.clone(), location);
    }

    /// The place of `pointer`, or of its nearest ancestor that is written in the file (a default
    /// value has no place of its own).
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        let mut path = pointer;
        loop {
            if let Some(found) = self.entries.get(path) {
                let mut location = found.clone();
                location.path = pointer.to_owned();
                return Some(location);
            }
            if path.is_empty() {
                return None;
            }
            path = path.rfind('/').map_or("", |cut| &path[..cut]);
        }
    }
}
