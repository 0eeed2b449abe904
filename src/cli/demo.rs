//! `cabgate demo`: lint, check and a full CHG cycle against the built-in emulators, explained
//! step by step (the narration lives in [`crate::demo`]). Exit 0 when every step happened as
//! expected, 3 naming the step when one did not: the demo doubles as an end-to-end smoke test.

use std::io::IsTerminal;

use crate::cli::{Failure, Outcome, print_stdout};
use crate::demo::{self, DemoError};
use crate::finding::Exit;

/// Options of `cabgate demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// After the narration, keep the emulators up (until Ctrl-C) and print their URLs, a
    /// `cabgate check` command and curl examples to try.
    #[arg(long)]
    pub keep_running: bool,
}

/// Runs `cabgate demo`.
pub fn run(args: Args) -> Outcome {
    let runtime = crate::cli::runtime()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> Outcome {
    let color = std::io::stdout().is_terminal();
    let mut emit = |text: &str| {
        print_stdout(text).map_err(|e| DemoError { step: "output".into(), what: e.to_string() })
    };
    let demo = demo::run(demo::Options { color }, &mut emit).await.map_err(Failure::runtime)?;
    if !args.keep_running {
        return Ok(Exit::Ok);
    }
    let dir = demo::spec_dir();
    let path = dir.join("demo.yaml");
    std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &demo.spec_text)).map_err(
        |e| Failure::runtime(miette::miette!("cannot write the demo spec {}: {e}", path.display())),
    )?;
    let text = demo::keep_running_text(&demo, &path, color);
    let printed = print_stdout(&text);
    if printed.is_ok() {
        crate::cli::shutdown_signal().await;
    }
    // Best effort: the folder holds only the spec this run wrote.
    let _ = std::fs::remove_dir_all(&dir);
    drop(demo);
    printed.map_err(|e| Failure::runtime(miette::miette!("cannot write to stdout: {e}")))?;
    Ok(Exit::Ok)
}
