//! GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=…::message`, which
//! annotate the spec's lines in a pull request. Waived findings print nothing.

use super::{printable, resource_and_via};
use crate::finding::{Report, Severity};

/// Renders one workflow command per unwaived finding.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for finding in report.findings.iter().filter(|f| !f.waived) {
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = vec![format!("file={}", property(&report.spec))];
        if let Some(location) = &finding.location {
            properties.push(format!("line={}", location.line));
            properties.push(format!("col={}", location.column));
        }
        properties.push(format!("title={}", property(&finding.code)));
        let mut message = printable(&finding.message).into_owned();
        message.push_str(&resource_and_via(finding));
        if let Some(remediation) = &finding.remediation {
            message.push_str(&format!("\nfix: {}", printable(remediation)));
        }
        out.push_str(&format!("::{command} {}::{}\n", properties.join(","), data(&message)));
    }
    out
}

/// Escapes a command's message (`%`, CR, LF), as the Actions runner decodes it.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a command property's value: as [`data`], plus `:` and `,`, which delimit properties.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_delimiters() {
        assert_eq!(data("50%\nnext"), "50%25%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
