//! The HTTP front door shared by the runner and terminal-host.
//!
//! What it guards against, before a request reaches the application:
//! - **slow headers**: a connection that does not finish a request head within
//!   `--header-read-timeout-secs` (also the keep-alive idle limit) is closed;
//! - **slow bodies**: the whole body is read here, before the request takes an execution
//!   slot, with an idle limit between chunks and a total limit, so guests that trickle
//!   bytes hold a cheap task, never a component instance; past a limit they get 408;
//!   bodies over `--max-request-body-bytes` get 413 without being read further;
//! - **floods**: at most `--max-connections` open connections, and at most
//!   `--max-connections-per-ip` from one client address; past them a connection gets a
//!   429/503 and is closed at once.
//!
//! Every accepted socket has `TCP_NODELAY` set, so a response of several small writes
//! (a shell's output, a streamed event) never waits for the peer's delayed ACK.
//!
//! # Layout
//! - [`limits`]: the limits as command-line flags.
//! - [`body`]: reading a request body within the limits.
//! - [`connections`]: counting connections in total and per client address.

pub mod body;
pub mod connections;
pub mod limits;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub use body::BodyError;
pub use connections::Refusal;
pub use limits::Limits;

/// A request whose body was read whole by the front door.
pub type BufferedRequest = Request<Full<Bytes>>;

/// How long open connections may finish after shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `handler` on `listener` within `limits` until `shutdown` resolves, then lets
/// open connections finish for a while. `handler` gets each request with its body
/// already read, and the client's address.
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(BufferedRequest, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = Arc::new(limits);
    let counter = connections::Counter::new(limits.max_connections, limits.max_connections_per_ip);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    tokio::pin!(shutdown);
    loop {
        let (mut stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = match counter.admit(client.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::warn!(client = %client.ip(), reason = refusal.reason(), "connection refused");
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        stream.write_all(&refusal.response()),
                    )
                    .await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
        };
        let handler = handler.clone();
        let limits = limits.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let limits = limits.clone();
            async move {
                let response = match body::read(req, &limits).await {
                    Ok(req) => handler(req, client).await.map(Either::Left),
                    Err(e) => {
                        tracing::info!(client = %client.ip(), error = %e, "request body refused");
                        e.response().map(Either::Right)
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for open connections");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("open connections did not finish in {SHUTDOWN_GRACE:?}; closing them");
        }
    }
    Ok(())
}

/// A small problem+json response, the shape the components answer errors in.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response<Full<Bytes>> {
    let body = format!(
        r#"{{"type":"https://arcana.dev/problems/{code}","title":"{}","status":{},"code":"{code}","detail":"{detail}"}}"#,
        status.canonical_reason().unwrap_or("Error"),
        status.as_u16()
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/problem+json")
        .header("connection", "close")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// A buffered body as the `hyper::Error`-typed body some consumers (wasi-http) want.
pub fn into_incoming_like(
    body: Full<Bytes>,
) -> impl Body<Data = Bytes, Error = hyper::Error> + Send + 'static {
    body.map_err(|never: Infallible| match never {})
}
