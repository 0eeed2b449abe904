//! Errors of the Bytebase client.
//!
//! Every error names the call (`GET /v1/projects`) and, when Bytebase answered, the body's
//! google.rpc.Status `code` and `message`: that is what an operator needs to act, and the HTTP
//! status alone is ambiguous (InvalidArgument 3 and FailedPrecondition 9 are both HTTP 400).
//! No error carries a token or a key.

use serde::Deserialize;

/// The google.rpc.Status codes Bytebase uses (bytebase-api.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 3, HTTP 400: the request is malformed.
    InvalidArgument,
    /// 5, HTTP 404 (also for unroutable paths).
    NotFound,
    /// 6, HTTP 409.
    AlreadyExists,
    /// 7, HTTP 403.
    PermissionDenied,
    /// 8, HTTP 429.
    ResourceExhausted,
    /// 9, HTTP 400 (not 412): the resource is not in a state that allows the call.
    FailedPrecondition,
    /// 10, HTTP 409.
    Aborted,
    /// 12, HTTP 501.
    Unimplemented,
    /// 13, HTTP 500.
    Internal,
    /// 14, HTTP 503.
    Unavailable,
    /// 16, HTTP 401.
    Unauthenticated,
    /// Any other code, kept as a number.
    Other(i64),
}

impl Code {
    /// The code for its number.
    pub fn from_number(n: i64) -> Self {
        match n {
            3 => Code::InvalidArgument,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            16 => Code::Unauthenticated,
            other => Code::Other(other),
        }
    }

    /// The code a body-less answer implies, from its HTTP status.
    pub fn from_http(status: u16) -> Self {
        match status {
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 | 405 => Code::NotFound,
            409 => Code::Aborted,
            429 => Code::ResourceExhausted,
            501 => Code::Unimplemented,
            503 => Code::Unavailable,
            _ => Code::Internal,
        }
    }

    /// The gRPC name, as people read it in logs.
    pub fn name(self) -> String {
        match self {
            Code::InvalidArgument => "InvalidArgument".into(),
            Code::NotFound => "NotFound".into(),
            Code::AlreadyExists => "AlreadyExists".into(),
            Code::PermissionDenied => "PermissionDenied".into(),
            Code::ResourceExhausted => "ResourceExhausted".into(),
            Code::FailedPrecondition => "FailedPrecondition".into(),
            Code::Aborted => "Aborted".into(),
            Code::Unimplemented => "Unimplemented".into(),
            Code::Internal => "Internal".into(),
            Code::Unavailable => "Unavailable".into(),
            Code::Unauthenticated => "Unauthenticated".into(),
            Code::Other(n) => format!("code {n}"),
        }
    }
}

/// The error body Bytebase sends (google.rpc.Status).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    /// The gRPC code number.
    #[serde(default)]
    pub code: i64,
    /// What went wrong, in Bytebase's words.
    #[serde(default)]
    pub message: String,
    /// Typed details, e.g. the permissions a PermissionDenied lacked.
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

/// Everything that can go wrong talking to Bytebase.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BytebaseError {
    /// Bytebase answered with an error body.
    #[error("{call}: Bytebase answered HTTP {status} ({}): {message}{}", code.name(), hint(*code))]
    Api {
        /// Method and endpoint, e.g. `GET /v1/projects`.
        call: String,
        /// The HTTP status.
        status: u16,
        /// The body's code (or one implied by the status when the body had none).
        code: Code,
        /// The body's message (or the start of a non-JSON body).
        message: String,
        /// The body's details, for callers that branch on them.
        details: Vec<serde_json::Value>,
    },
    /// No answer: connection refused or reset, DNS, TLS, or the per-request timeout.
    #[error("{call}: Bytebase at {base_url} could not be reached: {reason}")]
    Transport {
        /// Method and endpoint.
        call: String,
        /// The workspace URL the spec names (`bytebase.url`), so a wrong one is easy to spot.
        base_url: String,
        /// What the HTTP stack said (no URL query, no header).
        reason: String,
    },
    /// An answer that is not the JSON the API documents.
    #[error("{call}: Bytebase's answer could not be read: {reason}")]
    Decode {
        /// Method and endpoint.
        call: String,
        /// What did not parse.
        reason: String,
    },
    /// The variable that should hold the service key is unset or empty.
    #[error("the environment variable {var} (bytebase.serviceKeyEnv) holds no service key")]
    MissingKey {
        /// The variable's name.
        var: String,
    },
    /// The spec's `bytebase.url` is not a usable base URL.
    #[error("bytebase.url {url:?} is not a usable URL: {reason}")]
    BadUrl {
        /// The URL as written.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A list call handed back the same page token twice, which would loop forever.
    #[error("{call}: Bytebase returned the page token {token:?} twice; stopping to avoid a loop")]
    PageLoop {
        /// Method and endpoint.
        call: String,
        /// The repeated token.
        token: String,
    },
}

fn hint(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => " (check bytebase.serviceAccount and the service key)",
        Code::PermissionDenied => " (the service account lacks a permission)",
        _ => "",
    }
}

impl BytebaseError {
    /// The body code of an API error.
    pub fn code(&self) -> Option<Code> {
        match self {
            BytebaseError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a NotFound answer (missing resource, or a rollout that does not exist yet).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(Code::NotFound)
    }

    /// True when the server may succeed on a later attempt: 5xx, 429 and transport failures.
    pub fn is_transient(&self) -> bool {
        match self {
            BytebaseError::Api { status, .. } => *status >= 500 || *status == 429,
            BytebaseError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// The client's result type.
pub type Result<T, E = BytebaseError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_names_call_code_and_message() {
        let error = BytebaseError::Api {
            call: "GET /v1/settings/WORKSPACE_APPROVAL".into(),
            status: 400,
            code: Code::from_number(9),
            message: "approval template is required".into(),
            details: vec![],
        };
        let text = error.to_string();
        assert!(text.contains("GET /v1/settings/WORKSPACE_APPROVAL"), "{text}");
        assert!(text.contains("FailedPrecondition"), "{text}");
        assert!(text.contains("approval template is required"), "{text}");
        assert_eq!(error.code(), Some(Code::FailedPrecondition));
        assert!(!error.is_transient());
    }

    #[test]
    fn codes_round_trip_and_http_fallbacks() {
        assert_eq!(Code::from_number(3), Code::InvalidArgument);
        assert_eq!(Code::from_number(42), Code::Other(42));
        assert_eq!(Code::from_http(404), Code::NotFound);
        assert_eq!(Code::from_http(502), Code::Internal);
    }
}
