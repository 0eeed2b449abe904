//! `cabgate lint SPEC`: the pre-deploy check in CI. Offline: the spec's schema, then the built-in
//! and user policies over the spec alone (workflow safety, waivers, inline secrets…).
//!
//! Exit codes: 0 clean (warnings allowed unless `--fail-on warning`), 1 findings at or above the
//! threshold, 2 an invalid spec (any `spec/schema` finding), a missing file or policies that do
//! not parse, 3 a policy that fails while it runs or a report that cannot be written.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::{Failure, Outcome, print_stdout};
use crate::finding::{Exit, Report, Severity};
use crate::policy::{self, PolicyError};
use crate::report::{self, Context, Format};
use crate::spec::{self, SpecError};

/// Options of `cabgate lint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bridge spec (YAML).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,

    /// How findings are judged and reported.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// The options `lint` and `check` share: both evaluate policies and report findings alike.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// A folder of your own Rego policies, evaluated with the built-in ones (repeatable).
    #[arg(long = "policy", value_name = "DIR")]
    pub policies: Vec<PathBuf>,

    /// The lowest severity that fails the run (exit 1).
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,

    /// Write the report to this file (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl ReportArgs {
    /// Whether the human report may use colors: only on a terminal, never into a file.
    pub fn color(&self) -> bool {
        self.output.is_none() && std::io::stdout().is_terminal()
    }

    /// Writes a rendered report to stdout or, atomically, to `--output`.
    pub fn write(&self, text: &str) -> Result<(), Failure> {
        match &self.output {
            Some(path) => write_atomically(path, text.as_bytes()).map_err(|error| {
                Failure::runtime(miette::miette!(
                    "cannot write the report to {}: {error}",
                    path.display()
                ))
            }),
            None => print_stdout(text).map_err(|error| {
                Failure::runtime(miette::miette!("cannot write the report: {error}"))
            }),
        }
    }
}

/// Severities that can fail a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Only errors fail the run.
    Error,
    /// Warnings fail it too.
    Warning,
}

impl From<FailOn> for Severity {
    fn from(fail_on: FailOn) -> Severity {
        match fail_on {
            FailOn::Error => Severity::Error,
            FailOn::Warning => Severity::Warning,
        }
    }
}

/// Runs `cabgate lint`.
pub fn run(args: Args) -> Outcome {
    refuse_to_overwrite(&args.spec, args.report.output.as_deref(), "--output")?;
    let name = args.spec.display().to_string();
    let color = args.report.color();
    let loaded = match spec::load(&args.spec) {
        Ok(loaded) => loaded,
        Err(error @ SpecError::Read { .. }) => return Err(Failure::invalid(error)),
        Err(SpecError::Invalid(invalid)) => {
            tracing::info!(spec = %name, problems = invalid.findings.len(), "the spec is invalid");
            let report = Report::new(name, invalid.findings);
            let context =
                Context { source: invalid.source.as_deref(), spans: Some(&invalid.spans), color };
            emit(&report, &args, &context)?;
            return Ok(Exit::for_report(&report, args.report.fail_on.into()));
        }
    };
    let options =
        policy::Options { user_dirs: args.report.policies.clone(), now: chrono::Utc::now() };
    let findings = match policy::evaluate(&loaded, None, &options) {
        Ok(evaluation) => evaluation.findings,
        // A policy folder that cannot be read or Rego that does not parse is bad input on the
        // command line (`--policy`): exit 2.
        Err(error @ (PolicyError::Read { .. } | PolicyError::Parse { .. })) => {
            return Err(Failure::invalid(error));
        }
        // A policy that fails while it runs, or yields a malformed finding: exit 3.
        Err(error) => return Err(Failure::runtime(error)),
    };
    let report = Report::new(name, findings);
    let context = Context { source: Some(&loaded.source), spans: Some(&loaded.spans), color };
    emit(&report, &args, &context)?;
    Ok(Exit::for_report(&report, args.report.fail_on.into()))
}

/// Whether two paths name one existing file (through links, `./`, `..`).
/// Refuses (exit 2) an output file that is the spec itself: writing it would destroy the spec.
pub fn refuse_to_overwrite(spec: &Path, output: Option<&Path>, flag: &str) -> Result<(), Failure> {
    match output.filter(|out| same_file(spec, out)) {
        Some(output) => Err(Failure::invalid(miette::miette!(
            help = "write it to another file",
            "{flag} {} is the spec itself; writing there would overwrite it",
            output.display()
        ))),
        None => Ok(()),
    }
}

/// True when both paths name one existing file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Renders the report to stdout or, atomically, to `--output`.
fn emit(report: &Report, args: &Args, context: &Context<'_>) -> Result<(), Failure> {
    args.report.write(&report::render(report, args.report.format, context))
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`: a reader sees
/// the old report or the whole new one, never a part.
///
/// A path that is not a regular file (a named pipe, `/dev/stdout`, `/dev/fd/N` of a process
/// substitution) is written to directly: renaming over it would replace it and its reader would
/// get nothing. A symlink is followed, so the file it names is replaced, not the link.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            return std::fs::OpenOptions::new().write(true).open(path)?.write_all(bytes);
        }
        _ => {}
    }
    // A dangling link is replaced, as before.
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).ok(),
        _ => None,
    };
    let path = resolved.as_deref().unwrap_or(path);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let file_name = file_name.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the output path names no file")
    })?;
    // A run killed mid-write leaves its temporary file; the next run may have the same PID (a
    // container's), so a taken name is skipped, never reused or deleted.
    let mut n = 0u32;
    let (temp, mut file) = loop {
        let temp = dir.join(format!(".{file_name}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 999 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
