//! Errors of the ServiceNow client. Each names the call (method and table) and what the instance
//! said, decoded from its `{"error":{"message","detail"}}` envelope; none carries a credential.

/// What went wrong talking to ServiceNow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance answered with an error status (after retries, for retryable ones).
    #[error("ServiceNow {method} {table}: HTTP {status}: {message}{}", detail_suffix(detail))]
    Api {
        /// HTTP method.
        method: String,
        /// Table (or endpoint) called.
        table: String,
        /// HTTP status code.
        status: u16,
        /// `error.message` of the envelope, or the status text.
        message: String,
        /// `error.detail` of the envelope, when present.
        detail: Option<String>,
    },
    /// Credentials were refused (401 after a token refresh, or a failed token grant).
    #[error("ServiceNow {method} {table}: authentication failed: {message}")]
    Unauthorized {
        /// HTTP method.
        method: String,
        /// Table (or endpoint) called.
        table: String,
        /// What the instance said (never the credential).
        message: String,
    },
    /// The instance kept answering 429 until the retry budget ran out.
    #[error("ServiceNow {method} {table}: rate limited, gave up after {attempts} attempts")]
    RateLimited {
        /// HTTP method.
        method: String,
        /// Table called.
        table: String,
        /// Attempts made.
        attempts: u32,
    },
    /// No usable response (connection refused, reset, timeout) after the retry budget.
    #[error("ServiceNow {method} {table}: no response after {attempts} attempts")]
    Transport {
        /// HTTP method.
        method: String,
        /// Table called.
        table: String,
        /// Attempts made.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A write whose response was lost: it may or may not have been applied. Callers look the
    /// record up again instead of repeating the write blindly.
    #[error("ServiceNow {method} {table}: the write may have been applied, its response was lost")]
    Unconfirmed {
        /// HTTP method.
        method: String,
        /// Table called.
        table: String,
        /// Why the response is missing (transport error or a 5xx).
        reason: String,
    },
    /// A response that is not the documented shape.
    #[error("ServiceNow {method} {table}: unexpected response: {reason}")]
    Decode {
        /// HTTP method.
        method: String,
        /// Table called.
        table: String,
        /// What did not fit.
        reason: String,
    },
    /// A field asked for in `sysparm_fields` is absent: an ACL hides it (a configuration error).
    #[error(
        "ServiceNow {table}: field `{field}` is missing from the response; an ACL probably hides \
         it from the integration user"
    )]
    MissingField {
        /// Table read.
        table: String,
        /// The missing field.
        field: String,
    },
    /// A state change answered 200 but the record kept its state: a business rule or the state
    /// model refused it (reference pitfall 5).
    #[error(
        "ServiceNow change_request {number}: state did not change to {wanted} (still {actual}); \
         a business rule or the state model refused it"
    )]
    StateNotChanged {
        /// CHG number.
        number: String,
        /// The state asked for (wire value and name).
        wanted: String,
        /// The state read back.
        actual: String,
    },
    /// A field write answered 200 but reading back shows another value.
    #[error("ServiceNow {table} {sys_id}: field `{field}` was not written (reads back {actual:?})")]
    FieldNotWritten {
        /// Table written.
        table: String,
        /// Record written.
        sys_id: String,
        /// The field.
        field: String,
        /// Its value after the write.
        actual: String,
    },
    /// A PATCH answered 200 but some fields read back differently (or not at all): unknown
    /// names, read-only fields, an ACL or a business rule dropped them.
    #[error(
        "ServiceNow {table} {sys_id}: the instance did not store {} as sent (unknown field, \
         read-only, ACL or business rule)",
        fields.join(", ")
    )]
    FieldsNotStored {
        /// Table written.
        table: String,
        /// Record written.
        sys_id: String,
        /// The fields that did not take.
        fields: Vec<String>,
    },
    /// More than one record carries a correlation id that must be unique.
    #[error("ServiceNow {table}: {count} records carry correlation_id {correlation_id}")]
    DuplicateCorrelation {
        /// Table queried.
        table: String,
        /// The correlation id.
        correlation_id: String,
        /// How many records carry it.
        count: usize,
    },
    /// More than one record carries a name that must designate one (a group name).
    #[error("ServiceNow {table}: {count} records are named {name:?}; it must designate one")]
    AmbiguousName {
        /// Table queried.
        table: String,
        /// The name.
        name: String,
        /// How many records carry it.
        count: usize,
    },
    /// A value that would widen a query: an invalid correlation id.
    #[error("invalid correlation_id {value:?}: {reason}")]
    InvalidCorrelationId {
        /// The value (cut to 120 characters).
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A value that would widen a query: an invalid sys_id.
    #[error("invalid sys_id {value:?}: expected 32 hexadecimal digits")]
    InvalidSysId {
        /// The value.
        value: String,
    },
    /// A free-text query value that would end its term and start another, or match everything.
    #[error("invalid value {value:?} for query field `{field}`: {reason}")]
    InvalidQueryValue {
        /// The field.
        field: String,
        /// The value (cut to 120 characters).
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A query that would match everything because its list is empty.
    #[error("refusing a query with an empty {what}: it would match every record")]
    EmptyQuery {
        /// Which list was empty.
        what: &'static str,
    },
    /// A `Link: rel="next"` pointing to another host than the instance.
    #[error("ServiceNow {table}: next-page link leaves the instance ({link})")]
    ForeignLink {
        /// Table listed.
        table: String,
        /// The link, without its query.
        link: String,
    },
    /// The client configuration is unusable.
    #[error("ServiceNow client configuration: {0}")]
    Config(String),
    /// A credential's environment variable is not set (its name, never its value).
    #[error("environment variable {name} (ServiceNow {what}) is not set")]
    MissingEnv {
        /// Variable name.
        name: String,
        /// What it should hold.
        what: &'static str,
    },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => format!(" ({detail})"),
        _ => String::new(),
    }
}

impl Error {
    /// True for errors a later pass may cure by itself (rate limits, outages, lost responses),
    /// as opposed to configuration, validation and refusals that need a human.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Transport { .. } | Error::Unconfirmed { .. } => true,
            Error::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
