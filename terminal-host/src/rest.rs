//! REST endpoints (same tokens as the components):
//! - `GET  /api/arcana/terminal/sessions` — the caller's sessions, newest first;
//!   admins may pass `?all=true`. Cursor-paginated (`limit`, `cursor`).
//! - `GET  /api/arcana/terminal/sessions/{id}/history` — commands in order, paginated.
//! - `POST /api/arcana/terminal/sessions/{id}/close` — stops the shell, marks it closed.
//! - `GET  /api/arcana/terminal/sessions/{id}/recording` — asciicast v2 download.
//! - `POST /api/arcana/terminal/tickets` — a single-use, 30-second WebSocket ticket.
//! - `GET  /api/arcana/terminal/health` — no auth.
//!
//! Another user's session id answers 404, exactly like one that does not exist.

use std::collections::HashMap;
use std::time::Duration;

use arcana_core::auth::AuthUser;
use arcana_core::auth::permissions::Role;
use arcana_core::error::ApiError;
use arcana_core::http::ApiRequest;
use arcana_core::pagination::PageRequest;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::http::{HttpError, caller};
use crate::store::TerminalSession;

/// How long a WebSocket ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

fn page_request(raw_query: &HashMap<String, String>) -> Result<PageRequest, HttpError> {
    let query = raw_query
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('&', "%26").replace('=', "%3D")))
        .collect::<Vec<_>>()
        .join("&");
    Ok(PageRequest::from_request(&ApiRequest::new(
        "GET",
        &format!("/?{query}"),
    ))?)
}

/// The caller's session (or any session for an admin); 404 otherwise.
async fn own_session(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<TerminalSession, HttpError> {
    let id = arcana_core::validate::uuid_param(id, "session")?;
    match state.store.get_session(&id).await? {
        Some(row) if row.user_id == user.id() || user.user.role == Role::Admin => Ok(row),
        _ => Err(ApiError::not_found("session").into()),
    }
}

/// `GET /api/arcana/terminal/sessions`
pub async fn list_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let user = caller(&state, &headers).await?;
    let page = page_request(&query)?;
    let all = query.get("all").is_some_and(|v| v == "true");
    if all && user.user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "admin_required",
            "Only admins may list everyone's sessions.",
        )
        .into());
    }
    let filter = (!all).then(|| user.id().to_string());
    Ok(Json(state.store.list_sessions(filter.as_deref(), &page).await?).into_response())
}

/// `GET /api/arcana/terminal/sessions/{id}/history`
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let user = caller(&state, &headers).await?;
    let session = own_session(&state, &user, &id).await?;
    let page = page_request(&query)?;
    Ok(Json(state.store.list_history(&session.id, &page).await?).into_response())
}

/// `POST /api/arcana/terminal/sessions/{id}/close`
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let user = caller(&state, &headers).await?;
    let session = own_session(&state, &user, &id).await?;
    if let Some(live) = state.registry.get(&session.id) {
        live.close("closed_by_user").await;
    } else if let Some(owner) = state
        .store
        .other_owner(&session.id, &state.identity)
        .await?
    {
        return Err(crate::ws::on_other_host(&owner).into());
    }
    let row = state
        .store
        .get_session(&session.id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    Ok(Json(row).into_response())
}

/// `GET /api/arcana/terminal/sessions/{id}/recording`
pub async fn recording(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let user = caller(&state, &headers).await?;
    let session = own_session(&state, &user, &id).await?;
    if session.user_id != user.id() {
        // Recordings contain everything typed and shown: owners only, admins included.
        return Err(ApiError::not_found("session").into());
    }
    let body = state.store.read_recording(&session.id).await?;
    if body.is_empty() {
        return Err(ApiError::not_found("recording").into());
    }
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-asciicast"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.cast\"", session.id)) {
        resp.headers_mut().insert("content-disposition", v);
    }
    Ok(resp)
}

/// `POST /api/arcana/terminal/tickets`
pub async fn ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let user = caller(&state, &headers).await?;
    let ticket = state.store.issue_ticket(user.id(), TICKET_TTL).await?;
    Ok((
        StatusCode::CREATED,
        Json(arcana_core::terminal::TerminalTicket {
            ticket,
            expires_in: TICKET_TTL.as_secs(),
        }),
    )
        .into_response())
}

/// `GET /api/arcana/terminal/health`
pub async fn health(State(state): State<AppState>) -> Response {
    let ok = state.store.ping().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(arcana_core::terminal::TerminalHealth {
            status: if ok { "ok" } else { "degraded" }.into(),
            version: arcana_core::VERSION.into(),
            database: arcana_core::terminal::TerminalDatabase { ok },
            live_sessions: state.registry.len(),
        }),
    )
        .into_response()
}

/// `GET /metrics` (Prometheus text), for the metrics token or an admin.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = crate::http::authorize_scrape(&state, &headers).await {
        return e.into_response();
    }
    let mut resp = state.metrics.render(state.registry.len()).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
