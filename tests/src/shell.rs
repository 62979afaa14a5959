//! A WebSocket client for terminal-host's shells: connect, type, read output, read
//! the JSON control messages.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A shell's WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A random session id (UUID v4 form).
pub fn new_session_id() -> String {
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (crate::rand_u64().wrapping_mul(i as u64 + 1) >> 24) as u8;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Opens `url` with optional bearer token and Origin; the HTTP status on refusal, or 0
/// when no HTTP answer came (connection refused or reset).
pub async fn try_open(url: &str, token: Option<&str>, origin: Option<&str>) -> Result<Ws, u16> {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(tokio_tungstenite::tungstenite::Error::Io(_)) => Err(0),
        Err(e) => panic!("websocket error: {e}"),
    }
}

/// Opens `url` with a token and returns the socket and its `hello` message.
pub async fn open(url: &str, token: &str) -> (Ws, Value) {
    let mut ws = try_open(url, Some(token), None).await.expect("connect");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    (ws, hello)
}

/// The next JSON control message (output in between is skipped).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("timeout")
            .unwrap()
            .unwrap()
        {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads output until `needle` appears; returns everything read.
pub async fn read_until(ws: &mut Ws, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Some(Ok(_))) => {}
            other => panic!("waiting for {needle:?}: {other:?}; output so far: {seen:?}"),
        }
    }
    seen
}

/// Types `keys` into the shell.
pub async fn send(ws: &mut Ws, keys: &str) {
    ws.send(Message::Binary(keys.as_bytes().to_vec().into()))
        .await
        .unwrap();
}
