//! Calling models: `POST /api/arcana/llm/complete` (plain or streamed), the usage
//! ledger behind it, `GET /api/arcana/llm/usage`, and per-user monthly budgets.
//! `POST /api/chat` calls models through [`call_models`] too.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::permissions::Role as UserRole;
use crate::auth::{AuthUser, Permission, require};
use crate::db::{Db, DbError};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::llm::catalog::{self, Model};
use crate::llm::client::{self, Attempt, Message, Params, Role, Target, Usage};
use crate::llm::routing::Decision;
use crate::validate::{Validator, uuid_param};

/// Body of `POST /api/arcana/llm/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub messages: Vec<Message>,
    /// A model id or provider model name; otherwise routing chooses.
    #[serde(default)]
    pub model: Option<String>,
    /// Routing tags, e.g. `["code"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Answer as `text/event-stream`.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
}

/// A finished call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteResponse {
    pub content: String,
    pub model_id: String,
    pub model_name: String,
    pub provider_id: String,
    pub usage: Usage,
    /// USD, from the model's per-token prices.
    pub cost: f64,
    pub latency_ms: f64,
    pub finish_reason: Option<String>,
    /// Provider calls made, retries and fallbacks included.
    pub attempts: usize,
    /// The model routing chose and why it did not answer, when another one did.
    pub fallback_from: Option<FallbackFrom>,
}

/// The model that was chosen but did not answer, and its error code.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FallbackFrom {
    pub model_name: String,
    /// Why it failed: `invalid_api_key`, `rate_limited`, `upstream_error`, ...
    pub code: String,
}

/// What [`call_models`] returns.
pub struct CallOutcome {
    pub model: Model,
    pub completion: client::Completion,
    pub cost: f64,
    pub latency_ms: f64,
    pub attempts: usize,
    pub fallback_from: Option<FallbackFrom>,
}

/// Refuses the call once the caller's month-to-date cost reached their budget.
pub fn check_budget(db: &dyn Db, user_id: &str) -> ApiResult<()> {
    let rows = db.query(
        "SELECT b.monthly_usd, COALESCE((SELECT sum(cost) FROM llm_usage u
             WHERE u.user_id = b.user_id AND u.created_at >= strftime('%Y-%m-01T00:00:00.000Z', 'now')), 0)
         FROM llm_budgets b WHERE b.user_id = ?1",
        &[user_id.into()],
    )?;
    if let Some(r) = rows.first() {
        let (limit, spent) = (r.real(0)?, r.real(1)?);
        if spent >= limit {
            return Err(ApiError::new(
                402,
                "budget_exceeded",
                format!("This month's LLM budget of ${limit:.2} is spent (${spent:.4})."),
            ));
        }
    }
    Ok(())
}

/// Where and how to call `model`: its provider's URL, its opened API key, timeout and
/// retry count.
pub(crate) fn target_for(ctx: &Ctx<'_>, model: &Model) -> ApiResult<(Target, u32)> {
    let (provider, sealed) = catalog::get_provider_with_key(ctx.db, &model.provider_id)?
        .ok_or_else(|| ApiError::not_found("provider"))?;
    let api_key = match sealed {
        Some(s) => {
            let plain = super::llm::key_ring(ctx)?.open(&s, &provider.id)?;
            Some(String::from_utf8(plain).map_err(ApiError::internal)?)
        }
        None => None,
    };
    Ok((
        Target {
            kind: provider.kind,
            base_url: provider.base_url,
            api_key,
            model_name: model.model_name.clone(),
            timeout: Duration::from_secs(provider.timeout_secs.max(1) as u64),
        },
        provider.max_retries.clamp(0, 5) as u32,
    ))
}

