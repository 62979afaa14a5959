//! One attempt on one provider for a gateway call: sends the request in the provider's
//! format and answers a chat completion in OpenAI's, or streams chat completion chunks
//! to the client as they arrive. Chunks before the first visible output are held back,
//! so that a provider failing before it can still be retried or fallen back from.

use serde_json::Value;

use super::request::ChatRequest;
use super::{anthropic, openai};
use crate::llm::catalog::ProviderKind;
use crate::llm::client::{
    ErrorCode, Events, HttpRequest, LlmError, Target, Transport, Usage, malformed, map_status,
    read_all, retry_after,
};

/// What one successful attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The chat completion (plain calls only; streamed ones went to the sink).
    pub completion: Option<Value>,
    /// The assistant's text, for keeping the call as a conversation.
    pub text: String,
    pub finish_reason: Option<String>,
}

/// Sends `http` and fails on a non-2xx answer with the provider's error mapped.
fn send<'t>(
    transport: &'t dyn Transport,
    http: &HttpRequest,
) -> Result<Box<dyn crate::llm::client::HttpResponse + 't>, LlmError> {
    let mut resp = transport.send(http)?;
    let status = resp.status();
    if !(200..300).contains(&status) {
        let wait = retry_after(resp.as_ref());
        let body = read_all(resp.as_mut(), 64 * 1024).unwrap_or_default();
        return Err(map_status(status, &String::from_utf8_lossy(&body), wait));
    }
    Ok(resp)
}

fn text_of_completion(v: &Value) -> (String, Option<String>) {
    let choice = &v["choices"][0];
    (
        choice["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        choice["finish_reason"].as_str().map(str::to_string),
    )
}

/// One attempt. `sink` receives each chunk for the client (streamed calls) and answers
/// `false` once the client has gone (the call still runs to its end, so that its usage
/// is exact).
pub fn attempt(
    transport: &dyn Transport,
    target: &Target,
    req: &ChatRequest,
    max_tokens: i64,
    created: i64,
    sink: &mut dyn FnMut(&Value) -> bool,
) -> Result<(Reply, Usage), LlmError> {
    let http = match target.kind {
        ProviderKind::Openai => openai::build(target, req, max_tokens, "/chat/completions"),
        ProviderKind::Anthropic => anthropic::build(target, req, max_tokens)
            .map_err(|e| LlmError::new(ErrorCode::BadRequest, e.detail))?,
    };
    let mut resp = send(transport, &http)?;
    if !req.stream {
        let body = read_all(resp.as_mut(), 16 << 20)?;
        let (completion, usage) = match target.kind {
            ProviderKind::Openai => openai::plain(&body)?,
            ProviderKind::Anthropic => anthropic::plain(&body, &target.model_name, created)?,
        };
        let (text, finish_reason) = text_of_completion(&completion);
        return Ok((
            Reply {
                completion: Some(completion),
                text,
                finish_reason,
            },
            usage,
        ));
    }
    let mut stream = Streamed::new(req.include_usage, sink);
    let mut translator = anthropic::StreamTranslator::new(&target.model_name, created);
    let mut events = Events::new(resp.as_mut());
    let mut finished = false;
    while let Some(event) = events.next_event() {
        let event = event.map_err(|e| stream.failed(e))?;
        let data = event.data.trim();
        if data.is_empty() {
            continue;
        }
        if target.kind == ProviderKind::Openai && data == "[DONE]" {
            finished = true;
            break;
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| stream.failed(malformed(format!("invalid JSON in stream: {e}"))))?;
        match target.kind {
            ProviderKind::Openai => match openai::chunk(&v).map_err(|e| stream.failed(e))? {
                openai::ChunkKind::Usage(u) => {
                    stream.usage = u;
                    stream.pass(&v, true);
                }
                openai::ChunkKind::Delta => stream.pass(&v, false),
            },
            ProviderKind::Anthropic => {
                for chunk in translator
                    .on_event(&event.event, &v)
                    .map_err(|e| stream.failed(e))?
                {
                    stream.pass(&chunk, false);
                }
                if translator.finished {
                    stream.usage = translator.usage;
                    stream.pass(&translator.usage_chunk(), true);
                    finished = true;
                    break;
                }
            }
        }
    }
    if let Some(e) = events.transport_error() {
        return Err(stream.failed(e.into()));
    }
    if !finished {
        return Err(stream.failed(malformed("the stream ended before the end marker")));
    }
    stream.flush();
    let usage = stream.usage;
    Ok((
        Reply {
            completion: None,
            text: stream.text,
            finish_reason: stream.finish_reason,
        },
        usage,
    ))
}

/// A stream's state on the way to the client.
struct Streamed<'s> {
    include_usage: bool,
    sink: &'s mut dyn FnMut(&Value) -> bool,
    /// Chunks not sent yet because nothing visible came before them.
    held: Vec<Value>,
    started: bool,
    client_gone: bool,
    usage: Usage,
    text: String,
    finish_reason: Option<String>,
}

impl<'s> Streamed<'s> {
    fn new(include_usage: bool, sink: &'s mut dyn FnMut(&Value) -> bool) -> Streamed<'s> {
        Streamed {
            include_usage,
            sink,
            held: Vec::new(),
            started: false,
            client_gone: false,
            usage: Usage::default(),
            text: String::new(),
            finish_reason: None,
        }
    }

    fn write(&mut self, chunk: &Value) {
        if !self.client_gone {
            self.client_gone = !(self.sink)(chunk);
        }
    }

    /// Passes a chunk on (a usage chunk only when the client asked for usage).
    fn pass(&mut self, chunk: &Value, is_usage: bool) {
        if is_usage && !self.include_usage {
            return;
        }
        let choice = &chunk["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str() {
            self.text.push_str(t);
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(r.to_string());
        }
        if !self.started && !is_usage && !openai::is_output(chunk) {
            self.held.push(chunk.clone());
            return;
        }
        self.flush();
        self.write(chunk);
    }

    /// Sends what was held back: the output has started.
    fn flush(&mut self) {
        self.started = true;
        for chunk in std::mem::take(&mut self.held) {
            self.write(&chunk);
        }
    }

    /// `e`, marked as after output when some reached the client.
    fn failed(&self, mut e: LlmError) -> LlmError {
        e.output_started = self.started;
        e
    }
}
