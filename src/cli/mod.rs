//! The command line: one file per command, each with its own `Args` and `run`.
//!
//! Commands return an [`Exit`] on success or a [`Failure`] that carries its exit code, so the
//! exit codes of ARCHITECTURE.md are decided where the cause is known and printed in one place.
//! Reports go to stdout, logs and errors to stderr.

pub mod apply;
pub mod check;
pub mod demo;
pub mod lint;
pub mod policy;
pub mod sim;
pub mod snapshot;

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};

use crate::finding::Exit;

/// Puts database changes made in Bytebase under a ServiceNow change advisory board.
#[derive(Debug, Parser)]
#[command(name = "cabgate", version, about, long_about = None)]
pub struct Cli {
    /// Log verbosity (or set CABGATE_LOG to a tracing filter such as `cabgate=debug`).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a bridge spec offline: schema, workflow safety, waivers (pre-deploy CI lint).
    Lint(lint::Args),
    /// Compare the spec with the live Bytebase configuration, or a snapshot of it (drift job).
    Check(check::Args),
    /// Write the live Bytebase configuration as one normalized JSON document (evidence).
    Snapshot(snapshot::Args),
    /// Run the CHG workflow: open CHGs, wait for the CAB, approve and roll out, alert on bypasses.
    Apply(apply::Args),
    /// Serve the built-in Bytebase and ServiceNow emulators on loopback.
    Sim(sim::Args),
    /// Run lint, check and a full CHG cycle against the built-in emulators, explaining each step.
    Demo(demo::Args),
    /// Work with Rego policies.
    #[command(subcommand)]
    Policy(policy::Command),
}

/// A command that could not do its job, with the exit code that says why.
#[derive(Debug)]
pub struct Failure {
    /// 2 for a bad spec or command line, 3 for a remote API or other runtime failure.
    pub exit: Exit,
    /// What went wrong, rendered by miette on stderr.
    pub error: miette::Report,
}

impl Failure {
    /// The spec or the command line is invalid (exit 2).
    pub fn invalid(error: impl Into<miette::Report>) -> Self {
        Failure { exit: Exit::Invalid, error: error.into() }
    }

    /// A remote API, the disk or another part of the run failed (exit 3).
    pub fn runtime(error: impl Into<miette::Report>) -> Self {
        Failure { exit: Exit::Remote, error: error.into() }
    }
}

/// What every command returns.
pub type Outcome = Result<Exit, Failure>;

/// Parses the process's command line, runs the command and returns the process exit code.
pub fn main() -> i32 {
    main_from(std::env::args_os())
}

/// Like [`main`], with the command line given (the first item is the program name).
pub fn main_from<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_logging(&cli);
    let outcome = match cli.command {
        Command::Lint(args) => lint::run(args),
        Command::Check(args) => check::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Policy(command) => policy::run(command),
    };
    match outcome {
        Ok(exit) => exit as i32,
        Err(failure) => {
            eprintln!("{:?}", failure.error);
            failure.exit as i32
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;

    let filter = std::env::var("CABGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&cli.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests that call `main` twice) is harmless, so its error is ignored.
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Writes `text` to stdout; a reader that closed the pipe early (`| head`) is not an error.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;

    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The async runtime a command runs on. Two workers: the work is waiting on two HTTP APIs, not
/// computing, and the machines cabgate runs on are small.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(miette::miette!("cannot start the async runtime: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM: how a long-running command (the runner, the emulators, the
/// demo with `--keep-running`) is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a signal handler there is nothing to wait for but the other signal.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Reads a whole text file, refusing one larger than `limit` bytes: an input file given by
/// mistake (`/dev/zero`, a disk image) must end the run with a clear error, not eat the memory.
pub fn read_capped(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;

    let file = std::fs::File::open(path)?;
    let too_large = || {
        std::io::Error::other(format!(
            "it is larger than {} MiB, more than any file cabgate reads",
            limit >> 20
        ))
    };
    // A regular file says its size; a device or a pipe is read up to one byte past the limit.
    if file.metadata().is_ok_and(|m| m.is_file() && m.len() > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it starts with a byte order mark (BOM); save it as UTF-8 without one",
        ));
    }
    String::from_utf8(bytes).map_err(|error| {
        // Name the place of the first bad byte, as every other reading error does.
        let good = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text: line {line}, column {column} (byte offset {}) is not UTF-8",
                good.len()
            ),
        )
    })
}
