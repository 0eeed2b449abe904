//! `cabgate apply`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate apply`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate apply`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate apply` is not built yet")))
}
