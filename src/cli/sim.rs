//! `cabgate sim`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate sim`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate sim` is not built yet")))
}
