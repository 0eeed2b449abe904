//! Integration tests: sim_bytebase.