/// Writes one ledger row for one provider attempt (a failure to write is logged: the
/// answer was already paid for).
pub(crate) fn record_usage(
    db: &dyn Db,
    user_id: &str,
    model: &Model,
    attempt: &Attempt,
    streamed: bool,
) {
    let cost = cost_of(model, attempt.usage);
    let outcome = match attempt.outcome {
        Ok(()) => "ok",
        Err(code) => code.as_str(),
    };
    let result = db.execute(
        "INSERT INTO llm_usage (id, user_id, model_id, provider_id, model_name, prompt_tokens, completion_tokens,
                                cost, latency_ms, outcome, streamed, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &[
            uuid::Uuid::new_v4().to_string().into(),
            user_id.into(),
            model.id.clone().into(),
            model.provider_id.clone().into(),
            model.model_name.clone().into(),
            attempt.usage.prompt_tokens.into(),
            attempt.usage.completion_tokens.into(),
            cost.into(),
            (attempt.latency.as_secs_f64() * 1000.0).into(),
            outcome.into(),
            streamed.into(),
            crate::time::now_string().into(),
        ],
    );
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record llm usage");
    }
}

/// Cost in USD of `usage` on `model`.
pub fn cost_of(model: &Model, usage: Usage) -> f64 {
    usage.prompt_tokens as f64 * model.input_cost_per_token
        + usage.completion_tokens as f64 * model.output_cost_per_token
}

/// The decided model and its fallbacks, in order, with where to call each.
#[allow(clippy::type_complexity)]
pub(crate) fn candidates_for<'d>(
    ctx: &Ctx<'_>,
    decision: &'d Decision,
) -> ApiResult<(Vec<&'d Model>, Vec<(Target, u32)>)> {
    let models: Vec<&Model> = std::iter::once(&decision.model)
        .chain(decision.fallbacks.iter())
        .collect();
    let mut candidates = Vec::new();
    for m in &models {
        candidates.push(target_for(ctx, m)?);
    }
    Ok((models, candidates))
}

/// Calls the decided model, then its fallbacks, recording every attempt in the ledger.
pub fn call_models(
    ctx: &Ctx<'_>,
    caller: &AuthUser,
    decision: &Decision,
    messages: &[Message],
    params_override: (Option<f64>, Option<f64>, Option<i64>),
    stream: bool,
    on_delta: &mut dyn FnMut(&str) -> std::ops::ControlFlow<()>,
) -> ApiResult<CallOutcome> {
    let transport = ctx
        .transport
        .ok_or_else(|| ApiError::internal("this host cannot make outbound requests"))?;
    let prefs = ctx.preferences(caller.id())?;
    let (models, candidates) = candidates_for(ctx, decision)?;
    let (temperature, top_p, max_tokens) = params_override;
    let max_tokens = max_tokens
        .or(prefs.max_tokens)
        .unwrap_or(decision.model.max_tokens)
        .min(decision.model.max_tokens);
    let params = Params {
        temperature: temperature.or(prefs.temperature),
        top_p: top_p.or(prefs.top_p),
        max_tokens,
    };
    let mut messages = messages.to_vec();
    if let Some(system) = prefs.system_prompt.filter(|s| !s.is_empty())
        && !messages.iter().any(|m| m.role == Role::System)
    {
        messages.insert(
            0,
            Message {
                role: Role::System,
                content: system,
            },
        );
    }
    let mut attempts = 0;
    let mut first_failure: Option<client::ErrorCode> = None;
    let started = std::time::Instant::now();
    let result = client::run(
        transport,
        &candidates,
        &messages,
        &params,
        stream,
        on_delta,
        &mut |a| {
            attempts += 1;
            if let (0, Err(code)) = (a.candidate, a.outcome) {
                first_failure = Some(code);
            }
            record_usage(ctx.db, caller.id(), models[a.candidate], a, stream);
        },
        &std::thread::sleep,
    );
    match result {
        Ok((index, completion)) => Ok(CallOutcome {
            model: models[index].clone(),
            cost: cost_of(models[index], completion.usage),
            completion,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            attempts,
            fallback_from: (index > 0).then(|| FallbackFrom {
                model_name: models[0].model_name.clone(),
                code: first_failure
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            }),
        }),
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, code = e.code.as_str(), "llm call failed");
            Err(ApiError::new(
                e.code.http_status(),
                e.code.as_str(),
                format!("The model provider failed: {}", e.message),
            ))
        }
    }
}

