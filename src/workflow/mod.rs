//! The CHG workflow engine: observe the two systems, decide (a pure function of the spec's state
//! machine and the observed facts) and act (idempotent calls, each behind a fresh precondition).
