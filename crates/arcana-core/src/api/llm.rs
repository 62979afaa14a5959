//! The `llm` component: providers, models, allowlists, preferences, routing rules,
//! the routing explanation and key rotation (`/api/arcana/llm/...`).
//! Writes need the `llm:admin` permission; API keys are write-only.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Route, route};
use crate::auth::{AuthUser, Permission, require};
use crate::crypto::{self, KeyRing};
use crate::db::{DbError, transaction};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::catalog::{
    self, Model, ModelAccess, ModelFields, Provider, ProviderFields, ProviderKind, PublicProvider,
};
use crate::llm::preferences::{self, Preferences};
use crate::llm::routing::{self, Conditions, Decision, RouteRequest, Rule};
use crate::llm::tokens;
use crate::validate::{Validator, uuid_param};

/// The component's routes.
pub const ROUTES: &[Route] = &[
    route("GET", "/api/arcana/llm/providers", list_providers),
    route("POST", "/api/arcana/llm/providers", create_provider),
    route("PUT", "/api/arcana/llm/providers/{id}", update_provider),
    route("DELETE", "/api/arcana/llm/providers/{id}", delete_provider),
    route("GET", "/api/arcana/llm/models", list_models),
    route("POST", "/api/arcana/llm/models", create_model),
    route("PUT", "/api/arcana/llm/models/{id}", update_model),
    route("DELETE", "/api/arcana/llm/models/{id}", delete_model),
    route("GET", "/api/arcana/llm/models/{id}/access", get_access),
    route("PUT", "/api/arcana/llm/models/{id}/access", put_access),
    route("GET", "/api/arcana/llm/preferences", get_preferences),
    route("PUT", "/api/arcana/llm/preferences", put_preferences),
    route("GET", "/api/arcana/llm/routing-rules", list_rules),
    route("POST", "/api/arcana/llm/routing-rules", create_rule),
    route("GET", "/api/arcana/llm/routing-rules/{id}", get_rule),
    route("PUT", "/api/arcana/llm/routing-rules/{id}", update_rule),
    route("DELETE", "/api/arcana/llm/routing-rules/{id}", delete_rule),
    route("POST", "/api/arcana/llm/route/explain", explain),
    route("POST", "/api/arcana/llm/keys/rotate", rotate_keys),
    route(
        "GET",
        "/api/arcana/llm/embedding-model",
        super::embedding_model::get,
    ),
    route(
        "PUT",
        "/api/arcana/llm/embedding-model",
        super::embedding_model::put,
    ),
    route(
        "POST",
        "/api/arcana/llm/complete",
        super::llm_calls::complete,
    ),
    route("GET", "/api/arcana/llm/usage", super::llm_calls::usage),
    route(
        "POST",
        "/v1/chat/completions",
        super::gateway::chat_completions,
    ),
    route("GET", "/v1/models", super::gateway::models),
    route("POST", "/v1/embeddings", super::gateway::embeddings),
    route(
        "PUT",
        "/api/arcana/llm/budgets/{user_id}",
        super::llm_calls::put_budget,
    ),
];

fn admin(ctx: &Ctx<'_>, req: &ApiRequest) -> ApiResult<AuthUser> {
    let caller = ctx.authenticate(req)?;
    require(&caller, Permission::LlmAdmin)?;
    Ok(caller)
}

pub(crate) fn key_ring(ctx: &Ctx<'_>) -> ApiResult<KeyRing> {
    let spec = ctx.settings.llm_master_keys.as_deref().unwrap_or_default();
    KeyRing::parse(spec).map_err(|e| ApiError::internal(format!("llm_master_keys: {e}")))
}

fn now() -> String {
    crate::time::now_string()
}

