//! `GET /api/arcana/status` (the dashboard's status panel) and `GET /metrics`
//! (Prometheus), both served by the `system` component from the aggregate tables.

use serde::Serialize;
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::bearer_token;
use crate::auth::permissions::Role;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::stats::exposition::{CONTENT_TYPE, Exposition, Kind};
use crate::stats::{self, Figures, Scope, UserFigures, Windows};

/// Whether the database answered, and its round-trip time.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseStatus {
    pub reachable: bool,
    /// Round trip of the query that read the figures (`SELECT 1` for `/metrics`), in ms.
    pub rtt_ms: f64,
}

/// The status report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub version: String,
    /// When the application started (RFC 3339), if the platform says (variable `started_at`).
    pub started_at: Option<String>,
    pub uptime_secs: Option<i64>,
    pub generated_at: String,
    pub database: DatabaseStatus,
    /// `user`: the caller's own figures; `all`: everyone's (admins).
    pub scope: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// Admins only (scope `all`): one line per user, by name, at most 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserFigures>>,
    /// Added by `arcana up`, which supervises terminal-host (`null` when it runs
    /// without one); absent under Spin, where the platform runs the sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal_host: Option<TerminalHostState>,
}

/// The supervised terminal-host, as `arcana up` reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TerminalHostState {
    /// Whether a terminal-host process is running now.
    pub up: bool,
    /// Times it was started again after exiting unexpectedly.
    pub restarts: u64,
}

/// Times `SELECT 1`.
fn database_rtt(ctx: &Ctx<'_>) -> DatabaseStatus {
    let started = std::time::Instant::now();
    let reachable = ctx.db.query("SELECT 1", &[]).is_ok();
    DatabaseStatus {
        reachable,
        rtt_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Version, uptime, database round trip and activity figures. A user sees their own
/// figures; an admin sees everyone's with a per-user breakdown (`?scope=me` for their own).
#[utoipa::path(get, path = "/api/arcana/status", tag = "system",
    params(("scope" = Option<String>, Query, description = "`me` or `all` (admins; the default for them)")),
    responses((status = 200, body = Status), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub fn status(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let is_admin = caller.user.role == Role::Admin;
    let everyone = match req.query_param("scope").as_deref() {
        None => is_admin,
        Some("me") => false,
        Some("all") if is_admin => true,
        Some("all") => {
            return Err(ApiError::forbidden(
                "admin_required",
                "Only an admin may see everyone's figures.",
            ));
        }
        Some(_) => {
            return Err(ApiError::new(
                422,
                "invalid_scope",
                "scope must be `me` or `all`.",
            ));
        }
    };
    let now = crate::time::now();
    let windows = Windows::at(now);
    let scope = if everyone {
        Scope::All
    } else {
        Scope::User(caller.id())
    };
    // The report is one statement; its round trip is the database's (no extra SELECT 1).
    let started = std::time::Instant::now();
    let (figures, users) = stats::report::report(ctx.db, scope, &windows, everyone)?;
    let database = DatabaseStatus {
        reachable: true,
        rtt_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let started = ctx
        .settings
        .started_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
    let status = Status {
        version: crate::VERSION.into(),
        started_at: started.map(crate::time::format),
        uptime_secs: started.map(|s| (now - s).whole_seconds().max(0)),
        generated_at: crate::time::format(now),
        database,
        scope: if everyone { "all" } else { "user" }.into(),
        figures,
        users,
        terminal_host: None,
    };
    Ok(ApiResponse::json(200, &status).with_header("cache-control", "no-store"))
}

/// Prometheus text exposition of Arcana's figures. Under `arcana up` the runner appends
/// its request metrics and terminal-host's live figures to this body.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
              (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub fn metrics(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    if let Some(admin) = crate::auth::authorize_scrape(ctx.db, ctx.settings, bearer_token(req))? {
        *ctx.user_id.borrow_mut() = Some(admin.id().to_string());
    }
    let mut out = Exposition::default();
    out.family(
        "arcana_build_info",
        Kind::Gauge,
        "Version of the Arcana API (always 1).",
    )
    .sample("arcana_build_info", &[("version", crate::VERSION)], 1.0);
    let db = database_rtt(ctx);
    out.family(
        "arcana_database_up",
        Kind::Gauge,
        "Whether the database answered SELECT 1.",
    )
    .sample(
        "arcana_database_up",
        &[],
        if db.reachable { 1.0 } else { 0.0 },
    );
    out.family(
        "arcana_database_rtt_seconds",
        Kind::Gauge,
        "Round-trip time of SELECT 1.",
    )
    .sample("arcana_database_rtt_seconds", &[], db.rtt_ms / 1000.0);
    if db.reachable {
        stats::prometheus::write_figures(ctx.db, &mut out)?;
    }
    Ok(ApiResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), CONTENT_TYPE.into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: out.finish().into_bytes(),
    })
}
