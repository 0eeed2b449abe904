//! The ServiceNow Table API client and its typed models.
//!
//! Follows `shared/reference/servicenow-api.md`: calls are pinned to `/api/now/v2/table/…` (v2
//! answers an empty list where v1 answers 404), every list sets `sysparm_fields`, asks for stored
//! values and bare reference ids, pages by the `Link` header with a stable `ORDERBY`; every value
//! is a string on the wire and is parsed into enums that keep unknown variants; every id that goes
//! into a query is validated first, because ServiceNow ignores invalid query terms instead of
//! rejecting them; every state change is re-read, because a PATCH can answer 200 and change
//! nothing; and a CHG is created only after looking it up by its correlation id.
//!
//! - [`query`]: pure request building (ids, encoded queries, `Link` parsing, chunking);
//! - [`model`]: the typed records;
//! - [`retry`]: when to retry and how long to wait;
//! - [`auth`]: credentials and OAuth tokens;
//! - `client`: the transport; `change`: the calls on change requests and around them.

pub mod auth;
mod change;
mod client;
pub mod error;
pub mod model;
pub mod query;
pub mod retry;

pub use auth::{Credentials, Grant, Secret};
pub use change::ChangesSince;
pub use client::{Client, ClientOptions};
pub use error::Error;
pub use model::{
    Approval, Approver, ApproverState, ChangeRequest, CloseCode, Created, JournalEntry, State,
};
pub use query::{CorrelationId, EncodedQuery, SysId};
