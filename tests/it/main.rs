//! cabgate's integration tests: one binary, one module per area (each extra test binary costs a
//! link on a 2-core machine). Clients are tested over real HTTP against the emulators.
mod alert;
mod apply;
mod breaker;
mod check;
mod demo;
mod lint;
mod policy;
mod report;
mod servicenow;
mod sim_bytebase;
mod sim_servicenow;
mod spec;
mod store;
