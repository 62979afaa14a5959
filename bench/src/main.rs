//! `arcana-bench`: load benchmarks of the API's hot paths through the real runner.
//!
//! For each endpoint it also starts a bare hyper server on 127.0.0.1 answering the
//! very same bytes, and loads both alternately (baseline, runner, baseline, runner...)
//! in the same run, so the reported ratio cancels out most of the noise of a shared
//! machine. All traffic goes to 127.0.0.1 and every run is bounded in time.

mod chat;
mod gateway;
mod hosts;
mod latency;
mod load;
mod scale;
mod seed;
mod semantic;
mod slow;
mod status;
mod streams;
mod terminal;

use std::sync::Arc;
use std::time::Duration;

use arcana_tests::{Runner, client};
use bytes::Bytes;
use clap::Parser;
use serde_json::json;

/// Which benchmark to run.
#[derive(Parser)]
enum Cli {
    /// `GET /api/health` and `GET /api/auth/me` through the runner vs a bare hyper server.
    Api(Args),
    /// terminal-host throughput, keystroke latency and idle memory vs a bare PTY.
    Terminal(terminal::Args),
    /// Chat history, conversation list and search at 1k and 100k messages; chat overhead.
    Chat(chat::Args),
    /// The status endpoint and /metrics at 1k and 1M messages.
    Status(status::Args),
    /// Real `spin up` vs `arcana up` on the same components: req/s, p50 and statements.
    Hosts(hosts::Args),
    /// A normal client's latency while hundreds of slow connections are held open.
    Slow(slow::Args),
    /// Streamed replies: first byte over the provider, progress write cost, resume latency.
    Streams(streams::Args),
    /// The OpenAI-compatible gateway's overhead over calling the provider directly.
    Gateway(gateway::Args),
    /// One vs two API instances on one sqld behind HAProxy; terminal throughput via it.
    Scale(scale::Args),
    /// Embedding, memory selection, semantic and hybrid search (with and without the
    /// vector index), chat with semantic memory on and off.
    Semantic(semantic::Args),
}

/// Options of the API benchmark.
#[derive(Parser)]
struct Args {
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 3)]
    secs: u64,
    /// Rounds per target (alternating baseline and runner).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/api.json")]
    out: String,
}

/// Writes a benchmark's results as pretty JSON to `out`, creating its folder.
pub fn write_results(out: &str, results: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(results)?)?;
    println!("results written to {out}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Api(args) => api(args).await,
        Cli::Terminal(args) => terminal::run(args).await,
        Cli::Chat(args) => chat::run(args).await,
        Cli::Status(args) => status::run(args).await,
        Cli::Hosts(args) => hosts::run(args).await,
        Cli::Slow(args) => slow::run(args).await,
        Cli::Streams(args) => streams::run(args).await,
        Cli::Gateway(args) => gateway::run(args).await,
        Cli::Scale(args) => scale::run(args).await,
        Cli::Semantic(args) => semantic::run(args).await,
    }
}

async fn api(args: Args) -> anyhow::Result<()> {
    let runner = Runner::start();
    let http = client();
    let token = arcana_tests::register_admin(&runner, "bench", "bench password").await;
    let auth = format!("Bearer {token}");

    let mut results = Vec::new();
    for (name, path, header) in [
        ("GET /api/health", "/api/health", None),
        ("GET /api/auth/me", "/api/auth/me", Some(auth.clone())),
    ] {
        // The baseline answers exactly what the runner answered.
        let mut req = http.get(runner.at(path));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let body = req.send().await?.bytes().await?;
        let baseline = load::bare_server(Bytes::from(body.to_vec())).await?;
        let runner_addr = runner.url.trim_start_matches("http://").parse()?;
        let target = load::Target::get(path, header.clone());
        let target = Arc::new(target);
        let mut base_stats = load::Stats::default();
        let mut run_stats = load::Stats::default();
        for _ in 0..args.rounds {
            base_stats.merge(
                load::run(
                    baseline,
                    target.clone(),
                    args.connections,
                    Duration::from_secs(args.secs),
                )
                .await?,
            );
            run_stats.merge(
                load::run(
                    runner_addr,
                    target.clone(),
                    args.connections,
                    Duration::from_secs(args.secs),
                )
                .await?,
            );
        }
        let row = json!({
            "endpoint": name,
            "baseline_rps": base_stats.rps(),
            "runner_rps": run_stats.rps(),
            "throughput_ratio": run_stats.rps() / base_stats.rps(),
            "baseline_p50_ms": base_stats.percentile(50.0),
            "runner_p50_ms": run_stats.percentile(50.0),
            "baseline_p99_ms": base_stats.percentile(99.0),
            "runner_p99_ms": run_stats.percentile(99.0),
            "p50_ratio": run_stats.percentile(50.0) / base_stats.percentile(50.0),
            "errors": run_stats.errors + base_stats.errors,
        });
        println!(
            "{name:<18} runner {:>8.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms | bare hyper {:>8.0} req/s p50 {:>6.2} ms | throughput ratio {:.3}, p50 ratio {:.1}x",
            run_stats.rps(),
            run_stats.percentile(50.0),
            run_stats.percentile(99.0),
            base_stats.rps(),
            base_stats.percentile(50.0),
            run_stats.rps() / base_stats.rps(),
            run_stats.percentile(50.0) / base_stats.percentile(50.0),
        );
        results.push(row);
    }
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
