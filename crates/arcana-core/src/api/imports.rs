//! `POST /api/chat/import/chatgpt` and `POST /api/chat/import/open-webui`: other tools'
//! exports become the caller's conversations, branches kept (see [`crate::imports`]).
//! All or nothing: one transaction for the whole file.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::AuthUser;
use crate::chat::{self, Conversation, NewMessage};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::imports::{self, ImportError, ImportedConversation};

/// Answer of the imports from other tools.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// The new conversations, in the file's order.
    pub conversations: Vec<Conversation>,
}

fn refused(e: ImportError) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: e.path,
        message: e.reason,
    }])
}

/// Stores parsed conversations; one transaction for all of them.
fn store(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    convs: &[ImportedConversation],
) -> ApiResult<ApiResponse> {
    let now = crate::time::now_string();
    let ids = transaction(ctx.db, || {
        let mut ids = Vec::new();
        for c in convs {
            let conv = chat::create(ctx.db, caller.id(), &c.title, &c.created_at)?;
            let mut stored: std::collections::HashMap<&str, String> = Default::default();
            for m in &c.messages {
                let parent = m.parent_key.as_deref().and_then(|k| stored.get(k));
                chat::set_active_leaf(ctx.db, &conv.id, parent.map(String::as_str))?;
                let extra = NewMessage {
                    model_name: m.model_name.as_deref(),
                    ..Default::default()
                };
                let msg = chat::append(
                    ctx.db,
                    caller.id(),
                    &conv.id,
                    m.sender,
                    &m.content,
                    &extra,
                    &m.timestamp,
                )?;
                stored.insert(m.key.as_str(), msg.id);
            }
            if let Some(leaf) = c.active_key.as_deref().and_then(|k| stored.get(k)) {
                chat::set_active_leaf(ctx.db, &conv.id, Some(leaf))?;
            }
            ids.push(conv.id);
        }
        Ok::<_, ApiError>(ids)
    })?;
    let mut conversations = Vec::new();
    for id in ids {
        conversations.extend(chat::get(ctx.db, caller.id(), &id)?);
    }
    tracing::info!(user_id = %caller.id(), conversations = conversations.len(), at = %now, "conversations imported");
    Ok(ApiResponse::json(201, &ImportResult { conversations }))
}

fn read(req: &ApiRequest) -> ApiResult<Value> {
    req.json::<Value>()
}

/// Imports ChatGPT's data export (`conversations.json` from the export zip): every
/// conversation with its branches; the branch ChatGPT showed becomes the active one.
/// System and tool messages are left out. Limits: 1000 conversations, 10000 messages
/// each, and the request body limit (`max_body_bytes`). A bad record is a 422 naming it.
#[utoipa::path(post, path = "/api/chat/import/chatgpt", tag = "chat", security(("bearer" = [])),
    request_body(content = Object, description = "conversations.json"),
    responses((status = 201, body = ImportResult), (status = 422, body = crate::error::Problem)))]
pub fn chatgpt(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let convs = imports::chatgpt(&read(req)?).map_err(refused)?;
    store(ctx, &caller, &convs)
}

/// Imports Open WebUI's chat export (one chat or an array, as its "Export chat (.json)"
/// and "Export All Chats" write them), branches kept, the shown branch active. Same
/// limits and errors as the ChatGPT import.
#[utoipa::path(post, path = "/api/chat/import/open-webui", tag = "chat", security(("bearer" = [])),
    request_body(content = Object, description = "An Open WebUI chat export"),
    responses((status = 201, body = ImportResult), (status = 422, body = crate::error::Problem)))]
pub fn open_webui(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let convs = imports::open_webui(&read(req)?).map_err(refused)?;
    store(ctx, &caller, &convs)
}
