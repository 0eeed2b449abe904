//! Alerts on issues that bypassed approval (Bytebase approval status `SKIPPED`).
//!
//! An alert is written to the durable outbox in [`crate::store`] before any sink is called, and is
//! retried until every sink of the spec has taken it, so a crash or a sink that is down loses none.
