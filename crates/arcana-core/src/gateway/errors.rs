//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with
//! the statuses OpenAI clients act on:
//!
//! | Arcana | status | `type` / `code` |
//! | --- | --- | --- |
//! | invalid body or field | 400 | `invalid_request_error` / Arcana's code, `param` set |
//! | missing or bad token | 401 | `invalid_request_error` / `invalid_api_key` |
//! | token lacks the `llm` scope, permission missing | 403 | `permission_error` |
//! | unknown or forbidden model | 404 | `invalid_request_error` / `model_not_found` |
//! | monthly budget spent | 429 | `insufficient_quota` / `insufficient_quota` (as OpenAI answers an exhausted quota) |
//! | provider rate limit | 429 | `rate_limit_error` / `rate_limited` |
//! | provider failed, timed out | 502 / 504 | `api_error` |
//!
//! Every 4xx except a provider rate limit carries `x-should-retry: false`, which the
//! official clients honour instead of retrying (they retry 409 and 429 by default).

use serde::Serialize;

use crate::error::ApiError;
use crate::http::ApiResponse;

/// The error object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// The error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

/// The status, type and code an Arcana error is answered with on `/v1/*`.
pub fn classify(e: &ApiError) -> (u16, &'static str, &'static str) {
    match (e.status, e.code) {
        (_, "budget_exceeded") => (429, "insufficient_quota", "insufficient_quota"),
        (401, _) => (401, "invalid_request_error", "invalid_api_key"),
        (403, "model_not_allowed") | (409, "no_model_available") => {
            (404, "invalid_request_error", "model_not_found")
        }
        (403, code) => (403, "permission_error", code),
        (422, code) => (400, "invalid_request_error", code),
        (429, code) => (429, "rate_limit_error", code),
        (s, code) if s < 500 => (s, "invalid_request_error", code),
        (500, code) => (500, "server_error", code),
        (s, code) => (s, "api_error", code),
    }
}

/// The OpenAI-shaped answer for `e` (the dispatcher adds the request id).
pub fn response(e: &ApiError) -> ApiResponse {
    let (status, kind, code) = classify(e);
    let message = match e.errors.first() {
        Some(f) => format!("{}: {}", f.field, f.message),
        None => e.detail.clone(),
    };
    let body = OpenAiErrorBody {
        error: OpenAiError {
            message,
            kind: kind.into(),
            param: e.errors.first().map(|f| f.field.clone()),
            code: Some(code.into()),
        },
    };
    let mut resp = ApiResponse::json(status, &body);
    for (name, value) in &e.headers {
        resp.headers.push((name.to_string(), value.clone()));
    }
    if (400..500).contains(&status) && !(status == 429 && code == "rate_limited") {
        resp.headers.push(("x-should-retry".into(), "false".into()));
    }
    resp
}

/// The chunk that ends a stream which failed after output reached the client; the
/// official clients raise it as an API error.
pub fn stream_chunk(e: &ApiError) -> serde_json::Value {
    let (_, kind, code) = classify(e);
    serde_json::json!({"error": {"message": e.detail, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_models_get_the_statuses_clients_expect() {
        let budget = ApiError::new(402, "budget_exceeded", "spent");
        assert_eq!(
            classify(&budget),
            (429, "insufficient_quota", "insufficient_quota")
        );
        let r = response(&budget);
        assert_eq!(r.status, 429);
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "x-should-retry" && v == "false")
        );
        let model = ApiError::forbidden("model_not_allowed", "no");
        assert_eq!(classify(&model).0, 404);
        let limited = ApiError::new(429, "rate_limited", "slow down");
        assert!(
            !response(&limited)
                .headers
                .iter()
                .any(|(k, _)| k == "x-should-retry")
        );
    }
}
