//! cabgate puts database changes made in Bytebase under a ServiceNow change advisory board (CAB).
//!
//! The modules follow the pipeline of `ARCHITECTURE.md`:
//!
//! - [`spec`] loads the bridge spec with a line and column on every node and validates it;
//! - [`policy`] evaluates the Rego policies (regorus) over `{spec, live}` into [`finding`]s;
//! - [`report`] renders findings for people and for CI;
//! - [`bytebase`] and [`servicenow`] are the HTTP clients, [`live`] assembles the snapshot of the
//!   live Bytebase configuration;
//! - [`workflow`] is the CHG state machine (observe, decide, act), with [`alert`] and [`store`];
//! - [`sim`] holds the emulators of both APIs that tests and `cabgate demo` run against;
//! - [`demo`] narrates cabgate's whole job against them (`cabgate demo`);
//! - [`cli`] has one file per command.

pub mod alert;
pub mod bytebase;
pub mod cli;
pub mod demo;
pub mod finding;
pub mod live;
pub mod policy;
pub mod report;
pub mod servicenow;
pub mod sim;
pub mod spec;
pub mod store;
pub mod workflow;
