//! The `chat` component: conversations, history, `POST /api/chat`, search, export and
//! import, and context memory (`/api/chat/...`, `/api/arcana/context-memory...`).
//! Every query is scoped to the caller; another user's conversation answers 404.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Route, route};
use crate::auth::AuthUser;
use crate::chat::{self, ChatMessage, Conversation, NewMessage, SearchHit, Sender};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::client::{Message, Role};
use crate::llm::tokens;
use crate::memory::{self, MemoryInput};
use crate::pagination::{Page, PageRequest};
use crate::validate::{Validator, uuid_param};

/// The component's routes.
pub const ROUTES: &[Route] = &[
    route("POST", "/api/chat", send),
    route("GET", "/api/chat/conversations", list_conversations),
    route("POST", "/api/chat/conversations", create_conversation),
    route(
        "PUT",
        "/api/chat/conversations/{conversation_id}",
        rename_conversation,
    ),
    route(
        "DELETE",
        "/api/chat/conversations/{conversation_id}",
        delete_conversation,
    ),
    route(
        "GET",
        "/api/chat/conversations/{conversation_id}/export",
        export,
    ),
    route("POST", "/api/chat/import", import),
    route("POST", "/api/chat/import/chatgpt", super::imports::chatgpt),
    route(
        "POST",
        "/api/chat/import/open-webui",
        super::imports::open_webui,
    ),
    route("GET", "/api/chat/history/{conversation_id}", history),
    route("POST", "/api/chat/clear", clear),
    route("GET", "/api/chat/search", search),
    route(
        "GET",
        "/api/chat/messages/{message_id}/stream",
        super::reply_streams::follow,
    ),
    route(
        "POST",
        "/api/chat/messages/{message_id}/cancel",
        super::reply_streams::cancel,
    ),
    route(
        "POST",
        "/api/chat/messages/{message_id}/regenerate",
        super::turns::regenerate,
    ),
    route("PUT", "/api/chat/messages/{message_id}", super::turns::edit),
    route(
        "DELETE",
        "/api/chat/messages/{message_id}",
        super::turns::delete_message,
    ),
    route(
        "PUT",
        "/api/chat/conversations/{conversation_id}/active-leaf",
        super::turns::set_active_leaf,
    ),
    route("GET", "/api/arcana/context-memory", list_memories),
    route("POST", "/api/arcana/context-memory", put_memory),
    // Before `{key}`: a memory keyed `search` is read through the list.
    route(
        "GET",
        "/api/arcana/context-memory/search",
        super::semantic::search_memories,
    ),
    route("GET", "/api/arcana/context-memory/{key}", get_memory),
    route("DELETE", "/api/arcana/context-memory/{key}", delete_memory),
];

fn now() -> String {
    crate::time::now_string()
}

pub(super) fn own_conversation(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    id: &str,
) -> ApiResult<Conversation> {
    let id = uuid_param(id, "conversation")?;
    chat::get(ctx.db, caller.id(), &id)?.ok_or_else(|| ApiError::not_found("conversation"))
}

fn check_title(title: &str) -> ApiResult<()> {
    Validator::new()
        .text(title.trim(), "title", 1, 200)
        .finish()
}

/// Body of conversation create and rename.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TitleInput {
    pub title: String,
}

/// The caller's conversations, newest updated first; `?q=` filters titles.
#[utoipa::path(get, path = "/api/chat/conversations", tag = "chat", security(("bearer" = [])),
    params(("q" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Conversation>)))]
pub fn list_conversations(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    _: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let page = PageRequest::from_request(req)?;
    let q = req.query_param("q").filter(|q| !q.trim().is_empty());
    Ok(ApiResponse::json(
        200,
        &chat::list(ctx.db, caller.id(), q.as_deref(), &page)?,
    ))
}

/// Creates an empty conversation.
#[utoipa::path(post, path = "/api/chat/conversations", tag = "chat", security(("bearer" = [])), request_body = TitleInput,
    responses((status = 201, body = Conversation)))]
pub fn create_conversation(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    _: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: TitleInput = req.json()?;
    check_title(&body.title)?;
    Ok(ApiResponse::json(
        201,
        &chat::create(ctx.db, caller.id(), body.title.trim(), &now())?,
    ))
}

