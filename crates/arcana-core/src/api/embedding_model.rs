//! `GET`/`PUT /api/arcana/llm/embedding-model`: which model embeds memories and
//! messages. The local `all-minilm-l6-v2` (offline, through Spin's LLM interface) by
//! default; an admin may choose a model on an OpenAI-kind provider instead. Vectors
//! carry their model, so a change never mixes them in one ranking: items are embedded
//! again with the new model a few per request (see `semantic::backfill`), and until
//! then rank by what is there.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::{Permission, require};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::catalog::{self, ProviderKind};
use crate::vectors::choice;

/// The vector space of the local model.
pub const LOCAL_VECTORS: &str = "spin:all-minilm-l6-v2";

/// The current choice.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingModel {
    /// The provider model chosen; absent for the local model.
    pub model_id: Option<String>,
    pub model_name: Option<String>,
    /// What vectors are stored as: `spin:all-minilm-l6-v2` or `provider:<model id>`.
    pub vectors: String,
}

/// Body of `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModelChoice {
    /// A model on an OpenAI-kind provider, or `null` for the local model.
    pub model_id: Option<String>,
}

fn current(ctx: &Ctx<'_>) -> ApiResult<EmbeddingModel> {
    let Some(id) = choice::chosen(ctx.db)? else {
        return Ok(EmbeddingModel {
            model_id: None,
            model_name: None,
            vectors: LOCAL_VECTORS.into(),
        });
    };
    let name = catalog::get_model(ctx.db, &id)?.map(|m| m.model_name);
    Ok(EmbeddingModel {
        vectors: format!("provider:{id}"),
        model_id: Some(id),
        model_name: name,
    })
}

/// The model that embeds memories and messages.
#[utoipa::path(get, path = "/api/arcana/llm/embedding-model", tag = "llm", security(("bearer" = [])),
    responses((status = 200, body = EmbeddingModel), (status = 403, body = crate::error::Problem)))]
pub fn get(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    require(&caller, Permission::LlmAdmin)?;
    Ok(ApiResponse::json(200, &current(ctx)?))
}

/// Chooses the model that embeds memories and messages (`null`: the local one).
#[utoipa::path(put, path = "/api/arcana/llm/embedding-model", tag = "llm", security(("bearer" = [])),
    request_body = EmbeddingModelChoice,
    responses((status = 200, body = EmbeddingModel), (status = 400, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub fn put(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    require(&caller, Permission::LlmAdmin)?;
    let body: EmbeddingModelChoice = req.json()?;
    if let Some(id) = &body.model_id {
        let model = catalog::get_model(ctx.db, id)?.ok_or_else(|| ApiError::not_found("model"))?;
        let provider = catalog::get_provider(ctx.db, &model.provider_id)?
            .ok_or_else(|| ApiError::not_found("provider"))?;
        if provider.kind != ProviderKind::Openai {
            return Err(ApiError::bad_request(
                "unsupported_model",
                "Embeddings need a model on an OpenAI-kind provider (one that answers /embeddings).",
            ));
        }
    }
    choice::choose(ctx.db, body.model_id.as_deref(), &crate::time::now_string())?;
    Ok(ApiResponse::json(200, &current(ctx)?))
}
