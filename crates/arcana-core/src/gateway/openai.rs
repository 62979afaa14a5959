//! OpenAI-kind providers: the client's request goes through as sent (tools, JSON mode
//! and fields Arcana does not know included), with the provider's model name, the
//! model's token limit, and the usage chunk always requested so that the ledger gets
//! exact streamed usage whether or not the client asked for it.

use serde_json::{Value, json};

use super::request::ChatRequest;
use crate::llm::client::{HttpRequest, LlmError, Target, Usage, malformed};

/// The provider request.
pub fn build(target: &Target, req: &ChatRequest, max_tokens: i64, path: &str) -> HttpRequest {
    let mut body = req.body.clone();
    body.insert("model".into(), json!(target.model_name));
    if body.contains_key("max_completion_tokens") {
        body.insert("max_completion_tokens".into(), json!(max_tokens));
        body.remove("max_tokens");
    } else {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if req.stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    request(target, path, Value::Object(body))
}

/// A POST of `body` to `path` under the provider's base URL, with its key.
pub fn request(target: &Target, path: &str, body: Value) -> HttpRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = &target.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    HttpRequest {
        url: format!("{}{path}", target.base_url.trim_end_matches('/')),
        headers,
        body: body.to_string().into_bytes(),
        timeout: target.timeout,
    }
}

/// Usage in OpenAI's shape (`prompt_tokens`, `completion_tokens`).
pub fn usage_of(v: &Value) -> Usage {
    Usage {
        prompt_tokens: v["prompt_tokens"].as_i64().unwrap_or(0),
        completion_tokens: v["completion_tokens"].as_i64().unwrap_or(0),
    }
}

/// A plain answer: checked to be a chat completion, with its usage.
pub fn plain(body: &[u8]) -> Result<(Value, Usage), LlmError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    if !v["choices"].is_array() {
        return Err(malformed("no choices in the answer"));
    }
    let usage = usage_of(&v["usage"]);
    Ok((v, usage))
}

/// What one streamed chunk means.
#[derive(Debug, PartialEq)]
pub enum ChunkKind {
    /// Role, text, tool-call or finish deltas: passed on.
    Delta,
    /// The usage-only chunk at the end (empty `choices`).
    Usage(Usage),
}

/// Classifies a streamed chunk; an `error` object in it is a failure.
pub fn chunk(v: &Value) -> Result<ChunkKind, LlmError> {
    if let Some(e) = v.get("error") {
        return Err(LlmError::new(
            crate::llm::client::ErrorCode::UpstreamError,
            e.to_string(),
        ));
    }
    match v.get("usage").filter(|u| u.is_object()) {
        Some(u) if v["choices"].as_array().is_none_or(Vec::is_empty) => {
            Ok(ChunkKind::Usage(usage_of(u)))
        }
        _ => Ok(ChunkKind::Delta),
    }
}

/// Whether a chunk carries something a person would see (text, a tool call or the
/// end): chunks before the first one are held back, so a failure before it can still
/// fall back to another model.
pub fn is_output(v: &Value) -> bool {
    let choice = &v["choices"][0];
    let delta = &choice["delta"];
    delta["content"].as_str().is_some_and(|c| !c.is_empty())
        || delta["tool_calls"].is_array()
        || delta["refusal"].as_str().is_some_and(|c| !c.is_empty())
        || choice["finish_reason"].is_string()
}
