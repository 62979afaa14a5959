//! Outbound HTTP for the LLM client over `wasi:http/outgoing-handler@0.2.0` (what Spin
//! provides), used blocking: one component instance serves one request, so waiting on
//! a pollable is the simplest correct way to stream a provider's answer.

use arcana_core::llm::client::{HttpRequest, HttpResponse, Transport, TransportError};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{InputStream, StreamError};

/// Largest write `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

/// The component's outbound HTTP.
pub struct WasiTransport;

fn transport_error(e: ErrorCode) -> TransportError {
    match e {
        ErrorCode::HttpRequestDenied => {
            TransportError::Denied("see allowed_outbound_hosts in spin.toml".into())
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout => TransportError::Timeout,
        other => TransportError::Connect(format!("{other:?}")),
    }
}

impl Transport for WasiTransport {
    fn send(&self, req: &HttpRequest) -> Result<Box<dyn HttpResponse + '_>, TransportError> {
        let (scheme, rest) = req
            .url
            .split_once("://")
            .ok_or_else(|| TransportError::Connect(format!("bad URL {}", req.url)))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut headers: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        // The body's size is known: say so, rather than let the host send it chunked,
        // which some OpenAI-compatible servers and proxies refuse.
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            headers.push((
                "content-length".into(),
                req.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| TransportError::Connect(format!("bad header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let bad = |what: &str| TransportError::Connect(format!("cannot set {what}"));
        outgoing
            .set_method(&Method::Post)
            .map_err(|_| bad("method"))?;
        let scheme = if scheme == "http" {
            Scheme::Http
        } else {
            Scheme::Https
        };
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|_| bad("scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|_| bad("authority"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|_| bad("path"))?;
        let body = outgoing.body().map_err(|_| bad("body"))?;
        let options = RequestOptions::new();
        let nanos = req.timeout.as_nanos().min(u64::MAX as u128) as u64;
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        // Send first, then write the body: the host consumes the body only once the
        // request is under way, so a body larger than its buffer written beforehand
        // would wait forever for a flush.
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(transport_error)?;
        let written = write_body(&body, &req.body);
        let finished = OutgoingBody::finish(body, None);
        future.subscribe().block();
        // A failed request explains a failed body write better than the write does.
        let response = match future.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(transport_error(e)),
            _ => return Err(TransportError::Io("response future failed".into())),
        };
        written?;
        finished.map_err(transport_error)?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|_| TransportError::Io("no body".into()))?;
        let stream = incoming
            .stream()
            .map_err(|_| TransportError::Io("no body stream".into()))?;
        Ok(Box::new(WasiResponse {
            status,
            headers,
            stream,
            _body: incoming,
        }))
    }
}

/// Writes a request body in chunks, blocking until each is flushed to the host.
fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), TransportError> {
    let stream = body
        .write()
        .map_err(|_| TransportError::Io("cannot open the request body".into()))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| TransportError::Io(format!("{e:?}")))?;
    }
    Ok(())
}

/// A response being read. Field order matters: the stream must drop before its body.
struct WasiResponse {
    status: u16,
    headers: Vec<(String, String)>,
    stream: InputStream,
    _body: IncomingBody,
}

impl HttpResponse for WasiResponse {
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
        match self.stream.blocking_read(64 * 1024) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StreamError::Closed) => Ok(None),
            Err(StreamError::LastOperationFailed(e)) => {
                let text = e.to_debug_string();
                if text.to_ascii_lowercase().contains("timeout") {
                    Err(TransportError::Timeout)
                } else {
                    Err(TransportError::Io(text))
                }
            }
        }
    }
}
