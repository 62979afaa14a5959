//! A turn of a conversation — a new message and its reply, an edited message (a new
//! branch), or a regenerated reply (a sibling) — and the branch endpoints: switch the
//! active branch, delete a message with its subtree. `POST /api/chat` is a turn too.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::chat::{ChatResponse, build_prompt, own_conversation};
use crate::auth::AuthUser;
use crate::chat::{self, ChatMessage, MessageStatus, NewMessage, Sender};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::tokens;
use crate::streams;
use crate::validate::{Validator, uuid_param};

/// Where a turn's message hangs.
pub enum Parent {
    /// Under the conversation's active leaf (a plain next message).
    ActiveLeaf,
    /// Under this message (a branch).
    At(String),
    /// As a new first message (editing the first message).
    Root,
}

/// What the model answers.
pub enum Prompt {
    /// A new user message.
    New(String),
    /// An existing user message (regenerating its reply).
    Existing(Box<ChatMessage>),
}

/// How a reply is made (the body of `POST /api/chat/messages/{id}/regenerate`, and
/// flattened into `POST /api/chat` and an edit). Unknown fields are refused by
/// [`ApiRequest::json_with_fields`] with [`ReplyOptions::FIELDS`].
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplyOptions {
    /// A model id or provider model name; otherwise routing chooses.
    #[serde(default)]
    pub model: Option<String>,
    /// Tags for routing rules.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Answer as `text/event-stream`.
    #[serde(default)]
    pub stream: bool,
    /// Inject context memory into the prompt (default true).
    #[serde(default = "yes")]
    pub use_memory: bool,
}

impl ReplyOptions {
    /// The body fields of the options (a test checks them against the type).
    pub const FIELDS: &[&str] = &["model", "tags", "stream", "use_memory"];

