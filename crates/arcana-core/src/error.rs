//! The API's one error type. Every failure a client can see has a status and a
//! stable machine-readable `code`; the body is RFC 9457 `application/problem+json`.
//! Internal errors are logged with detail and answered with a generic message, so a
//! database error never leaks schema or data to a client.

use serde::Serialize;

/// One invalid field in a request body (for 422 answers).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable code, e.g. `invalid_credentials`; clients branch on this, not on text.
    pub code: &'static str,
    /// Human-readable explanation.
    pub detail: String,
    /// Per-field problems, for 422.
    pub errors: Vec<FieldError>,
    /// Extra headers (`Retry-After`, `Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

/// The problem document as served (documented in OpenAPI).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the status.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// Explanation for this occurrence.
    pub detail: String,
    /// The request id, to find the matching log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Invalid fields, for 422.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// An error with a status, code and detail.
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// 400: the body is not valid JSON or not the expected shape.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(400, code, detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(401, code, detail).with_header("www-authenticate", "Bearer")
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(403, code, detail)
    }

    /// 404: no such object for this caller (also used for other users' objects).
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{what} not found"))
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(409, code, detail)
    }

    /// 422: well-formed but invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            errors,
            ..ApiError::new(422, "validation_failed", detail)
        }
    }

    /// 500 with a generic body; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(500, "internal_error", "An internal error occurred.")
    }

    /// The problem document for this error.
    pub fn to_problem(&self, request_id: Option<&str>) -> Problem {
        Problem {
            kind: format!("https://arcana.dev/problems/{}", self.code),
            title: status_title(self.status).to_string(),
            status: self.status,
            code: self.code.to_string(),
            detail: self.detail.clone(),
            request_id: request_id.map(str::to_string),
            errors: self.errors.clone(),
        }
    }
}

/// Reason phrase for the statuses the API uses.
pub fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
