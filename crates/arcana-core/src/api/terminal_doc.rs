//! terminal-host's endpoints in the OpenAPI document. terminal-host is a native
//! sidecar (WebAssembly cannot run a PTY), not a component; these functions exist only
//! to carry the annotations. Under `arcana up` and behind the documented ingress the
//! endpoints share the API's origin.
#![allow(dead_code)]

use crate::error::Problem;
use crate::pagination::Page;
use crate::terminal::{TerminalCommand, TerminalHealth, TerminalSession, TerminalTicket};

/// Opens (or reattaches to) a shell over WebSocket.
///
/// The client picks the session id (a UUID). Authenticate with `Authorization: Bearer`,
/// or from a browser with `?ticket=` (see `POST /api/arcana/terminal/tickets`) or
/// `?token=`; needs the `terminal` permission; a browser `Origin` must be allowed.
/// `?cols=&rows=` size a new session.
///
/// Protocol. Client → server: **binary** frames are keystrokes; **text** frames are JSON
/// `{"type":"input","data":"ls\r"}`, `{"type":"resize","cols":120,"rows":40}` or
/// `{"type":"ping"}`. Server → client: **binary** frames are output, in order; **text**
/// frames are JSON: `hello` first (`session_id`, `reattached`, `cols`, `rows`), `pong`,
/// `exit` (`code`, `reason`) before the socket closes, `detached` when another
/// connection took the session over, `error` (`code`, `message`). On reattach the
/// scrollback arrives as the first binary frame after `hello`.
#[utoipa::path(get, operation_id = "terminal_shell", path = "/ws/shell/{session_id}", tag = "terminal", security(("bearer" = [])),
    params(("session_id" = String, Path), ("ticket" = Option<String>, Query), ("token" = Option<String>, Query),
           ("cols" = Option<u16>, Query), ("rows" = Option<u16>, Query)),
    responses((status = 101, description = "Switching protocols: the shell's WebSocket"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The session has ended"),
              (status = 429, body = Problem, description = "Too many live sessions")))]
fn shell() {}

/// The caller's terminal sessions, newest first (admins: `?all=true`).
#[utoipa::path(get, operation_id = "terminal_sessions", path = "/api/arcana/terminal/sessions", tag = "terminal", security(("bearer" = [])),
    params(("all" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<TerminalSession>)))]
fn sessions() {}

/// The commands of a session, in order.
#[utoipa::path(get, operation_id = "terminal_history", path = "/api/arcana/terminal/sessions/{id}/history", tag = "terminal", security(("bearer" = [])),
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<TerminalCommand>), (status = 404, body = Problem)))]
fn history() {}

/// Stops a session's shell and marks it closed.
#[utoipa::path(post, operation_id = "terminal_close", path = "/api/arcana/terminal/sessions/{id}/close", tag = "terminal", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = TerminalSession), (status = 404, body = Problem)))]
fn close() {}

/// A session's recording (asciicast v2), for its owner.
#[utoipa::path(get, operation_id = "terminal_recording", path = "/api/arcana/terminal/sessions/{id}/recording", tag = "terminal", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "asciicast v2", content_type = "application/x-asciicast"),
              (status = 404, body = Problem)))]
fn recording() {}

/// A single-use ticket (30 s) for opening a shell from a browser.
#[utoipa::path(post, operation_id = "terminal_ticket", path = "/api/arcana/terminal/tickets", tag = "terminal", security(("bearer" = [])),
    responses((status = 201, body = TerminalTicket)))]
fn ticket() {}

/// terminal-host's health (no authentication).
#[utoipa::path(get, operation_id = "terminal_health", path = "/api/arcana/terminal/health", tag = "terminal",
    responses((status = 200, body = TerminalHealth), (status = 503, body = TerminalHealth)))]
fn health() {}
