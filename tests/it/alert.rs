//! Integration tests: alert.