/// Renames a conversation.
#[utoipa::path(put, path = "/api/chat/conversations/{conversation_id}", tag = "chat", security(("bearer" = [])), request_body = TitleInput,
    params(("conversation_id" = String, Path)), responses((status = 200, body = Conversation), (status = 404, body = crate::error::Problem)))]
pub fn rename_conversation(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let conv = own_conversation(ctx, &caller, params.get("conversation_id")?)?;
    let body: TitleInput = req.json()?;
    check_title(&body.title)?;
    chat::rename(ctx.db, &conv.id, body.title.trim(), &now())?;
    Ok(ApiResponse::json(
        200,
        &chat::get(ctx.db, caller.id(), &conv.id)?
            .ok_or_else(|| ApiError::not_found("conversation"))?,
    ))
}

/// Deletes a conversation with its messages.
#[utoipa::path(delete, path = "/api/chat/conversations/{conversation_id}", tag = "chat", security(("bearer" = [])),
    params(("conversation_id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub fn delete_conversation(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let conv = own_conversation(ctx, &caller, params.get("conversation_id")?)?;
    transaction(ctx.db, || {
        chat::delete(ctx.db, &conv.id).map_err(ApiError::from)
    })?;
    Ok(ApiResponse::no_content())
}

/// A conversation's messages, oldest to newest, paginated.
#[utoipa::path(get, path = "/api/chat/history/{conversation_id}", tag = "chat", security(("bearer" = [])),
    params(("conversation_id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<ChatMessage>), (status = 404, body = crate::error::Problem)))]
pub fn history(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let id = uuid_param(params.get("conversation_id")?, "conversation")?;
    let page = PageRequest::from_request(req)?;
    let history = chat::history(ctx.db, caller.id(), &id, &page)?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(ApiResponse::json(200, &history))
}

/// Body of `POST /api/chat/clear`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Only this conversation's messages; absent: all of the caller's messages.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// Deletes the caller's messages (all, or one conversation's); conversations stay.
#[utoipa::path(post, path = "/api/chat/clear", tag = "chat", security(("bearer" = [])), request_body = ClearRequest,
    responses((status = 200, description = "{\"deleted\": n}"), (status = 404, body = crate::error::Problem)))]
pub fn clear(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: ClearRequest = if req.body.is_empty() {
        ClearRequest::default()
    } else {
        req.json()?
    };
    let deleted = match body.conversation_id {
        Some(id) => {
            let conv = own_conversation(ctx, &caller, &id)?;
            ctx.db.query(
                "DELETE FROM chat_messages WHERE conversation_id = ?1 RETURNING id",
                &[conv.id.into()],
            )?
        }
        None => ctx.db.query(
            "DELETE FROM chat_messages WHERE user_id = ?1 RETURNING id",
            &[caller.id().into()],
        )?,
    };
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({ "deleted": deleted.rows.len() }),
    ))
}

/// Body of `POST /api/chat`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// Continue this conversation; absent: start one titled from the message.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Hang the message under this one of the conversation (a new branch; it becomes
    /// the active one); absent: under the active leaf.
    #[serde(default)]
    pub parent_id: Option<String>,
    pub message: String,
    /// Model, tags, streaming and memory, as for a regeneration.
    #[serde(flatten)]
    pub options: super::turns::ReplyOptions,
}

/// Answer of `POST /api/chat` (and data of the final `done` event when streaming).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    pub conversation_id: String,
    pub user_message_id: String,
    pub reply_message_id: String,
    pub content: String,
    /// The model that answered.
    pub model_name: String,
    pub usage: crate::llm::client::Usage,
    pub cost: f64,
    pub latency_ms: f64,
    /// Provider calls made, retries and fallbacks included.
    pub attempts: usize,
    /// The model routing chose and why it did not answer, when another one did.
    pub fallback_from: Option<super::llm_calls::FallbackFrom>,
    /// The memories the prompt included, in the order given (pinned first, then by
    /// relevance), with their similarity to the message.
    pub memory_used: Vec<super::semantic::MemoryUse>,
}

impl ChatResponse {
    /// The answer for a stored reply.
    pub fn new(
        conversation_id: String,
        user_message_id: String,
        reply_message_id: String,
        outcome: super::llm_calls::CallOutcome,
    ) -> Self {
        ChatResponse {
            conversation_id,
            user_message_id,
            reply_message_id,
            content: outcome.completion.content,
            model_name: outcome.model.model_name,
            usage: outcome.completion.usage,
            cost: outcome.cost,
            latency_ms: outcome.latency_ms,
            attempts: outcome.attempts,
            fallback_from: outcome.fallback_from,
            memory_used: Vec::new(),
        }
    }
}

