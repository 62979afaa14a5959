//! Semantic memory and search, on top of [`crate::vectors`]: memories and messages get a
//! vector when written, chats inject the memories most relevant to the new message
//! (plus pinned ones), and message search can rank by meaning or fuse that with
//! keywords. Without an embedder (model files missing) everything falls back to what
//! worked before: memories in key order, keyword search; nothing fails because of it.

use serde::Serialize;
use utoipa::ToSchema;

use super::Ctx;
use crate::chat::{self, SearchHit};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::memory::{self, Memory};
use crate::vectors::provider::ProviderEmbedder;
use crate::vectors::store::{self, Kind, Method};
use crate::vectors::{self, Embedder, rank};

/// Items without a vector of the current model embedded per request, so a new model
/// (or data from before embeddings) is caught up a little at a time.
pub const BACKFILL_PER_REQUEST: usize = 8;

/// Vectors compared in the component when the database cannot rank them itself.
pub const SCAN_LIMIT: usize = 5_000;

/// Everyone's nearest messages the vector index is asked for, at least, before the
/// caller's are kept.
const INDEX_CANDIDATES: usize = 200;

/// Candidates each ranking contributes to a hybrid search.
const HYBRID_DEPTH: i64 = 50;

/// A memory a chat's prompt included.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MemoryUse {
    pub key: String,
    /// Cosine similarity to the message; null for memories included without ranking
    /// (no embedding model, or pinned ones the ranking did not reach).
    pub score: Option<f32>,
    pub pinned: bool,
}

/// The embedder: the provider model an admin chose, else the host's local model.
fn embedder<'c>(ctx: &'c Ctx<'_>) -> Option<Box<dyn Embedder + 'c>> {
    let chosen = ctx.provider_embedder.get_or_init(|| provider_target(ctx));
    match (chosen, ctx.transport) {
        (Some((target, id)), Some(transport)) => Some(Box::new(ProviderEmbedder::new(
            target.clone(),
            transport,
            id,
        ))),
        _ => ctx
            .embedder
            .map(|e| Box::new(Local(e)) as Box<dyn Embedder + 'c>),
    }
}

/// The host's embedder, boxed like a provider's.
struct Local<'e>(&'e dyn Embedder);

impl Embedder for Local<'_> {
    fn model(&self) -> &str {
        self.0.model()
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, vectors::EmbedError> {
        self.0.embed(texts)
    }
}

/// The chosen provider model (its target and id); `None` (the local model) when none is
/// chosen, or when the choice cannot be used (logged: deleted model, key unreadable).
fn provider_target(ctx: &Ctx<'_>) -> Option<(crate::llm::client::Target, String)> {
    let id = match vectors::choice::chosen(ctx.db) {
        Ok(id) => id?,
        Err(e) => {
            tracing::warn!(request_id = ctx.request_id, error = %e, "embedding model choice unreadable");
            return None;
        }
    };
    let usable = || -> ApiResult<crate::llm::client::Target> {
        let model = crate::llm::catalog::get_model(ctx.db, &id)?
            .ok_or_else(|| ApiError::not_found("model"))?;
        Ok(super::llm_calls::target_for(ctx, &model)?.0)
    };
    match usable() {
        Ok(target) => Some((target, id)),
        Err(e) => {
            tracing::warn!(request_id = ctx.request_id, model_id = %id, code = e.code, "chosen embedding model unusable; using the local one");
            None
        }
    }
}

/// `text`'s vector, or `None` (logged) when there is no model or it failed.
pub fn embed(ctx: &Ctx<'_>, text: &str) -> Option<Vec<f32>> {
    let e = embedder(ctx)?;
    match e.embed_one(&vectors::embeddable_text(text)) {
        Ok(v) => Some(v),
        Err(err) => {
            tracing::warn!(request_id = ctx.request_id, error = %err, "no embedding");
            None
        }
    }
}

