//! The HTTP API: one module per component, a shared dispatcher, and the OpenAPI document.
//!
//! Each component's crate is a thin shell that turns a Spin request into an
//! [`ApiRequest`], calls [`serve`] with its route table, and writes the answer back.
//! The dispatcher applies the conventions every endpoint shares: problem+json errors
//! with a request id, 404 for unknown paths, 405 with `Allow`, CORS for the dashboard.

pub mod admin;
pub mod auth;
pub mod chat;
pub mod embedding_model;
pub mod gateway;
pub mod imports;
pub mod llm;
pub mod llm_calls;
pub mod openapi;
pub mod reply_streams;
pub mod semantic;
pub mod status;
pub mod system;
pub mod terminal_doc;
pub mod titles;
pub mod tokens;
pub mod turns;

use std::cell::{Cell, RefCell};

use crate::auth::AuthUser;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams, match_template};
use crate::llm::client::Transport;
use crate::settings::{Settings, Vars};

/// What a handler gets besides the request.
pub struct Ctx<'a> {
    pub db: &'a dyn Db,
    pub settings: &'a Settings,
    pub request_id: &'a str,
    /// Outbound HTTP (for calling LLM providers), when the host offers it.
    pub transport: Option<&'a dyn Transport>,
    /// Streaming responses, when the host offers them.
    pub streamer: Option<&'a dyn ResponseStreamer>,
    /// Text embeddings (semantic memory and search), when the host offers them.
    pub embedder: Option<&'a dyn crate::vectors::Embedder>,
    /// The provider model an admin chose for embeddings, once looked up (see
    /// `semantic::embedder`).
    pub(crate) provider_embedder: std::cell::OnceCell<Option<(crate::llm::client::Target, String)>>,
    /// CORS and request-id headers that a streamed response must carry too.
    pub common_headers: Vec<(String, String)>,
    /// The matched route's path template, for the request log.
    route: Cell<&'static str>,
    /// Who the request authenticated as, for the request log.
    user_id: RefCell<Option<String>>,
    /// The status a streamed response started with, for the request log.
    streamed_status: Cell<u16>,
    /// The caller's LLM preferences once read: several steps of a chat need them, and
    /// each read is a database round trip.
    preferences: RefCell<Option<(String, crate::llm::preferences::Preferences)>>,
}

/// Lets a handler send the response head at once and the body piece by piece
/// (server-sent events). The host's implementation writes straight to the client.
pub trait ResponseStreamer {
    /// Sends the head; `None` when the response was already started.
    fn start(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Option<Box<dyn BodyWriter + '_>>;
}

/// The body of a streamed response.
pub trait BodyWriter {
    /// Writes and flushes; `false` once the client has gone away.
    fn write(&mut self, bytes: &[u8]) -> bool;
}

/// What the host provides besides the database.
#[derive(Default, Clone, Copy)]
pub struct HostIo<'a> {
    pub transport: Option<&'a dyn Transport>,
    pub streamer: Option<&'a dyn ResponseStreamer>,
    pub embedder: Option<&'a dyn crate::vectors::Embedder>,
}

impl Ctx<'_> {
    /// Authenticates the request's bearer token (see [`crate::auth::authenticate`]) and
    /// remembers the user for the request log.
    pub fn authenticate(&self, req: &ApiRequest) -> ApiResult<AuthUser> {
        let user = crate::auth::authenticate(self.db, self.settings, req)?;
        *self.user_id.borrow_mut() = Some(user.id().to_string());
        user.check_need(crate::auth::access_tokens::need_for(
            &req.method,
            self.route.get(),
        ))?;
        Ok(user)
    }

    /// The LLM preferences of `user_id`, read once per request.
    pub fn preferences(&self, user_id: &str) -> ApiResult<crate::llm::preferences::Preferences> {
        if let Some((id, prefs)) = self.preferences.borrow().as_ref()
            && id == user_id
        {
            return Ok(prefs.clone());
        }
        let prefs = crate::llm::preferences::get(self.db, user_id)?;
        *self.preferences.borrow_mut() = Some((user_id.to_string(), prefs.clone()));
        Ok(prefs)
    }

    /// Starts a streamed response with the common headers; `None` when the host cannot stream.
    pub fn start_stream(
        &self,
        status: u16,
        content_type: &str,
    ) -> Option<Box<dyn BodyWriter + '_>> {
        self.start_stream_with(status, content_type, Vec::new())
    }

    /// [`Ctx::start_stream`] with headers of the handler's own.
    pub fn start_stream_with(
        &self,
        status: u16,
        content_type: &str,
        extra: Vec<(String, String)>,
    ) -> Option<Box<dyn BodyWriter + '_>> {
        let mut headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            ("cache-control".to_string(), "no-cache".to_string()),
        ];
        headers.extend(extra);
        headers.extend(self.common_headers.iter().cloned());
        self.streamed_status.set(status);
        self.streamer?.start(status, headers)
    }
}

/// A handler function.
pub type Handler = fn(&Ctx<'_>, &ApiRequest, &PathParams) -> ApiResult<ApiResponse>;

/// One endpoint: method, OpenAPI-style path template and handler.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: Handler,
}

