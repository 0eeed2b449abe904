//! `cabgate check`: compares the spec with the live Bytebase configuration (or a snapshot of it)
//! and reports every gap. The drift job of ARCHITECTURE.md: read-only, exit 1 on drift.
//!
//! The order is lint's, then live: the spec is loaded and checked against its schema (an invalid
//! spec stops here with its `spec/schema` report and exit 2), the live snapshot is read (exit 3
//! when Bytebase fails, naming the call and Bytebase's message) or a snapshot file is read and
//! validated (exit 2 when it is not a snapshot), then every policy is evaluated over both.
//!
//! A baseline (`--baseline`) lets a team adopt cabgate on a workspace with known gaps: findings
//! recorded in it (keyed by code, resource, spec path and message: never by line, so moving
//! lines in the spec does not invalidate it; the message names the principal, issue or rule, so a
//! second holder in a known project is new) still appear in the report, as waived, and do not
//! fail the run. In the JSON report they carry `"baseline": true`, and `summary.baselined` counts
//! them (they are also counted in `summary.waived`, so the contract's fields keep their meaning).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::lint::{ReportArgs, write_atomically};
use crate::cli::snapshot::read_live;
use crate::cli::{Failure, Outcome};
use crate::finding::{Exit, Finding, Report};
use crate::live;
use crate::policy;
use crate::report::{self, Context, Format};
use crate::spec::{self, LoadedSpec, SpecError};

/// Options of `cabgate check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bridge spec (YAML).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,

    /// Check this snapshot (from `cabgate snapshot`) instead of the live workspace; it is
    /// evaluated as of its `takenAt`, so a check of old evidence is reproducible.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,

    /// How findings are judged and reported (the same options as `lint`).
    #[command(flatten)]
    pub report: ReportArgs,

    /// Findings recorded in this file (by `--write-baseline`) do not fail the run.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Record today's findings in this file, to accept them as the baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Print the time each policy package took on stderr.
    #[arg(long)]
    pub profile: bool,
}

/// Runs `cabgate check`.
pub fn run(args: Args) -> Outcome {
    crate::cli::lint::refuse_to_overwrite(&args.spec, args.report.output.as_deref(), "--output")?;
    let baseline_out = args.write_baseline.as_deref();
    crate::cli::lint::refuse_to_overwrite(&args.spec, baseline_out, "--write-baseline")?;
    // Nor the evidence or the baseline it reads (re-recording the baseline in place is fine).
    let output = args.report.output.as_deref();
    for (input, name, out, flag) in [
        (&args.snapshot, "--snapshot", output, "--output"),
        (&args.snapshot, "--snapshot", baseline_out, "--write-baseline"),
        (&args.baseline, "--baseline", output, "--output"),
    ] {
        if let Some(input) = input.as_deref()
            && let Some(out) = out.filter(|out| crate::cli::lint::same_file(input, out))
        {
            return Err(Failure::invalid(miette::miette!(
                help = "write it to another file",
                "{flag} {} is the {name} file; writing there would overwrite it",
                out.display()
            )));
        }
    }
    let name = args.spec.display().to_string();
    let color = args.report.color();
    // Read the baseline first: a wrong path should not cost a full live read.
    let baseline = match &args.baseline {
        Some(path) => Some(Baseline::load(path).map_err(Failure::invalid)?),
        None => None,
    };
    let loaded = match spec::load(&args.spec) {
        Ok(loaded) => loaded,
        Err(error @ SpecError::Read { .. }) => return Err(Failure::invalid(error)),
        Err(SpecError::Invalid(invalid)) => {
            let report = Report::new(name, invalid.findings);
            let context =
                Context { source: invalid.source.as_deref(), spans: Some(&invalid.spans), color };
            emit(&report, &args, &context, &BTreeSet::new())?;
            return Ok(Exit::Invalid);
        }
    };
    let snapshot = match &args.snapshot {
        Some(path) => snapshot_from_file(&loaded, path)?,
        None => read_live(&loaded)?.0,
    };
    let now = snapshot.taken_at;
    let mut findings = evaluate(&loaded, &snapshot, now, &args)?;
    // NOTE: the snapshot is not needed past this point and the process ends with this command;
    // freeing hundreds of thousands of strings one by one costs milliseconds that nobody
    // waits for usefully, so it is left to the operating system.
    std::mem::forget(snapshot);
    if let Some(path) = &args.write_baseline {
        let text = Baseline::of(&name, &findings).to_json();
        write_atomically(path, text.as_bytes()).map_err(|e| {
            Failure::runtime(miette::miette!("cannot write the baseline {}: {e}", path.display()))
        })?;
    }
    let accepted = match (&baseline, &args.baseline) {
        (Some(baseline), Some(path)) => {
            let accepted = baseline.apply(&mut findings);
            let count = findings.iter().filter(|f| accepted.contains(&BaselineKey::of(f))).count();
            if count > 0 {
                eprintln!("{count} finding(s) accepted by the baseline {}", path.display());
            }
            accepted
        }
        _ => BTreeSet::new(),
    };
    let report = Report::new(name, findings);
    let context = Context { source: Some(&loaded.source), spans: Some(&loaded.spans), color };
    emit(&report, &args, &context, &accepted)?;
    Ok(Exit::for_report(&report, args.report.fail_on.into()))
}

