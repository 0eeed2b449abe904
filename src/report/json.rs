//! The JSON report of `bridge-spec.md`: the [`Report`] as it is, pretty-printed.

use crate::finding::Report;

/// Renders the report as one JSON object and a newline.
pub fn render(report: &Report) -> String {
    // Serializing plain structs with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}
