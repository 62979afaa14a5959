//! Reading a request body whole, within the limits, before the application runs.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, Response, StatusCode};
use tokio::time::Instant;

use crate::Limits;

/// Why a body was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The client paused longer than the idle limit, or the body took longer than the total.
    TooSlow,
    /// The body (declared or sent) is larger than the limit.
    TooLarge(usize),
    /// The connection failed while the body was read.
    Broken(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooSlow => write!(f, "the body arrived too slowly"),
            BodyError::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            BodyError::Broken(e) => write!(f, "the body could not be read: {e}"),
        }
    }
}

impl BodyError {
    /// The answer to the client (the connection is closed after it).
    pub fn response(&self) -> Response<Full<Bytes>> {
        match self {
            BodyError::TooSlow => crate::problem(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body arrived too slowly.",
            ),
            BodyError::TooLarge(_) => crate::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The request body is too large.",
            ),
            BodyError::Broken(_) => crate::problem(
                StatusCode::BAD_REQUEST,
                "body_read_failed",
                "The request body could not be read.",
            ),
        }
    }
}

/// Reads `req`'s body within `limits` and returns the request with it buffered.
pub async fn read(
    req: Request<Incoming>,
    limits: &Limits,
) -> Result<Request<Full<Bytes>>, BodyError> {
    let max = limits.max_request_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge(max));
    }
    let (parts, mut body) = req.into_parts();
    let deadline = Instant::now() + limits.body_timeout();
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(max));
    loop {
        let wait = limits
            .body_idle_timeout()
            .min(deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(BodyError::TooLarge(max));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Request::from_parts(parts, Full::new(buf.freeze())))
}