/// Evaluates every policy over the spec and the live document; `--profile` goes to stderr.
fn evaluate(
    loaded: &LoadedSpec,
    live: &live::Snapshot,
    now: chrono::DateTime<chrono::Utc>,
    args: &Args,
) -> Result<Vec<Finding>, Failure> {
    let options = policy::Options { user_dirs: args.report.policies.clone(), now };
    // As in `lint`: a policy that cannot be read, compiled or evaluated makes the `--policy`
    // input (or the build) unusable, which is exit 2, not a remote failure.
    let evaluation = policy::evaluate(loaded, Some(live), &options).map_err(Failure::invalid)?;
    if args.profile {
        let total: std::time::Duration = evaluation.profile.iter().map(|(_, t)| *t).sum();
        let mut lines = String::from("policy evaluation time:\n");
        for (package, took) in &evaluation.profile {
            lines.push_str(&format!("  {:>9.3} ms  {package}\n", took.as_secs_f64() * 1e3));
        }
        lines.push_str(&format!("  {:>9.3} ms  total\n", total.as_secs_f64() * 1e3));
        eprint!("{lines}");
    }
    Ok(evaluation.findings)
}

/// The snapshot file `path`, vetted for `loaded`: refused (exit 2) when it did not read SKIPPED
/// issues the spec asks about, with a warning when it is of another Bytebase, and without the
/// issues outside the spec's lookback.
fn snapshot_from_file(loaded: &LoadedSpec, path: &Path) -> Result<live::Snapshot, Failure> {
    let mut snapshot = read_snapshot_file(path)?;

    // A snapshot of another workspace is still checked (it may be a copy made for a review),
    // but the findings would describe that workspace, so say it.
    let url = crate::bytebase::client::without_credentials(&loaded.spec.bytebase.url);
    if snapshot.source.trim_end_matches('/') != url {
        tracing::warn!(
            snapshot = %path.display(),
            source = %snapshot.source,
            spec_url = %url,
            "the snapshot was read from another Bytebase than the spec's bytebase.url"
        );
    }

    // The issues before `skippedSince` were never read: with a longer lookback than the
    // snapshot's, bypasses in between would go unreported without a word.
    let cutoff = policy::index::lookback_cutoff(&loaded.document, snapshot.taken_at);
    if let Some(since) = snapshot.skipped_since
        && cutoff < since
    {
        return Err(Failure::invalid(miette::miette!(
            help = "take a new snapshot with this spec, or shorten its lookback",
            "the snapshot {} holds the SKIPPED issues created since {}, but the spec's \
             alerts.skippedApproval.lookback reaches back to {}",
            path.display(),
            since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )));
    }

    // Likewise the issues of a project the snapshot's spec did not govern.
    if snapshot.skipped_since.is_some() {
        let governs =
            live::governed_matcher(&loaded.spec.bytebase.projects).map_err(Failure::invalid)?;
        let unread = snapshot.projects.iter().find(|p| {
            p.governed == Some(false)
                && governs.is_match(p.name.strip_prefix("projects/").unwrap_or(&p.name))
        });
        if let Some(project) = unread {
            return Err(Failure::invalid(miette::miette!(
                help = "take a new snapshot with this spec",
                "the spec governs {}, but the snapshot {} was taken with a spec that did not, \
                 so it holds none of its SKIPPED issues",
                project.name,
                path.display(),
            )));
        }
    }

    // Issues older than the spec's lookback concern no policy: drop them here, where the
    // snapshot is ours, rather than have the policy input copy it without them.
    snapshot.skipped_issues.retain(|issue| policy::index::in_window(issue, cutoff));
    Ok(snapshot)
}

