//! `GET /ws/shell/{session_id}`: the terminal WebSocket.
//!
//! # Protocol (xterm.js-friendly)
//! - Client → server: **binary** frames are keystrokes, written to the PTY as is.
//!   **Text** frames are JSON: `{"type":"input","data":"ls\r"}` (keystrokes as text),
//!   `{"type":"resize","cols":120,"rows":40}`, `{"type":"ping"}`.
//! - Server → client: **binary** frames are terminal output, in order. **Text** frames
//!   are JSON: `{"type":"hello","session_id":…,"reattached":bool,"cols":…,"rows":…}`
//!   first; `{"type":"pong"}`; `{"type":"exit","code":0|null,"reason":"exited"}` when
//!   the session ends (the socket then closes); `{"type":"detached"}` when another
//!   connection took the session over; `{"type":"error","code":…,"message":…}`.
//! - On reattach, the scrollback (the last `--scrollback-bytes` of output) arrives as
//!   the first binary frame after `hello`.
//! - Authentication: `Authorization: Bearer <token>`, or for browsers `?ticket=` (from
//!   `POST /api/arcana/terminal/tickets`, single use, 30 s) or `?token=`. Optional
//!   `?cols=&rows=` size a new session.
//! - The server pings every 30 s and drops a connection silent for 90 s.
//!
//! Everything that decides whether the caller may have this session (token, user,
//! permission, Origin, the session's owner, the per-user limit) is checked before the
//! upgrade, so a refused connection gets an HTTP status and starts nothing. Writing the
//! session's row and starting the shell happen after the upgrade, so the client's
//! handshake never waits for them; if they fail, the client gets an `error` message.

use std::sync::atomic::Ordering;

use arcana_core::error::ApiError;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::http::{HttpError, authorize, check_origin, header_token};
use crate::session::{SessionHandle, StartError};

/// Query parameters of the WebSocket URL.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    ticket: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
}

/// What the upgrade will connect to.
enum Target {
    Live(SessionHandle),
    New {
        id: String,
        user_id: String,
        cols: u16,
        rows: u16,
    },
}

/// Handles the upgrade: every check happens before the socket opens.
pub async fn shell(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    match prepare(&state, &session_id, &query, &headers).await {
        Err(e) => {
            state.metrics.ws_refused.fetch_add(1, Ordering::Relaxed);
            e.into_response()
        }
        Ok(target) => {
            state.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
            let max = state.config.max_message_bytes;
            // Keystrokes are small: a 4 KiB read buffer (tungstenite's default is
            // 128 KiB per socket) keeps idle sessions cheap, and frames are written as
            // they are sent, the session flushing after each batch anyway.
            ws.max_message_size(max)
                .max_frame_size(max)
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0)
                .on_upgrade(move |socket| connect(state, socket, target))
        }
    }
}

async fn prepare(
    state: &AppState,
    session_id: &str,
    query: &WsQuery,
    headers: &HeaderMap,
) -> Result<Target, HttpError> {
    check_origin(state, headers)?;
    let user = if let Some(ticket) = &query.ticket {
        let user_id = state.store.redeem_ticket(ticket).await?.ok_or_else(|| {
            ApiError::unauthorized("invalid_ticket", "The ticket is unknown, used or expired.")
        })?;
        let db = state.store.blocking_db().await?;
        let user = arcana_core::users::find_by_id(&db, &user_id)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_ticket", "The ticket's user is gone.")
            })?;
        let user = arcana_core::auth::AuthUser { user, grant: None };
        crate::access::set_user(user.id());
        arcana_core::auth::require(&user, arcana_core::auth::Permission::Terminal)?;
        user
    } else {
        let token = header_token(headers)
            .or_else(|| query.token.clone())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_token",
                    "Authenticate with a bearer token, ?token= or ?ticket=.",
                )
            })?;
        authorize(state, &token).await?
    };
    let id = arcana_core::validate::uuid_param(session_id, "session")?;

    if let Some(live) = state.registry.get(&id) {
        if live.user_id != user.id() {
            return Err(ApiError::not_found("session").into());
        }
        return Ok(Target::Live(live));
    }
    if let Some(row) = state.store.get_session(&id).await? {
        if row.user_id != user.id() {
            return Err(ApiError::not_found("session").into());
        }
        if let Some(owner) = state.store.other_owner(&id, &state.identity).await? {
            return Err(on_other_host(&owner).into());
        }
        return Err(ApiError::conflict(
            "session_closed",
            "This session has ended; open a new one.",
        )
        .into());
    }
    let cols = query.cols.unwrap_or(80);
    let rows = query.rows.unwrap_or(24);
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        return Err(
            ApiError::bad_request("invalid_size", "cols and rows must be 1 to 1000.").into(),
        );
    }
    let live = state.registry.count_for(user.id());
    if live >= state.config.max_sessions_per_user {
        return Err(too_many(live).into());
    }
    Ok(Target::New {
        id,
        user_id: user.id().to_string(),
        cols,
        rows,
    })
}

fn too_many(n: usize) -> ApiError {
    ApiError::new(
        429,
        "too_many_sessions",
        format!("You have {n} live sessions; close one first."),
    )
}

/// After the upgrade: starts the session when it is new, then hands it the socket.
async fn connect(state: AppState, mut socket: WebSocket, target: Target) {
    let (handle, reattached) = match target {
        Target::Live(handle) => (handle, true),
        Target::New {
            id,
            user_id,
            cols,
            rows,
        } => {
            let started = state
                .registry
                .start(&state.session_env(), &id, &user_id, cols, rows)
                .await;
            match started {
                Ok(handle) => (handle, false),
                Err(e) => {
                    let (code, message) = match &e {
                        StartError::TooMany(n) => ("too_many_sessions", too_many(*n).detail),
                        StartError::Exists => ("session_exists", "Session id in use.".into()),
                        StartError::Spawn(e) => {
                            ("spawn_failed", format!("Cannot start the shell: {e}"))
                        }
                        StartError::Database(_) => (
                            "database_unavailable",
                            "The database is busy or unreachable; retry shortly.".into(),
                        ),
                    };
                    tracing::warn!(session_id = %id, error = %e, "terminal session did not start");
                    let error =
                        serde_json::json!({"type": "error", "code": code, "message": message});
                    let _ = socket.send(Message::Text(error.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            }
        }
    };
    if let Err(mut socket) = handle.attach(socket, reattached).await {
        // The session ended between the check and the attach.
        let exit = serde_json::json!({"type": "exit", "code": null, "reason": "exited"});
        let _ = socket.send(Message::Text(exit.to_string().into())).await;
        let _ = socket.send(Message::Close(None)).await;
    }
}

/// 409 for a live session whose shell runs on another terminal-host: the balancer should
/// have sent the request there (by session id); the answer names the host, and no second
/// shell is started for the id.
pub fn on_other_host(owner: &crate::hosts::Owner) -> ApiError {
    ApiError::conflict(
        "session_on_other_host",
        format!(
            "This session runs on terminal-host {} ({}); connect there.",
            owner.host_id, owner.advertise_url
        ),
    )
    .with_header("x-arcana-terminal-host", owner.host_id.clone())
    .with_header("content-location", owner.advertise_url.clone())
}