/// Calls a model through routing, retries and fallback. With `stream: true` the answer
/// is `text/event-stream`: `delta` events (`{"text":…}`), then one `done` event with the
/// model, usage and cost, or one `error` event (`{"code":…,"message":…}`).
#[utoipa::path(post, path = "/api/arcana/llm/complete", tag = "llm", security(("bearer" = [])), request_body = CompleteRequest,
    responses((status = 200, description = "The answer; with `stream: true` server-sent events (`delta`s, then `done` or `error`)",
                content((CompleteResponse = "application/json"), (StreamEvent = "text/event-stream"))),
              (status = 402, body = crate::error::Problem),
              (status = 502, body = crate::error::Problem), (status = 504, body = crate::error::Problem)))]
pub fn complete(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: CompleteRequest = req.json()?;
    let mut v = Validator::new();
    v.check(
        !body.messages.is_empty() && body.messages.len() <= 500,
        "messages",
        "send 1 to 500 messages",
    );
    v.check(
        body.messages
            .iter()
            .all(|m| m.content.chars().count() <= 200_000),
        "messages",
        "a message is at most 200000 characters",
    );
    crate::llm::preferences::Preferences {
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: body.max_tokens,
        ..Default::default()
    }
    .validate(&mut v);
    v.finish()?;
    check_budget(ctx.db, caller.id())?;
    let last_user = body
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("");
    // The whole prompt must fit (with the preferences' system prompt when it has none).
    let prefs = ctx.preferences(caller.id())?;
    let has_system = body.messages.iter().any(|m| m.role == Role::System);
    let system = prefs
        .system_prompt
        .as_deref()
        .filter(|_| !has_system)
        .unwrap_or("");
    let required = crate::llm::tokens::estimate_messages(
        body.messages
            .iter()
            .map(|m| m.content.as_str())
            .chain([system]),
    );
    let decision = super::llm::decide_for(
        ctx,
        &caller,
        last_user,
        body.model.as_deref(),
        &body.tags,
        Some(crate::llm::routing::ContextNeed {
            required_tokens: required,
            reply_tokens: body.max_tokens.or(prefs.max_tokens),
        }),
    )?;
    let overrides = (body.temperature, body.top_p, body.max_tokens);

    if body.stream {
        let Some(mut out) = ctx.start_stream(200, "text/event-stream") else {
            return Err(ApiError::bad_request(
                "streaming_unavailable",
                "This host cannot stream responses.",
            ));
        };
        let mut client_gone = false;
        let result = call_models(
            ctx,
            &caller,
            &decision,
            &body.messages,
            overrides,
            true,
            &mut |text| {
                // A client that left does not stop the call: usage is still recorded.
                if !client_gone {
                    client_gone =
                        !out.write(sse("delta", &serde_json::json!({ "text": text })).as_bytes());
                }
                std::ops::ControlFlow::Continue(())
            },
        );
        let last = match result {
            Ok(o) => sse(
                "done",
                &serde_json::to_value(response_of(o)).expect("serializes"),
            ),
            Err(e) => sse(
                "error",
                &serde_json::json!({ "code": e.code, "message": e.detail }),
            ),
        };
        if !client_gone {
            out.write(last.as_bytes());
        }
        return Ok(ApiResponse::streamed());
    }
    let outcome = call_models(
        ctx,
        &caller,
        &decision,
        &body.messages,
        overrides,
        false,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )?;
    Ok(ApiResponse::json(200, &response_of(outcome)))
}

fn response_of(o: CallOutcome) -> CompleteResponse {
    CompleteResponse {
        content: o.completion.content,
        model_id: o.model.id,
        model_name: o.model.model_name,
        provider_id: o.model.provider_id,
        usage: o.completion.usage,
        cost: o.cost,
        latency_ms: o.latency_ms,
        finish_reason: o.completion.finish_reason,
        attempts: o.attempts,
        fallback_from: o.fallback_from,
    }
}

/// One server-sent event as documented: its name and its data, a JSON text (for a
/// `done` event, the same object the non-streamed call answers).
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEvent {
    /// `start`, `delta`, `done`, `error` (and `cancelled` for chat).
    pub event: String,
    /// JSON: `{"text": ...}` for a delta, the answer for `done`, `{"code", "message"}` for `error`.
    pub data: String,
    /// The event's position in the stream, for `Last-Event-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Milliseconds to wait before reconnecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
}

/// One server-sent event.
pub fn sse(event: &str, data: &serde_json::Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// One row of the usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Present in admin reports across users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub model_name: String,
    pub calls: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
}

