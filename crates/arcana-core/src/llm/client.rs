//! The LLM client: OpenAI Chat Completions and Anthropic Messages, plain and streamed
//! (server-sent events), with token usage in both modes, provider errors mapped to
//! stable codes, retries with backoff for retryable errors only, and fallback to the
//! next model while nothing has reached the user yet.
//!
//! The client does no I/O itself: the host passes a [`Transport`] (Spin's outbound
//! `wasi:http` in components), so the same code is unit-tested natively on real wire
//! bytes.

use std::ops::ControlFlow;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::llm::catalog::ProviderKind;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MessageRole)]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Sampling parameters; `None` leaves the provider's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: i64,
}

/// Where and what to call.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model_name: String,
    pub timeout: Duration,
}

/// An outgoing HTTP request, built by the client, sent by the host.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// Why the host could not complete an exchange.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("the host is not in allowed_outbound_hosts: {0}")]
    Denied(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("i/o error: {0}")]
    Io(String),
}

/// A response being received.
pub trait HttpResponse {
    /// The status code.
    fn status(&self) -> u16;
    /// A header value (name case-insensitive).
    fn header(&self, name: &str) -> Option<String>;
    /// The next body chunk; `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError>;
}

/// Sends requests (blocking).
pub trait Transport {
    /// Sends `req` and returns once the response head arrived.
    fn send(&self, req: &HttpRequest) -> Result<Box<dyn HttpResponse + '_>, TransportError>;
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// Stable codes for provider failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidApiKey,
    RateLimited,
    ContextTooLong,
    UpstreamError,
    UpstreamTimeout,
    MalformedResponse,
    BadRequest,
    HostNotAllowed,
}

impl ErrorCode {
    /// The wire name (also stored as the usage ledger's outcome).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ContextTooLong => "context_too_long",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::MalformedResponse => "malformed_response",
            ErrorCode::BadRequest => "upstream_bad_request",
            ErrorCode::HostNotAllowed => "host_not_allowed",
        }
    }

    /// Whether trying the same model again may help.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::UpstreamError | ErrorCode::UpstreamTimeout
        )
    }

    /// The HTTP status to answer the user with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::ContextTooLong => 422,
            _ => 502,
        }
    }
}

/// A failed provider call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct LlmError {
    pub code: ErrorCode,
    pub message: String,
    /// From `Retry-After`, when the provider sent one.
    pub retry_after: Option<Duration>,
    /// Whether part of the answer was already passed on (no retry or fallback then).
    pub output_started: bool,
}

impl LlmError {
    /// An error with nothing passed on yet and no `Retry-After`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> LlmError {
        LlmError {
            code,
            message: message.into(),
            retry_after: None,
            output_started: false,
        }
    }
}

impl From<TransportError> for LlmError {
    fn from(e: TransportError) -> LlmError {
        let code = match e {
            TransportError::Timeout => ErrorCode::UpstreamTimeout,
            TransportError::Denied(_) => ErrorCode::HostNotAllowed,
            TransportError::Connect(_) | TransportError::Io(_) => ErrorCode::UpstreamError,
        };
        LlmError::new(code, e.to_string())
    }
}

