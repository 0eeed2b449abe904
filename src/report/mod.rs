//! Renderers of a [`crate::finding::Report`]: human (miette), JSON, SARIF 2.1.0, JUnit, GitHub
//! workflow annotations and Markdown. Every format carries the same facts.
//!
//! Renderers are pure: a report (already sorted by [`crate::finding::Report::new`]) and the spec's
//! text in, bytes out, with no clock and no environment, so the same report always renders to the
//! same bytes (CI diffs and snapshot tests rely on it). Writing is the CLI's job.

pub mod github;
pub mod human;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod sarif;

use clap::ValueEnum;

use crate::finding::{Finding, Report};
use crate::spec::SpanMap;

/// The output formats of `lint` and `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Diagnostics with the spec's lines and a label on the node (colors on a terminal only).
    #[default]
    Human,
    /// The JSON report of `bridge-spec.md` (a stable contract).
    Json,
    /// SARIF 2.1.0, for code-scanning upload.
    Sarif,
    /// JUnit XML: one test case per finding code.
    Junit,
    /// GitHub Actions workflow commands (`::error file=…`), annotating the spec in a pull request.
    Github,
    /// A Markdown summary, for `$GITHUB_STEP_SUMMARY` and the like.
    Markdown,
}

/// What a renderer may use besides the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The spec's text, for snippets (absent when the file is not UTF-8).
    pub source: Option<&'a str>,
    /// Where each node is, for the exact extent of a label.
    pub spans: Option<&'a SpanMap>,
    /// Color and terminal styling (only when stdout is a terminal).
    pub color: bool,
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format, context: &Context<'_>) -> String {
    match format {
        Format::Human => human::render(report, context),
        Format::Json => json::render(report),
        Format::Sarif => sarif::render(report),
        Format::Junit => junit::render(report),
        Format::Github => github::render(report),
        Format::Markdown => markdown::render(report),
    }
}

/// `file:line:column`, or the file alone for a finding without a place in the spec.
pub(crate) fn place(spec: &str, finding: &Finding) -> String {
    match &finding.location {
        Some(location) => format!("{spec}:{}:{}", location.line, location.column),
        None => spec.to_owned(),
    }
}

/// `text` with every control character (C0, DEL, C1: escape sequences, CR, LF…) and bidi
/// override written as a visible `\u{…}` escape. Finding text carries Bytebase data (an issue
/// title is written by the person a bypass finding is about), so the text formats print it
/// through this: it can neither drive a terminal or CI log nor start a line of its own.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The lines a text report adds under a finding's message: `resource: …` and `via: a → b`, as
/// far as the finding has them, each after a line break and [`printable`].
pub(crate) fn resource_and_via(finding: &Finding) -> String {
    let mut lines = String::new();
    if let Some(resource) = &finding.resource {
        lines.push_str(&format!("\nresource: {}", printable(resource)));
    }
    if !finding.via.is_empty() {
        let via: Vec<_> = finding.via.iter().map(|v| printable(v)).collect();
        lines.push_str(&format!("\nvia: {}", via.join(" → ")));
    }
    lines
}

/// "1 error" / "2 errors".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("{n} {noun}") } else { format!("{n} {noun}s") }
}

/// The counts line every text format ends with.
pub(crate) fn summary_line(report: &Report) -> String {
    let s = report.summary;
    format!("{}, {}, {} waived", count(s.errors, "error"), count(s.warnings, "warning"), s.waived)
}
