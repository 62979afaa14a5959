//! The runner's own Prometheus figures (requests per route and status, latency
//! histograms, requests in flight) and the `/metrics` merge: when the application's
//! `/metrics` route answers 200, the runner appends these figures and terminal-host's
//! live ones to the component's body, so one scrape sees everything.
//!
//! On a real Spin platform request metrics come from Spin's OpenTelemetry support
//! instead (see README, Telemetry); the component's figures are the same there.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from sub-millisecond health checks to slow LLM streams.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Largest component `/metrics` body the runner will buffer to append to.
const MAX_COMPONENT_BODY: usize = 16 << 20;

/// Request figures, recorded by the server for every request.
pub struct RequestMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    terminal_host_up: IntGauge,
    terminal_host_restarts: IntGauge,
}

impl RequestMetrics {
    /// Registers every family.
    pub fn new() -> RequestMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "arcana_http_requests_total",
                "HTTP requests served by the runner, by Spin route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "arcana_http_request_duration_seconds",
                "Time from request to response headers, by Spin route and status.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "status"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            "arcana_http_requests_in_flight",
            "Requests being handled by components now.",
        )
        .expect("valid metric");
        let terminal_host_up = IntGauge::new(
            "arcana_terminal_host_up",
            "Whether terminal-host answered the runner's scrape (1) or not (0).",
        )
        .expect("valid metric");
        let terminal_host_restarts = IntGauge::new(
            "arcana_terminal_host_restarts",
            "Times the runner started terminal-host again after it exited unexpectedly.",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(terminal_host_up.clone()),
            Box::new(terminal_host_restarts.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        RequestMetrics {
            registry,
            requests,
            duration,
            in_flight,
            terminal_host_up,
            terminal_host_restarts,
        }
    }

    /// Counts a request as started; the guard counts it as finished when dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &http::Method, status: u16, elapsed: Duration) {
        let method = match *method {
            http::Method::GET
            | http::Method::POST
            | http::Method::PUT
            | http::Method::PATCH
            | http::Method::DELETE
            | http::Method::HEAD
            | http::Method::OPTIONS => method.as_str(),
            _ => "other",
        };
        let status = status.to_string();
        self.requests
            .with_label_values(&[route, method, &status])
            .inc();
        self.duration
            .with_label_values(&[route, &status])
            .observe(elapsed.as_secs_f64());
    }

    /// The runner's families in text format.
    fn render(&self, terminal_host_up: Option<bool>, restarts: Option<u64>) -> String {
        match terminal_host_up {
            Some(up) => self.terminal_host_up.set(up as i64),
            None => self.terminal_host_up.set(0),
        }
        self.terminal_host_restarts
            .set(restarts.unwrap_or(0) as i64);
        let mut families = self.registry.gather();
        if terminal_host_up.is_none() {
            families.retain(|f| {
                f.name() != "arcana_terminal_host_up" && f.name() != "arcana_terminal_host_restarts"
            });
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics::new()
    }
}

/// Decrements the in-flight gauge when a request is done.
pub struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Where the runner scrapes terminal-host from.
#[derive(Debug, Clone)]
pub struct TerminalHostScrape {
    /// `http://127.0.0.1:3001/metrics`
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub token: String,
    /// The supervisor's view: up, restarts.
    pub state: std::sync::Arc<crate::sidecar::SidecarState>,
}

/// Builds the merged `/metrics` body: the component's families, then the runner's,
/// then terminal-host's (when it runs). Families never repeat: each source has its own
/// name prefixes.
pub async fn merged_body(
    component_body: http_body_util::combinators::UnsyncBoxBody<Bytes, anyhow::Error>,
    metrics: &RequestMetrics,
    terminal: Option<&TerminalHostScrape>,
    request_id: &str,
) -> anyhow::Result<Bytes> {
    let limited = http_body_util::Limited::new(component_body, MAX_COMPONENT_BODY);
    let component = limited
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the component's metrics: {e}"))?
        .to_bytes();
    let terminal_text = match terminal {
        Some(t) => Some(scrape(t, request_id).await),
        None => None,
    };
    let up = terminal_text.as_ref().map(|r| r.is_ok());
    let mut out = Vec::with_capacity(component.len() + 8192);
    out.extend_from_slice(&component);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let restarts = terminal.map(|t| t.state.restarts());
    out.extend_from_slice(metrics.render(up, restarts).as_bytes());
    match terminal_text {
        Some(Ok(text)) => out.extend_from_slice(text.as_bytes()),
        Some(Err(e)) => tracing::warn!(error = %e, "cannot scrape terminal-host"),
        None => {}
    }
    Ok(Bytes::from(out))
}

/// Fetches terminal-host's `/metrics` over loopback, within two seconds, under the
/// scrape's request id (so both access logs show one id).
async fn scrape(target: &TerminalHostScrape, request_id: &str) -> anyhow::Result<String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = hyper::Request::get(&target.url)
        .header("authorization", format!("Bearer {}", target.token))
        .header("x-request-id", request_id)
        .body(Empty::new())?;
    let fetch = async {
        let resp = client.request(req).await?;
        if !resp.status().is_success() {
            anyhow::bail!("terminal-host answered {}", resp.status());
        }
        let body = http_body_util::Limited::new(resp.into_body(), MAX_COMPONENT_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 2 s"))?
}
