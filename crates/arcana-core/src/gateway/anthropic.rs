//! Anthropic-kind providers behind OpenAI's format: chat completion requests become
//! Messages API requests (system prompt, alternating turns, tools, tool results, tool
//! choice, stop sequences), and answers, plain or streamed, become chat completions
//! (text, tool calls, finish reasons, usage). What Messages cannot do is refused with a
//! 400 naming the parameter before anything is sent.

use serde_json::{Map, Value, json};

use super::request::{ChatRequest, text_of};
use crate::error::ApiError;
use crate::llm::client::{ErrorCode, HttpRequest, LlmError, Target, Usage, malformed};

/// Why this request cannot go to an Anthropic-kind model, if it cannot.
pub fn unsupported(req: &ChatRequest) -> Option<String> {
    let b = &req.body;
    if let Some(f) = b.get("response_format").filter(|f| !f.is_null())
        && f["type"] != "text"
    {
        return Some("response_format (JSON mode) is not supported by Anthropic models".into());
    }
    for field in [
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "prediction",
    ] {
        if b.get(field)
            .is_some_and(|v| !v.is_null() && *v != json!(false))
        {
            return Some(format!("{field} is not supported by Anthropic models"));
        }
    }
    for field in ["frequency_penalty", "presence_penalty"] {
        if b.get(field)
            .and_then(Value::as_f64)
            .is_some_and(|v| v != 0.0)
        {
            return Some(format!("{field} is not supported by Anthropic models"));
        }
    }
    if b.get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m != "text"))
    {
        return Some("only text output is supported by Anthropic models".into());
    }
    for m in req.messages() {
        if let Some(parts) = m["content"].as_array()
            && parts.iter().any(|p| p["type"] != "text")
        {
            return Some("only text content parts can be sent to Anthropic models".into());
        }
    }
    None
}

/// The provider request (callers checked [`unsupported`] first).
pub fn build(target: &Target, req: &ChatRequest, max_tokens: i64) -> Result<HttpRequest, ApiError> {
    let b = &req.body;
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for m in req.messages() {
        let role = m["role"].as_str().unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_of(&m["content"]));
                continue;
            }
            "user" => (
                "user",
                vec![json!({"type": "text", "text": text_of(&m["content"])})],
            ),
            "tool" => (
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m["tool_call_id"],
                            "content": text_of(&m["content"])}),
                ],
            ),
            _ => {
                let mut blocks = Vec::new();
                let text = text_of(&m["content"]);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).map_err(|_| {
                        ApiError::bad_request(
                            "invalid_tool_call",
                            "A tool call's arguments must be a JSON object.",
                        )
                    })?;
                    blocks.push(json!({"type": "tool_use", "id": call["id"],
                                       "name": call["function"]["name"], "input": input}));
                }
                ("assistant", blocks)
            }
        };
        // Messages wants turns to alternate: consecutive ones of a role become one.
        match turns.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => turns.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model_name));
    body.insert("messages".into(), Value::Array(turns));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("stream".into(), json!(req.stream));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = b.get(field).filter(|v| !v.is_null()) {
            body.insert(field.into(), v.clone());
        }
    }
    match b.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(s)) => {
            body.insert("stop_sequences".into(), Value::Array(s.clone()));
        }
        _ => {}
    }
    if let Some(tools) = b.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let mut tool = json!({"name": f["name"],
                    "input_schema": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object"}) }});
                if let Some(d) = f["description"].as_str() {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let no_parallel = b.get("parallel_tool_calls") == Some(&json!(false));
    let mut choice = match b.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) if o.get("type") == Some(&json!("function")) => {
            Some(json!({"type": "tool", "name": o["function"]["name"]}))
        }
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_tool_choice",
                "tool_choice must be none, auto, required or a function.",
            ));
        }
    };
    if no_parallel && b.contains_key("tools") {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = json!(true);
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("anthropic-version".to_string(), "2023-06-01".to_string()),
    ];
    if let Some(key) = &target.api_key {
        headers.push(("x-api-key".into(), key.clone()));
    }
    let base = target.base_url.trim_end_matches('/');
    let url = if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    };
    Ok(HttpRequest {
        url,
        headers,
        body: Value::Object(body).to_string().into_bytes(),
        timeout: target.timeout,
    })
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens})
}

/// A plain Messages answer as a chat completion named `model`.
pub fn plain(body: &[u8], model: &str, created: i64) -> Result<(Value, Usage), LlmError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    let blocks = v["content"]
        .as_array()
        .ok_or_else(|| malformed("no content array"))?;
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            json!({"id": b["id"], "type": "function",
                        "function": {"name": b["name"], "arguments": b["input"].to_string()}})
        })
        .collect();
    let usage = Usage {
        prompt_tokens: v["usage"]["input_tokens"].as_i64().unwrap_or(0),
        completion_tokens: v["usage"]["output_tokens"].as_i64().unwrap_or(0),
    };
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let completion = json!({
        "id": format!("chatcmpl-{}", v["id"].as_str().unwrap_or("anthropic")),
        "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason(v["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage_json(usage),
    });
    Ok((completion, usage))
}