/// Body of provider create and update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub name: String,
    pub kind: ProviderKind,
    /// E.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    pub base_url: String,
    /// Write-only. On update: a string replaces the key, `null` removes it, absent keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: i64,
    #[serde(default = "default_retries")]
    pub max_retries: i64,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> i64 {
    60
}
fn default_retries() -> i64 {
    2
}
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl ProviderInput {
    fn validate(&self) -> ApiResult<()> {
        let mut v = Validator::new();
        v.text(&self.name, "name", 1, 100);
        let url_ok = (self.base_url.starts_with("https://")
            || self.base_url.starts_with("http://"))
            && !self.base_url.contains(char::is_whitespace)
            && self.base_url.len() <= 500;
        v.check(url_ok, "base_url", "must be an http(s) URL");
        v.check(
            (1..=600).contains(&self.timeout_secs),
            "timeout_secs",
            "must be 1 to 600",
        );
        v.check(
            (0..=5).contains(&self.max_retries),
            "max_retries",
            "must be 0 to 5",
        );
        if let Some(Some(k)) = &self.api_key {
            v.length(k, "api_key", 1, 4096);
        }
        v.finish()
    }

    fn fields(&self) -> ProviderFields<'_> {
        ProviderFields {
            name: self.name.trim(),
            kind: self.kind,
            base_url: self.base_url.trim_end_matches('/'),
            enabled: self.enabled,
            timeout_secs: self.timeout_secs,
            max_retries: self.max_retries,
        }
    }
}

fn unique(e: DbError, code: &'static str, what: &str) -> ApiError {
    match e {
        DbError::Unique(_) => ApiError::conflict(code, format!("{what} already exists.")),
        other => other.into(),
    }
}

/// Providers: admins see every provider with its settings (never the key); other
/// users see the providers of the models they may use.
#[utoipa::path(get, path = "/api/arcana/llm/providers", tag = "llm", security(("bearer" = [])),
    responses((status = 200, body = Vec<PublicProvider>, description = "Admins get Provider objects")))]
pub fn list_providers(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    if caller.has(Permission::LlmAdmin) {
        return Ok(ApiResponse::json(200, &catalog::list_providers(ctx.db)?));
    }
    let usable = catalog::usable_models(ctx.db, &caller)?;
    let providers: Vec<PublicProvider> = catalog::list_providers(ctx.db)?
        .into_iter()
        .filter(|p| usable.iter().any(|m| m.provider_id == p.id))
        .map(|p| PublicProvider {
            id: p.id,
            name: p.name,
            kind: p.kind,
        })
        .collect();
    Ok(ApiResponse::json(200, &providers))
}

/// Adds a provider; its API key is sealed before it is stored.
#[utoipa::path(post, path = "/api/arcana/llm/providers", tag = "llm", security(("bearer" = [])), request_body = ProviderInput,
    responses((status = 201, body = Provider), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub fn create_provider(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let body: ProviderInput = req.json()?;
    body.validate()?;
    let id = uuid::Uuid::new_v4().to_string();
    let sealed = match &body.api_key {
        Some(Some(key)) => Some((key_ring(ctx)?.seal(key.as_bytes(), &id)?, crypto::hint(key))),
        _ => None,
    };
    let t = now();
    let provider = transaction(ctx.db, || {
        catalog::insert_provider(ctx.db, &id, &body.fields(), &t)
            .map_err(|e| unique(e, "provider_exists", "A provider with that name"))?;
        if let Some((s, hint)) = &sealed {
            catalog::set_provider_key(ctx.db, &id, Some((s, hint)), &t)?;
        }
        catalog::get_provider(ctx.db, &id)?.ok_or_else(|| ApiError::internal("provider vanished"))
    })?;
    tracing::info!(provider_id = %id, has_key = sealed.is_some(), "llm provider created");
    Ok(ApiResponse::json(201, &provider))
}

/// Changes a provider (all fields; the key only when `api_key` is present).
#[utoipa::path(put, path = "/api/arcana/llm/providers/{id}", tag = "llm", security(("bearer" = [])), request_body = ProviderInput,
    params(("id" = String, Path)), responses((status = 200, body = Provider), (status = 404, body = crate::error::Problem)))]
pub fn update_provider(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "provider")?;
    let body: ProviderInput = req.json()?;
    body.validate()?;
    let sealed = match &body.api_key {
        Some(Some(key)) => Some(Some((
            key_ring(ctx)?.seal(key.as_bytes(), &id)?,
            crypto::hint(key),
        ))),
        Some(None) => Some(None),
        None => None,
    };
    let t = now();
    let provider = transaction(ctx.db, || {
        catalog::get_provider(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("provider"))?;
        catalog::update_provider(ctx.db, &id, &body.fields(), &t)
            .map_err(|e| unique(e, "provider_exists", "A provider with that name"))?;
        match &sealed {
            Some(Some((s, hint))) => catalog::set_provider_key(ctx.db, &id, Some((s, hint)), &t)?,
            Some(None) => catalog::set_provider_key(ctx.db, &id, None, &t)?,
            None => {}
        }
        catalog::get_provider(ctx.db, &id)?.ok_or_else(|| ApiError::internal("provider vanished"))
    })?;
    Ok(ApiResponse::json(200, &provider))
}

