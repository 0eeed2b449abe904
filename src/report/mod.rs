//! Renderers of a [`crate::finding::Report`]: human (miette), JSON, SARIF 2.1.0, JUnit, GitHub
//! workflow annotations and Markdown. Every format carries the same facts.
