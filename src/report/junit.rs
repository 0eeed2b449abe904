//! JUnit XML, for CI systems that show test results (GitLab, Jenkins, Azure DevOps…).
//!
//! Each finding code is a test case, so a CI's history shows which checks pass over time: every
//! catalogue code, plus any user code seen. A test case gets one `<failure>` per unwaived finding
//! of its code; waived findings are listed in its `<system-out>`.

use std::fmt::Write;

use super::{place, summary_line};
use crate::finding::{Finding, Report, catalogue};

/// Renders the report as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let mut codes: Vec<String> = catalogue().iter().map(|info| info.code.clone()).collect();
    for finding in &report.findings {
        if !codes.contains(&finding.code) {
            codes.push(finding.code.clone());
        }
    }
    let failing = |f: &&Finding| !f.waived;
    let failures = report.findings.iter().filter(failing).count();
    let failed_cases = codes
        .iter()
        .filter(|code| report.findings.iter().filter(failing).any(|f| &f.code == *code))
        .count();
    let suite = escape(&format!("cabgate {}", report.spec));

    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // `write!` into a String cannot fail.
    let _ = writeln!(
        xml,
        "<testsuites name=\"cabgate\" tests=\"{}\" failures=\"{failed_cases}\" errors=\"0\">",
        codes.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failed_cases}\" errors=\"0\" \
         skipped=\"0\">",
        codes.len()
    );
    let _ = writeln!(
        xml,
        "    <properties>\n      <property name=\"summary\" value=\"{}\"/>\n      \
         <property name=\"findings\" value=\"{failures}\"/>\n    </properties>",
        escape(&summary_line(report))
    );
    for code in &codes {
        write_case(&mut xml, report, code);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn write_case(xml: &mut String, report: &Report, code: &str) {
    let class = code.split('/').next().unwrap_or(code);
    let findings: Vec<&Finding> = report.findings.iter().filter(|f| f.code == code).collect();
    let head =
        format!("    <testcase classname=\"cabgate.{}\" name=\"{}\"", escape(class), escape(code));
    if findings.is_empty() {
        let _ = writeln!(xml, "{head}/>");
        return;
    }
    let _ = writeln!(xml, "{head}>");
    let mut waived = Vec::new();
    for finding in findings {
        let mut body = format!("{}: {}", place(&report.spec, finding), finding.message);
        if let Some(resource) = &finding.resource {
            body.push_str(&format!("\nresource: {resource}"));
        }
        if !finding.via.is_empty() {
            body.push_str(&format!("\nvia: {}", finding.via.join(" -> ")));
        }
        if let Some(remediation) = &finding.remediation {
            body.push_str(&format!("\nfix: {remediation}"));
        }
        if finding.waived {
            waived.push(body);
            continue;
        }
        let _ = writeln!(
            xml,
            "      <failure message=\"{}\" type=\"{}\">{}</failure>",
            escape(&finding.message),
            finding.severity.as_str(),
            escape(&body)
        );
    }
    if !waived.is_empty() {
        let text = format!("waived:\n{}", waived.join("\n"));
        let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&text));
    }
    xml.push_str("    </testcase>\n");
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