/// Builds the provider request.
pub fn build_request(
    target: &Target,
    messages: &[Message],
    params: &Params,
    stream: bool,
) -> HttpRequest {
    let base = target.base_url.trim_end_matches('/');
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let (url, body) = match target.kind {
        ProviderKind::Openai => {
            if let Some(key) = &target.api_key {
                headers.push(("authorization".into(), format!("Bearer {key}")));
            }
            let mut body = json!({
                "model": target.model_name,
                "messages": messages,
                "max_tokens": params.max_tokens,
                "stream": stream,
            });
            if stream {
                // Ask for the usage chunk at the end of the stream.
                body["stream_options"] = json!({"include_usage": true});
            }
            if let Some(t) = params.temperature {
                body["temperature"] = json!(t);
            }
            if let Some(p) = params.top_p {
                body["top_p"] = json!(p);
            }
            (format!("{base}/chat/completions"), body)
        }
        ProviderKind::Anthropic => {
            if let Some(key) = &target.api_key {
                headers.push(("x-api-key".into(), key.clone()));
            }
            headers.push(("anthropic-version".into(), "2023-06-01".into()));
            let system: Vec<&str> = messages
                .iter()
                .filter(|m| m.role == Role::System)
                .map(|m| m.content.as_str())
                .collect();
            let turns: Vec<&Message> = messages.iter().filter(|m| m.role != Role::System).collect();
            let mut body = json!({
                "model": target.model_name,
                "messages": turns,
                "max_tokens": params.max_tokens,
                "stream": stream,
            });
            if !system.is_empty() {
                body["system"] = json!(system.join("\n\n"));
            }
            if let Some(t) = params.temperature {
                body["temperature"] = json!(t);
            }
            if let Some(p) = params.top_p {
                body["top_p"] = json!(p);
            }
            let url = if base.ends_with("/v1") {
                format!("{base}/messages")
            } else {
                format!("{base}/v1/messages")
            };
            (url, body)
        }
    };
    HttpRequest {
        url,
        headers,
        body: body.to_string().into_bytes(),
        timeout: target.timeout,
    }
}

/// Maps a non-2xx answer to an error code.
pub(crate) fn map_status(status: u16, body: &str, retry_after: Option<Duration>) -> LlmError {
    let lower = body.to_ascii_lowercase();
    let code = match status {
        401 | 403 => ErrorCode::InvalidApiKey,
        429 => ErrorCode::RateLimited,
        400 | 413 | 422
            if lower.contains("context_length_exceeded")
                || lower.contains("maximum context length")
                || lower.contains("prompt is too long")
                || lower.contains("too many tokens") =>
        {
            ErrorCode::ContextTooLong
        }
        408 | 504 => ErrorCode::UpstreamTimeout,
        500..=599 => ErrorCode::UpstreamError,
        _ => ErrorCode::BadRequest,
    };
    let snippet: String = body.chars().take(300).collect();
    LlmError {
        retry_after,
        ..LlmError::new(code, format!("provider answered {status}: {snippet}"))
    }
}

/// Reads a whole body, failing beyond `limit` bytes.
pub(crate) fn read_all(resp: &mut dyn HttpResponse, limit: usize) -> Result<Vec<u8>, LlmError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.next_chunk()? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(LlmError::new(
                ErrorCode::MalformedResponse,
                "response too large",
            ));
        }
    }
    Ok(body)
}

