//! The CHG workflow engine: observe the two systems, decide (a pure function of the spec's state
//! machine and the observed facts) and act (idempotent calls, each behind a fresh precondition).
//!
//! The split keeps the part that must be right under any interleaving — which action, when —
//! free of I/O: [`facts`] and [`decide`] are plain functions over data that unit and property
//! tests drive directly, while observe and act are the only code that talks to Bytebase and
//! ServiceNow.

pub mod act;
pub mod adapt;
pub mod bench;
pub mod decide;
pub mod facts;
pub mod listen;
pub mod metrics;
pub mod observe;
pub mod port;
pub mod runner;
pub mod template;
pub mod wiring;

pub use decide::{Machine, Record, Step, decide};
pub use facts::{Facts, Governance, Observation};
