//! The bridge spec: loading with spans, schema validation, and the typed model.
//!
//! Loading happens in two phases: the YAML becomes a JSON value plus a map from JSON Pointer to
//! line and column ([`yaml`]), the JSON Schema checks it ([`schema`]; each error becomes a
//! `spec/schema` finding at its node), and only then is the typed [`Spec`] built. Code downstream
//! accepts only the typed spec. Every problem is collected before giving up, so one run of
//! `cabgate lint` shows them all.

pub mod model;
pub mod normalize;
pub mod schema;
pub mod span;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use model::Spec;
pub use normalize::{DurationError, default_workflow, parse_duration, window_start};
pub use span::{NodeSpan, SpanMap};

use crate::finding::{Finding, Location, Severity};

/// A spec that passed its schema, with everything needed to point back into its file.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file as given on the command line (reports print it as is).
    pub path: PathBuf,
    /// The file's text, for diagnostics with snippets.
    pub source: String,
    /// The typed spec, as written (`workflow.transitions` is `None` when the spec declares none;
    /// [`default_workflow`] then applies).
    pub spec: Spec,
    /// The spec as JSON with defaults filled in (the default workflow included): what policies see
    /// as `input.spec`.
    pub document: serde_json::Value,
    /// Where each node of the document is in the file.
    pub spans: SpanMap,
}

/// A spec that cannot be used: every `spec/schema` finding, and what is needed to show them.
#[derive(Debug, Clone)]
pub struct InvalidSpec {
    /// The file as given.
    pub path: PathBuf,
    /// The file's text when it is UTF-8 (for snippets).
    pub source: Option<String>,
    /// The places found before the problems stopped the load.
    pub spans: SpanMap,
    /// One `spec/schema` finding per problem.
    pub findings: Vec<Finding>,
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SpecError {
    /// The file could not be read (missing, a folder, no permission).
    #[error("cannot read the spec {}", path.display())]
    #[diagnostic(code(spec::read), help("check the path given on the command line"))]
    Read {
        /// The file as given.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid spec; the findings say why.
    #[error("the spec {} is invalid ({} problem(s))", .0.path.display(), .0.findings.len())]
    #[diagnostic(code(spec::invalid))]
    Invalid(Box<InvalidSpec>),
}

/// The largest spec cabgate reads. A real spec is a few kilobytes; the limit keeps a wrong path
/// (a log file, `/dev/zero`) from eating memory and minutes before it is refused.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Reads and loads the spec at `path`.
pub fn load(path: &Path) -> Result<LoadedSpec, SpecError> {
    let bytes =
        read_limited(path).map_err(|source| SpecError::Read { path: path.to_owned(), source })?;
    load_bytes(path, &bytes)
}

/// Reads at most [`MAX_SPEC_BYTES`]; a longer file is an error, not a truncated spec.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;

    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a directory"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it is larger than {} KiB, the most a spec may be", MAX_SPEC_BYTES / 1024),
        ));
    }
    Ok(bytes)
}