/// Share of the context window that memories may take.
const MEMORY_SHARE: i64 = 4;

/// Builds the prompt: system prompt and memories, then as much of the path ending at
/// message `leaf` (the turn's user message) as fits the model's context window (newest
/// kept). Other branches are not part of it.
pub(super) fn build_prompt(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    leaf: &str,
    model_window: i64,
    reply_tokens: i64,
    memory: Option<Option<&[f32]>>,
) -> ApiResult<(Vec<Message>, Vec<super::semantic::MemoryUse>)> {
    let prefs = ctx.preferences(caller.id())?;
    let mut system = prefs.system_prompt.unwrap_or_default();
    let budget = (model_window - reply_tokens).max(256);
    let mut memory_used = Vec::new();
    if let Some(query) = memory {
        let chosen =
            super::semantic::memories_for_prompt(ctx, caller.id(), query, budget / MEMORY_SHARE)?;
        if !chosen.is_empty() {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str("Things to remember about the user:\n");
            let lines: Vec<String> = chosen
                .iter()
                .map(|(m, _)| super::semantic::prompt_line(m))
                .collect();
            system.push_str(&lines.join("\n"));
            let keys: Vec<String> = chosen.iter().map(|(m, _)| m.key.clone()).collect();
            memory::touch(ctx.db, caller.id(), &keys, &now())?;
            memory_used = chosen
                .into_iter()
                .map(|(m, score)| super::semantic::MemoryUse {
                    key: m.key,
                    score,
                    pinned: m.pinned,
                })
                .collect();
        }
    }
    let mut left = budget - tokens::estimate(&system);
    let mut turns = Vec::new();
    // Replies still being generated (this request's own, or another tab's) are not
    // part of the conversation yet.
    for m in chat::path_to(ctx.db, leaf, 500)?
        .into_iter()
        .filter(|m| m.status != "streaming")
    {
        let cost = tokens::estimate(&m.message_content) + 4;
        if cost > left && !turns.is_empty() {
            break;
        }
        left -= cost;
        let role = if m.sender == Sender::User {
            Role::User
        } else {
            Role::Assistant
        };
        turns.push(Message {
            role,
            content: m.message_content,
        });
    }
    turns.reverse();
    let mut messages = Vec::with_capacity(turns.len() + 1);
    if !system.is_empty() {
        messages.push(Message {
            role: Role::System,
            content: system,
        });
    }
    messages.extend(turns);
    Ok((messages, memory_used))
}

/// Sends a message: stores it, calls the chosen model with context, stores the reply.
/// With `stream: true` the answer is `text/event-stream`: `start` (ids), `delta`
/// events (`{"text":…}`), then `done` (a [`ChatResponse`]) or `error`. A client that
/// disconnects does not lose the reply: it is stored when the model finishes (or
/// marked `partial` when the provider fails midway).
#[utoipa::path(post, path = "/api/chat", tag = "chat", security(("bearer" = [])), request_body = ChatRequest,
    responses((status = 200, description = "The answer; with `stream: true` server-sent events (`start`, `delta`s, then `done` or `error`)",
                content((ChatResponse = "application/json"), (super::llm_calls::StreamEvent = "text/event-stream"))),
              (status = 404, body = crate::error::Problem),
              (status = 502, body = crate::error::Problem), (status = 504, body = crate::error::Problem)))]
pub fn send(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let known =
        super::turns::ReplyOptions::fields_with(&["conversation_id", "parent_id", "message"]);
    let body: ChatRequest = req.json_with_fields(&known)?;
    super::turns::check_message(&body.message, "message")?;
    if body.parent_id.is_some() && body.conversation_id.is_none() {
        return Err(ApiError::new(
            422,
            "validation_failed",
            "parent_id needs the conversation_id it belongs to.",
        ));
    }
    let turn = super::turns::Turn {
        conversation_id: body.conversation_id,
        parent: body
            .parent_id
            .map(super::turns::Parent::At)
            .unwrap_or(super::turns::Parent::ActiveLeaf),
        prompt: super::turns::Prompt::New(body.message),
        options: body.options,
    };
    super::turns::answer(ctx, &caller, turn)
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub query: String,
    pub mode: super::semantic::SearchMode,
    /// How vectors were ranked (semantic and hybrid): `index` (libSQL's vector index),
    /// `database` (exactly, in libSQL) or `scan` (exactly, over the newest 5,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranked_by: Option<String>,
    pub hits: Vec<SearchHit>,
}

