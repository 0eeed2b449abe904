//! `cabgate policy …`: tools for the built-in and the user's own Rego.

use crate::cli::{Failure, Outcome};

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the `test_*` rules of `*_test.rego` files, like `opa test`.
    Test(TestArgs),
}

/// Options of `cabgate policy test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {}

/// Runs a policy subcommand.
pub fn run(_command: Command) -> Outcome {
    Err(Failure::runtime(miette::miette!("`cabgate policy test` is not built yet")))
}