/// Loads a spec from its bytes; `path` is only used to name it.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<LoadedSpec, SpecError> {
    let invalid = |source: Option<String>, spans: SpanMap, findings: Vec<Finding>| {
        SpecError::Invalid(Box::new(InvalidSpec { path: path.to_owned(), source, spans, findings }))
    };
    let text = match std::str::from_utf8(bytes) {
        // A byte-order mark is not part of the spec; positions count from after it.
        Ok(text) => text.strip_prefix('\u{feff}').unwrap_or(text),
        Err(error) => {
            let finding = not_utf8(bytes, error.valid_up_to());
            return Err(invalid(None, SpanMap::default(), vec![finding]));
        }
    };
    let parsed = yaml::parse(text);
    let mut findings: Vec<Finding> = parsed.problems.iter().map(problem_finding).collect();
    let spans = parsed.spans;
    let value = match parsed.value {
        Some(value @ serde_json::Value::Object(_)) => value,
        Some(serde_json::Value::Null) | None if findings.is_empty() => {
            findings.push(at(
                "",
                1,
                1,
                "the spec is empty",
                "start from the example in the docs: `version: 1`, `name`, `bytebase`, …",
            ));
            return Err(invalid(Some(text.to_owned()), spans, findings));
        }
        Some(other) if findings.is_empty() => {
            let place =
                spans.locate("").unwrap_or(Location { path: String::new(), line: 1, column: 1 });
            findings.push(at(
                "",
                place.line,
                place.column,
                &format!("the spec must be a mapping of keys to values, not {}", kind(&other)),
                "write the spec as `key: value` lines, starting with `version: 1`",
            ));
            return Err(invalid(Some(text.to_owned()), spans, findings));
        }
        _ => return Err(invalid(Some(text.to_owned()), spans, findings)),
    };
    // A YAML problem (an alias, a bad tag, `1e400`) leaves null at its node; the schema's
    // complaint about that null's value would only repeat it (one about its key, such as an
    // unknown key, still stands).
    let nulled: Vec<&str> = parsed
        .problems
        .iter()
        .map(|p| p.pointer.as_str())
        .filter(|pointer| value.pointer(pointer).is_some_and(serde_json::Value::is_null))
        .collect();
    findings.extend(schema::validate(&value, &spans).into_iter().filter(|finding| {
        finding.location.as_ref().is_none_or(|l| {
            let at_key = spans
                .key_span(&l.path)
                .is_some_and(|key| (key.line, key.column) == (l.line, l.column));
            at_key || !nulled.contains(&l.path.as_str())
        })
    }));
    if !findings.is_empty() {
        return Err(invalid(Some(text.to_owned()), spans, findings));
    }
    let spec: Spec = match serde_json::from_value(value) {
        Ok(spec) => spec,
        Err(error) => {
            // The schema and the model agree (a test proves it on every fixture); if they ever
            // do not, the user still gets a finding rather than a panic.
            let message = format!("the spec passed the schema but not the model: {error}");
            findings.push(at("", 1, 1, &message, "report this as a cabgate bug"));
            return Err(invalid(Some(text.to_owned()), spans, findings));
        }
    };
    for (pointer, duration) in normalize::durations(&spec) {
        let problem = match parse_duration(duration) {
            Err(error) => Some((error.to_string(), "use a smaller number or a larger unit")),
            Ok(parsed) => too_short(&pointer, duration, parsed),
        };
        if let Some((message, help)) = problem {
            let place =
                spans.locate(&pointer).unwrap_or(Location { path: pointer, line: 1, column: 1 });
            findings.push(at(&place.path, place.line, place.column, &message, help));
        }
    }
    // Project patterns are globs: one that does not compile would fail `check` later, as if
    // Bytebase had.
    for (i, pattern) in spec.bytebase.projects.iter().enumerate() {
        if let Err(error) = crate::live::governed_matcher(std::slice::from_ref(pattern)) {
            let pointer = format!("/bytebase/projects/{i}");
            let place =
                spans.locate(&pointer).unwrap_or(Location { path: pointer, line: 1, column: 1 });
            let help = "write a project id, or a glob such as `ledger-*`";
            findings.push(at(&place.path, place.line, place.column, &error.to_string(), help));
        }
    }
    // URLs match the schema's pattern; one that still does not parse (a port over 65535, an
    // unclosed IPv6 bracket) would fail later without a line.
    let mut urls = vec![("/bytebase/url".to_owned(), spec.bytebase.url.as_str())];
    if let Some(servicenow) = &spec.servicenow {
        urls.push(("/servicenow/instance".to_owned(), &servicenow.instance));
    }
    for (i, sink) in spec.alerts.skipped_approval.sinks.iter().enumerate() {
        if let model::Sink::Webhook(webhook) = sink {
            urls.push((format!("/alerts/skippedApproval/sinks/{i}/webhook/url"), &webhook.url));
        }
    }
    for (pointer, url) in urls {
        let reason = match url::Url::parse(url) {
            Err(error) => error.to_string(),
            Ok(url) if url.host().is_none() => "it names no host".to_owned(),
            Ok(_) => continue,
        };
        let field = pointer[1..].replace('/', ".");
        let message = format!("`{field}` is not a usable URL: {reason}");
        let place =
            spans.locate(&pointer).unwrap_or(Location { path: pointer, line: 1, column: 1 });
        let help = "write it as `https://host[:port][/path]`";
        findings.push(at(&place.path, place.line, place.column, &message, help));
    }
    let document = match normalize::document(&spec) {
        Ok(document) if findings.is_empty() => document,
        Ok(_) => return Err(invalid(Some(text.to_owned()), spans, findings)),
        Err(error) => {
            findings.push(at("", 1, 1, &format!("the spec cannot be serialized: {error}"), ""));
            return Err(invalid(Some(text.to_owned()), spans, findings));
        }
    };
    Ok(LoadedSpec { path: path.to_owned(), source: text.to_owned(), spec, document, spans })
}

/// A duration that parses but cannot work: a poll interval under a second makes the runner hammer
/// both APIs in a loop, and a zero lookback silently turns the bypass alerts off.
fn too_short(
    pointer: &str,
    text: &str,
    duration: std::time::Duration,
) -> Option<(String, &'static str)> {
    match pointer {
        "/workflow/pollInterval" if duration < std::time::Duration::from_secs(1) => Some((
            format!("`workflow.pollInterval` is `{text}`; it must be at least 1s"),
            "use `30s` or more: each pass reads both APIs, and a webhook wakes the runner early",
        )),
        "/alerts/skippedApproval/lookback" if duration.is_zero() => Some((
            format!("`alerts.skippedApproval.lookback` is `{text}`, so no bypass is ever seen"),
            "use the time since the last check at least, e.g. `7d`",
        )),
        _ => None,
    }
}

fn problem_finding(problem: &yaml::Problem) -> Finding {
    at(&problem.pointer, problem.span.line, problem.span.column, &problem.message, &problem.help)
}

fn at(pointer: &str, line: usize, column: usize, message: &str, help: &str) -> Finding {
    let mut finding = Finding::new(schema::CODE, Severity::Error, message);
    finding.location = Some(Location { path: pointer.to_owned(), line, column });
    finding.remediation = (!help.is_empty()).then(|| help.to_owned());
    finding
}

/// The first byte that is not UTF-8, by line and column (columns count the valid characters).
fn not_utf8(bytes: &[u8], valid_up_to: usize) -> Finding {
    // The prefix is valid UTF-8 by definition of `valid_up_to`.
    let prefix = String::from_utf8_lossy(&bytes[..valid_up_to]);
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let byte = bytes.get(valid_up_to).copied().unwrap_or_default();
    at(
        "",
        line,
        column,
        &format!("the spec is not UTF-8 text (byte 0x{byte:02x} at line {line}, column {column})"),
        "save the file as UTF-8",
    )
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::String(_) => "a text",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        _ => "empty",
    }
}