/// Search over the caller's messages (and titles): `mode=keyword` (default: full text,
/// with snippets), `semantic` (by meaning) or `hybrid` (both rankings fused).
#[utoipa::path(get, path = "/api/chat/search", tag = "chat", security(("bearer" = [])),
    params(("q" = String, Query), ("mode" = Option<String>, Query, description = "keyword (default), semantic or hybrid"),
           ("limit" = Option<i64>, Query)),
    responses((status = 200, body = SearchResults), (status = 400, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub fn search(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let mode = super::semantic::SearchMode::from_request(req)?;
    let q = req.query_param("q").unwrap_or_default();
    if q.trim().is_empty() || q.len() > 500 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must be 1 to 500 characters",
        ));
    }
    let limit = PageRequest::from_request(req)?.limit;
    let (hits, method) = super::semantic::search_messages(ctx, caller.id(), &q, mode, limit)?;
    Ok(ApiResponse::json(
        200,
        &SearchResults {
            query: q,
            mode,
            ranked_by: method.map(|m| super::semantic::method_name(m).to_string()),
            hits,
        },
    ))
}

/// A conversation in the portable JSON form (export and import).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationExport {
    /// Always `arcana.conversation.v1`.
    pub format: String,
    pub title: String,
    pub created_at: String,
    pub messages: Vec<ExportMessage>,
}

/// One message of an export.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportMessage {
    /// The message's id in the export; with it, `parent_id` places the message in the
    /// tree (absent: the message follows the one before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The `id` of an earlier message of the export (`null`: a first message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub sender: Sender,
    pub message_content: String,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
}

const EXPORT_FORMAT: &str = "arcana.conversation.v1";

/// A conversation as JSON (`?format=json`, the default) or Markdown (`?format=markdown`).
#[utoipa::path(get, path = "/api/chat/conversations/{conversation_id}/export", tag = "chat", security(("bearer" = [])),
    params(("conversation_id" = String, Path), ("format" = Option<String>, Query)),
    responses((status = 200, body = ConversationExport), (status = 404, body = crate::error::Problem)))]
pub fn export(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let id = uuid_param(params.get("conversation_id")?, "conversation")?;
    let (conv, messages) = chat::with_messages(ctx.db, caller.id(), &id)?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    match req.query_param("format").as_deref().unwrap_or("json") {
        "json" => Ok(ApiResponse::json(
            200,
            &ConversationExport {
                format: EXPORT_FORMAT.into(),
                title: conv.title,
                created_at: conv.created_at,
                messages: messages
                    .into_iter()
                    .map(|m| ExportMessage {
                        id: Some(m.id),
                        parent_id: m.parent_id,
                        sender: m.sender,
                        message_content: m.message_content,
                        timestamp: m.timestamp,
                        model_name: m.model_name,
                    })
                    .collect(),
            },
        )),
        "markdown" => {
            let mut md = format!("# {}\n\n", conv.title);
            for m in messages {
                let who = match m.sender {
                    Sender::User => "**You**".to_string(),
                    Sender::Llm => format!(
                        "**Assistant** ({})",
                        m.model_name.as_deref().unwrap_or("model")
                    ),
                };
                md.push_str(&format!(
                    "{who} · {}\n\n{}\n\n",
                    m.timestamp, m.message_content
                ));
            }
            Ok(ApiResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/markdown; charset=utf-8".into())],
                body: md.into_bytes(),
            })
        }
        _ => Err(ApiError::bad_request(
            "invalid_format",
            "format is json or markdown",
        )),
    }
}

/// Imports a conversation exported as JSON, as a new conversation of the caller.
#[utoipa::path(post, path = "/api/chat/import", tag = "chat", security(("bearer" = [])), request_body = ConversationExport,
    responses((status = 201, body = Conversation), (status = 422, body = crate::error::Problem)))]
