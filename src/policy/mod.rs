//! The policy layer: built-in and user Rego evaluated with regorus over `{spec, live, index}`.
//!
//! Data is indexed in Rust before evaluation (regorus goes quadratic on nested comprehensions over
//! big inputs), so every policy stays linear. regorus errors are converted here, once, into
//! diagnostics that name the policy file and line.