    /// `FIELDS` and a body type's own fields: what [`ApiRequest::json_with_fields`] accepts.
    pub fn fields_with(own: &[&'static str]) -> Vec<&'static str> {
        own.iter().chain(Self::FIELDS).copied().collect()
    }
}

impl Default for ReplyOptions {
    fn default() -> Self {
        ReplyOptions {
            model: None,
            tags: Vec::new(),
            stream: false,
            use_memory: true,
        }
    }
}

/// Serde's default for `use_memory`.
fn yes() -> bool {
    true
}

/// One turn to answer.
pub struct Turn {
    /// The conversation; `None` starts one (only with [`Prompt::New`]).
    pub conversation_id: Option<String>,
    pub parent: Parent,
    pub prompt: Prompt,
    pub options: ReplyOptions,
}

fn now() -> String {
    crate::time::now_string()
}

/// Checks a message text from a client.
pub fn check_message(text: &str, field: &str) -> ApiResult<()> {
    Validator::new()
        .check(!text.trim().is_empty(), field, "must not be empty")
        .check(
            text.chars().count() <= 100_000,
            field,
            "must be at most 100000 characters",
        )
        .finish()
}

/// Stores the turn's message (and, streamed, the reply's row) and answers it.
pub fn answer(ctx: &Ctx<'_>, caller: &AuthUser, turn: Turn) -> ApiResult<ApiResponse> {
    super::llm_calls::check_budget(ctx.db, caller.id())?;
    let text = match &turn.prompt {
        Prompt::New(t) => t.clone(),
        Prompt::Existing(m) => m.message_content.clone(),
    };
    // What must reach the model whatever is trimmed: the system prompt and the message
    // (history and memories are fitted into what is left). Checked before anything is
    // stored or any provider is called.
    let prefs = ctx.preferences(caller.id())?;
    let required =
        tokens::estimate_messages([prefs.system_prompt.as_deref().unwrap_or(""), text.as_str()]);
    let decision = super::llm::decide_for(
        ctx,
        caller,
        &text,
        turn.options.model.as_deref(),
        &turn.options.tags,
        Some(crate::llm::routing::ContextNeed {
            required_tokens: required,
            reply_tokens: prefs.max_tokens,
        }),
    )?;
    if turn.options.stream && ctx.streamer.is_none() {
        return Err(ApiError::bad_request(
            "streaming_unavailable",
            "This host cannot stream responses.",
        ));
    }
    let t = now();
    // A streamed reply gets its (empty) row and stream state up front, in the same
    // transaction: its id is in the `start` event, and followers can find it at once.
    let (conversation_id, user_msg, reply_id) = transaction(ctx.db, || {
        let conv = match &turn.conversation_id {
            Some(id) => own_conversation(ctx, caller, id)?,
            None => chat::create(ctx.db, caller.id(), &chat::title_from(&text), &t)?,
        };
        let user_msg = match &turn.prompt {
            Prompt::New(text) => {
                match &turn.parent {
                    Parent::ActiveLeaf => {}
                    Parent::At(id) => {
                        let parent = own_message(ctx, caller, id)?;
                        if parent.conversation_id != conv.id {
                            return Err(ApiError::not_found("message"));
                        }
                        chat::set_active_leaf(ctx.db, &conv.id, Some(&parent.id))?;
                    }
                    Parent::Root => chat::set_active_leaf(ctx.db, &conv.id, None)?,
                }
                let none = NewMessage::default();
                chat::append(ctx.db, caller.id(), &conv.id, Sender::User, text, &none, &t)?
            }
            Prompt::Existing(m) => {
                chat::set_active_leaf(ctx.db, &conv.id, Some(&m.id))?;
                (**m).clone()
            }
        };
        let reply_id = if turn.options.stream {
            let placeholder = NewMessage {
                status: MessageStatus::Partial,
                ..Default::default()
            };
            let reply = chat::append(
                ctx.db,
                caller.id(),
                &conv.id,
                Sender::Llm,
                "",
                &placeholder,
                &t,
            )?;
            streams::begin(ctx.db, &reply.id, caller.id(), &t)?;
            Some(reply.id)
        } else {
            None
        };
        Ok::<_, ApiError>((conv.id, user_msg, reply_id))
    })?;
    // The message's vector: its own (for search) and the query for its memories.
    let query = super::semantic::embed(ctx, &text);
    if matches!(turn.prompt, Prompt::New(_)) {
        super::semantic::remember_message(ctx, caller.id(), &user_msg.id, &text, query.as_deref());
    }
    let (messages, memory_used) = build_prompt(
        ctx,
        caller,
        &user_msg.id,
        decision.model.context_window,
        decision.model.max_tokens,
        turn.options.use_memory.then_some(query.as_deref()),
    )?;
    // A conversation this turn started gets a title from a model after its reply.
    let first_title = turn
        .conversation_id
        .is_none()
        .then(|| chat::title_from(&text));
    if let Some(reply_id) = reply_id {
        let (response, completed) = super::reply_streams::generate(
            ctx,
            caller,
            &decision,
            &messages,
            super::reply_streams::Ids {
                conversation_id: conversation_id.clone(),
                user_message_id: user_msg.id,
                reply_message_id: reply_id.clone(),
            },
            memory_used,
        )?;
        if let Some(answer) = &completed {
            super::semantic::remember_message(ctx, caller.id(), &reply_id, answer, None);
        }
        if let (Some(first), Some(answer)) = (&first_title, completed) {
            super::titles::retitle(ctx, caller, &conversation_id, first, &text, &answer);
        }
        return Ok(response);
    }
    let outcome = super::llm_calls::call_models(
        ctx,
        caller,
        &decision,
        &messages,
        (None, None, None),
        false,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )?;
    let extra = NewMessage {
        model_id: Some(&outcome.model.id),
        model_name: Some(&outcome.model.model_name),
        prompt_tokens: Some(outcome.completion.usage.prompt_tokens),
        completion_tokens: Some(outcome.completion.usage.completion_tokens),
        cost: Some(outcome.cost),
        latency_ms: Some(outcome.latency_ms),
        status: MessageStatus::Complete,
    };
    // A plain next message keeps one total order with concurrent turns (the reply goes
    // after whatever came meanwhile, as before trees); a branch's reply hangs under its
    // own message whatever other turns did to the active leaf.
    let branching = !matches!(
        (&turn.parent, &turn.prompt),
        (Parent::ActiveLeaf, Prompt::New(_))
    );
    let content = &outcome.completion.content;
    let append = || {
        chat::append(
            ctx.db,
            caller.id(),
            &conversation_id,
            Sender::Llm,
            content,
            &extra,
            &now(),
        )
    };
    let reply = if branching {
        transaction(ctx.db, || {
            chat::set_active_leaf(ctx.db, &conversation_id, Some(&user_msg.id))?;
            Ok::<_, ApiError>(append()?)
        })?
    } else {
        append()?
    };
    if let Some(first) = &first_title {
        let answer = &outcome.completion.content;
        super::titles::retitle(ctx, caller, &conversation_id, first, &text, answer);
    }
    // The reply's own vector is left to the next search's backfill: embedding it here
    // would hold the answer back by one embedding.
    let mut response = ChatResponse::new(conversation_id, user_msg.id, reply.id, outcome);
    response.memory_used = memory_used;
    Ok(ApiResponse::json(200, &response))
}

fn own_message(ctx: &Ctx<'_>, caller: &AuthUser, id: &str) -> ApiResult<ChatMessage> {
    let id = uuid_param(id, "message")?;
    chat::get_message(ctx.db, caller.id(), &id)?.ok_or_else(|| ApiError::not_found("message"))
}

/// A new reply to the same message, as a sibling of reply `message_id`; it becomes the
/// active branch. Answers like `POST /api/chat`.
#[utoipa::path(post, path = "/api/chat/messages/{message_id}/regenerate", tag = "chat", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "A reply")),
    request_body(content = ReplyOptions, description = "Optional"),
    responses((status = 200, body = ChatResponse, description = "Or `text/event-stream` with `stream: true`"),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub fn regenerate(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let reply = own_message(ctx, &caller, params.get("message_id").unwrap_or_default())?;
    let options: ReplyOptions = if req.body.is_empty() {
        ReplyOptions::default()
    } else {
        req.json_with_fields(ReplyOptions::FIELDS)?
    };
    if reply.sender != Sender::Llm {
        return Err(ApiError::new(
            422,
            "not_a_reply",
            "Only a reply can be regenerated; edit a message with PUT instead.",
        ));
    }
    let question = reply
        .parent_id
        .as_deref()
        .map(|id| own_message(ctx, &caller, id))
        .transpose()?
        .filter(|m| m.sender == Sender::User)
        .ok_or_else(|| ApiError::new(422, "not_a_reply", "This reply answers no message."))?;
    let turn = Turn {
        conversation_id: Some(reply.conversation_id),
        parent: Parent::ActiveLeaf,
        prompt: Prompt::Existing(Box::new(question)),
        options,
    };
    answer(ctx, &caller, turn)
}

/// Body of `PUT /api/chat/messages/{id}`: the new text, and the reply's options as in
/// `POST /api/chat`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditRequest {
    /// The new text.
    pub content: String,
    #[serde(flatten)]
    pub options: ReplyOptions,
}

/// Edits the user message `message_id`: the new text is added as its sibling (the
/// original and its replies stay, as another branch) and answered; the new branch
/// becomes the active one. Answers like `POST /api/chat`.
#[utoipa::path(put, path = "/api/chat/messages/{message_id}", tag = "chat", security(("bearer" = [])),
    params(("message_id" = String, Path, description = "A message of the user's")),
    request_body = EditRequest,
    responses((status = 200, body = ChatResponse, description = "Or `text/event-stream` with `stream: true`"),
        (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub fn edit(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let original = own_message(ctx, &caller, params.get("message_id").unwrap_or_default())?;
    let body: EditRequest = req.json_with_fields(&ReplyOptions::fields_with(&["content"]))?;
    check_message(&body.content, "content")?;
    if original.sender != Sender::User {
        return Err(ApiError::new(
            422,
            "not_a_user_message",
            "Only your own messages can be edited; regenerate a reply instead.",
        ));
    }
    let turn = Turn {
        conversation_id: Some(original.conversation_id),
        parent: original.parent_id.map(Parent::At).unwrap_or(Parent::Root),
        prompt: Prompt::New(body.content),
        options: body.options,
    };
    answer(ctx, &caller, turn)
}

/// Body of `PUT /api/chat/conversations/{id}/active-leaf`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveLeafRequest {
    /// Any message of the conversation: the active path goes through it and on down
    /// its newest replies.
    pub message_id: String,
}

/// Answer of `PUT /api/chat/conversations/{id}/active-leaf`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveLeaf {
    pub conversation_id: String,
    /// Where the active path now ends.
    pub active_leaf: String,
}

/// Switches branches: the conversation's active path (what history shows and the next
/// prompt is built from) goes through `message_id`.
#[utoipa::path(put, path = "/api/chat/conversations/{conversation_id}/active-leaf", tag = "chat",
    security(("bearer" = [])), params(("conversation_id" = String, Path)), request_body = ActiveLeafRequest,
    responses((status = 200, body = ActiveLeaf), (status = 404, body = crate::error::Problem)))]
