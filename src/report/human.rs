//! The human format: one miette diagnostic per finding, with the spec's lines around the node and
//! a label on it, the fix as a help line, and a summary at the end.
//!
//! Colors and Unicode frames are used only on a terminal; otherwise the output is plain ASCII at a
//! fixed width, so logs, pipes and snapshot tests see the same bytes on every machine.

use std::fmt;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

use super::{Context, count, place, printable, resource_and_via, summary_line};
use crate::finding::{Finding, Location, Report, Severity, code_info};

/// Renders the whole report.
pub fn render(report: &Report, context: &Context<'_>) -> String {
    let theme = if context.color { GraphicalTheme::unicode() } else { GraphicalTheme::none() };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_urls(false)
        .with_width(100)
        .with_context_lines(1);
    let source = context
        .source
        .map(|text| NamedSource::new(&report.spec, mask_secrets(report, text, context)));
    let mut out = String::new();
    for finding in &report.findings {
        let diagnostic = FindingDiagnostic::new(finding, &report.spec, source.as_ref(), context);
        if handler.render_report(&mut out, &diagnostic).is_err() {
            // Rendering into a String cannot fail; keep the facts if a snippet ever does.
            let message = printable(&finding.message);
            out.push_str(&format!("{}: {message}\n", place(&report.spec, finding)));
        }
        out.push('\n');
    }
    let verdict = if report.summary.errors > 0 { "failed" } else { "passed" };
    out.push_str(&format!(
        "{}: {verdict} with {} ({})\n",
        report.spec,
        summary_line(report),
        count(report.findings.len(), "finding")
    ));
    out
}

/// A finding as miette sees it.
struct FindingDiagnostic<'a> {
    finding: &'a Finding,
    message: String,
    source: Option<&'a NamedSource<String>>,
    label: Option<LabeledSpan>,
}

impl<'a> FindingDiagnostic<'a> {
    fn new(
        finding: &'a Finding,
        spec: &str,
        source: Option<&'a NamedSource<String>>,
        context: &Context<'_>,
    ) -> Self {
        let mut message = String::new();
        if finding.waived {
            message.push_str("(waived) ");
        }
        message.push_str(&printable(&finding.message));
        message.push_str(&resource_and_via(finding));
        let label = match (&finding.location, context.source) {
            (Some(location), Some(text)) => {
                let (offset, length) = context
                    .spans
                    .and_then(|spans| spans.byte_range(location))
                    .unwrap_or_else(|| guess_range(text, location));
                // A schema finding's message already says what is wrong with the node.
                let title = code_info(&finding.code)
                    .filter(|info| info.code != crate::spec::schema::CODE)
                    .map(|info| info.title.clone());
                Some(LabeledSpan::new(title, offset, length))
            }
            (Some(location), None) => {
                let path = if location.path.is_empty() { "/" } else { &location.path };
                message.push_str(&format!("\nat {} ({path})", place(spec, finding)));
                None
            }
            _ => None,
        };
        let source = source.filter(|_| label.is_some());
        FindingDiagnostic { finding, message, source, label }
    }
}

impl fmt::Debug for FindingDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FindingDiagnostic").field("finding", self.finding).finish()
    }
}

impl fmt::Display for FindingDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FindingDiagnostic<'_> {}

impl Diagnostic for FindingDiagnostic<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.finding.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            _ if self.finding.waived => miette::Severity::Advice,
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let remediation = self.finding.remediation.as_deref().map(printable);
        remediation.map(|r| Box::new(r) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label.clone().map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = _>>)
    }
}

/// The spec's text with the value of every `spec/secret-inline` finding replaced by `*`, so the
/// snippets (of that finding and of its neighbours) say where a credential is without printing
/// it: reports end up in CI logs. Byte lengths are kept, so every other span still fits.
fn mask_secrets(report: &Report, text: &str, context: &Context<'_>) -> String {
    let mut masked = text.to_owned();
    let secrets = report.findings.iter().filter(|f| f.code == SECRET_INLINE);
    let mut ranges: Vec<(usize, usize)> = secrets
        .filter_map(|f| f.location.as_ref())
        .map(|location| {
            context
                .spans
                .and_then(|spans| spans.byte_range(location))
                .unwrap_or_else(|| guess_range(text, location))
        })
        .collect();
    // A value under a credential-like key (`password: …`, written where the spec wants
    // `passwordEnv`) is masked too: the spec is invalid then, so no policy has flagged it, yet
    // the schema finding's snippet shows its line.
    let credential_values = context.spans.into_iter().flat_map(|spans| spans.values());
    // So is a URL with a password in it (`https://user:pw@host`), which a schema finding on
    // the URL would show too.
    let in_text = |offset: usize, length: usize| text.get(offset..offset.saturating_add(length));
    ranges.extend(
        credential_values
            .filter(|(pointer, span)| {
                span.length > 0
                    && (credential_key(pointer)
                        || in_text(span.offset, span.length).is_some_and(url_with_password))
            })
            .map(|(_, span)| (span.offset, span.length)),
    );
    for (offset, length) in ranges {
        let end = offset.saturating_add(length).min(text.len());
        let Some(value) = text.get(offset..end) else { continue };
        let stars: String = value
            .chars()
            .map(|c| if c == '\n' { "\n".to_owned() } else { "*".repeat(c.len_utf8()) })
            .collect();
        masked.replace_range(offset..end, &stars);
    }
    masked
}

/// Whether the member at `pointer` is named like a credential (`password`, `clientSecret`,
/// `token`, `serviceKey`…) rather than like the variable that holds one (`passwordEnv`).
fn credential_key(pointer: &str) -> bool {
    let key = pointer.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
    !key.ends_with("env")
        && ["password", "passwd", "secret", "token", "apikey", "api_key", "servicekey"]
            .iter()
            .any(|word| key.contains(word))
}

/// Whether `value` holds a URL whose authority carries a password (`scheme://user:pw@host`).
fn url_with_password(value: &str) -> bool {
    value.match_indices("://").any(|(at, _)| {
        let rest = &value[at + 3..];
        let authority = &rest[..rest.find(['/', '?', '#', '"', '\'', ' ']).unwrap_or(rest.len())];
        authority.rfind('@').is_some_and(|end| authority[..end].contains(':'))
    })
}

/// The code whose findings point at a credential in the spec.
const SECRET_INLINE: &str = "spec/secret-inline";

/// The byte range of the token at a line and column, for a location the span map does not know
/// (a finding placed by a user policy, for instance).
fn guess_range(text: &str, location: &Location) -> (usize, usize) {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(location.line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        .min(text.len());
    let line = text[line_start..].split('\n').next().unwrap_or_default();
    let start =
        line.char_indices().nth(location.column.saturating_sub(1)).map_or(line.len(), |(i, _)| i);
    let token = line[start..]
        .split(|c: char| c.is_whitespace() || c == ':' || c == '#')
        .next()
        .unwrap_or_default();
    (line_start + start, token.len())
}