/// Reads a snapshot file: JSON, valid against `schemas/snapshot.schema.json`, into the typed
/// snapshot (evaluated as of its `takenAt`). Anything else is exit 2 naming the file and the
/// place.
fn read_snapshot_file(path: &Path) -> Result<live::Snapshot, Failure> {
    let shown = path.display();
    // A snapshot of a 5,000-project workspace is about 35 MB; 256 MiB leaves room for any real one.
    let text = crate::cli::read_capped(path, 256 << 20)
        .map_err(|e| Failure::invalid(miette::miette!("cannot read the snapshot {shown}: {e}")))?;
    live::parse_snapshot(&text).map_err(|error| match error {
        live::SnapshotFileError::NotJson { line, column, message } => {
            Failure::invalid(miette::miette!(
                "the snapshot {shown} is not JSON: line {line}, column {column}: {message}"
            ))
        }
        live::SnapshotFileError::Invalid { errors } => {
            let list: Vec<String> =
                errors.iter().take(live::MAX_ERRORS).map(|e| format!("  {e}")).collect();
            Failure::invalid(miette::miette!(
                "the snapshot {shown} does not match schemas/snapshot.schema.json:\n{}",
                list.join("\n")
            ))
        }
    })
}

/// Renders the report to stdout or, atomically, to `--output`; in JSON, marks the findings the
/// baseline accepted.
fn emit(
    report: &Report,
    args: &Args,
    context: &Context<'_>,
    accepted: &BTreeSet<BaselineKey>,
) -> Result<(), Failure> {
    let format = args.report.format;
    let text = if format == Format::Json && !accepted.is_empty() {
        json_with_baseline(report, accepted)
    } else {
        report::render(report, format, context)
    };
    args.report.write(&text)
}

/// The JSON report with `"baseline": true` on accepted findings and `summary.baselined`: added
/// keys only, so readers of the contract shape are unaffected.
fn json_with_baseline(report: &Report, accepted: &BTreeSet<BaselineKey>) -> String {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    let mut count = 0usize;
    if let Some(findings) = value.get_mut("findings").and_then(|f| f.as_array_mut()) {
        for (finding, rendered) in report.findings.iter().zip(findings) {
            if finding.waived && accepted.contains(&BaselineKey::of(finding)) {
                rendered["baseline"] = true.into();
                count += 1;
            }
        }
    }
    value["summary"]["baselined"] = count.into();
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// Findings accepted as they are: `{version, spec, findings: [{code, resource, path, message}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Format version, 1.
    pub version: u32,
    /// The spec it was written for (informational).
    #[serde(default)]
    pub spec: String,
    /// The accepted findings, sorted.
    pub findings: BTreeSet<BaselineKey>,
}

/// What identifies a finding across runs: never its line, which moves when the spec is edited.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineKey {
    /// The finding code.
    pub code: String,
    /// The resource, `""` when the finding names none.
    #[serde(default)]
    pub resource: String,
    /// The JSON Pointer into the spec, `""` when the finding has no place.
    #[serde(default)]
    pub path: String,
    /// The finding's sentence: what tells apart two findings of one code on one resource (two
    /// principals holding the permission in one project, two empty approval flows). Required, so
    /// a baseline recorded without it is refused rather than accepting every such finding.
    pub message: String,
}

