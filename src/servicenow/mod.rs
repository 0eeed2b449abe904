//! The ServiceNow Table API client and its typed models.
//!
//! Follows `shared/reference/servicenow-api.md`: every value is a string on the wire and is parsed
//! into enums that keep unknown variants; every state change is re-read, because a PATCH can answer
//! 200 and change nothing.
