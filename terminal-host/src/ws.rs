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

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arcana_core::error::ApiError;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::AppState;
use crate::http::{HttpError, authorize, check_origin, header_token};
use crate::session::{Attached, ServerMsg, SessionHandle, StartError};

/// Query parameters of the WebSocket URL.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    ticket: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMsg {
    Input { data: String },
    Resize { cols: u16, rows: u16 },
    Ping,
}

const PING_EVERY: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(90);

/// Handles the upgrade: every check happens before a shell starts or the socket opens.
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
        Ok((session, reattached)) => {
            state.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
            let max = state.config.max_message_bytes;
            ws.max_message_size(max)
                .max_frame_size(max)
                .on_upgrade(move |socket| serve_socket(state, socket, session, reattached))
        }
    }
}

async fn prepare(
    state: &AppState,
    session_id: &str,
    query: &WsQuery,
    headers: &HeaderMap,
) -> Result<(SessionHandle, bool), HttpError> {
    check_origin(state, headers)?;
    let user = if let Some(ticket) = &query.ticket {
        let user_id = state.tickets.redeem(ticket).ok_or_else(|| {
            ApiError::unauthorized("invalid_ticket", "The ticket is unknown, used or expired.")
        })?;
        let db = state.store.blocking_db().await?;
        let user = arcana_core::users::find_by_id(&db, &user_id)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| {
                ApiError::unauthorized("invalid_ticket", "The ticket's user is gone.")
            })?;
        let user = arcana_core::auth::AuthUser { user };
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
        return Ok((live, true));
    }
    if let Some(row) = state.store.get_session(&id).await? {
        if row.user_id != user.id() {
            return Err(ApiError::not_found("session").into());
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
    match state
        .registry
        .start(&state.session_env(), &id, user.id(), cols, rows)
        .await
    {
        Ok(handle) => Ok((handle, false)),
        Err(StartError::TooMany(n)) => Err(ApiError::new(
            429,
            "too_many_sessions",
            format!("You have {n} live sessions; close one first."),
        )
        .into()),
        Err(StartError::Exists) => {
            Err(ApiError::conflict("session_exists", "Session id in use.").into())
        }
        Err(StartError::Spawn(e)) => {
            Err(ApiError::new(503, "spawn_failed", format!("Cannot start the shell: {e}")).into())
        }
        Err(StartError::Database(e)) => Err(e.into()),
    }
}

async fn serve_socket(
    state: AppState,
    socket: WebSocket,
    session: SessionHandle,
    reattached: bool,
) {
    let Some(Attached {
        attach_id,
        mut messages,
        input,
        cols,
        rows,
    }) = session.attach().await
    else {
        return; // the session ended between the check and the attach
    };
    let (mut sink, mut stream) = socket.split();
    let hello = serde_json::json!({
        "type": "hello", "session_id": session.id, "reattached": reattached, "cols": cols, "rows": rows,
    });
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        session.detach(attach_id).await;
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    // Keystrokes the PTY could not take yet; while set, the socket is not read (backpressure).
    let mut pending_input: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            msg = messages.recv() => match msg {
                Some(ServerMsg::Output(bytes)) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() { break; }
                }
                Some(ServerMsg::Exit { code, reason }) => {
                    let exit = serde_json::json!({"type": "exit", "code": code, "reason": reason});
                    let _ = sink.send(Message::Text(exit.to_string().into())).await;
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                Some(ServerMsg::Detached) => {
                    let _ = sink.send(Message::Text(r#"{"type":"detached"}"#.into())).await;
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                None => break,
            },
            permit = reserve(&input), if pending_input.is_some() => match permit {
                Ok(permit) => permit.send(pending_input.take().expect("guarded")),
                Err(_) => break,
            },
            incoming = stream.next(), if pending_input.is_none() => {
                last_heard = Instant::now();
                let bytes = match incoming {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<ClientMsg>(&t) {
                        Ok(ClientMsg::Input { data }) => data.into_bytes(),
                        Ok(ClientMsg::Resize { cols, rows }) => {
                            if (1..=1000).contains(&cols) && (1..=1000).contains(&rows) {
                                session.resize(cols, rows).await;
                            }
                            continue;
                        }
                        Ok(ClientMsg::Ping) => {
                            if sink.send(Message::Text(r#"{"type":"pong"}"#.into())).await.is_err() { break; }
                            continue;
                        }
                        Err(e) => {
                            let err = serde_json::json!({"type": "error", "code": "bad_message", "message": e.to_string()});
                            if sink.send(Message::Text(err.to_string().into())).await.is_err() { break; }
                            continue;
                        }
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                if bytes.is_empty() { continue; }
                state.metrics.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                session.touch();
                if let Err(mpsc::error::TrySendError::Full(bytes)) = input.try_send(bytes) {
                    pending_input = Some(bytes);
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT { break; }
                if sink.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
        }
    }
    session.detach(attach_id).await;
}

async fn reserve(
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<mpsc::Permit<'_, Vec<u8>>, mpsc::error::SendError<()>> {
    tx.reserve().await
}
