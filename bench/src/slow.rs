//! A normal client's `GET /api/health` (and terminal-host's health) while 500 slow
//! connections hold half-sent heads and trickling bodies, against the same client with
//! no attack, alternating in one run: the p50/p99 ratio is what an attack costs.

use std::net::SocketAddr;

use arcana_tests::{Runner, RunnerOptions, TerminalHost, client};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::latency::{get, p50_p99};

/// Options of the slow-client benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Slow connections held during the attack.
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Requests per measurement.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Rounds (no attack, attack) per target.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/slow.json")]
    out: String,
}

async fn attack(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).await?;
        let text: &[u8] = if i.is_multiple_of(2) {
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Ty"
        } else {
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"user"
        };
        s.write_all(text).await?;
        held.push(s);
    }
    Ok(held)
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Room for every slow connection from 127.0.0.1 (the default cap would refuse most).
    let cap = (args.connections + 100).to_string();
    let runner =
        Runner::start_with(RunnerOptions::default().args(&["--max-connections-per-ip", &cap]));
    let th = TerminalHost::start(&runner, &["--max-connections-per-ip", &cap]);
    let http = client();
    let mut rows = Vec::new();
    for (name, base, path) in [
        ("runner GET /api/health", runner.url.clone(), "/api/health"),
        (
            "terminal-host GET /api/arcana/terminal/health",
            th.url.clone(),
            "/api/arcana/terminal/health",
        ),
    ] {
        let addr: SocketAddr = base.trim_start_matches("http://").parse()?;
        let url = format!("{base}{path}");
        let (mut calm, mut under) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            calm.push(p50_p99(args.requests, get(&http, url.clone(), "")).await?);
            let held = attack(addr, args.connections).await?;
            under.push(p50_p99(args.requests, get(&http, url.clone(), "")).await?);
            drop(held);
        }
        let median = |v: &[(f64, f64)], p99: bool| {
            let mut x: Vec<f64> = v.iter().map(|(a, b)| if p99 { *b } else { *a }).collect();
            x.sort_by(f64::total_cmp);
            x[x.len() / 2]
        };
        let (c50, c99, u50, u99) = (
            median(&calm, false),
            median(&calm, true),
            median(&under, false),
            median(&under, true),
        );
        println!(
            "{name:<48} calm p50 {c50:.3} ms p99 {c99:.3} ms | with {} slow connections p50 {u50:.3} ms p99 {u99:.3} ms | p99 ratio {:.2}",
            args.connections,
            u99 / c99
        );
        rows.push(json!({
            "target": name, "slow_connections": args.connections,
            "calm_p50_ms": c50, "calm_p99_ms": c99, "attack_p50_ms": u50, "attack_p99_ms": u99,
            "p50_ratio": u50 / c50, "p99_ratio": u99 / c99,
        }));
    }
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&rows)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
