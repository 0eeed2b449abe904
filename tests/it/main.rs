//! cabgate's integration tests: one binary, one module per area (each extra test binary costs a
//! link on a 2-core machine). Clients are tested over real HTTP against the emulators.
mod spec;
mod lint;
mod report;
mod policy;
mod sim_bytebase;
mod sim_servicenow;
mod check;
mod servicenow;
mod store;
mod alert;
mod apply;
mod demo;