pub fn set_active_leaf(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let conv = own_conversation(
        ctx,
        &caller,
        params.get("conversation_id").unwrap_or_default(),
    )?;
    let body: ActiveLeafRequest = req.json()?;
    let message = own_message(ctx, &caller, &body.message_id)?;
    if message.conversation_id != conv.id {
        return Err(ApiError::not_found("message"));
    }
    let leaf = chat::activate(ctx.db, &conv.id, &message.id)?;
    Ok(ApiResponse::json(
        200,
        &ActiveLeaf {
            conversation_id: conv.id,
            active_leaf: leaf,
        },
    ))
}

/// Answer of `DELETE /api/chat/messages/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// The message and everything under it.
    pub deleted: usize,
}

/// Deletes the caller's message and its whole subtree (replies, later turns, other
/// branches under it); an active path through it ends at its parent.
#[utoipa::path(delete, path = "/api/chat/messages/{message_id}", tag = "chat", security(("bearer" = [])),
    params(("message_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = crate::error::Problem)))]
pub fn delete_message(
    ctx: &Ctx<'_>,
    req: &ApiRequest,
    params: &PathParams,
) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let message = own_message(ctx, &caller, params.get("message_id").unwrap_or_default())?;
    let deleted = transaction(ctx.db, || {
        let n = chat::delete_subtree(
            ctx.db,
            &message.conversation_id,
            &message.id,
            message.parent_id.as_deref(),
        )?;
        Ok::<_, ApiError>(n)
    })?;
    tracing::info!(message_id = %message.id, deleted, "message subtree deleted");
    Ok(ApiResponse::json(200, &Deleted { deleted }))
}
