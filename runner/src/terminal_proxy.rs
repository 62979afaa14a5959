//! One origin: the runner answers terminal-host's paths (`/ws/shell/*`,
//! `/api/arcana/terminal/*`) on the API's address by proxying them to the supervised
//! terminal-host, so a browser needs one origin, one CORS setup and one auth path.
//!
//! Plain requests go through a pooled HTTP/1.1 client and their answers stream back as
//! they arrive. A WebSocket handshake goes to terminal-host on a connection of its own;
//! once it answers `101`, both upgraded connections are spliced with
//! [`tokio::io::copy_bidirectional`]: bytes move as they come, each direction waits for
//! its reader (backpressure is the peers' own), and nothing is buffered beyond the copy
//! buffers. Request ids pass through both ways.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use arcana_serve::BufferedRequest;

type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// Path prefixes served by terminal-host.
pub const TERMINAL_PREFIXES: [&str; 2] = ["/ws/shell/", "/api/arcana/terminal/"];

/// How long terminal-host may take to answer a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1). `connection` and
/// `upgrade` are set again for a WebSocket handshake.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether `path` belongs to terminal-host.
pub fn is_terminal_path(path: &str) -> bool {
    TERMINAL_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The proxy to one terminal-host; cheap to share.
pub struct TerminalProxy {
    /// Where terminal-host listens.
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TerminalProxy {
    /// A proxy to terminal-host at `upstream` (the supervised sidecar's address).
    pub fn new(upstream: SocketAddr) -> TerminalProxy {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        TerminalProxy { upstream, client }
    }

    /// Forwards `req` from `client` and answers terminal-host's response, or a 503 when
    /// terminal-host is down (restarting) and a 504 when it does not answer in time.
    pub async fn forward(&self, req: BufferedRequest, client: SocketAddr) -> Response<Body> {
        let result = if is_websocket_handshake(req.headers()) {
            self.tunnel(req, client).await
        } else {
            self.plain(req, client).await
        };
        result.unwrap_or_else(|failure| failure.response())
    }

    async fn plain(
        &self,
        req: BufferedRequest,
        client: SocketAddr,
    ) -> Result<Response<Body>, Failure> {
        let upstream = self.upstream_request(req, client, false)?;
        let resp = tokio::time::timeout(HEAD_TIMEOUT, self.client.request(upstream))
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            body.map_err(anyhow::Error::from).boxed_unsync(),
        ))
    }

    /// A WebSocket handshake on its own connection to terminal-host; on `101`, the two
    /// upgraded connections are spliced in a task of their own.
    async fn tunnel(
        &self,
        mut req: BufferedRequest,
        client: SocketAddr,
    ) -> Result<Response<Body>, Failure> {
        let downstream = hyper::upgrade::on(&mut req);
        let upstream_req = self.upstream_request(req, client, true)?;
        let handshake = async {
            let stream = tokio::net::TcpStream::connect(self.upstream).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "terminal-host tunnel connection ended");
                }
            });
            Ok::<_, anyhow::Error>(sender.send_request(upstream_req).await?)
        };
        let mut resp = tokio::time::timeout(HEAD_TIMEOUT, handshake)
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| Failure::Unavailable(format!("{e:#}")))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Refused (401, 403, 404, 409, 429...): terminal-host's answer as it is.
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Ok(Response::from_parts(
                parts,
                body.map_err(anyhow::Error::from).boxed_unsync(),
            ));
        }
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (down, up) = match tokio::try_join!(downstream, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "a terminal tunnel did not upgrade");
                    return;
                }
            };
            let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
            match tokio::io::copy_bidirectional(&mut down, &mut up).await {
                Ok((to_host, to_client)) => {
                    tracing::debug!(to_host, to_client, "terminal tunnel closed");
                }
                Err(e) => tracing::debug!(error = %e, "terminal tunnel ended with an error"),
            }
        });
        let (parts, _) = resp.into_parts();
        Ok(Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        ))
    }

    /// `req` addressed to terminal-host: the same method, path, query and headers, minus
    /// hop-by-hop ones, plus `x-forwarded-*`; for a handshake the upgrade headers again.
    fn upstream_request(
        &self,
        req: BufferedRequest,
        client: SocketAddr,
        upgrade: bool,
    ) -> Result<Request<Full<Bytes>>, Failure> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("http://{}{path}", self.upstream)
            .parse()
            .map_err(|_| Failure::BadPath)?;
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::UPGRADE);
        if upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                parts.headers.insert(header::UPGRADE, protocol);
            }
        }
        let forwarded_for = match parts.headers.get("x-forwarded-for") {
            Some(v) => format!("{}, {}", v.to_str().unwrap_or(""), client.ip()),
            None => client.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            parts.headers.insert("x-forwarded-for", v);
        }
        if let Some(host) = parts.headers.get(header::HOST).cloned() {
            parts.headers.insert("x-forwarded-host", host);
        }
        parts
            .headers
            .insert("x-forwarded-proto", HeaderValue::from_static("http"));
        Ok(Request::from_parts(parts, body))
    }
}

/// `Connection: upgrade` with `Upgrade: websocket`, as browsers send them.
fn is_websocket_handshake(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Removes hop-by-hop headers, those `Connection` names included.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| n != header::UPGRADE)
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Why a request could not be proxied.
enum Failure {
    /// terminal-host refused the connection or broke it (it is restarting, or down).
    Unavailable(String),
    /// terminal-host did not answer within [`HEAD_TIMEOUT`].
    Timeout,
    /// The request's path cannot be re-addressed.
    BadPath,
}

impl Failure {
    fn response(self) -> Response<Body> {
        let (status, code, detail) = match &self {
            Failure::Unavailable(e) => {
                tracing::warn!(error = %e, "terminal-host unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "terminal_unavailable",
                    "The terminal service is not available right now; try again shortly.",
                )
            }
            Failure::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "terminal_timeout",
                "The terminal service did not answer in time.",
            ),
            Failure::BadPath => (
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "The request's path is not valid.",
            ),
        };
        let mut resp = arcana_serve::problem(status, code, detail)
            .map(|b| b.map_err(|never| match never {}).boxed_unsync());
        if matches!(self, Failure::Unavailable(_)) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_paths_are_recognised() {
        assert!(is_terminal_path("/ws/shell/abc"));
        assert!(is_terminal_path("/api/arcana/terminal/sessions"));
        assert!(!is_terminal_path("/api/arcana/terminals"));
        assert!(!is_terminal_path("/ws/shell"));
        assert!(!is_terminal_path("/api/chat"));
    }

    #[test]
    fn handshakes_are_told_from_plain_requests() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_websocket_handshake(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_handshake(&h));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("x-request-id", HeaderValue::from_static("r1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(h.get("x-request-id").unwrap(), "r1");
    }
}
