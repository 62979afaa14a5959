//! The shapes of terminal-host's REST API, shared so that the sidecar answers exactly
//! what the OpenAPI document (built here, with the components') says it does.

use serde::Serialize;
use utoipa::ToSchema;

/// A terminal session as the REST API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TerminalSession {
    pub id: String,
    pub user_id: String,
    /// `active` or `closed`.
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Why it ended: `exited`, `closed_by_user`, `idle_timeout`, `lifetime`,
    /// `detached_timeout`, `host_shutdown`, `host_restart`, `spawn_failed`.
    pub end_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub last_command: Option<String>,
    pub shell: String,
    pub cols: i64,
    pub rows: i64,
    pub commands_run: i64,
    pub recording_bytes: i64,
}

/// One command run in a session, as bash ran it (from shell integration).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TerminalCommand {
    pub id: String,
    pub session_id: String,
    pub seq: i64,
    pub command: String,
    pub exit_code: Option<i64>,
    /// The command's output, escape sequences removed, capped (see `output_truncated`).
    pub output: String,
    pub output_truncated: bool,
    pub timestamp: String,
    pub finished_at: Option<String>,
}

/// A single-use credential for opening a shell from a browser (`?ticket=`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TerminalTicket {
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// terminal-host's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TerminalHealth {
    /// `ok` or `degraded`.
    pub status: String,
    pub version: String,
    pub database: TerminalDatabase,
    pub live_sessions: usize,
}

/// Whether terminal-host's database answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TerminalDatabase {
    pub ok: bool,
}

/// `GET`: a shell over WebSocket.
pub const SHELL: &str = "/ws/shell/{session_id}";
/// `GET`: the caller's sessions.
pub const SESSIONS: &str = "/api/arcana/terminal/sessions";
/// `GET`: a session's commands.
pub const HISTORY: &str = "/api/arcana/terminal/sessions/{id}/history";
/// `POST`: close a session.
pub const CLOSE: &str = "/api/arcana/terminal/sessions/{id}/close";
/// `GET`: a session's recording.
pub const RECORDING: &str = "/api/arcana/terminal/sessions/{id}/recording";
/// `POST`: a WebSocket ticket.
pub const TICKETS: &str = "/api/arcana/terminal/tickets";
/// `GET`: health.
pub const HEALTH: &str = "/api/arcana/terminal/health";

/// Every route terminal-host serves (method, path): its router uses the same paths, and
/// a test checks the document has each.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", SHELL),
    ("GET", SESSIONS),
    ("GET", HISTORY),
    ("POST", CLOSE),
    ("GET", RECORDING),
    ("POST", TICKETS),
    ("GET", HEALTH),
];
