//! Request ids and the access log: every response carries `x-request-id` (the caller's
//! when sane, else a new UUID), problem bodies include it, and one structured line per
//! request records id, method, route, status, latency and the authenticated user.
//!
//! The id, route and user live in a task-local scope for the request, so handlers and
//! the error type reach them without threading them through every signature.

use std::cell::RefCell;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// What the access log learns while a request runs.
pub struct RequestScope {
    pub request_id: String,
    route: RefCell<Option<String>>,
    user_id: RefCell<Option<String>>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

/// The current request's id, inside a request.
pub fn request_id() -> Option<String> {
    SCOPE.try_with(|s| s.request_id.clone()).ok()
}

/// Records who the current request authenticated as.
pub fn set_user(user_id: &str) {
    let _ = SCOPE.try_with(|s| *s.user_id.borrow_mut() = Some(user_id.to_string()));
}

/// Outer middleware: assigns the id, runs the request in its scope, logs the line.
pub async fn log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let scope = RequestScope {
        request_id: request_id.clone(),
        route: RefCell::new(None),
        user_id: RefCell::new(None),
    };
    let (mut response, route, user_id) = SCOPE
        .scope(scope, async {
            let response = next.run(req).await;
            let (route, user) = SCOPE.with(|s| (s.route.take(), s.user_id.take()));
            (response, route, user)
        })
        .await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        target: "arcana::access",
        request_id = %request_id,
        method = %method,
        route = route.as_deref().unwrap_or("unmatched"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        user_id = user_id.as_deref().unwrap_or(""),
        "request"
    );
    response
}

/// Route middleware: records the matched route template (only known after routing).
pub async fn record_route(path: MatchedPath, req: Request, next: Next) -> Response {
    let _ = SCOPE.try_with(|s| *s.route.borrow_mut() = Some(path.as_str().to_string()));
    next.run(req).await
}