/// Turns a Messages event stream into chat completion chunks.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    /// OpenAI tool-call index of each Messages content block that is a tool use.
    tool_blocks: Vec<(i64, usize)>,
    /// The usage so far (input at the start, output at the end).
    pub usage: Usage,
    /// Whether `message_stop` arrived.
    pub finished: bool,
}

impl StreamTranslator {
    /// A translator naming `model` in every chunk.
    pub fn new(model: &str, created: i64) -> StreamTranslator {
        StreamTranslator {
            id: "chatcmpl-anthropic".into(),
            model: model.into(),
            created,
            tool_blocks: Vec::new(),
            usage: Usage::default(),
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// The usage-only chunk OpenAI sends last when `include_usage` was asked for.
    pub fn usage_chunk(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [], "usage": usage_json(self.usage)})
    }

    /// The chunks one event becomes (often none).
    pub fn on_event(&mut self, event: &str, v: &Value) -> Result<Vec<Value>, LlmError> {
        let kind = v["type"].as_str().unwrap_or(event);
        Ok(match kind {
            "message_start" => {
                if let Some(id) = v["message"]["id"].as_str() {
                    self.id = format!("chatcmpl-{id}");
                }
                self.usage.prompt_tokens =
                    v["message"]["usage"]["input_tokens"].as_i64().unwrap_or(0);
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = self.tool_blocks.len();
                self.tool_blocks
                    .push((v["index"].as_i64().unwrap_or(0), index));
                let b = &v["content_block"];
                vec![self.chunk(
                    json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                                           "function": {"name": b["name"], "arguments": ""}}]}),
                    None,
                )]
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("input_json_delta") => {
                        let block = v["index"].as_i64().unwrap_or(0);
                        let index = self
                            .tool_blocks
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map_or(0, |(_, i)| *i);
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": index,
                                "function": {"arguments": d["partial_json"].as_str().unwrap_or("")}}]}),
                            None,
                        )]
                    }
                    _ => match d["text"].as_str().filter(|t| !t.is_empty()) {
                        Some(t) => vec![self.chunk(json!({"content": t}), None)],
                        None => vec![],
                    },
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_i64() {
                    self.usage.completion_tokens = n;
                }
                match v["delta"]["stop_reason"].as_str() {
                    Some(r) => vec![self.chunk(json!({}), Some(finish_reason(r)))],
                    None => vec![],
                }
            }
            "message_stop" => {
                self.finished = true;
                vec![]
            }
            "error" => {
                let code = if v["error"]["type"] == "overloaded_error" {
                    ErrorCode::UpstreamError
                } else {
                    ErrorCode::BadRequest
                };
                return Err(LlmError::new(code, v["error"].to_string()));
            }
            _ => vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target() -> Target {
        Target {
            kind: crate::llm::catalog::ProviderKind::Anthropic,
            base_url: "http://127.0.0.1:1".into(),
            api_key: Some("k".into()),
            model_name: "claude-x".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn req(v: Value) -> ChatRequest {
        super::super::request::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn tool_turns_become_tool_use_and_tool_result_blocks() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "user", "content": "so?"}],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "stop": "END"}));
        let http = build(&target(), &r, 100).unwrap();
        let body: Value = serde_json::from_slice(&http.body).unwrap();
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["input"]["city"], "Oslo");
        // The tool result and the next user turn are one user message.
        assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(body["messages"][2]["content"][1]["text"], "so?");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["tool_choice"]["type"], "any");
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert!(http.url.ends_with("/v1/messages"));
    }

    #[test]
    fn json_mode_is_refused() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                           "response_format": {"type": "json_object"}}),
        );
        assert!(unsupported(&r).unwrap().contains("response_format"));
    }

    #[test]
    fn a_streamed_tool_call_becomes_tool_call_deltas() {
        let mut t = StreamTranslator::new("claude-x", 1);
        let mut out = Vec::new();
        for (e, v) in [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "tu1", "name": "weather"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\""}}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ] {
            out.extend(t.on_event(e, &v).unwrap());
        }
        assert_eq!(
            out[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "weather"
        );
        assert_eq!(
            out[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\""
        );
        assert_eq!(out[3]["choices"][0]["finish_reason"], "tool_calls");
        assert!(t.finished);
        assert_eq!(
            t.usage,
            Usage {
                prompt_tokens: 5,
                completion_tokens: 9
            }
        );
    }
}
