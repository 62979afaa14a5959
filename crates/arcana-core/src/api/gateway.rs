//! The OpenAI-compatible gateway endpoints: `/v1/chat/completions`, `/v1/models` and
//! `/v1/embeddings`, for the clients people already use (the `openai` SDKs, Continue,
//! LangChain, curl). Authentication is a personal access token with the `llm` scope
//! (or a session token); the caller's allowlists, routing rules, retries, fallback,
//! budget and ledger apply as for `/api/arcana/llm/complete`. Errors are in OpenAI's
//! shape (see [`crate::gateway::errors`]).

use std::cell::Cell;

use serde_json::{Value, json};

use super::Ctx;
use super::llm_calls::{candidates_for, check_budget, cost_of, record_usage, target_for};
use crate::auth::AuthUser;
use crate::chat::{self, NewMessage, Sender};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult};
use crate::gateway::request::{self, AUTO_MODEL, ChatRequest, split_tags, text_of};
use crate::gateway::{anthropic, errors, openai, relay};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::catalog::{self, Model, ProviderKind};
use crate::llm::client::{self, ErrorCode, LlmError};

/// Header naming routing tags, comma-separated (or `metadata.tags` in the body).
pub const TAGS_HEADER: &str = "x-arcana-tags";
/// Header asking (`true`) or declining (`false`) to keep the call as a conversation,
/// overriding the token's `keep_history`.
pub const HISTORY_HEADER: &str = "x-arcana-history";

fn unix_now() -> i64 {
    crate::time::now().unix_timestamp()
}

fn provider_failed(e: &LlmError) -> ApiError {
    let status = match e.code {
        ErrorCode::RateLimited => 429,
        ErrorCode::BadRequest => 400,
        code => code.http_status(),
    };
    let mut err = ApiError::new(
        status,
        e.code.as_str(),
        format!("The model provider failed: {}", e.message),
    );
    if let Some(wait) = e.retry_after {
        err = err.with_header("retry-after", wait.as_secs().max(1).to_string());
    }
    err
}

/// Whether this call is kept as a conversation: the header, else the token's setting.
fn keeps_history(caller: &AuthUser, req: &ApiRequest) -> ApiResult<bool> {
    match req.header_value(HISTORY_HEADER) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError::bad_request(
            "invalid_history_header",
            "x-arcana-history must be true or false.",
        )),
        None => Ok(caller.grant.as_ref().is_some_and(|g| g.keep_history)),
    }
}

/// Creates a chat completion, plain or streamed (`stream: true`, with the usage chunk
/// when `stream_options.include_usage` is set), through routing (`model` names a
/// model, or `arcana/auto` lets the rules choose, with tags from `x-arcana-tags` or
/// `metadata.tags`), retries and fallback. Tools and JSON mode pass through to
/// OpenAI-kind providers; tools are translated for Anthropic-kind ones, and what they
/// cannot do is a 400. The answering model is in `x-arcana-model`; with
/// `x-arcana-history: true` (or a token that keeps history) the call is stored as a
/// conversation (its id in `x-arcana-conversation-id` for plain calls).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway", security(("bearer" = [])),
    request_body(content = Object, description = "OpenAI's chat completion request"),
    responses((status = 200, description = "A chat completion; with `stream: true`, chat completion chunks as server-sent events ending in `data: [DONE]`",
                content((Object = "application/json"), (String = "text/event-stream"))),
              (status = 400, body = crate::gateway::errors::OpenAiErrorBody), (status = 401, body = crate::gateway::errors::OpenAiErrorBody),
              (status = 403, body = crate::gateway::errors::OpenAiErrorBody), (status = 404, body = crate::gateway::errors::OpenAiErrorBody),
              (status = 429, body = crate::gateway::errors::OpenAiErrorBody), (status = 502, body = crate::gateway::errors::OpenAiErrorBody),
              (status = 504, body = crate::gateway::errors::OpenAiErrorBody)))]