/// Stores a message's vector (`vector` when already computed). Failures are logged:
/// the backfill catches up later.
pub fn remember_message(
    ctx: &Ctx<'_>,
    user_id: &str,
    message_id: &str,
    text: &str,
    vector: Option<&[f32]>,
) {
    let Some(e) = embedder(ctx) else { return };
    let computed;
    let vector = match vector {
        Some(v) => v,
        None => match embed(ctx, text) {
            Some(v) => {
                computed = v;
                &computed
            }
            None => return,
        },
    };
    if let Err(err) = store::put(
        ctx.db,
        Kind::Message,
        message_id,
        user_id,
        e.model(),
        vector,
        &crate::time::now_string(),
    ) {
        tracing::warn!(request_id = ctx.request_id, error = %err, "message vector not stored");
    }
}

/// Stores a memory's vector (after it was written).
pub fn remember_memory(ctx: &Ctx<'_>, user_id: &str, m: &Memory) {
    let Some(e) = embedder(ctx) else { return };
    let text = store::memory_text(&m.key, &m.value.to_string());
    if let Some(v) = embed(ctx, &text)
        && let Err(err) = store::put(
            ctx.db,
            Kind::Memory,
            &m.id,
            user_id,
            e.model(),
            &v,
            &crate::time::now_string(),
        )
    {
        tracing::warn!(request_id = ctx.request_id, error = %err, "memory vector not stored");
    }
}

/// Embeds a few of the caller's newest messages that have no vector of the current
/// model (memories are caught up while they are ranked, see [`scored_memories`]).
pub fn backfill_messages(ctx: &Ctx<'_>, user_id: &str) {
    let Some(e) = embedder(ctx) else { return };
    let missing = match store::messages_without(ctx.db, user_id, e.model(), BACKFILL_PER_REQUEST) {
        Ok(m) => m,
        Err(err) => {
            tracing::warn!(request_id = ctx.request_id, error = %err, "backfill query failed");
            return;
        }
    };
    let now = crate::time::now_string();
    for (id, text) in missing {
        let Some(v) = embed(ctx, &text) else { return };
        if let Err(err) = store::put(ctx.db, Kind::Message, &id, user_id, e.model(), &v, &now) {
            tracing::warn!(request_id = ctx.request_id, error = %err, "backfill write failed");
            return;
        }
    }
}

/// The caller's memories, each with its similarity to `query` when it has (or now got)
/// a vector of the current model, in key order. One statement, plus the embedding of at
/// most [`BACKFILL_PER_REQUEST`] memories that had none.
fn scored_memories(
    ctx: &Ctx<'_>,
    e: &dyn Embedder,
    user_id: &str,
    query: &[f32],
) -> ApiResult<Vec<(Memory, Option<f32>)>> {
    let mut budget = BACKFILL_PER_REQUEST;
    let now = crate::time::now_string();
    let mut out = Vec::new();
    for (m, vector) in memory::all_with_vectors(ctx.db, user_id, e.model())? {
        let vector = match vector {
            Some(v) => Some(v),
            None if budget > 0 => {
                budget -= 1;
                let text = store::memory_text(&m.key, &m.value.to_string());
                let v = e.embed_one(&vectors::embeddable_text(&text)).ok();
                if let Some(v) = &v
                    && let Err(err) =
                        store::put(ctx.db, Kind::Memory, &m.id, user_id, e.model(), v, &now)
                {
                    tracing::warn!(request_id = ctx.request_id, error = %err, "backfill write failed");
                }
                v
            }
            None => None,
        };
        let score = vector
            .filter(|v| v.len() == query.len())
            .map(|v| rank::cosine(query, &v));
        out.push((m, score));
    }
    Ok(out)
}

