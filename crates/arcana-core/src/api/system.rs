//! The `system` component: health and the OpenAPI document (no authentication), the
//! status report and Prometheus metrics (see [`super::status`]).

use serde::Serialize;
use utoipa::ToSchema;

use super::{Ctx, Route, route};
use crate::error::ApiResult;
use crate::http::{ApiRequest, ApiResponse, PathParams};

/// The component's routes.
pub const ROUTES: &[Route] = &[
    route("GET", "/api/health", health),
    route("GET", "/api/openapi.json", openapi_json),
    route("GET", "/api/arcana/status", super::status::status),
    route("GET", "/metrics", super::status::metrics),
];

/// Health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub version: String,
    pub database: DatabaseHealth,
}

/// Whether the database answered, and how fast.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reports version and whether the database answers; 503 when it does not.
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub fn health(ctx: &Ctx<'_>, _: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let started = std::time::Instant::now();
    let result = ctx.db.query("SELECT 1", &[]);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let ok = result.is_ok();
    let health = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: crate::VERSION.into(),
        database: DatabaseHealth {
            ok,
            latency_ms,
            error: result.err().map(|_| "database did not answer".to_string()),
        },
    };
    Ok(ApiResponse::json(if ok { 200 } else { 503 }, &health)
        .with_header("cache-control", "no-store"))
}

/// The OpenAPI 3.1 document of every endpoint.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub fn openapi_json(_: &Ctx<'_>, _: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    Ok(ApiResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: super::openapi::document_json().into_bytes(),
    })
}
