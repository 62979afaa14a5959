//! Sequential latency measurement: p50 and p99 of `n` requests, one at a time.

use std::time::Instant;

/// Runs `f` `n` times; fails on any status of 400 or more.
pub async fn p50_p99(n: usize, mut f: impl AsyncFnMut() -> u16) -> anyhow::Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let status = f().await;
        anyhow::ensure!(status < 400, "request failed with {status}");
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    let at = |p: f64| {
        lat[((p / 100.0) * (lat.len() - 1) as f64).round() as usize].as_secs_f64() * 1000.0
    };
    Ok((at(50.0), at(99.0)))
}

/// A request maker for [`p50_p99`]: `GET url` with a bearer token (empty: none).
pub fn get(http: &reqwest::Client, url: String, token: &str) -> impl AsyncFnMut() -> u16 + use<> {
    let http = http.clone();
    let token = token.to_string();
    async move || {
        let mut req = http.get(&url);
        if !token.is_empty() {
            req = req.bearer_auth(&token);
        }
        req.send().await.map(|r| r.status().as_u16()).unwrap_or(599)
    }
}
