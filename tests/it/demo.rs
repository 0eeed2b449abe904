//! Integration tests: demo.
