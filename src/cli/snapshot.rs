//! `cabgate snapshot`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate snapshot`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate snapshot` is not built yet")))
}
