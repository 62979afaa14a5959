//! The HTTP front door: accepts connections, routes each request as Spin does, runs
//! the component in a fresh instance, and streams its response back.
//!
//! Each request gets its own `Store` instantiated from a `ProxyPre` built at start-up
//! (the pooling allocator makes this microseconds), so no state leaks between requests.
//! The guest runs in its own task so it can keep writing a streamed body after the
//! headers went out. A semaphore caps guests executing at once; past it, requests wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arcana_serve::BufferedRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::app::{App, EPOCH_TICK, Target};
use crate::host::{HostState, OutboundHooks};
use crate::metrics::{RequestMetrics, TerminalHostScrape};
use crate::routes::RouteMatch;
use crate::terminal_proxy::{TerminalProxy, is_terminal_path};

type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// Shared state of the server.
struct Server {
    app: App,
    permits: Semaphore,
    /// Outbound HTTP for every instance, keeping provider connections alive.
    outbound: crate::outbound_client::OutboundClient,
    metrics: RequestMetrics,
    terminal_scrape: Option<TerminalHostScrape>,
    /// terminal-host's paths on the API's address (one origin), when it runs.
    terminal_proxy: Option<TerminalProxy>,
}

/// What the runner knows of the terminal-host it supervises.
pub struct TerminalHostLink {
    /// Where `/metrics` finds its figures.
    pub scrape: TerminalHostScrape,
    /// Where its paths are proxied.
    pub proxy: TerminalProxy,
}

/// The application route whose 200 answers get the runner's metrics appended.
pub const METRICS_ROUTE: &str = "/metrics";

/// The application route whose 200 answers get the supervised terminal-host's state.
pub const STATUS_ROUTE: &str = "/api/arcana/status";

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish.
/// Connections and bodies are limited by `app.limits.front_door`.
/// `terminal` is the supervised terminal-host, when it runs: its figures join `/metrics`
/// and its paths are served here too.
pub async fn run(
    listener: TcpListener,
    app: App,
    terminal: Option<TerminalHostLink>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let engine = app.engine.clone();
    // The epoch ticker drives request deadlines, on its own thread: a runaway guest
    // occupies a tokio worker without yielding, and a ticker task woken on that
    // worker (its LIFO slot cannot be stolen) would never run. It stops with the server.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ticking = running.clone();
    let ticker = std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while ticking.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
    let permits = Semaphore::new(app.limits.max_concurrent_requests);
    let front_door = app.limits.front_door.clone();
    let server = Arc::new(Server {
        app,
        permits,
        outbound: crate::outbound_client::OutboundClient::new(),
        metrics: RequestMetrics::new(),
        terminal_scrape: terminal.as_ref().map(|t| t.scrape.clone()),
        terminal_proxy: terminal.map(|t| t.proxy),
    });
    // The front door reads each body whole before `handle` runs, so only requests that
    // are ready take one of the execution permits (see arcana_serve).
    arcana_serve::serve(
        listener,
        front_door,
        move |req, client| {
            let server = server.clone();
            async move { server.handle(req, client).await }
        },
        shutdown,
    )
    .await?;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = ticker.join();
    Ok(())
}

