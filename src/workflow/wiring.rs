//! Wiring of `cabgate apply`: the spec, the clients, the store and the runner put together.

use crate::cli::apply::Args;
use crate::cli::{Failure, Outcome};

/// Runs `cabgate apply` with its arguments.
pub async fn apply(_args: Args) -> Outcome {
    // TODO: connect the Bytebase and ServiceNow clients and the store once they land on main.
    Err(Failure::runtime(miette::miette!("`cabgate apply` is not wired to its clients yet")))
}