pub fn import(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: ConversationExport = req.json()?;
    let mut v = Validator::new();
    v.check(
        body.format == EXPORT_FORMAT,
        "format",
        "must be arcana.conversation.v1",
    );
    v.text(body.title.trim(), "title", 1, 200);
    v.check(
        body.messages.len() <= 10_000,
        "messages",
        "at most 10000 messages",
    );
    v.check(
        body.messages
            .iter()
            .all(|m| crate::time::parse(&m.timestamp).is_some()),
        "messages",
        "timestamps must be RFC 3339",
    );
    // A parent must be an earlier message of the export.
    let mut seen = std::collections::HashSet::new();
    let bad_parent = body.messages.iter().position(|m| {
        let ok = m
            .parent_id
            .as_ref()
            .is_none_or(|p| seen.contains(p.as_str()));
        if let Some(id) = &m.id {
            seen.insert(id.as_str());
        }
        !ok
    });
    if let Some(i) = bad_parent {
        v.check(
            false,
            &format!("messages[{i}].parent_id"),
            "must be the id of an earlier message",
        );
    }
    v.finish()?;
    let conv = transaction(ctx.db, || {
        let conv = chat::create(ctx.db, caller.id(), body.title.trim(), &now())?;
        let mut new_ids: std::collections::HashMap<&str, String> = Default::default();
        for m in &body.messages {
            if m.id.is_some() {
                let parent = m.parent_id.as_deref().and_then(|p| new_ids.get(p));
                chat::set_active_leaf(ctx.db, &conv.id, parent.map(String::as_str))?;
            }
            let extra = NewMessage {
                model_name: m.model_name.as_deref(),
                ..Default::default()
            };
            let ts = crate::time::parse(&m.timestamp)
                .map(crate::time::format)
                .unwrap_or_else(now);
            let stored = chat::append(
                ctx.db,
                caller.id(),
                &conv.id,
                m.sender,
                &m.message_content,
                &extra,
                &ts,
            )?;
            if let Some(id) = &m.id {
                new_ids.insert(id.as_str(), stored.id);
            }
        }
        Ok::<_, ApiError>(conv)
    })?;
    let conv = chat::get(ctx.db, caller.id(), &conv.id)?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(ApiResponse::json(201, &conv))
}

/// The caller's memories in key order, paginated.
#[utoipa::path(get, path = "/api/arcana/context-memory", tag = "memory", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = Page<memory::Memory>)))]
pub fn list_memories(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let page = PageRequest::from_request(req)?;
    Ok(ApiResponse::json(
        200,
        &memory::list(ctx.db, caller.id(), &page)?,
    ))
}

/// Creates or updates a memory by key (201 when new, 200 when replaced).
#[utoipa::path(post, path = "/api/arcana/context-memory", tag = "memory", security(("bearer" = [])), request_body = MemoryInput,
    responses((status = 201, body = memory::Memory), (status = 200, body = memory::Memory), (status = 422, body = crate::error::Problem)))]
pub fn put_memory(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: MemoryInput = req.json()?;
    Validator::new()
        .check(
            memory::valid_key(&body.key),
            "key",
            "1 to 128 characters: letters, digits, _ . : -",
        )
        .check(
            body.value.to_string().len() <= memory::MAX_VALUE_BYTES,
            "value",
            "at most 16 KiB of JSON",
        )
        .finish()?;
    let (m, created) = memory::upsert(ctx.db, caller.id(), &body, &now())?;
    super::semantic::remember_memory(ctx, caller.id(), &m);
    Ok(ApiResponse::json(if created { 201 } else { 200 }, &m))
}

/// One memory (marks it accessed).
#[utoipa::path(get, path = "/api/arcana/context-memory/{key}", tag = "memory", security(("bearer" = [])),
    params(("key" = String, Path)), responses((status = 200, body = memory::Memory), (status = 404, body = crate::error::Problem)))]
pub fn get_memory(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let m = memory::read(ctx.db, caller.id(), params.get("key")?, &now())?
        .ok_or_else(|| ApiError::not_found("memory"))?;
    Ok(ApiResponse::json(200, &m))
}

/// Deletes a memory.
#[utoipa::path(delete, path = "/api/arcana/context-memory/{key}", tag = "memory", security(("bearer" = [])),
    params(("key" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub fn delete_memory(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    if !memory::delete(ctx.db, caller.id(), params.get("key")?)? {
        return Err(ApiError::not_found("memory"));
    }
    Ok(ApiResponse::no_content())
}