/// Deletes a provider. Refused with 409 `provider_in_use` while it has models:
/// delete or move them first, so that no chat history points at a vanished model.
#[utoipa::path(delete, path = "/api/arcana/llm/providers/{id}", tag = "llm", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub fn delete_provider(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    delete_unused(
        ctx,
        req,
        params,
        "provider",
        |id| Ok(catalog::get_provider(ctx.db, id)?.is_some()),
        |id| {
            let n = catalog::provider_model_count(ctx.db, id)?;
            if n > 0 {
                return Err(ApiError::conflict(
                    "provider_in_use",
                    format!("The provider has {n} models; delete them first."),
                ));
            }
            Ok(())
        },
        |id| catalog::delete_provider(ctx.db, id),
    )
}

/// Deletes a catalog row in one transaction (admins only): 404 when it does not exist,
/// `in_use`'s 409 while something still refers to it, else 204.
fn delete_unused(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
    what: &'static str,
    exists: impl Fn(&str) -> ApiResult<bool>,
    in_use: impl Fn(&str) -> ApiResult<()>,
    delete: impl Fn(&str) -> Result<(), DbError>,
) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, what)?;
    transaction(ctx.db, || {
        if !exists(&id)? {
            return Err(ApiError::not_found(what));
        }
        in_use(&id)?;
        delete(&id)?;
        Ok(())
    })?;
    Ok(ApiResponse::no_content())
}

/// Body of model create and update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    pub provider_id: String,
    /// The provider's name for it, e.g. `gpt-4o-mini`.
    pub model_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub max_tokens: i64,
    pub context_window: i64,
    #[serde(default)]
    pub input_cost_per_token: f64,
    #[serde(default)]
    pub output_cost_per_token: f64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ModelInput {
    fn validate(&self) -> ApiResult<()> {
        let mut v = Validator::new();
        v.text(&self.model_name, "model_name", 1, 200);
        if let Some(d) = &self.display_name {
            v.text(d, "display_name", 1, 200);
        }
        v.check(
            (1..=10_000_000).contains(&self.max_tokens),
            "max_tokens",
            "must be 1 to 10000000",
        );
        v.check(
            (1..=100_000_000).contains(&self.context_window),
            "context_window",
            "must be 1 to 100000000",
        );
        v.check(
            self.max_tokens <= self.context_window,
            "max_tokens",
            "must not exceed context_window",
        );
        for (c, f) in [
            (self.input_cost_per_token, "input_cost_per_token"),
            (self.output_cost_per_token, "output_cost_per_token"),
        ] {
            v.check(
                c.is_finite() && (0.0..1.0).contains(&c),
                f,
                "must be at least 0 and below 1 (USD per token)",
            );
        }
        v.check(
            self.tags.len() <= 20 && self.tags.iter().all(|t| (1..=40).contains(&t.len())),
            "tags",
            "at most 20 tags of 1 to 40 characters",
        );
        v.finish()
    }
}

fn model_fields(body: &ModelInput) -> ModelFields<'_> {
    ModelFields {
        provider_id: &body.provider_id,
        model_name: &body.model_name,
        display_name: body.display_name.as_deref().unwrap_or(&body.model_name),
        max_tokens: body.max_tokens,
        context_window: body.context_window,
        input_cost_per_token: body.input_cost_per_token,
        output_cost_per_token: body.output_cost_per_token,
        enabled: body.enabled,
        is_default: body.is_default,
        tags: &body.tags,
    }
}

/// Models the caller may use; admins may add `?all=true` for every model.
#[utoipa::path(get, path = "/api/arcana/llm/models", tag = "llm", security(("bearer" = [])),
    params(("all" = Option<bool>, Query)), responses((status = 200, body = Vec<Model>)))]
pub fn list_models(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    if req.query_param("all").as_deref() == Some("true") {
        require(&caller, Permission::LlmAdmin)?;
        return Ok(ApiResponse::json(200, &catalog::list_models(ctx.db)?));
    }
    Ok(ApiResponse::json(
        200,
        &catalog::usable_models(ctx.db, &caller)?,
    ))
}

