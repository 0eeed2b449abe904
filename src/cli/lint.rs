//! `cabgate lint`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate lint`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate lint`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate lint` is not built yet")))
}