/// `Retry-After` in seconds, capped at an hour.
pub(crate) fn retry_after(resp: &dyn HttpResponse) -> Option<Duration> {
    resp.header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

/// `finish_reason` of a stream the caller stopped (`on_delta` answered `Break`).
pub const FINISH_CANCELLED: &str = "cancelled";

/// One call to one model. `on_delta` receives text as it streams (only when `stream`)
/// and may stop it: the completion then has what arrived, `finish_reason`
/// [`FINISH_CANCELLED`] and, as the provider sends usage only at the end, usage
/// estimated from the text.
pub fn call(
    transport: &dyn Transport,
    target: &Target,
    messages: &[Message],
    params: &Params,
    stream: bool,
    on_delta: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Completion, LlmError> {
    let req = build_request(target, messages, params, stream);
    let mut resp = transport.send(&req)?;
    let status = resp.status();
    if !(200..300).contains(&status) {
        let wait = retry_after(resp.as_ref());
        let body = read_all(resp.as_mut(), 64 * 1024).unwrap_or_default();
        return Err(map_status(status, &String::from_utf8_lossy(&body), wait));
    }
    if stream {
        let mut completion = read_stream(target.kind, resp.as_mut(), on_delta)?;
        if completion.finish_reason.as_deref() == Some(FINISH_CANCELLED) {
            let prompt: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
            let usage = &mut completion.usage;
            if usage.prompt_tokens == 0 {
                usage.prompt_tokens = super::tokens::estimate_messages(prompt);
            }
            usage.completion_tokens = usage
                .completion_tokens
                .max(super::tokens::estimate(&completion.content));
        }
        return Ok(completion);
    }
    let body = read_all(resp.as_mut(), 16 << 20)?;
    parse_plain(target.kind, &body)
}

/// A response that does not follow the provider's protocol.
pub(crate) fn malformed(what: impl Into<String>) -> LlmError {
    LlmError::new(ErrorCode::MalformedResponse, what)
}

/// Parses a non-streamed answer.
pub fn parse_plain(kind: ProviderKind, body: &[u8]) -> Result<Completion, LlmError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    match kind {
        ProviderKind::Openai => {
            let choice = &v["choices"][0];
            let content = choice["message"]["content"]
                .as_str()
                .ok_or_else(|| malformed("no choices[0].message.content"))?;
            Ok(Completion {
                content: content.to_string(),
                usage: Usage {
                    prompt_tokens: v["usage"]["prompt_tokens"].as_i64().unwrap_or(0),
                    completion_tokens: v["usage"]["completion_tokens"].as_i64().unwrap_or(0),
                },
                finish_reason: choice["finish_reason"].as_str().map(str::to_string),
            })
        }
        ProviderKind::Anthropic => {
            let blocks = v["content"]
                .as_array()
                .ok_or_else(|| malformed("no content array"))?;
            let content: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            Ok(Completion {
                content,
                usage: Usage {
                    prompt_tokens: v["usage"]["input_tokens"].as_i64().unwrap_or(0),
                    completion_tokens: v["usage"]["output_tokens"].as_i64().unwrap_or(0),
                },
                finish_reason: v["stop_reason"].as_str().map(str::to_string),
            })
        }
    }
}

/// The server-sent events of a response body, one at a time (blocking).
pub(crate) struct Events<'a> {
    inner: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<eventsource_stream::Event, String>> + 'a>,
    >,
    transport_error: std::rc::Rc<std::cell::RefCell<Option<TransportError>>>,
}

impl<'a> Events<'a> {
    /// Parses `resp`'s body as an event stream.
    pub(crate) fn new(resp: &'a mut dyn HttpResponse) -> Events<'a> {
        use eventsource_stream::Eventsource;
        let transport_error: std::rc::Rc<std::cell::RefCell<Option<TransportError>>> =
            Default::default();
        let seen = transport_error.clone();
        let chunks = futures::stream::poll_fn(move |_| {
            std::task::Poll::Ready(match resp.next_chunk() {
                Ok(Some(c)) => Some(Ok::<Vec<u8>, std::io::Error>(c)),
                Ok(None) => None,
                Err(e) => {
                    *seen.borrow_mut() = Some(e);
                    None
                }
            })
        });
        Events {
            inner: Box::pin(chunks.eventsource().map(|e| e.map_err(|e| e.to_string()))),
            transport_error,
        }
    }

    /// The next event; `None` at the end of the body (or when the transport failed:
    /// see [`Events::transport_error`]).
    pub(crate) fn next_event(&mut self) -> Option<Result<eventsource_stream::Event, LlmError>> {
        futures::executor::block_on(self.inner.next())
            .map(|e| e.map_err(|e| malformed(format!("bad event stream: {e}"))))
    }

    /// Why the body ended early, if the transport failed.
    pub(crate) fn transport_error(&self) -> Option<TransportError> {
        self.transport_error.borrow_mut().take()
    }
}

/// Reads a server-sent-event stream, passing text deltas on as they arrive.
fn read_stream(
    kind: ProviderKind,
    resp: &mut dyn HttpResponse,
    on_delta: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Completion, LlmError> {
    let mut events = Events::new(resp);
    let mut completion = Completion {
        content: String::new(),
        usage: Usage::default(),
        finish_reason: None,
    };
    let mut finished = false;
    let fail = |completion: &Completion, mut e: LlmError| {
        e.output_started = !completion.content.is_empty();
        e
    };
    while let Some(event) = events.next_event() {
        let event = event.map_err(|e| fail(&completion, e))?;
        if kind == ProviderKind::Openai && event.data.trim() == "[DONE]" {
            finished = true;
            break;
        }
        if event.data.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&event.data).map_err(|e| {
            fail(
                &completion,
                malformed(format!("invalid JSON in stream: {e}")),
            )
        })?;
        let delta = match kind {
            ProviderKind::Openai => {
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    completion.usage.prompt_tokens = u["prompt_tokens"].as_i64().unwrap_or(0);
                    completion.usage.completion_tokens =
                        u["completion_tokens"].as_i64().unwrap_or(0);
                }
                if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                    completion.finish_reason = Some(r.to_string());
                }
                if v.get("error").is_some() {
                    return Err(fail(
                        &completion,
                        LlmError::new(ErrorCode::UpstreamError, v["error"].to_string()),
                    ));
                }
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            }
            ProviderKind::Anthropic => match v["type"].as_str().unwrap_or(event.event.as_str()) {
                "message_start" => {
                    completion.usage.prompt_tokens =
                        v["message"]["usage"]["input_tokens"].as_i64().unwrap_or(0);
                    None
                }
                "content_block_delta" => v["delta"]["text"].as_str().map(str::to_string),
                "message_delta" => {
                    if let Some(n) = v["usage"]["output_tokens"].as_i64() {
                        completion.usage.completion_tokens = n;
                    }
                    completion.finish_reason =
                        v["delta"]["stop_reason"].as_str().map(str::to_string);
                    None
                }
                "message_stop" => {
                    finished = true;
                    break;
                }
                "error" => {
                    let code = if v["error"]["type"] == "overloaded_error" {
                        ErrorCode::UpstreamError
                    } else {
                        ErrorCode::BadRequest
                    };
                    return Err(fail(
                        &completion,
                        LlmError::new(code, v["error"].to_string()),
                    ));
                }
                _ => None,
            },
        };
        if let Some(text) = delta.filter(|t| !t.is_empty()) {
            completion.content.push_str(&text);
            if on_delta(&text).is_break() {
                // Dropping the response closes the connection: the provider stops.
                completion.finish_reason = Some(FINISH_CANCELLED.to_string());
                return Ok(completion);
            }
        }
    }
    if let Some(e) = events.transport_error() {
        return Err(fail(&completion, e.into()));
    }
    if !finished {
        return Err(fail(
            &completion,
            malformed("the stream ended before the end marker"),
        ));
    }
    Ok(completion)
}