/// Adds a model to a provider.
#[utoipa::path(post, path = "/api/arcana/llm/models", tag = "llm", security(("bearer" = [])), request_body = ModelInput,
    responses((status = 201, body = Model), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub fn create_model(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let body: ModelInput = req.json()?;
    body.validate()?;
    let id = uuid::Uuid::new_v4().to_string();
    let model = transaction(ctx.db, || {
        catalog::get_provider(ctx.db, &body.provider_id)?.ok_or_else(|| {
            ApiError::validation(vec![crate::error::FieldError {
                field: "provider_id".into(),
                message: "no such provider".into(),
            }])
        })?;
        catalog::insert_model(ctx.db, &id, &model_fields(&body), &now())
            .map_err(|e| unique(e, "model_exists", "That model on this provider"))?;
        catalog::get_model(ctx.db, &id)?.ok_or_else(|| ApiError::internal("model vanished"))
    })?;
    Ok(ApiResponse::json(201, &model))
}

/// Changes a model.
#[utoipa::path(put, path = "/api/arcana/llm/models/{id}", tag = "llm", security(("bearer" = [])), request_body = ModelInput,
    params(("id" = String, Path)), responses((status = 200, body = Model), (status = 404, body = crate::error::Problem)))]
pub fn update_model(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "model")?;
    let body: ModelInput = req.json()?;
    body.validate()?;
    let model = transaction(ctx.db, || {
        catalog::get_model(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("model"))?;
        catalog::get_provider(ctx.db, &body.provider_id)?.ok_or_else(|| {
            ApiError::validation(vec![crate::error::FieldError {
                field: "provider_id".into(),
                message: "no such provider".into(),
            }])
        })?;
        catalog::update_model(ctx.db, &id, &model_fields(&body), &now())
            .map_err(|e| unique(e, "model_exists", "That model on this provider"))?;
        catalog::get_model(ctx.db, &id)?.ok_or_else(|| ApiError::internal("model vanished"))
    })?;
    Ok(ApiResponse::json(200, &model))
}

/// Deletes a model; refused with 409 `model_in_use` while a routing rule names it.
#[utoipa::path(delete, path = "/api/arcana/llm/models/{id}", tag = "llm", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub fn delete_model(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    delete_unused(
        ctx,
        req,
        params,
        "model",
        |id| Ok(catalog::get_model(ctx.db, id)?.is_some()),
        |id| {
            let rules = catalog::rules_using_model(ctx.db, id)?;
            if !rules.is_empty() {
                return Err(ApiError::conflict(
                    "model_in_use",
                    format!("Routing rules use this model: {}.", rules.join(", ")),
                ));
            }
            Ok(())
        },
        |id| catalog::delete_model(ctx.db, id),
    )
}

/// Who may use a model (empty lists: everyone).
#[utoipa::path(get, path = "/api/arcana/llm/models/{id}/access", tag = "llm", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ModelAccess)))]
pub fn get_access(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "model")?;
    let access = catalog::get_access(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("model"))?;
    Ok(ApiResponse::json(200, &access))
}

/// Replaces who may use a model: user ids and roles (`admin`, `user`).
#[utoipa::path(put, path = "/api/arcana/llm/models/{id}/access", tag = "llm", security(("bearer" = [])), request_body = ModelAccess,
    params(("id" = String, Path)), responses((status = 200, body = ModelAccess)))]
pub fn put_access(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "model")?;
    let body: ModelAccess = req.json()?;
    let mut v = Validator::new();
    v.check(
        body.roles.iter().all(|r| r == "admin" || r == "user"),
        "roles",
        "roles are admin and user",
    );
    v.check(
        body.users.iter().all(|u| uuid::Uuid::parse_str(u).is_ok()),
        "users",
        "user ids are UUIDs",
    );
    v.finish()?;
    let access = transaction(ctx.db, || {
        catalog::get_model(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("model"))?;
        catalog::set_access(ctx.db, &id, &body)?;
        catalog::get_access(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("model"))
    })?;
    Ok(ApiResponse::json(200, &access))
}

/// The caller's preferences.
#[utoipa::path(get, path = "/api/arcana/llm/preferences", tag = "llm", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
pub fn get_preferences(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    Ok(ApiResponse::json(
        200,
        &preferences::get(ctx.db, caller.id())?,
    ))
}

