//! A local stand-in for LLM providers, speaking the real OpenAI Chat Completions and
//! Anthropic Messages wire formats (JSON and server-sent events) over real HTTP on
//! 127.0.0.1, and failing on request. The requested `model` picks the behaviour:
//!
//! | model | behaviour |
//! | --- | --- |
//! | anything else | echoes the last user message (`echo: …`), with usage |
//! | `fail-401` | 401 invalid key |
//! | `fail-500` | 500 every time |
//! | `flaky-429` | 429 with `Retry-After: 1` on its first call, then answers |
//! | `slow` | waits 3 s before answering |
//! | `malformed` | 200 with invalid JSON (or an invalid event) |
//! | `cut` | a stream that stops without its end marker |
//! | `drip` | streams one word every 100 ms (for resuming and stopping mid-reply) |
//! | `too-long` | 400 `context_length_exceeded` (OpenAI) / `prompt is too long` (Anthropic) |
//! | `tool` | calls the request's first tool with `{"echo": <last user text>}` (when it has tools) |
//!
//! `POST …/embeddings` answers OpenAI's embeddings shape: for each input, 8 numbers
//! computed from its bytes (equal texts, equal vectors).
//! Every request is recorded (path, headers, JSON body) for assertions on prompts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body's length in bytes as received.
    pub raw_len: usize,
    /// The client's address: the same for requests over one kept-alive connection.
    pub peer: SocketAddr,
}

/// A running stand-in.
#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Starts the server on the current tokio runtime.
    pub async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let flaky_seen: Arc<Mutex<bool>> = Arc::default();
        let state = (received.clone(), flaky_seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, peer, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        StandIn { addr, received }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, body: String, headers: &[(&str, &str)]) -> hyper::Response<Body> {
    let mut b = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body)).boxed()).unwrap()
}

fn sse(events: Vec<String>, delay: Duration) -> hyper::Response<Body> {
    let stream = futures::stream::unfold(events.into_iter(), move |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(delay).await;
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(next))), it))
    });
    hyper::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    (received, flaky_seen): (Arc<Mutex<Vec<Received>>>, Arc<Mutex<bool>>),
) -> Result<hyper::Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.clone(),
        raw_len: bytes.len(),
        peer,
    });

    if path.ends_with("/embeddings") {
        return Ok(embeddings(&body));
    }
    let anthropic = path.ends_with("/messages");
    let model = body["model"].as_str().unwrap_or("").to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            c => c.as_str().unwrap_or("").to_string(),
        })
        .unwrap_or_default();
    match model.as_str() {
        "fail-401" => {
            return Ok(full(
                401,
                r#"{"error":{"message":"Incorrect API key provided"}}"#.into(),
                &[],
            ));
        }
        "fail-500" => return Ok(full(500, r#"{"error":{"message":"internal"}}"#.into(), &[])),
        "too-long" if anthropic => {
            return Ok(full(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 250000 tokens > 200000 maximum"}}"#.into(), &[]));
        }
        "too-long" => {
            return Ok(full(400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#.into(), &[]));
        }
        "flaky-429" => {
            let mut seen = flaky_seen.lock().unwrap();
            if !*seen {
                *seen = true;
                return Ok(full(
                    429,
                    r#"{"error":{"message":"rate limited"}}"#.into(),
                    &[("retry-after", "1")],
                ));
            }
        }
        "slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        "malformed" if !stream => return Ok(full(200, "{not json".into(), &[])),
        _ => {}
    }
    let first_tool = if anthropic {
        body["tools"][0]["name"].as_str()
    } else {
        body["tools"][0]["function"]["name"].as_str()
    };
    if model == "tool"
        && let Some(tool) = first_tool
    {
        let args = json!({"echo": last_user}).to_string();
        return Ok(tool_call(anthropic, stream, &model, tool, &args));
    }
    let answer = format!("echo: {last_user}");
    let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
    let prompt_tokens = (bytes.len() / 4) as i64;
    let completion_tokens = words.len() as i64;
    if !stream {
        let v = if anthropic {
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}})
        } else {
            json!({"id": "chatcmpl-1", "object": "chat.completion", "model": model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}})
        };
        return Ok(full(200, v.to_string(), &[]));
    }
    let mut events = Vec::new();
    if anthropic {
        events.push(format!("event: message_start\ndata: {}\n\n", json!({"type": "message_start", "message": {"usage": {"input_tokens": prompt_tokens, "output_tokens": 1}}})));
        for w in &words {
            events.push(format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
        }
        if model == "malformed" {
            events.push("event: content_block_delta\ndata: {oops\n\n".into());
        }
        if model != "cut" {
            events.push(format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": completion_tokens}})));
            events.push(format!(
                "event: message_stop\ndata: {}\n\n",
                json!({"type": "message_stop"})
            ));
        }
    } else {
        for w in &words {
            events.push(format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": w}}]})
            ));
        }
        if model == "malformed" {
            events.push("data: {oops\n\n".into());
        }
        if model != "cut" {
            events.push(format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            ));
            events.push(format!("data: {}\n\n", json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}})));
            events.push("data: [DONE]\n\n".into());
        }
    }
    let pace = if model == "drip" { 100 } else { 20 };
    Ok(sse(events, Duration::from_millis(pace)))
}

/// OpenAI's embeddings answer: 8 numbers per input, from its bytes.
fn embeddings(body: &Value) -> hyper::Response<Body> {
    let inputs: Vec<String> = match &body["input"] {
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect(),
        v => vec![v.as_str().unwrap_or("").to_string()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut v = [0f32; 8];
            for (j, b) in text.bytes().enumerate() {
                v[j % 8] += b as f32 / 255.0;
            }
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.len().div_ceil(4)).sum();
    let v = json!({"object": "list", "data": data, "model": body["model"],
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    full(200, v.to_string(), &[])
}

/// A call of `tool` with `args`, in either wire format, plain or streamed.
fn tool_call(
    anthropic: bool,
    stream: bool,
    model: &str,
    tool: &str,
    args: &str,
) -> hyper::Response<Body> {
    let input: Value = serde_json::from_str(args).unwrap();
    match (anthropic, stream) {
        (true, false) => full(200, json!({"id": "msg_t", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": input}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 11, "output_tokens": 7}}).to_string(), &[]),
        (false, false) => full(200, json!({"id": "chatcmpl-t", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": tool, "arguments": args}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}).to_string(), &[]),
        (true, true) => {
            let (head, tail) = args.split_at(args.len() / 2);
            let events = [
                ("message_start", json!({"type": "message_start", "message": {"id": "msg_t", "usage": {"input_tokens": 11, "output_tokens": 1}}})),
                ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}})),
                ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": head}})),
                ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": tail}})),
                ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}})),
                ("message_stop", json!({"type": "message_stop"})),
            ];
            sse(events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect(), Duration::from_millis(5))
        }
        (false, true) => {
            let chunks = [
                json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
                    "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": tool, "arguments": ""}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}}),
            ];
            let mut events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            events.push("data: [DONE]\n\n".into());
            sse(events, Duration::from_millis(5))
        }
    }
}
