//! Error bodies as grpc-gateway writes them: a `google.rpc.Status` (`{"code":N,"message":…}`)
//! with the HTTP status of its code. Clients must branch on the body `code`, since
//! FailedPrecondition and InvalidArgument are both HTTP 400.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// gRPC status codes the emulator returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 3, HTTP 400.
    InvalidArgument = 3,
    /// 5, HTTP 404.
    NotFound = 5,
    /// 6, HTTP 409.
    AlreadyExists = 6,
    /// 7, HTTP 403.
    PermissionDenied = 7,
    /// 8, HTTP 429.
    ResourceExhausted = 8,
    /// 9, HTTP 400 (not 412).
    FailedPrecondition = 9,
    /// 12, HTTP 501.
    Unimplemented = 12,
    /// 13, HTTP 500.
    Internal = 13,
    /// 16, HTTP 401.
    Unauthenticated = 16,
}

/// An error response of the Bytebase emulator.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The gRPC code in the body.
    pub code: Code,
    /// The HTTP status; normally derived from `code`, except for unroutable paths.
    pub status: StatusCode,
    /// The message.
    pub message: String,
    /// `details`, omitted when empty.
    pub details: Vec<Value>,
}

/// What handlers return.
pub type ApiResult<T = Value> = Result<T, ApiError>;

impl ApiError {
    /// An error with the HTTP status of its code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let status = match code {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        };
        ApiError { code, status, message: message.into(), details: Vec::new() }
    }

    /// InvalidArgument (3).
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidArgument, message)
    }

    /// NotFound (5).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(Code::NotFound, message)
    }

    /// FailedPrecondition (9).
    pub fn precondition(message: impl Into<String>) -> Self {
        ApiError::new(Code::FailedPrecondition, message)
    }

    /// PermissionDenied (7) for a business rule (no permission detail).
    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::new(Code::PermissionDenied, message)
    }

    /// PermissionDenied (7) for a missing IAM permission, with the detail Bytebase attaches.
    pub fn missing_permission(method: &str, permission: &str) -> Self {
        let mut error = ApiError::new(
            Code::PermissionDenied,
            format!("permission denied: user does not have permission {permission:?}"),
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/bytebase.v1.PermissionDeniedDetail",
            "method": method,
            "requiredPermissions": [permission],
        }));
        error
    }

    /// Unauthenticated (16).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(Code::Unauthenticated, message)
    }

    /// Internal (13).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(Code::Internal, message)
    }

    /// An unroutable path or verb: body code 5, HTTP status 404 or 405 kept as grpc-gateway does.
    pub fn unroutable(status: StatusCode) -> Self {
        let message = if status == StatusCode::METHOD_NOT_ALLOWED {
            "Method Not Allowed"
        } else {
            "Not Found"
        };
        ApiError { status, ..ApiError::new(Code::NotFound, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code as i32, "message": self.message });
        if !self.details.is_empty() {
            body["details"] = Value::Array(self.details);
        }
        (self.status, Json(body)).into_response()
    }
}
