//! `cabgate check`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate check`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate check`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate check` is not built yet")))
}