pub fn chat_completions(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body = request::parse(&req.body)?;
    let keep = keeps_history(&caller, req)?;
    check_budget(ctx.db, caller.id())?;
    let mut tags = body.metadata_tags();
    if let Some(h) = req.header_value(TAGS_HEADER) {
        tags.extend(split_tags(h));
    }
    let requested = (body.model != AUTO_MODEL).then_some(body.model.as_str());
    let required = crate::llm::tokens::estimate_messages(body.texts().iter().map(String::as_str));
    let decision = super::llm::decide_for(
        ctx,
        &caller,
        &body.last_user_text(),
        requested,
        &tags,
        Some(crate::llm::routing::ContextNeed {
            required_tokens: required,
            reply_tokens: body.max_tokens,
        }),
    )?;
    let (models, candidates) = candidates_for(ctx, &decision)?;
    // Models that cannot serve this request are not tried; the chosen one must.
    let refusal = anthropic::unsupported(&body);
    let cannot = |i: usize| candidates[i].0.kind == ProviderKind::Anthropic && refusal.is_some();
    if cannot(0) {
        return Err(ApiError::bad_request(
            "unsupported_parameter",
            refusal.unwrap_or_default(),
        ));
    }
    let usable: Vec<usize> = (0..models.len()).filter(|&i| !cannot(i)).collect();
    let models: Vec<&Model> = usable.iter().map(|&i| models[i]).collect();
    let candidates: Vec<_> = usable.iter().map(|&i| candidates[i].clone()).collect();
    let transport = ctx
        .transport
        .ok_or_else(|| ApiError::internal("this host cannot make outbound requests"))?;

    let created = unix_now();
    let mut out: Option<Box<dyn super::BodyWriter + '_>> = None;
    let mut client_gone = false;
    let attempts = Cell::new(0usize);
    let first_failure: Cell<Option<ErrorCode>> = Cell::new(None);
    let started = std::time::Instant::now();
    let result = client::run_each(
        &candidates,
        &mut |target| {
            let index = candidates
                .iter()
                .position(|(t, _)| std::ptr::eq(t, target))
                .unwrap_or(0);
            let model = models[index];
            let max_tokens = body
                .max_tokens
                .unwrap_or(model.max_tokens)
                .min(model.max_tokens);
            let mut sink = |chunk: &Value| {
                if out.is_none() && !client_gone {
                    out = ctx.start_stream_with(
                        200,
                        "text/event-stream",
                        answer_headers(model, index, first_failure.get()),
                    );
                    client_gone = out.is_none();
                }
                match out.as_mut() {
                    Some(w) if !client_gone => {
                        client_gone = !w.write(format!("data: {chunk}\n\n").as_bytes());
                        !client_gone
                    }
                    _ => false,
                }
            };
            relay::attempt(transport, target, &body, max_tokens, created, &mut sink)
        },
        &mut |a| {
            attempts.set(attempts.get() + 1);
            if let (0, Err(code)) = (a.candidate, a.outcome) {
                first_failure.set(Some(code));
            }
            record_usage(ctx.db, caller.id(), models[a.candidate], a, body.stream);
        },
        &std::thread::sleep,
    );
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, code = e.code.as_str(), "gateway call failed");
            let err = provider_failed(&e);
            return match out.as_mut() {
                // Output already reached the client: end its stream with the error.
                Some(w) => {
                    if !client_gone {
                        w.write(format!("data: {}\n\n", errors::stream_chunk(&err)).as_bytes());
                    }
                    Ok(ApiResponse::streamed())
                }
                None => Err(err),
            };
        }
    };
    let (index, reply) = reply;
    let model = models[index];
    let conversation = if keep {
        keep_as_conversation(ctx, &caller, &body, model, &reply, latency_ms)
    } else {
        None
    };
    if body.stream {
        if let Some(w) = out.as_mut()
            && !client_gone
        {
            w.write(b"data: [DONE]\n\n");
        }
        if out.is_none() {
            // Nothing was streamed (an empty answer): a stream that only ends.
            if let Some(mut w) = ctx.start_stream_with(
                200,
                "text/event-stream",
                answer_headers(model, index, first_failure.get()),
            ) {
                w.write(b"data: [DONE]\n\n");
            }
        }
        return Ok(ApiResponse::streamed());
    }
    let mut completion = reply.completion.unwrap_or_else(|| json!({}));
    if completion.get("created").is_none() {
        completion["created"] = json!(created);
    }
    let mut resp = ApiResponse::json(200, &completion);
    resp.headers
        .extend(answer_headers(model, index, first_failure.get()));
    resp.headers
        .push(("x-arcana-attempts".into(), attempts.get().to_string()));
    if let Some(id) = conversation {
        resp.headers.push(("x-arcana-conversation-id".into(), id));
    }
    Ok(resp)
}

/// `x-arcana-model` (and `x-arcana-fallback-from` when another model answered).
fn answer_headers(
    model: &Model,
    index: usize,
    first_failure: Option<ErrorCode>,
) -> Vec<(String, String)> {
    let mut headers = vec![("x-arcana-model".to_string(), model.model_name.clone())];
    if index > 0 {
        headers.push((
            "x-arcana-fallback-from".into(),
            first_failure.map_or("", |c| c.as_str()).to_string(),
        ));
    }
    headers
}

/// Stores the request's user and assistant turns and the reply as a new conversation;
/// its id, or `None` (logged) when that failed: the answer is not withheld for it.
fn keep_as_conversation(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    body: &ChatRequest,
    model: &Model,
    reply: &relay::Reply,
    latency_ms: f64,
) -> Option<String> {
    let now = crate::time::now_string();
    let title: String = body
        .messages()
        .iter()
        .find(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    let title = if title.trim().is_empty() {
        "API call".to_string()
    } else {
        title
    };
    let result = transaction(ctx.db, || {
        let conv = chat::create(ctx.db, caller.id(), &title, &now)?;
        for m in body.messages() {
            let sender = match m["role"].as_str() {
                Some("user") => Sender::User,
                Some("assistant") => Sender::Llm,
                _ => continue,
            };
            let text = text_of(&m["content"]);
            if !text.is_empty() {
                chat::append(
                    ctx.db,
                    caller.id(),
                    &conv.id,
                    sender,
                    &text,
                    &NewMessage::default(),
                    &now,
                )?;
            }
        }
        chat::append(
            ctx.db,
            caller.id(),
            &conv.id,
            Sender::Llm,
            &reply.text,
            &NewMessage {
                model_id: Some(&model.id),
                model_name: Some(&model.model_name),
                latency_ms: Some(latency_ms),
                ..Default::default()
            },
            &now,
        )?;
        Ok::<_, ApiError>(conv.id)
    });
    match result {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "cannot keep a gateway call as a conversation");
            None
        }
    }
}