/// The caller's memories ranked by similarity to `query`, best first, each with its
/// score; at most `limit`.
pub fn ranked_memories(
    ctx: &Ctx<'_>,
    user_id: &str,
    query: &[f32],
    limit: usize,
) -> ApiResult<Vec<(Memory, f32)>> {
    let Some(e) = embedder(ctx) else {
        return Ok(Vec::new());
    };
    let mut ranked: Vec<(Memory, f32)> = scored_memories(ctx, e.as_ref(), user_id, query)?
        .into_iter()
        .filter_map(|(m, s)| s.map(|s| (m, s)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(limit);
    Ok(ranked)
}

/// The memories for a chat prompt within `budget` tokens: pinned ones first, then
/// those at least `memory_min_score` similar to the message, best first. Without a
/// vector for the message (no model, or semantic memory off), every memory in key
/// order, as far as the budget goes.
pub fn memories_for_prompt(
    ctx: &Ctx<'_>,
    user_id: &str,
    query: Option<&[f32]>,
    budget: i64,
) -> ApiResult<Vec<(Memory, Option<f32>)>> {
    let candidates: Vec<(Memory, Option<f32>)> = match (query, embedder(ctx)) {
        (Some(q), Some(e)) if ctx.settings.semantic_memory => {
            let scored = scored_memories(ctx, e.as_ref(), user_id, q)?;
            let (pinned, rest): (Vec<_>, Vec<_>) = scored.into_iter().partition(|(m, _)| m.pinned);
            let mut relevant: Vec<(Memory, Option<f32>)> = rest
                .into_iter()
                .filter(|(_, s)| s.is_some_and(|s| s >= ctx.settings.memory_min_score))
                .collect();
            relevant.sort_by(|a, b| b.1.unwrap_or(0.0).total_cmp(&a.1.unwrap_or(0.0)));
            pinned.into_iter().chain(relevant).collect()
        }
        _ => memory::all(ctx.db, user_id)?
            .into_iter()
            .map(|m| (m, None))
            .collect(),
    };
    let mut used = 0;
    let mut out = Vec::new();
    for (m, score) in candidates {
        let cost = crate::llm::tokens::estimate(&prompt_line(&m));
        if used + cost > budget {
            if m.pinned {
                continue;
            }
            break;
        }
        used += cost;
        out.push((m, score));
    }
    Ok(out)
}

/// How a memory reads in the system prompt.
pub fn prompt_line(m: &Memory) -> String {
    format!("- {}: {}", m.key, m.value)
}

/// One memory found by [`search_memories`].
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryHit {
    #[serde(flatten)]
    pub memory: Memory,
    /// Cosine similarity to the query (-1 to 1; higher is closer).
    pub score: f32,
}

/// Answer of `GET /api/arcana/context-memory/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemorySearchResults {
    pub query: String,
    pub hits: Vec<MemoryHit>,
}

fn query_param(req: &ApiRequest) -> ApiResult<String> {
    let q = req.query_param("q").unwrap_or_default();
    if q.trim().is_empty() || q.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q must be 1 to 500 characters",
        ));
    }
    Ok(q)
}

fn limit_param(req: &ApiRequest) -> ApiResult<usize> {
    Ok(crate::pagination::PageRequest::from_request(req)?.limit as usize)
}

fn unavailable() -> ApiError {
    ApiError::new(
        503,
        "embeddings_unavailable",
        "Semantic search needs the embedding model, which this deployment does not have \
         (see README, Semantic memory and search).",
    )
}

