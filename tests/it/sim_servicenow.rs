//! Integration tests: sim_servicenow.
