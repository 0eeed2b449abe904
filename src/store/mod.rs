//! The runner's durable state: the alert outbox and ledger, the ServiceNow watermark and an
//! append-only journal of every action. SQLite is embedded and the default.
