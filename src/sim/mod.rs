//! Emulators of the Bytebase v1 API and the ServiceNow Table API, served over real HTTP on loopback.
//!
//! Every test of the clients, of `check` and of `apply`, and `cabgate demo`, stands on these, so
//! they follow the references and Bytebase's source, never a guess. A seeded fault schedule makes a
//! failing run replay.

pub mod bytebase;
pub mod clock;
pub mod servicenow;