/// The models the caller may use, by the names `model` accepts, and `arcana/auto`.
#[utoipa::path(get, path = "/v1/models", tag = "gateway", security(("bearer" = [])),
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [{\"id\", \"object\": \"model\", \"created\", \"owned_by\"}]}`", body = Object),
              (status = 401, body = crate::gateway::errors::OpenAiErrorBody)))]
pub fn models(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let models = catalog::usable_models(ctx.db, &caller)?;
    let created = |m: &Model| crate::time::parse(&m.created_at).map_or(0, |t| t.unix_timestamp());
    let mut data: Vec<Value> = models
        .iter()
        .map(|m| json!({"id": m.model_name, "object": "model", "created": created(m), "owned_by": m.provider_name}))
        .collect();
    data.push(json!({"id": AUTO_MODEL, "object": "model", "created": 0, "owned_by": "arcana"}));
    Ok(ApiResponse::json(
        200,
        &json!({"object": "list", "data": data}),
    ))
}

/// Creates embeddings with an OpenAI-kind model the caller may use (tag embedding
/// models `embedding` so that routing leaves them out of chats): OpenAI's request and
/// answer, usage in the ledger, retries as for chats.
#[utoipa::path(post, path = "/v1/embeddings", tag = "gateway", security(("bearer" = [])),
    request_body(content = Object, description = "OpenAI's embeddings request"),
    responses((status = 200, description = "OpenAI's embeddings answer", body = Object),
              (status = 400, body = crate::gateway::errors::OpenAiErrorBody), (status = 401, body = crate::gateway::errors::OpenAiErrorBody),
              (status = 404, body = crate::gateway::errors::OpenAiErrorBody), (status = 429, body = crate::gateway::errors::OpenAiErrorBody),
              (status = 502, body = crate::gateway::errors::OpenAiErrorBody), (status = 504, body = crate::gateway::errors::OpenAiErrorBody)))]
pub fn embeddings(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: serde_json::Map<String, Value> = match serde_json::from_slice(&req.body) {
        Ok(Value::Object(b)) => b,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "The body must be a JSON object.",
            ));
        }
    };
    let name = body.get("model").and_then(Value::as_str).unwrap_or("");
    let input_ok = match body.get("input") {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty() && a.len() <= 2048,
        _ => false,
    };
    if !input_ok {
        return Err(ApiError::bad_request(
            "invalid_input",
            "input must be a string or an array of 1 to 2048 inputs.",
        ));
    }
    check_budget(ctx.db, caller.id())?;
    let model = catalog::usable_models(ctx.db, &caller)?
        .into_iter()
        .find(|m| m.id == name || m.model_name == name)
        .ok_or_else(|| {
            ApiError::forbidden(
                "model_not_allowed",
                format!("Model {name:?} does not exist or is not available to you."),
            )
        })?;
    let (target, retries) = target_for(ctx, &model)?;
    if target.kind != ProviderKind::Openai {
        return Err(ApiError::bad_request(
            "unsupported_model",
            "Embeddings need a model on an OpenAI-kind provider.",
        ));
    }
    let transport = ctx
        .transport
        .ok_or_else(|| ApiError::internal("this host cannot make outbound requests"))?;
    let mut upstream = body.clone();
    upstream.insert("model".into(), json!(target.model_name));
    let http = openai::request(&target, "/embeddings", Value::Object(upstream));
    let result = client::run_each(
        &[(target, retries)],
        &mut |_| {
            let mut resp = transport.send(&http)?;
            let status = resp.status();
            let bytes = client::read_all(resp.as_mut(), 64 << 20)?;
            if !(200..300).contains(&status) {
                return Err(client::map_status(
                    status,
                    &String::from_utf8_lossy(&bytes),
                    None,
                ));
            }
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| client::malformed(format!("invalid JSON: {e}")))?;
            if !v["data"].is_array() {
                return Err(client::malformed("no data in the answer"));
            }
            let usage = client::Usage {
                prompt_tokens: v["usage"]["prompt_tokens"].as_i64().unwrap_or(0),
                completion_tokens: 0,
            };
            Ok((v, usage))
        },
        &mut |a| record_usage(ctx.db, caller.id(), &model, a, false),
        &std::thread::sleep,
    );
    match result {
        Ok((_, v)) => {
            tracing::debug!(
                cost = cost_of(&model, openai::usage_of(&v["usage"])),
                "embeddings"
            );
            Ok(ApiResponse::json(200, &v))
        }
        Err(e) => Err(provider_failed(&e)),
    }
}
