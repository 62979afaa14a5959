//! The OpenAI-compatible gateway's overhead: `POST /v1/chat/completions` through the
//! runner (personal-token auth, budget check, routing, key opening, ledger row) against
//! the provider stand-in called directly with the same body, alternating in one run.
//! Plain calls and whole streams at N connections (req/s, p50, p99); the time to the
//! first content chunk of a stream, one at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::client;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::load;

/// Options of the gateway benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 3)]
    secs: u64,
    /// Rounds per target (alternating direct and gateway).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Streams timed to their first chunk, per target.
    #[arg(long, default_value_t = 100)]
    first_token_samples: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/gateway.json")]
    out: String,
}

fn body(stream: bool) -> Bytes {
    Bytes::from(
        json!({"model": "bench-model", "stream": stream, "max_tokens": 256,
               "messages": [{"role": "user", "content": "hello there, how are you today?"}]})
        .to_string(),
    )
}

/// Time to the first content chunk of one stream.
async fn first_token(url: &str, token: Option<&str>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut req = client()
        .post(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.body(body(true)).send().await?;
    anyhow::ensure!(resp.status() == 200, "{url} answered {}", resp.status());
    let mut chunks = resp.bytes_stream();
    let mut first = None;
    while let Some(chunk) = chunks.next().await {
        if first.is_none() && memchr::memmem::find(&chunk?, b"\"content\"").is_some() {
            first = Some(started.elapsed());
        }
    }
    first.ok_or_else(|| anyhow::anyhow!("{url}: no content chunk"))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let env = Backend::start().await;
    let provider = env.openai_provider().await;
    env.model(&provider, "bench-model", true).await;
    let (status, t) = env
        .call(
            "POST",
            "/api/auth/tokens",
            Some(json!({"name": "bench", "scopes": ["llm"]})),
        )
        .await;
    anyhow::ensure!(status == 201, "token: {t}");
    let token = t["token"].as_str().unwrap_or_default().to_string();
    let direct = env.stand_in.addr;
    let gateway = env.runner.url.trim_start_matches("http://").parse()?;
    let mut rows = Vec::new();
    for (name, stream) in [("plain", false), ("stream", true)] {
        let direct_target = Arc::new(load::Target {
            path: "/v1/chat/completions".into(),
            authorization: None,
            body: Some(body(stream)),
        });
        let gateway_target = Arc::new(load::Target {
            path: "/v1/chat/completions".into(),
            authorization: Some(format!("Bearer {token}")),
            body: Some(body(stream)),
        });
        let (mut d, mut g) = (load::Stats::default(), load::Stats::default());
        let round = Duration::from_secs(args.secs);
        for _ in 0..args.rounds {
            d.merge(load::run(direct, direct_target.clone(), args.connections, round).await?);
            g.merge(load::run(gateway, gateway_target.clone(), args.connections, round).await?);
        }
        let row = json!({
            "mode": name, "connections": args.connections,
            "direct_rps": d.rps(), "gateway_rps": g.rps(), "throughput_ratio": g.rps() / d.rps(),
            "direct_p50_ms": d.percentile(50.0), "gateway_p50_ms": g.percentile(50.0),
            "direct_p99_ms": d.percentile(99.0), "gateway_p99_ms": g.percentile(99.0),
            "overhead_p50_ms": g.percentile(50.0) - d.percentile(50.0),
            "overhead_p99_ms": g.percentile(99.0) - d.percentile(99.0),
            "errors": d.errors + g.errors,
        });
        println!(
            "{name:<6} x{} | gateway {:>6.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms | direct {:>6.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms | overhead p50 {:+.2} ms p99 {:+.2} ms, throughput ratio {:.2} | errors {}",
            args.connections,
            g.rps(),
            g.percentile(50.0),
            g.percentile(99.0),
            d.rps(),
            d.percentile(50.0),
            d.percentile(99.0),
            g.percentile(50.0) - d.percentile(50.0),
            g.percentile(99.0) - d.percentile(99.0),
            g.rps() / d.rps(),
            d.errors + g.errors,
        );
        rows.push(row);
    }

    let direct_url = format!("{}/v1/chat/completions", env.stand_in.url());
    let gateway_url = env.runner.at("/v1/chat/completions");
    let (mut d, mut g) = (Vec::new(), Vec::new());
    for _ in 0..args.first_token_samples {
        d.push(first_token(&direct_url, None).await?.as_secs_f64() * 1000.0);
        g.push(first_token(&gateway_url, Some(&token)).await?.as_secs_f64() * 1000.0);
    }
    let (d50, d99, g50, g99) = (
        percentile(&mut d, 50.0),
        percentile(&mut d, 99.0),
        percentile(&mut g, 50.0),
        percentile(&mut g, 99.0),
    );
    println!(
        "first token (one at a time) | gateway p50 {g50:.2} ms p99 {g99:.2} ms | direct p50 {d50:.2} ms p99 {d99:.2} ms | overhead p50 {:+.2} ms p99 {:+.2} ms",
        g50 - d50,
        g99 - d99
    );
    rows.push(json!({"mode": "first_token", "gateway_p50_ms": g50, "gateway_p99_ms": g99,
                     "direct_p50_ms": d50, "direct_p99_ms": d99, "overhead_p50_ms": g50 - d50, "overhead_p99_ms": g99 - d99}));
    let (_, usage) = env.call("GET", "/api/arcana/llm/usage", None).await;
    let calls: i64 = usage["rows"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["calls"].as_i64()).sum())
        .unwrap_or(0);
    println!("ledger rows written by the gateway during the run: {calls}");
    crate::write_results(&args.out, &Value::Array(rows))?;
    Ok(())
}