impl Server {
    async fn handle(&self, mut req: BufferedRequest, client: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let _in_flight = self.metrics.start();
        let request_id = request_id(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut route = "unmatched".to_string();
        let mut component = String::new();
        let statements = Arc::new(std::sync::atomic::AtomicU32::new(0));

        let has_host = req.headers().contains_key(hyper::header::HOST);
        let response = match self.app.router.route(&path) {
            // A request without Host has no URL to give a component; Spin drops the
            // connection, the runner says why (RFC 9112: 400).
            _ if !has_host => empty(StatusCode::BAD_REQUEST),
            _ if self.terminal_proxy.is_some() && is_terminal_path(&path) => {
                route = "terminal-host".into();
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    req.headers_mut().insert(X_REQUEST_ID, v);
                }
                let proxy = self.terminal_proxy.as_ref().expect("checked above");
                proxy.forward(req, client).await
            }
            // As Spin: an empty 404 (an application that wants a JSON 404 routes `/...`).
            None => empty(StatusCode::NOT_FOUND),
            Some((matched, Target::Static(i))) => {
                route.clone_from(&matched.raw_route);
                static_response(&self.app.static_responses[i])
            }
            Some((matched, Target::Component(index))) => {
                set_spin_headers(&mut req, &matched, client, &request_id);
                route.clone_from(&matched.raw_route);
                component.clone_from(&self.app.components[index].caps.id);
                match self.run_component(index, req, statements.clone()).await {
                    Ok(resp) if route == METRICS_ROUTE && resp.status() == StatusCode::OK => {
                        self.with_runner_metrics(resp, &request_id).await
                    }
                    Ok(resp) if route == STATUS_ROUTE && resp.status() == StatusCode::OK => {
                        self.with_terminal_host_state(resp).await
                    }
                    Ok(resp) => resp,
                    Err(failure) => {
                        tracing::error!(
                            request_id = %request_id,
                            component = %self.app.components[index].caps.id,
                            error = format!("{:#}", failure.error),
                            "component failed"
                        );
                        if failure.status == StatusCode::GATEWAY_TIMEOUT {
                            problem(failure.status, failure.code, failure.detail, &request_id)
                        } else {
                            // As Spin: a failed component is an empty 500.
                            empty(failure.status)
                        }
                    }
                }
            }
        };
        let mut response = response;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(X_REQUEST_ID, v);
        }
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.observe(&route, &method, status, elapsed);
        tracing::info!(
            target: "arcana::access",
            request_id = %request_id,
            method = %method,
            path = %path,
            route = %route,
            component = %component,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            // Counted until the response head: a streamed body's later statements are not.
            db_statements = statements.load(std::sync::atomic::Ordering::Relaxed),
            "request"
        );
        response
    }

    /// Appends the runner's and terminal-host's figures to the component's `/metrics`.
    async fn with_runner_metrics(&self, resp: Response<Body>, request_id: &str) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        match crate::metrics::merged_body(
            body,
            &self.metrics,
            self.terminal_scrape.as_ref(),
            request_id,
        )
        .await
        {
            Ok(bytes) => {
                let mut resp = Response::from_parts(
                    parts,
                    Full::new(bytes)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                resp.headers_mut().remove(hyper::header::CONTENT_LENGTH);
                resp
            }
            Err(e) => {
                tracing::error!(request_id, error = format!("{e:#}"), "cannot merge metrics");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "metrics_unavailable",
                    "The metrics could not be assembled.",
                    request_id,
                )
            }
        }
    }

    /// Adds `terminal_host: {up, restarts}` to the status report when the runner
    /// supervises one (`null` when it runs without); other answers pass unchanged.
    async fn with_terminal_host_state(&self, resp: Response<Body>) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        let bytes = match http_body_util::Limited::new(body, 4 << 20).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the status report");
                return empty(StatusCode::BAD_GATEWAY);
            }
        };
        let merged = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut report)) => {
                let state = self.terminal_scrape.as_ref().map(
                    |t| serde_json::json!({"up": t.state.up(), "restarts": t.state.restarts()}),
                );
                report.insert(
                    "terminal_host".into(),
                    state.unwrap_or(serde_json::Value::Null),
                );
                Bytes::from(serde_json::Value::Object(report).to_string())
            }
            _ => bytes,
        };
        let mut resp = Response::from_parts(
            parts,
            Full::new(merged)
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        resp.headers_mut().remove(hyper::header::CONTENT_LENGTH);
        resp
    }

    async fn run_component(
        &self,
        index: usize,
        req: BufferedRequest,
        statements: Arc<std::sync::atomic::AtomicU32>,
    ) -> Result<Response<Body>, Failure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Failure::internal(e.into()))?;
        let component = &self.app.components[index];
        let limits = &self.app.limits;

        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &component.environment {
            wasi.env(k, v);
        }
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: wasmtime::component::ResourceTable::new(),
            hooks: OutboundHooks {
                component: component.caps.id.clone(),
                policy: component.caps.outbound.clone(),
                client: self.outbound.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .instances(64)
                .build(),
            caps: component.caps.clone(),
            statements,
        };
        let mut store = Store::new(&self.app.engine, state);
        store.limiter(|s| s.limiter());
        let ticks = (limits.request_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req.map(arcana_serve::into_incoming_like))
            .map_err(|e| Failure::internal(e.into()))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| Failure::internal(e.into()))?;
        let pre = component.pre.clone();
        let timeout = limits.request_timeout;
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(result) => result.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("request exceeded the {timeout:?} limit")),
            }
        });

        match receiver.await {
            Ok(Ok(resp)) => Ok(resp.map(|body| body.map_err(anyhow::Error::from).boxed_unsync())),
            Ok(Err(code)) => Err(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "component_error",
                detail: "The component reported an error instead of a response.",
                error: anyhow::anyhow!("guest error code: {code:?}"),
            }),
            Err(_) => {
                let error = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("guest returned without setting a response"),
                    Ok(Err(e)) => e,
                    Err(e) => e.into(),
                };
                let timed_out = format!("{error:#}").contains("exceeded")
                    || error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt);
                Err(if timed_out {
                    Failure {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        code: "component_timeout",
                        detail: "The component did not answer within the request time limit.",
                        error,
                    }
                } else {
                    Failure::internal(error)
                })
            }
        }
    }
}

