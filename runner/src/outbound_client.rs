//! The HTTP client every component's outbound `wasi:http` requests share: connections to
//! a provider are kept alive and reused across requests and instances, as Spin's own
//! outbound HTTP does (a pooled client shared by all instances). Without it each LLM
//! call pays a TCP and, to a real provider, a TLS handshake.
//!
//! The request options a guest sets are honoured: the longer of the connect and
//! first-byte timeouts bounds the wait for the response head (a reused connection has no
//! connect phase), the between-bytes timeout each wait for the next body frame.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeouts when the guest sets none (the same as wasmtime's default sender).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pooled client; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<Https, WasiBody>,
}

impl Default for OutboundClient {
    fn default() -> Self {
        OutboundClient::new()
    }
}

impl OutboundClient {
    /// A client for `http://` and `https://` (web PKI roots), HTTP/1.1.
    pub fn new() -> OutboundClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        OutboundClient { client }
    }

    /// Sends a guest's request; answers the response with its body guarded by the
    /// between-bytes timeout.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let option = |f: fn(&RequestOptions) -> Option<Duration>| {
            options.as_ref().and_then(f).unwrap_or(DEFAULT_TIMEOUT)
        };
        // A pooled connection needs no connect: the stricter of the two bounds the head.
        let head_timeout = option(|o| o.connect_timeout).max(option(|o| o.first_byte_timeout));
        let between_bytes = option(|o| o.between_bytes_timeout).max(Duration::from_nanos(1));
        let response = tokio::time::timeout(head_timeout, self.client.request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(map_error)?;
        Ok(response.map(|incoming| {
            let mut timeout = tokio::time::interval(between_bytes);
            timeout.reset();
            GuardedBody { incoming, timeout }.boxed_unsync()
        }))
    }
}

/// The client's errors as `wasi:http` error codes.
fn map_error(e: hyper_util::client::legacy::Error) -> Error {
    use std::error::Error as _;
    if e.is_connect() {
        let detail = e.source().map(|s| s.to_string()).unwrap_or_default();
        return Error::Connect(std::io::Error::other(detail));
    }
    match e.source().and_then(|s| s.downcast_ref::<hyper::Error>()) {
        Some(h) if h.is_timeout() => Error::HttpResponseTimeout,
        Some(h) if h.is_incomplete_message() => Error::HttpResponseIncomplete,
        _ => Error::HttpProtocolError,
    }
}

/// A response body that fails when no frame arrives within the between-bytes timeout.
struct GuardedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
