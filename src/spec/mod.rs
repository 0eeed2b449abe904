//! The bridge spec: loading with spans, schema validation, and the typed model.
//!
//! Loading happens in two phases: the YAML becomes a JSON value plus a map from JSON Pointer to
//! line and column, the JSON Schema checks it (each error becomes a `spec/schema` finding at its
//! node), and only then is the typed [`Spec`] built. Code downstream accepts only the typed spec.

pub mod model;

pub use model::Spec;
