//! The ServiceNow Table API emulator.