/// Why a component produced no response.
struct Failure {
    status: StatusCode,
    code: &'static str,
    detail: &'static str,
    error: anyhow::Error,
}

impl Failure {
    fn internal(error: anyhow::Error) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "component_trapped",
            detail: "The component failed while handling this request.",
            error,
        }
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps a caller's `x-request-id` when it is short and printable; otherwise makes one.
fn request_id(req: &BufferedRequest) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Sets the headers Spin gives components, replacing any a client sent under the same
/// names (a client cannot claim another `spin-client-addr`). Other `spin-*` headers a
/// client sends reach the component, as in Spin: components must trust only the
/// headers their route defines.
fn set_spin_headers(
    req: &mut BufferedRequest,
    matched: &RouteMatch,
    client: SocketAddr,
    request_id: &str,
) {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let headers = req.headers_mut();
    let mut set = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    set("spin-full-url", &format!("http://{host}{path_and_query}"));
    set("spin-path-info", &matched.path_info);
    set("spin-matched-route", &matched.raw_route);
    set("spin-raw-component-route", &matched.raw_route);
    set("spin-component-route", &matched.component_route);
    set("spin-base-path", "/");
    set("spin-client-addr", &client.to_string());
    for (name, value) in &matched.params {
        set(&format!("spin-path-match-{name}"), value);
    }
    set("x-request-id", request_id);
}

/// A trigger's `static_response`: status (default 200), headers and body, as Spin sends it.
fn static_response(spec: &crate::manifest::StaticResponse) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(spec.status_code.unwrap_or(200)).unwrap_or(StatusCode::OK));
    for (name, value) in &spec.headers {
        builder = builder.header(name, value);
    }
    let body = Bytes::from(spec.body.clone().unwrap_or_default());
    builder
        .body(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| {
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid_static_response",
                "The static response in spin.toml is invalid.",
                "",
            )
        })
}

/// A response with a status and no body, as Spin answers what no component answered.
fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp
}

/// An RFC 9457 problem document, the same shape the components use.
fn problem(status: StatusCode, code: &str, detail: &str, request_id: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": format!("https://arcana.dev/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
        "request_id": request_id,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/problem+json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}
