//! `cabgate apply`: the sync runner. One pass with `--once` (cron), else a loop every
//! `workflow.pollInterval` until SIGTERM or SIGINT; `--dry-run` prints what a pass would do and
//! changes nothing anywhere; `--listen` serves the webhook wake-up, `/healthz` and `/metrics`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::cli::{Failure, Outcome, print_stdout};
use crate::finding::Exit;
use crate::workflow::runner::{PassReport, Planned};

/// Options of `cabgate apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bridge spec.
    pub spec: PathBuf,

    /// Run one pass and exit (for cron); exit 3 when an API failed.
    #[arg(long)]
    pub once: bool,

    /// Print the actions one pass would take, with the CHG payloads; write nothing to Bytebase,
    /// ServiceNow or the state store.
    #[arg(long)]
    pub dry_run: bool,

    /// Serve the webhook wake-up, /healthz and /metrics on this address (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Environment variable holding the webhook's shared secret (header `x-cabgate-secret` or
    /// `?secret=`); without it the webhook answers 403.
    #[arg(long, value_name = "VAR", default_value = "CABGATE_WEBHOOK_SECRET")]
    pub webhook_secret_env: String,

    /// Output format of the pass report and of `--dry-run`.
    #[arg(long, value_enum, default_value_t = ApplyFormat::Human)]
    pub format: ApplyFormat,
}

/// How `apply` prints what it did or would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    /// Lines for people.
    Human,
    /// One JSON document.
    Json,
}

/// Runs `cabgate apply`.
pub fn run(args: Args) -> Outcome {
    let runtime = crate::cli::runtime()?;
    runtime.block_on(crate::workflow::wiring::apply(args))
}

/// Renders the `--dry-run` plan.
pub fn render_plan(planned: &[Planned], format: ApplyFormat) -> String {
    match format {
        ApplyFormat::Json => {
            let doc = serde_json::json!({ "dryRun": true, "steps": planned });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        ApplyFormat::Human => {
            let mut out = String::new();
            if planned.is_empty() {
                out.push_str("dry run: nothing to do\n");
            }
            for p in planned {
                let s = &p.step;
                let _ = writeln!(out, "{}: {} -> {} ({})", s.issue, s.from, s.to, s.transition);
                for ((_, action), payload) in s.actions.iter().zip(&p.payloads) {
                    let kind = serde_json::to_value(action.kind).unwrap_or_default();
                    let kind = kind.as_str().unwrap_or_default();
                    let body = payload
                        .get("change_request")
                        .or_else(|| {
                            payload
                                .get("args")
                                .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
                        })
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "  would {kind}{body}");
                }
            }
            out
        }
    }
}

/// Renders the report of one pass.
pub fn render_report(report: &PassReport, format: ApplyFormat) -> String {
    match format {
        ApplyFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        ApplyFormat::Human => {
            let mut out = String::new();
            for s in &report.steps {
                let moved = if s.completed { "->" } else { "-/->" };
                let _ =
                    writeln!(out, "{}: {} {moved} {} ({})", s.issue, s.from, s.to, s.transition);
                for a in &s.actions {
                    let kind = serde_json::to_value(a.kind).unwrap_or_default();
                    let kind = kind.as_str().unwrap_or_default();
                    let _ = writeln!(out, "  {kind}: {} — {}", a.outcome, a.detail);
                }
            }
            let _ = writeln!(
                out,
                "{} governed issue(s), {} step(s), {} new SKIPPED alert(s), {} alert(s) waiting",
                report.issues,
                report.steps.len(),
                report.new_alerts,
                report.outbox
            );
            out
        }
    }
}

/// Prints to stdout (a closed pipe is fine) and maps the pass to its exit code.
pub fn finish(text: &str, failed: bool) -> Outcome {
    print_stdout(text)
        .map_err(|e| Failure::runtime(miette::miette!("cannot write to stdout: {e}")))?;
    Ok(if failed { Exit::Remote } else { Exit::Ok })
}

/// The shared secret of the webhook, from the environment (never from the spec or a flag).
pub fn webhook_secret(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.is_empty())
}