/// One attempt, as recorded in the usage ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Index into the candidates passed to [`run`].
    pub candidate: usize,
    pub usage: Usage,
    pub latency: Duration,
    /// `Ok(())` or the failure's code.
    pub outcome: Result<(), ErrorCode>,
}

/// Longest wait between retries, whatever `Retry-After` says.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Calls the candidates in order: each up to `1 + retries` times for retryable errors
/// (waiting `Retry-After` or 250 ms doubling), moving to the next candidate on other
/// errors, and stopping at the first error after output reached the user.
/// `record` sees every attempt; `now` measures latency; `sleep` waits.
#[allow(clippy::too_many_arguments)]
pub fn run(
    transport: &dyn Transport,
    candidates: &[(Target, u32)],
    messages: &[Message],
    params: &Params,
    stream: bool,
    on_delta: &mut dyn FnMut(&str) -> ControlFlow<()>,
    record: &mut dyn FnMut(&Attempt),
    sleep: &dyn Fn(Duration),
) -> Result<(usize, Completion), LlmError> {
    run_each(
        candidates,
        &mut |target| {
            call(transport, target, messages, params, stream, on_delta).map(|c| {
                let usage = c.usage;
                (c, usage)
            })
        },
        record,
        sleep,
    )
}

/// One attempt on a target: its output and the usage to record.
pub type AttemptFn<'a, T> = dyn FnMut(&Target) -> Result<(T, Usage), LlmError> + 'a;