/// Replaces the caller's preferences. The default model must be one they may use.
#[utoipa::path(put, path = "/api/arcana/llm/preferences", tag = "llm", security(("bearer" = [])), request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = crate::error::Problem)))]
pub fn put_preferences(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: Preferences = req.json()?;
    let mut v = Validator::new();
    body.validate(&mut v);
    if let Some(id) = &body.default_model_id {
        let usable = catalog::usable_models(ctx.db, &caller)?;
        v.check(
            usable.iter().any(|m| &m.id == id),
            "default_model_id",
            "is not a model you may use",
        );
    }
    v.finish()?;
    preferences::put(ctx.db, caller.id(), &body, &now())?;
    Ok(ApiResponse::json(
        200,
        &preferences::get(ctx.db, caller.id())?,
    ))
}

/// Body of rule create and update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    /// Lower runs first.
    pub priority: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub conditions: Conditions,
    pub target_model_id: String,
    #[serde(default)]
    pub fallback_model_ids: Vec<String>,
    /// Whether the default models follow `fallback_model_ids` (absent or `null`: the
    /// deployment's `fallback_to_default` setting).
    #[serde(default)]
    pub fallback_to_default: Option<bool>,
}

fn check_rule(ctx: &Ctx<'_>, body: &RuleInput) -> ApiResult<()> {
    let mut v = Validator::new();
    v.text(&body.name, "name", 1, 100);
    v.check(
        (-1_000_000..=1_000_000).contains(&body.priority),
        "priority",
        "must be -1000000 to 1000000",
    );
    body.conditions.validate(&mut v);
    v.check(
        catalog::get_model(ctx.db, &body.target_model_id)?.is_some(),
        "target_model_id",
        "no such model",
    );
    v.check(
        body.fallback_model_ids.len() <= 10,
        "fallback_model_ids",
        "at most 10",
    );
    for id in &body.fallback_model_ids {
        v.check(
            catalog::get_model(ctx.db, id)?.is_some(),
            "fallback_model_ids",
            "no such model",
        );
    }
    v.finish()
}

/// Routing rules in evaluation order.
#[utoipa::path(get, path = "/api/arcana/llm/routing-rules", tag = "llm", security(("bearer" = [])),
    responses((status = 200, body = Vec<Rule>)))]
pub fn list_rules(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    Ok(ApiResponse::json(200, &routing::list_rules(ctx.db)?))
}

/// Adds a routing rule.
#[utoipa::path(post, path = "/api/arcana/llm/routing-rules", tag = "llm", security(("bearer" = [])), request_body = RuleInput,
    responses((status = 201, body = Rule), (status = 422, body = crate::error::Problem)))]
pub fn create_rule(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let body: RuleInput = req.json()?;
    check_rule(ctx, &body)?;
    let t = now();
    let rule = Rule {
        id: uuid::Uuid::new_v4().to_string(),
        name: body.name,
        priority: body.priority,
        enabled: body.enabled,
        conditions: body.conditions,
        target_model_id: body.target_model_id,
        fallback_model_ids: body.fallback_model_ids,
        fallback_to_default: body.fallback_to_default,
        created_at: t.clone(),
        updated_at: t,
    };
    routing::upsert_rule(ctx.db, &rule)?;
    Ok(ApiResponse::json(201, &rule))
}

/// One routing rule.
#[utoipa::path(get, path = "/api/arcana/llm/routing-rules/{id}", tag = "llm", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Rule), (status = 404, body = crate::error::Problem)))]
pub fn get_rule(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "rule")?;
    let rule = routing::get_rule(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("rule"))?;
    Ok(ApiResponse::json(200, &rule))
}

/// Replaces a routing rule.
#[utoipa::path(put, path = "/api/arcana/llm/routing-rules/{id}", tag = "llm", security(("bearer" = [])), request_body = RuleInput,
    params(("id" = String, Path)), responses((status = 200, body = Rule), (status = 404, body = crate::error::Problem)))]
