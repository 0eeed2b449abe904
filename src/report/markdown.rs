//! A Markdown summary for a CI step summary (`$GITHUB_STEP_SUMMARY`, GitLab job summaries…): a
//! verdict line, then one table row per finding.

use super::{place, printable, summary_line};
use crate::finding::{Report, Severity};

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let verdict = if report.summary.errors > 0 {
        "❌ failed"
    } else if report.summary.warnings > 0 {
        "⚠️ passed with warnings"
    } else {
        "✅ passed"
    };
    let mut out = format!(
        "## cabgate: `{}`\n\n**{verdict}**: {}\n",
        inline(&report.spec),
        summary_line(report)
    );
    if report.findings.is_empty() {
        out.push_str("\nNo findings.\n");
        return out;
    }
    out.push_str("\n| Severity | Code | Where | Finding | Fix |\n|---|---|---|---|---|\n");
    for finding in &report.findings {
        let severity = match (finding.waived, finding.severity) {
            (true, _) => "➖ waived",
            (false, Severity::Error) => "❌ error",
            (false, Severity::Warning) => "⚠️ warning",
            (false, Severity::Info) => "ℹ️ info",
        };
        let mut what = cell(&finding.message);
        if let Some(resource) = &finding.resource {
            what.push_str(&format!("<br>resource: `{}`", inline(resource)));
        }
        if !finding.via.is_empty() {
            let via: Vec<String> = finding.via.iter().map(|v| format!("`{}`", inline(v))).collect();
            what.push_str(&format!("<br>via: {}", via.join(" → ")));
        }
        out.push_str(&format!(
            "| {severity} | `{}` | `{}` | {what} | {} |\n",
            inline(&finding.code),
            inline(&place(&report.spec, finding)),
            cell(finding.remediation.as_deref().unwrap_or_default()),
        ));
    }
    out
}

/// Text for a table cell: pipes escaped, line breaks as `<br>`, HTML brackets neutralized.
fn cell(text: &str) -> String {
    printable(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// Text inside a code span within a table: backticks and pipes would break it.
fn inline(text: &str) -> String {
    printable(text).replace('`', "'").replace('|', "\\|").replace('\n', " ")
}