/// The caller's memories ranked by meaning, each with its similarity score.
#[utoipa::path(get, path = "/api/arcana/context-memory/search", tag = "memory", security(("bearer" = [])),
    params(("q" = String, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = MemorySearchResults), (status = 400, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub fn search_memories(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let q = query_param(req)?;
    let limit = limit_param(req)?;
    let query = embed(ctx, &q).ok_or_else(unavailable)?;
    let hits = ranked_memories(ctx, caller.id(), &query, limit)?
        .into_iter()
        .map(|(memory, score)| MemoryHit { memory, score })
        .collect();
    Ok(ApiResponse::json(
        200,
        &MemorySearchResults { query: q, hits },
    ))
}

/// How `GET /api/chat/search` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Full-text (FTS5, bm25) over messages and titles.
    Keyword,
    /// By meaning: cosine similarity of message vectors.
    Semantic,
    /// Both rankings fused (reciprocal rank fusion).
    Hybrid,
}

impl SearchMode {
    /// `mode=` of a request (default keyword).
    pub fn from_request(req: &ApiRequest) -> ApiResult<SearchMode> {
        match req.query_param("mode").as_deref() {
            None | Some("keyword") => Ok(SearchMode::Keyword),
            Some("semantic") => Ok(SearchMode::Semantic),
            Some("hybrid") => Ok(SearchMode::Hybrid),
            Some(_) => Err(ApiError::bad_request(
                "invalid_mode",
                "mode must be keyword, semantic or hybrid",
            )),
        }
    }
}

/// Messages ranked by meaning: `(hit, similarity)`, best first.
fn semantic_hits(
    ctx: &Ctx<'_>,
    user_id: &str,
    query: &[f32],
    limit: i64,
) -> ApiResult<(Vec<SearchHit>, Method)> {
    let e = embedder(ctx).ok_or_else(unavailable)?;
    backfill_messages(ctx, user_id);
    let indexed = store::nearest_indexed(
        ctx.db,
        user_id,
        e.model(),
        query,
        limit as usize,
        (limit as usize * 10).max(INDEX_CANDIDATES),
    )?;
    let (best, method) = match indexed {
        Some(best) => (best, Method::Index),
        None => store::nearest(
            ctx.db,
            user_id,
            Kind::Message,
            e.model(),
            query,
            limit as usize,
            SCAN_LIMIT,
        )?,
    };
    tracing::debug!(request_id = ctx.request_id, ?method, "semantic ranking");
    let mut hits = chat::hits_for_messages(
        ctx.db,
        user_id,
        &best.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
    )?;
    let mut out = Vec::with_capacity(best.len());
    for (id, score) in best {
        if let Some(i) = hits
            .iter()
            .position(|h| h.message_id.as_deref() == Some(id.as_str()))
        {
            let mut hit = hits.swap_remove(i);
            hit.score = Some(score as f64);
            out.push(hit);
        }
    }
    Ok((out, method))
}

/// How a search's vectors were ranked, as answers say it: `index` (libSQL's vector
/// index), `database` (exactly, by libSQL), `scan` (exactly, in the component, over
/// the newest vectors).
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Index => "index",
        Method::Database => "database",
        Method::Scan { .. } => "scan",
    }
}

/// Search in `mode`: keyword (as before), semantic, or both fused; with how vectors
/// were ranked (not for keyword).
pub fn search_messages(
    ctx: &Ctx<'_>,
    user_id: &str,
    q: &str,
    mode: SearchMode,
    limit: i64,
) -> ApiResult<(Vec<SearchHit>, Option<Method>)> {
    match mode {
        SearchMode::Keyword => Ok((chat::search(ctx.db, user_id, q, limit)?, None)),
        SearchMode::Semantic => {
            let query = embed(ctx, q).ok_or_else(unavailable)?;
            let (hits, method) = semantic_hits(ctx, user_id, &query, limit)?;
            Ok((hits, Some(method)))
        }
        SearchMode::Hybrid => {
            let query = embed(ctx, q).ok_or_else(unavailable)?;
            let keyword = chat::search(ctx.db, user_id, q, HYBRID_DEPTH)?;
            let (semantic, method) = semantic_hits(ctx, user_id, &query, HYBRID_DEPTH)?;
            let key = |h: &SearchHit| match &h.message_id {
                Some(id) => format!("m:{id}"),
                None => format!("c:{}", h.conversation_id),
            };
            let fused = rank::fuse(&[
                keyword.iter().map(key).collect(),
                semantic.iter().map(key).collect(),
            ]);
            let mut pool: Vec<SearchHit> = keyword.into_iter().chain(semantic).collect();
            let mut out = Vec::new();
            for (id, score) in fused.into_iter().take(limit as usize) {
                if let Some(i) = pool.iter().position(|h| key(h) == id) {
                    let mut hit = pool.swap_remove(i);
                    hit.score = Some(score);
                    out.push(hit);
                    pool.retain(|h| key(h) != id);
                }
            }
            Ok((out, Some(method)))
        }
    }
}

/// Whether `db` ranks vectors itself (libSQL), for the benchmark and the logs.
pub fn database_ranks_vectors(db: &dyn Db) -> bool {
    db.query(
        "SELECT vector_distance_cos(vector32('[1]'), vector32('[1]'))",
        &[],
    )
    .is_ok()
}