/// Shorthand for route tables.
pub const fn route(method: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// The request id: the caller's `x-request-id` when sane, else a new UUID.
pub fn request_id(req: &ApiRequest) -> String {
    req.header_value("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Handles one request against a component's route table.
pub fn serve(routes: &[Route], db: &dyn Db, vars: &dyn Vars, req: &ApiRequest) -> ApiResponse {
    match Settings::load(vars) {
        Ok(settings) => serve_with_settings(routes, db, &settings, HostIo::default(), req),
        Err(e) => ApiResponse::problem(&e, Some(&request_id(req))),
    }
}

/// [`serve`] with settings already loaded (the host needed them to limit the body)
/// and the host's optional capabilities. A handler that streamed its response
/// returns [`ApiResponse::streamed`], which the host does not write again.
pub fn serve_with_settings(
    routes: &[Route],
    db: &dyn Db,
    settings: &Settings,
    io: HostIo<'_>,
    req: &ApiRequest,
) -> ApiResponse {
    let started = std::time::Instant::now();
    let request_id = request_id(req);
    let mut common = ApiResponse::no_content();
    add_cors(&mut common, settings, req);
    common
        .headers
        .push(("x-request-id".into(), request_id.clone()));
    let ctx = Ctx {
        db,
        settings,
        request_id: &request_id,
        transport: io.transport,
        streamer: io.streamer,
        embedder: io.embedder,
        provider_embedder: std::cell::OnceCell::new(),
        common_headers: common.headers.clone(),
        route: Cell::new(""),
        user_id: RefCell::new(None),
        streamed_status: Cell::new(0),
        preferences: RefCell::new(None),
    };
    let mut response =
        if req.method == "OPTIONS" && req.header_value("access-control-request-method").is_some() {
            preflight(routes, settings, req)
        } else {
            match dispatch(routes, &ctx, req) {
                Ok(resp) => resp,
                Err(e) => {
                    if e.status >= 500 {
                        tracing::error!(request_id = %request_id, code = e.code, "request failed");
                    }
                    if req.path.starts_with("/v1/") {
                        crate::gateway::errors::response(&e)
                    } else {
                        ApiResponse::problem(&e, Some(&request_id))
                    }
                }
            }
        };
    log_request(&ctx, req, &response, started);
    if response.is_streamed() {
        return response;
    }
    response.headers.extend(common.headers);
    response
}

/// One structured line per request: id, method, route template, status, latency and
/// the authenticated user (never a body, a token or a query string).
fn log_request(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    response: &ApiResponse,
    started: std::time::Instant,
) {
    let user_id = ctx.user_id.borrow();
    tracing::info!(
        target: "arcana::request",
        request_id = %ctx.request_id,
        method = %req.method,
        route = ctx.route.get(),
        status = if response.is_streamed() {
            ctx.streamed_status.get()
        } else {
            response.status
        },
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        user_id = user_id.as_deref().unwrap_or(""),
        "request"
    );
}

/// Finds the route for the request and runs it.
fn dispatch(routes: &[Route], ctx: &Ctx<'_>, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let mut allowed = Vec::new();
    for r in routes {
        if let Some(params) = match_template(r.path, &req.path) {
            if r.method == req.method || (req.method == "HEAD" && r.method == "GET") {
                ctx.route.set(r.path);
                return (r.handler)(ctx, req, &params);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        return Err(ApiError::new(
            404,
            "route_not_found",
            format!("No endpoint at {}.", req.path),
        ));
    }
    allowed.sort_unstable();
    allowed.dedup();
    Err(ApiError::new(
        405,
        "method_not_allowed",
        format!("Use one of: {}.", allowed.join(", ")),
    )
    .with_header("allow", allowed.join(", ")))
}

/// The allowed origin to echo, if the request's `Origin` is on the list.
fn allowed_origin<'a>(settings: &Settings, req: &'a ApiRequest) -> Option<&'a str> {
    let origin = req.header_value("origin")?;
    settings
        .cors_origins
        .iter()
        .any(|o| o == "*" || o == origin)
        .then_some(origin)
}

fn add_cors(resp: &mut ApiResponse, settings: &Settings, req: &ApiRequest) {
    if let Some(origin) = allowed_origin(settings, req) {
        resp.headers
            .push(("access-control-allow-origin".into(), origin.to_string()));
        resp.headers.push((
            "access-control-expose-headers".into(),
            "x-request-id, retry-after".into(),
        ));
        resp.headers.push(("vary".into(), "origin".into()));
    }
}

/// Answers a CORS preflight: the methods the path supports, for allowed origins only.
fn preflight(routes: &[Route], settings: &Settings, req: &ApiRequest) -> ApiResponse {
    let mut resp = ApiResponse::no_content();
    if allowed_origin(settings, req).is_none() {
        return resp;
    }
    let mut methods: Vec<&str> = routes
        .iter()
        .filter(|r| match_template(r.path, &req.path).is_some())
        .map(|r| r.method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    resp.headers
        .push(("access-control-allow-methods".into(), methods.join(", ")));
    resp.headers.push((
        "access-control-allow-headers".into(),
        "authorization, content-type, x-request-id".into(),
    ));
    resp.headers
        .push(("access-control-max-age".into(), "600".into()));
    resp
}

/// Every route of every component, for the OpenAPI completeness test.
pub fn all_routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend_from_slice(auth::ROUTES);
    all.extend_from_slice(llm::ROUTES);
    all.extend_from_slice(chat::ROUTES);
    all.extend_from_slice(system::ROUTES);
    all
}
