//! The body of `POST /v1/chat/completions`, checked before any provider is called.
//! The body is kept as the client sent it (OpenAI-kind providers receive it as is,
//! fields Arcana does not know included); the fields routing and limits need are
//! read out of it.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// The name that lets routing rules choose the model.
pub const AUTO_MODEL: &str = "arcana/auto";

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 500;

/// A checked chat completion request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body as sent.
    pub body: Map<String, Value>,
    /// `model`: a model name or id, or [`AUTO_MODEL`].
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: whether the client wants the usage chunk.
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<i64>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Parses and checks a request body: 400/422 with the offending field.
pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("The body is not valid JSON: {e}"))
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "The body must be a JSON object.",
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() && m.len() <= 200 => m.clone(),
        _ => return Err(invalid("model", "a model name, or arcana/auto")),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() && m.len() <= MAX_MESSAGES => m,
        _ => return Err(invalid("messages", "send 1 to 500 messages")),
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !ROLES.contains(&role) {
            return Err(invalid(
                &format!("messages[{i}].role"),
                "one of system, developer, user, assistant, tool",
            ));
        }
        match m.get("content") {
            None | Some(Value::Null) if role == "assistant" => {}
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            _ => {
                return Err(invalid(
                    &format!("messages[{i}].content"),
                    "a string or an array of content parts",
                ));
            }
        }
        if role == "tool" && m.get("tool_call_id").and_then(Value::as_str).is_none() {
            return Err(invalid(
                &format!("messages[{i}].tool_call_id"),
                "a tool message answers a tool call: give its id",
            ));
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        _ => return Err(invalid("stream", "true or false")),
    };
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut max_tokens = None;
    for field in ["max_tokens", "max_completion_tokens"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64().filter(|n| (1..=1_000_000).contains(n)) {
                Some(n) => max_tokens = Some(n),
                None => return Err(invalid(field, "an integer from 1 to 1000000")),
            },
        }
    }
    for (field, max) in [("temperature", 2.0), ("top_p", 1.0)] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_f64().is_some_and(|t| (0.0..=max).contains(&t)) => {}
            Some(_) => return Err(invalid(field, &format!("a number from 0 to {max}"))),
        }
    }
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_i64() == Some(1) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "unsupported_parameter",
                "Only n = 1 is supported: one choice per request.",
            ));
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let ok = tools.as_array().is_some_and(|t| {
            t.len() <= 128
                && t.iter()
                    .all(|t| t["type"] == "function" && t["function"]["name"].as_str().is_some())
        });
        if !ok {
            return Err(invalid(
                "tools",
                "at most 128 tools of type function, each with a name",
            ));
        }
    }
    Ok(ChatRequest {
        body,
        model,
        stream,
        include_usage,
        max_tokens,
    })
}

/// The text of a message's `content`: the string, or its text parts joined.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl ChatRequest {
    /// The messages as sent.
    pub fn messages(&self) -> &[Value] {
        self.body["messages"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The last user message's text, which routing rules look at.
    pub fn last_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default()
    }

    /// Every message's text, to estimate the prompt's size.
    pub fn texts(&self) -> Vec<String> {
        let mut texts: Vec<String> = self
            .messages()
            .iter()
            .map(|m| text_of(&m["content"]))
            .collect();
        if let Some(tools) = self.body.get("tools") {
            texts.push(tools.to_string());
        }
        texts
    }

    /// Routing tags: `metadata.tags` (comma-separated, as OpenAI metadata values are
    /// strings).
    pub fn metadata_tags(&self) -> Vec<String> {
        self.body
            .get("metadata")
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_str)
            .map(split_tags)
            .unwrap_or_default()
    }
}

/// Tags from a comma-separated list (the `x-arcana-tags` header or metadata).
pub fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .take(16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(v: Value) -> Result<ChatRequest, ApiError> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn a_minimal_request_parses_and_keeps_unknown_fields() {
        let r = parse_json(serde_json::json!({
            "model": "gpt-x", "messages": [{"role": "user", "content": "hi"}],
            "seed": 7, "stream": true, "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.body["seed"], 7);
        assert_eq!(r.last_user_text(), "hi");
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, field) in [
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (
                serde_json::json!({"model": "m", "messages": []}),
                "messages",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
        ] {
            let e = parse_json(body).unwrap_err();
            assert_eq!(e.errors[0].field, field);
        }
        assert_eq!(parse(b"{").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn text_parts_are_joined() {
        let content =
            serde_json::json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]);
        assert_eq!(text_of(&content), "a\nb");
    }
}
