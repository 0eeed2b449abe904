//! `cabgate snapshot`: the live Bytebase configuration as one normalized JSON document (evidence).
//!
//! Also home of what `check` shares with it: reading the live snapshot with a progress line on
//! stderr, and mapping a failed read to exit 3 with the call and Bytebase's message.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::bytebase::{Client, ClientConfig, Stats};
use crate::cli::lint::write_atomically;
use crate::cli::{Failure, Outcome, print_stdout};
use crate::finding::Exit;
use crate::live::{self, ReadOptions, Snapshot};
use crate::spec::{LoadedSpec, SpecError};

/// Options of `cabgate snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bridge spec (its `bytebase` section says what to read).
    pub spec: PathBuf,
    /// Write the snapshot here (atomically: a temporary file, then a rename); default stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `cabgate snapshot`.
pub fn run(args: Args) -> Outcome {
    crate::cli::lint::refuse_to_overwrite(&args.spec, args.output.as_deref(), "--output")?;
    let spec = load_spec(&args.spec)?;
    let (snapshot, _) = read_live(&spec)?;
    let text = snapshot.to_pretty_json();
    match &args.output {
        Some(path) => write_atomically(path, text.as_bytes()).map_err(|e| {
            Failure::runtime(miette::miette!("cannot write the snapshot {}: {e}", path.display()))
        })?,
        None => print_stdout(&text)
            .map_err(|e| Failure::runtime(miette::miette!("cannot write to stdout: {e}")))?,
    }
    Ok(Exit::Ok)
}

/// Loads the spec; an unreadable or schema-invalid spec is exit 2, its findings rendered.
pub(crate) fn load_spec(path: &Path) -> Result<LoadedSpec, Failure> {
    crate::spec::load(path).map_err(|error| match error {
        SpecError::Invalid(invalid) => {
            let mut text = format!("{}", SpecError::Invalid(invalid.clone()));
            for finding in &invalid.findings {
                let place = finding
                    .location
                    .as_ref()
                    .map(|l| format!("{}:{}:{}: ", invalid.path.display(), l.line, l.column))
                    .unwrap_or_default();
                text.push_str(&format!("\n  {place}{}", finding.message));
            }
            Failure::invalid(miette::miette!("{text}"))
        }
        other => Failure::invalid(other),
    })
}

/// Reads the live snapshot the spec describes, with a progress line on a terminal.
///
/// The key comes from the variable `bytebase.serviceKeyEnv` names. A failed call is exit 3 and
/// its message names the call and Bytebase's own message.
pub(crate) fn read_live(spec: &LoadedSpec) -> Result<(Snapshot, Stats), Failure> {
    let config = ClientConfig::from_spec(&spec.spec.bytebase).map_err(Failure::runtime)?;
    let client = Client::new(config).map_err(Failure::invalid)?;
    let runtime = crate::cli::runtime()?;
    let snapshot = runtime.block_on(async {
        let progress = Progress::start(client.clone());
        let result = live::read(&client, &spec.spec, &ReadOptions::default()).await;
        progress.stop().await;
        result
    });
    let stats = client.stats();
    tracing::info!(
        requests = stats.requests,
        retries = stats.retries,
        logins = stats.logins,
        "read the live Bytebase configuration"
    );
    snapshot.map(|s| (s, stats)).map_err(Failure::runtime)
}

/// A one-line progress indicator on stderr: only on a terminal, and only once the read has taken
/// longer than a moment, so pipes, CI logs and quick reads stay clean.
struct Progress {
    done: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How long a read runs before the progress line appears.
const PROGRESS_DELAY: Duration = Duration::from_millis(800);

impl Progress {
    fn start(client: Client) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, task: None };
        }
        let flag = done.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(PROGRESS_DELAY).await;
            let mut shown = None;
            while !flag.load(Ordering::Relaxed) {
                let requests = client.stats().requests;
                if shown != Some(requests) {
                    eprint!("\rreading Bytebase… {requests} requests");
                    shown = Some(requests);
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            if shown.is_some() {
                eprint!("\r\x1b[2K");
            }
        });
        Progress { done, task: Some(task) }
    }

    async fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}