impl BaselineKey {
    fn of(finding: &Finding) -> Self {
        BaselineKey {
            code: finding.code.clone(),
            resource: finding.resource.clone().unwrap_or_default(),
            path: finding.location.as_ref().map(|l| l.path.clone()).unwrap_or_default(),
            message: finding.message.clone(),
        }
    }
}

/// A baseline file could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BaselineError {
    /// Missing or unreadable.
    #[error("cannot read the baseline {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a baseline (or one from before findings were keyed by their message).
    #[error("the baseline {} is invalid at line {line}, column {column}: {reason}", path.display())]
    #[diagnostic(help("record it again with `cabgate check SPEC --write-baseline FILE`"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Baseline {
    /// The baseline of today's unwaived findings.
    pub fn of(spec: &str, findings: &[Finding]) -> Self {
        Baseline {
            version: 1,
            spec: spec.to_owned(),
            findings: findings.iter().filter(|f| !f.waived).map(BaselineKey::of).collect(),
        }
    }

    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = crate::cli::read_capped(path, 256 << 20)
            .map_err(|source| BaselineError::Read { path: path.to_owned(), source })?;
        let baseline: Baseline =
            serde_json::from_str(&text).map_err(|e| BaselineError::Invalid {
                path: path.to_owned(),
                line: e.line(),
                column: e.column(),
                reason: e.to_string(),
            })?;
        if baseline.version != 1 {
            return Err(BaselineError::Invalid {
                path: path.to_owned(),
                line: 1,
                column: 1,
                reason: format!("version {} is not supported (1 is)", baseline.version),
            });
        }
        Ok(baseline)
    }

    /// The file's text: pretty JSON, sorted, with a final newline (diffs cleanly in git).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Waives the unwaived findings the baseline holds; returns the keys it applied.
    pub fn apply(&self, findings: &mut [Finding]) -> BTreeSet<BaselineKey> {
        let mut applied = BTreeSet::new();
        for finding in findings.iter_mut().filter(|f| !f.waived) {
            let key = BaselineKey::of(finding);
            if self.findings.contains(&key) {
                finding.waived = true;
                applied.insert(key);
            }
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Location, Severity};

    fn finding(code: &str, resource: &str, path: &str, line: usize) -> Finding {
        let mut f = Finding::new(code, Severity::Error, "m");
        f.resource = Some(resource.to_owned());
        f.location = Some(Location { path: path.to_owned(), line, column: 3 });
        f.remediation = Some("fix it".to_owned());
        f
    }

    #[test]
    fn baseline_matches_by_code_resource_and_path_never_line() {
        let today = vec![finding("lockdown/all-users", "projects/a", "/lockdown/allow", 30)];
        let baseline = Baseline::of("s.yaml", &today);
        let text = baseline.to_json();
        assert!(!text.contains("30"), "{text}");

        // The spec was edited: the same finding moved to another line, a new one appeared.
        let mut later = vec![
            finding("lockdown/all-users", "projects/a", "/lockdown/allow", 41),
            finding("lockdown/all-users", "projects/b", "/lockdown/allow", 41),
        ];
        let accepted = baseline.apply(&mut later);
        assert_eq!(accepted.len(), 1);
        let report = Report::new("s.yaml", later);
        assert_eq!(report.summary.errors, 1);
        assert_eq!(report.summary.waived, 1);

        let json: serde_json::Value =
            serde_json::from_str(&json_with_baseline(&report, &accepted)).unwrap();
        assert_eq!(json["summary"]["baselined"], 1);
        let marked: Vec<&serde_json::Value> =
            json["findings"].as_array().unwrap().iter().filter(|f| f["baseline"] == true).collect();
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0]["resource"], "projects/a");
        assert_eq!(marked[0]["remediation"], "fix it");
        assert_eq!(marked[0]["waived"], true);
    }

    #[test]
    fn a_bad_baseline_names_file_and_line() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("b.json");
        std::fs::write(&path, "{\n  \"version\": 1,\n  \"findings\": [ {\"code\": 3} ]\n}")
            .unwrap();
        let error = Baseline::load(&path).unwrap_err().to_string();
        assert!(error.contains("b.json") && error.contains("line 3"), "{error}");
        assert!(Baseline::load(&folder.path().join("missing.json")).is_err());
    }
}
