//! A server-sent-events reader for the tests: parses the real wire format (`id:`,
//! `event:`, `data:`, `retry:`, comments) from a live response, one event at a time,
//! so that a test can stop reading (close the connection) after any event.

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use serde_json::Value;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Reads events from a streamed response.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: BytesMut,
    /// The last `retry:` hint seen, in milliseconds.
    pub retry_ms: Option<u64>,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
}

/// Longest wait for one event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        SseReader {
            body: resp.bytes_stream().boxed(),
            buf: BytesMut::new(),
            retry_ms: None,
            comments: 0,
        }
    }

    /// The next event; `None` when the stream ended. Panics after 30 s of silence.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(at) = find(&self.buf, b"\n\n") {
                let block = self.buf.split_to(at + 2);
                let text = String::from_utf8(block.to_vec()).expect("utf-8 events");
                if let Some(e) = self.parse(&text) {
                    return Some(e);
                }
                continue;
            }
            match tokio::time::timeout(EVENT_TIMEOUT, self.body.next())
                .await
                .expect("an event within 30 s")
            {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("stream failed: {e}"),
                None => return None,
            }
        }
    }

    /// Every event to the end.
    pub async fn all(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }

    fn parse(&mut self, block: &str) -> Option<Event> {
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v.to_string());
            } else if let Some(v) = line.strip_prefix("retry: ") {
                self.retry_ms = v.trim().parse().ok();
            }
        }
        let event = event?;
        let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
        Some(Event { id, event, data })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
