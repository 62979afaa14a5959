//! HTTP plumbing shared by the REST and WebSocket handlers: errors as problem+json,
//! authentication with the components' tokens, and the Origin allowlist.

use arcana_core::auth::{AuthUser, Permission, authenticate_token, bearer_token, require};
use arcana_core::error::ApiError;
use arcana_core::http::ApiRequest;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// An [`ApiError`] as an axum response.
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl From<arcana_core::db::DbError> for HttpError {
    fn from(e: arcana_core::db::DbError) -> Self {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = crate::access::request_id();
        let body =
            serde_json::to_string(&self.0.to_problem(request_id.as_deref())).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in &self.0.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(*name, v);
            }
        }
        resp
    }
}

/// Authenticates a token and requires the `terminal` permission.
pub async fn authorize(state: &AppState, token: &str) -> Result<AuthUser, HttpError> {
    let db = state.store.blocking_db().await?;
    let user = authenticate_token(&db, &state.settings, token)?;
    crate::access::set_user(user.id());
    // A shell is not for scripts: personal access tokens are refused here.
    user.check_need(arcana_core::auth::access_tokens::Need::Session)?;
    require(&user, Permission::Terminal)?;
    Ok(user)
}

/// The bearer token of a request's headers.
pub fn header_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let req = ApiRequest::new("GET", "/").header("authorization", value);
    bearer_token(&req).map(str::to_string)
}

/// Authenticates a REST request by its `Authorization` header.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, HttpError> {
    let token = header_token(headers).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "Send an access token: Authorization: Bearer <token>.",
        )
    })?;
    authorize(state, &token).await
}

/// Checks a Prometheus scraper (see [`arcana_core::auth::authorize_scrape`]).
pub async fn authorize_scrape(state: &AppState, headers: &HeaderMap) -> Result<(), HttpError> {
    let db = state.store.blocking_db().await?;
    let token = header_token(headers);
    if let Some(admin) =
        arcana_core::auth::authorize_scrape(&db, &state.settings, token.as_deref())?
    {
        crate::access::set_user(admin.id());
    }
    Ok(())
}

/// Browsers always send `Origin` on WebSocket handshakes; it must be on the list.
/// Clients without one (scripts) are not browsers and cannot be hijacked cross-site.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), HttpError> {
    match headers.get("origin").and_then(|o| o.to_str().ok()) {
        None => Ok(()),
        Some(origin) if state.config.allowed_origins.iter().any(|a| a == origin) => Ok(()),
        Some(_) => Err(HttpError(ApiError::forbidden(
            "origin_not_allowed",
            "This page's origin may not open terminals.",
        ))),
    }
}