/// [`run`]'s retries and fallback around any call: `call` makes one attempt on a target
/// and answers its result with the usage to record. The gateway uses it for calls in
/// OpenAI's own shapes.
pub fn run_each<T>(
    candidates: &[(Target, u32)],
    call: &mut AttemptFn<'_, T>,
    record: &mut dyn FnMut(&Attempt),
    sleep: &dyn Fn(Duration),
) -> Result<(usize, T), LlmError> {
    let mut last = LlmError::new(ErrorCode::UpstreamError, "no model to call");
    for (index, (target, retries)) in candidates.iter().enumerate() {
        for attempt in 0..=*retries {
            let started = std::time::Instant::now();
            let result = call(target);
            let latency = started.elapsed();
            match result {
                Ok((output, usage)) => {
                    record(&Attempt {
                        candidate: index,
                        usage,
                        latency,
                        outcome: Ok(()),
                    });
                    return Ok((index, output));
                }
                Err(e) => {
                    record(&Attempt {
                        candidate: index,
                        usage: Usage::default(),
                        latency,
                        outcome: Err(e.code),
                    });
                    if e.output_started {
                        return Err(e);
                    }
                    let retry = e.code.retryable() && attempt < *retries;
                    if retry {
                        let backoff = e
                            .retry_after
                            .unwrap_or(Duration::from_millis(250 << attempt));
                        sleep(backoff.min(MAX_BACKOFF));
                    }
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A canned answer: status, headers, body chunks.
    type Answer = (u16, Vec<(String, String)>, Vec<Vec<u8>>);

    /// Plays back canned HTTP exchanges, chunk by chunk, and records what was sent.
    struct Recorded {
        answers: RefCell<Vec<Answer>>,
        sent: RefCell<Vec<HttpRequest>>,
    }

    struct Playing {
        status: u16,
        headers: Vec<(String, String)>,
        chunks: std::collections::VecDeque<Vec<u8>>,
    }

    impl HttpResponse for Playing {
        fn status(&self) -> u16 {
            self.status
        }
        fn header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
            Ok(self.chunks.pop_front())
        }
    }

    impl Transport for Recorded {
        fn send(&self, req: &HttpRequest) -> Result<Box<dyn HttpResponse + '_>, TransportError> {
            self.sent.borrow_mut().push(req.clone());
            let (status, headers, chunks) = self.answers.borrow_mut().remove(0);
            Ok(Box::new(Playing {
                status,
                headers,
                chunks: chunks.into(),
            }))
        }
    }

    fn target(kind: ProviderKind) -> Target {
        Target {
            kind,
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: Some("k".into()),
            model_name: "m".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn msgs() -> Vec<Message> {
        vec![
            Message {
                role: Role::System,
                content: "be brief".into(),
            },
            Message {
                role: Role::User,
                content: "hi".into(),
            },
        ]
    }

    #[test]
    fn openai_stream_with_usage_split_at_odd_places() {
        let wire = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        let chunks: Vec<Vec<u8>> = wire.as_bytes().chunks(13).map(|c| c.to_vec()).collect();
        let t = Recorded {
            answers: RefCell::new(vec![(200, vec![], chunks)]),
            sent: RefCell::new(vec![]),
        };
        let mut deltas = Vec::new();
        let c = call(
            &t,
            &target(ProviderKind::Openai),
            &msgs(),
            &Params {
                max_tokens: 10,
                ..Default::default()
            },
            true,
            &mut |d| {
                deltas.push(d.to_string());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(c.content, "Hello");
        assert_eq!(deltas, vec!["Hel", "lo"]);
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 7,
                completion_tokens: 2
            }
        );
        let sent: Value = serde_json::from_slice(&t.sent.borrow()[0].body).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(
            t.sent.borrow()[0].url,
            "http://127.0.0.1:1/v1/chat/completions"
        );
    }

    #[test]
    fn a_stopped_stream_keeps_its_text_and_estimates_usage() {
        let wire = "data: {\"choices\":[{\"delta\":{\"content\":\"one \"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"two \"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"three\"}}]}\n\ndata: [DONE]\n\n";
        let t = Recorded {
            answers: RefCell::new(vec![(200, vec![], vec![wire.as_bytes().to_vec()])]),
            sent: RefCell::new(vec![]),
        };
        let mut seen = 0;
        let c = call(
            &t,
            &target(ProviderKind::Openai),
            &msgs(),
            &Params::default(),
            true,
            &mut |_| {
                seen += 1;
                if seen == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!(c.content, "one two ");
        assert_eq!(c.finish_reason.as_deref(), Some(FINISH_CANCELLED));
        assert!(
            c.usage.prompt_tokens > 0 && c.usage.completion_tokens > 0,
            "{:?}",
            c.usage
        );
    }

    #[test]
    fn anthropic_stream_and_request_shape() {
        let wire = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let t = Recorded {
            answers: RefCell::new(vec![(200, vec![], vec![wire.as_bytes().to_vec()])]),
            sent: RefCell::new(vec![]),
        };
        let c = call(
            &t,
            &target(ProviderKind::Anthropic),
            &msgs(),
            &Params {
                max_tokens: 10,
                ..Default::default()
            },
            true,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!(
            (
                c.content.as_str(),
                c.usage.prompt_tokens,
                c.usage.completion_tokens
            ),
            ("Hi", 12, 3)
        );
        let req = &t.sent.borrow()[0];
        assert_eq!(req.url, "http://127.0.0.1:1/v1/messages");
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert!(
            req.headers
                .iter()
                .any(|(k, v)| k == "x-api-key" && v == "k")
        );
    }

    #[test]
    fn a_cut_stream_is_malformed_and_marks_output_started() {
        let wire = "data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n";
        let t = Recorded {
            answers: RefCell::new(vec![(200, vec![], vec![wire.as_bytes().to_vec()])]),
            sent: RefCell::new(vec![]),
        };
        let e = call(
            &t,
            &target(ProviderKind::Openai),
            &msgs(),
            &Params::default(),
            true,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedResponse);
        assert!(e.output_started);
    }

    #[test]
    fn statuses_map_to_stable_codes() {
        assert_eq!(map_status(401, "", None).code, ErrorCode::InvalidApiKey);
        assert_eq!(map_status(429, "", None).code, ErrorCode::RateLimited);
        assert_eq!(
            map_status(
                400,
                "{\"error\":{\"code\":\"context_length_exceeded\"}}",
                None
            )
            .code,
            ErrorCode::ContextTooLong
        );
        assert_eq!(
            map_status(400, "prompt is too long: 300000 tokens", None).code,
            ErrorCode::ContextTooLong
        );
        assert_eq!(map_status(503, "", None).code, ErrorCode::UpstreamError);
        assert_eq!(map_status(400, "bad", None).code, ErrorCode::BadRequest);
        assert!(parse_plain(ProviderKind::Openai, b"{not json").is_err());
    }

    #[test]
    fn retries_honour_retry_after_then_fall_back_on_other_errors() {
        let ok = serde_json::to_vec(&json!({"choices":[{"message":{"content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}})).unwrap();
        let t = Recorded {
            answers: RefCell::new(vec![
                (
                    429,
                    vec![("retry-after".into(), "2".into())],
                    vec![b"slow down".to_vec()],
                ),
                (500, vec![], vec![b"oops".to_vec()]),
                (401, vec![], vec![b"bad key".to_vec()]),
                (200, vec![], vec![ok]),
            ]),
            sent: RefCell::new(vec![]),
        };
        let waits = RefCell::new(Vec::new());
        let mut attempts = Vec::new();
        let candidates = vec![
            (target(ProviderKind::Openai), 1),
            (target(ProviderKind::Openai), 3),
            (target(ProviderKind::Openai), 0),
        ];
        let (index, c) = run(
            &t,
            &candidates,
            &msgs(),
            &Params::default(),
            false,
            &mut |_| ControlFlow::Continue(()),
            &mut |a| attempts.push(a.outcome),
            &|d| waits.borrow_mut().push(d),
        )
        .unwrap();
        assert_eq!((index, c.content.as_str()), (2, "done"));
        // 429 then 500 on the first model (one retry), 401 is not retried, third model answers.
        assert_eq!(
            attempts,
            vec![
                Err(ErrorCode::RateLimited),
                Err(ErrorCode::UpstreamError),
                Err(ErrorCode::InvalidApiKey),
                Ok(())
            ]
        );
        assert_eq!(*waits.borrow(), vec![Duration::from_secs(2)]);
    }
}
