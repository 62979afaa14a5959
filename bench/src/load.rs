//! A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each
//! sending the next request as soon as the previous answer is read, for a fixed time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// What to request.
pub struct Target {
    pub path: String,
    pub authorization: Option<String>,
    /// A JSON body to POST; `None` sends a GET.
    pub body: Option<Bytes>,
}

impl Target {
    /// `GET path`.
    pub fn get(path: &str, authorization: Option<String>) -> Target {
        Target {
            path: path.to_string(),
            authorization,
            body: None,
        }
    }
}

/// Latencies and counts of one or more runs.
#[derive(Default)]
pub struct Stats {
    latencies_us: Vec<u64>,
    elapsed: Duration,
    pub errors: u64,
    /// How many answers had each non-2xx status (0: the connection failed).
    pub error_statuses: std::collections::BTreeMap<u16, u64>,
}

impl Stats {
    /// Adds another run's results.
    pub fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        for (status, n) in other.error_statuses {
            *self.error_statuses.entry(status).or_default() += n;
        }
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx] as f64 / 1000.0
    }
}

/// Loads `addr` for `duration` over `connections` connections.
pub async fn run(
    addr: SocketAddr,
    target: Arc<Target>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let method = if target.body.is_some() { "POST" } else { "GET" };
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(&target.path)
                    .header("host", addr.to_string());
                if let Some(a) = &target.authorization {
                    req = req.header("authorization", a);
                }
                if target.body.is_some() {
                    req = req.header("content-type", "application/json");
                }
                let req = req.body(match &target.body {
                    Some(b) => Full::new(b.clone()),
                    None => Full::new(Bytes::new()),
                })?;
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if status.is_success() {
                            lat.push(t.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                            *statuses.entry(status.as_u16()).or_default() += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        *statuses.entry(0).or_default() += 1;
                        break;
                    }
                }
            }
            anyhow::Ok((lat, errors, statuses))
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        let (lat, errors, statuses) = t.await??;
        stats.latencies_us.extend(lat);
        stats.errors += errors;
        for (status, n) in statuses {
            *stats.error_statuses.entry(status).or_default() += n;
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// A bare hyper server answering `body` as JSON to every request: the baseline.
pub async fn bare_server(body: Bytes) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .expect("valid response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}