pub fn update_rule(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "rule")?;
    let body: RuleInput = req.json()?;
    let existing = routing::get_rule(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("rule"))?;
    check_rule(ctx, &body)?;
    let rule = Rule {
        id,
        name: body.name,
        priority: body.priority,
        enabled: body.enabled,
        conditions: body.conditions,
        target_model_id: body.target_model_id,
        fallback_model_ids: body.fallback_model_ids,
        fallback_to_default: body.fallback_to_default,
        created_at: existing.created_at,
        updated_at: now(),
    };
    routing::upsert_rule(ctx.db, &rule)?;
    Ok(ApiResponse::json(200, &rule))
}

/// Deletes a routing rule.
#[utoipa::path(delete, path = "/api/arcana/llm/routing-rules/{id}", tag = "llm", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub fn delete_rule(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    admin(ctx, req)?;
    let id = uuid_param(params.get("id")?, "rule")?;
    routing::get_rule(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("rule"))?;
    routing::delete_rule(ctx.db, &id)?;
    Ok(ApiResponse::no_content())
}

/// Body of `POST /api/arcana/llm/route/explain`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub message: String,
    /// A model id or provider model name to ask for explicitly.
    #[serde(default)]
    pub model: Option<String>,
    /// Requested tags, e.g. `["code"]`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Which model a request would use, and why; calls no provider.
#[utoipa::path(post, path = "/api/arcana/llm/route/explain", tag = "llm", security(("bearer" = [])), request_body = ExplainRequest,
    responses((status = 200, body = Decision), (status = 403, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub fn explain(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: ExplainRequest = req.json()?;
    // As `POST /api/chat` would: the system prompt and the message must fit.
    let prefs = ctx.preferences(caller.id())?;
    let required = tokens::estimate(prefs.system_prompt.as_deref().unwrap_or(""))
        + tokens::estimate(&body.message)
        + tokens::PER_MESSAGE;
    let decision = decide_for(
        ctx,
        &caller,
        &body.message,
        body.model.as_deref(),
        &body.tags,
        Some(routing::ContextNeed {
            required_tokens: required,
            reply_tokens: prefs.max_tokens,
        }),
    )?;
    Ok(ApiResponse::json(200, &decision))
}

/// Routing as `POST /api/chat` and `/complete` use it; `context` is what must fit the
/// chosen model's window (checked before any provider is called).
pub fn decide_for(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    message: &str,
    model: Option<&str>,
    tags: &[String],
    context: Option<routing::ContextNeed>,
) -> ApiResult<Decision> {
    let usable = catalog::usable_models(ctx.db, caller)?;
    let rules = routing::list_rules(ctx.db)?;
    let prefs = ctx.preferences(caller.id())?;
    routing::decide(
        &usable,
        &rules,
        prefs.default_model_id.as_deref(),
        caller,
        &RouteRequest {
            message,
            prompt_tokens: tokens::estimate(message),
            tags,
            requested_model: model,
            context,
            fallback_to_default: ctx.settings.fallback_to_default,
        },
    )
}

/// Result of a key rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationResult {
    /// The key id every stored API key is now sealed under.
    pub key_id: String,
    /// How many keys were re-sealed.
    pub resealed: usize,
}

/// Re-seals every stored API key under the first (active) master key. Run after
/// putting a new key first in `llm_master_keys`; then the old key can be removed.
#[utoipa::path(post, path = "/api/arcana/llm/keys/rotate", tag = "llm", security(("bearer" = [])),
    responses((status = 200, body = RotationResult)))]
pub fn rotate_keys(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = admin(ctx, req)?;
    let ring = key_ring(ctx)?;
    let t = now();
    let resealed = transaction(ctx.db, || {
        let mut n = 0;
        for (id, sealed) in catalog::sealed_keys(ctx.db)? {
            if sealed.kid == ring.active_kid() {
                continue;
            }
            let plain = ring.open(&sealed, &id)?;
            let again = ring.seal(&plain, &id)?;
            let hint = catalog::get_provider(ctx.db, &id)?
                .and_then(|p| p.api_key_hint)
                .unwrap_or_default();
            catalog::set_provider_key(ctx.db, &id, Some((&again, &hint)), &t)?;
            n += 1;
        }
        Ok::<_, ApiError>(n)
    })?;
    tracing::info!(by = %caller.id(), resealed, key_id = ring.active_kid(), "llm keys rotated");
    Ok(ApiResponse::json(
        200,
        &RotationResult {
            key_id: ring.active_kid().to_string(),
            resealed,
        },
    ))
}
