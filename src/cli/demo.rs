//! `cabgate demo`.

use crate::cli::{Failure, Outcome};

/// Options of `cabgate demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `cabgate demo`.
pub fn run(_args: Args) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate demo` is not built yet")))
}
