//! Integration tests: servicenow.