/// The usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub days: i64,
    pub rows: Vec<UsageRow>,
    pub total_cost: f64,
    /// The caller's monthly budget in USD, if one is set.
    pub monthly_budget_usd: Option<f64>,
}

/// Usage by day and model for the last `days` (default 30, at most 366). Admins may add
/// `?all=true` for every user's usage, broken down by user.
#[utoipa::path(get, path = "/api/arcana/llm/usage", tag = "llm", security(("bearer" = [])),
    params(("days" = Option<i64>, Query), ("all" = Option<bool>, Query)), responses((status = 200, body = UsageReport)))]
pub fn usage(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let days = match req.query_param("days") {
        None => 30,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or_else(|| ApiError::bad_request("invalid_days", "days must be 1 to 366"))?,
    };
    let all = req.query_param("all").as_deref() == Some("true");
    if all && caller.user.role != UserRole::Admin {
        require(&caller, Permission::UsersAdmin)?;
    }
    let since = crate::time::format(crate::time::now() - time::Duration::days(days));
    // One statement: the caller's budget on every row, and one row even without usage.
    let rows = ctx.db.query(
        "SELECT b.budget, t.* FROM (SELECT (SELECT monthly_usd FROM llm_budgets WHERE user_id = ?2) AS budget) b
         LEFT JOIN (SELECT substr(created_at, 1, 10) AS day, CASE WHEN ?3 THEN user_id END AS uid, model_name,
                           count(*) AS calls, sum(outcome <> 'ok') AS errors, sum(prompt_tokens) AS pt,
                           sum(completion_tokens) AS ct, sum(cost) AS cost
                    FROM llm_usage WHERE created_at >= ?1 AND (?3 OR user_id = ?2)
                    GROUP BY day, uid, model_name) t ON 1
         ORDER BY t.day DESC, t.model_name",
        &[since.into(), caller.id().into(), all.into()],
    )?;
    let budget = match rows.first() {
        Some(r) => match r.opt_int(0) {
            Ok(None) => None,
            _ => Some(r.real(0)?),
        },
        None => None,
    };
    let rows = rows
        .iter()
        .filter(|r| r.opt_text(1).ok().flatten().is_some())
        .map(|r| {
            Ok(UsageRow {
                day: r.text(1)?,
                user_id: r.opt_text(2)?,
                model_name: r.text(3)?,
                calls: r.int(4)?,
                errors: r.int(5)?,
                prompt_tokens: r.int(6)?,
                completion_tokens: r.int(7)?,
                cost: r.real(8)?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(ApiResponse::json(
        200,
        &UsageReport {
            days,
            total_cost: rows.iter().map(|r| r.cost).sum(),
            rows,
            monthly_budget_usd: budget,
        },
    ))
}

/// Body of `PUT /api/arcana/llm/budgets/{user_id}`; `null` removes the budget.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    pub monthly_usd: Option<f64>,
}

/// Sets or removes a user's monthly budget (needs `llm:admin`).
#[utoipa::path(put, path = "/api/arcana/llm/budgets/{user_id}", tag = "llm", security(("bearer" = [])), request_body = BudgetInput,
    params(("user_id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub fn put_budget(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    require(&caller, Permission::LlmAdmin)?;
    let user_id = uuid_param(params.get("user_id")?, "user")?;
    let body: BudgetInput = req.json()?;
    let mut v = Validator::new();
    if let Some(m) = body.monthly_usd {
        v.check(
            m.is_finite() && m >= 0.0,
            "monthly_usd",
            "must be 0 or more",
        );
    }
    v.finish()?;
    crate::users::find_by_id(ctx.db, &user_id)?.ok_or_else(|| ApiError::not_found("user"))?;
    match body.monthly_usd {
        Some(m) => ctx.db.execute(
            "INSERT INTO llm_budgets (user_id, monthly_usd, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET monthly_usd = excluded.monthly_usd, updated_at = excluded.updated_at",
            &[user_id.into(), m.into(), crate::time::now_string().into()],
        )?,
        None => ctx.db.execute("DELETE FROM llm_budgets WHERE user_id = ?1", &[user_id.into()])?,
    }
    Ok(ApiResponse::no_content())
}
