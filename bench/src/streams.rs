//! Streamed replies: time to the first streamed byte added by Arcana over the provider
//! stand-in called directly (same prompt, same run), what persisting a reply's progress
//! costs (`POST /api/chat` streamed, p50, with `reply_progress_ms` 100 against 0, two
//! runners measured alternately), and resume latency (reconnect with `Last-Event-ID` →
//! first missed event).

use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::sse::SseReader;
use arcana_tests::{RunnerOptions, client};
use futures::StreamExt;
use serde_json::{Value, json};

/// Options of the stream benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Streamed requests per measurement and round.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Rounds (the two runners and the direct calls alternate within each).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/streams.json")]
    out: String,
}

const PROMPT: &str = "tell me about streams that survive a reload";

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize].as_secs_f64() * 1000.0
}

/// A runner with `reply_progress_ms`, the default model streaming at the stand-in's
/// usual pace and `drip` (a word every 100 ms) for resumes.
async fn backend(progress_ms: &str) -> Backend {
    let env = Backend::start_with(
        RunnerOptions::default().env("SPIN_VARIABLE_REPLY_PROGRESS_MS", progress_ms),
    )
    .await;
    let provider = env.openai_provider().await;
    env.model(&provider, "bench-stream", true).await;
    env.model(&provider, "drip", false).await;
    env
}

/// Time to the first byte of the first delta, and to the end, of one streamed chat.
async fn chat_once(env: &Backend, conv: &str) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let resp = client()
        .post(env.runner.at("/api/chat"))
        .bearer_auth(&env.admin)
        .json(&json!({"conversation_id": conv, "message": PROMPT, "stream": true, "use_memory": false}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status() == 200,
        "POST /api/chat answered {}",
        resp.status()
    );
    let mut events = SseReader::new(resp);
    let mut first = None;
    while let Some(e) = events.next().await {
        if e.event == "delta" && first.is_none() {
            first = Some(started.elapsed());
        }
        anyhow::ensure!(e.event != "error", "error event: {}", e.data);
    }
    Ok((first.unwrap_or_default(), started.elapsed()))
}

/// The same through the stand-in directly: first content chunk, and the end.
async fn direct_once(env: &Backend) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", env.stand_in.url()))
        .json(&json!({"model": "bench-stream", "stream": true,
            "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await?;
    let mut body = resp.bytes_stream();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if first.is_none() && memchr::memmem::find(&chunk, b"\"content\"").is_some() {
            first = Some(started.elapsed());
        }
    }
    Ok((first.unwrap_or_default(), started.elapsed()))
}

async fn conversation(env: &Backend) -> anyhow::Result<String> {
    let conv: Value = client()
        .post(env.runner.at("/api/chat/conversations"))
        .bearer_auth(&env.admin)
        .json(&json!({"title": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(conv["id"].as_str().unwrap_or_default().to_string())
}

/// Reconnect → first missed event, after reading three deltas of a slow reply.
async fn resume_once(env: &Backend) -> anyhow::Result<Duration> {
    let words: Vec<String> = (1..=30).map(|i| format!("w{i}")).collect();
    let resp = client()
        .post(env.runner.at("/api/chat"))
        .bearer_auth(&env.admin)
        .json(&json!({"message": words.join(" "), "stream": true, "model": "drip", "use_memory": false}))
        .send()
        .await?;
    let mut live = SseReader::new(resp);
    let start = live
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("no start"))?;
    let reply = start.data["reply_message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut last = String::new();
    for _ in 0..3 {
        last = live.next().await.and_then(|e| e.id).unwrap_or_default();
    }
    drop(live);
    // Let the generation run ahead, so that there are missed events to send at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let resp = client()
        .get(env.runner.at(&format!("/api/chat/messages/{reply}/stream")))
        .bearer_auth(&env.admin)
        .header("last-event-id", &last)
        .send()
        .await?;
    let mut resumed = SseReader::new(resp);
    resumed
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    let took = started.elapsed();
    drop(resumed);
    Ok(took)
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let with = backend("100").await;
    let without = backend("0").await;
    let (conv_with, conv_without) = (conversation(&with).await?, conversation(&without).await?);

    let (mut first_with, mut total_with) = (Vec::new(), Vec::new());
    let (mut first_without, mut total_without) = (Vec::new(), Vec::new());
    let (mut first_direct, mut total_direct) = (Vec::new(), Vec::new());
    let mut resume = Vec::new();
    for round in 0..args.rounds {
        for _ in 0..args.requests {
            let (f, t) = direct_once(&with).await?;
            first_direct.push(f);
            total_direct.push(t);
            let (f, t) = chat_once(&with, &conv_with).await?;
            first_with.push(f);
            total_with.push(t);
            let (f, t) = chat_once(&without, &conv_without).await?;
            first_without.push(f);
            total_without.push(t);
        }
        for _ in 0..(args.requests / 4).max(3) {
            resume.push(resume_once(&with).await?);
        }
        println!("round {} of {} done", round + 1, args.rounds);
    }
    let direct_first = percentile(&mut first_direct, 50.0);
    let first = percentile(&mut first_with, 50.0);
    let first_no = percentile(&mut first_without, 50.0);
    let total = percentile(&mut total_with, 50.0);
    let total_no = percentile(&mut total_without, 50.0);
    let direct_total = percentile(&mut total_direct, 50.0);
    let resume_p50 = percentile(&mut resume, 50.0);
    let resume_p99 = percentile(&mut resume, 99.0);
    println!(
        "first streamed byte p50: stand-in direct {direct_first:.2} ms | via Arcana {first:.2} ms \
         (+{:.2} ms, {:.2}x) | progress off {first_no:.2} ms",
        first - direct_first,
        first / direct_first
    );
    println!(
        "whole streamed reply p50: direct {direct_total:.2} ms | progress saved every 100 ms {total:.2} ms | \
         progress off {total_no:.2} ms (write cost {:.2} ms, {:.3}x)",
        total - total_no,
        total / total_no
    );
    println!(
        "resume (reconnect -> first missed event) p50 {resume_p50:.2} ms, p99 {resume_p99:.2} ms"
    );
    let out = json!({
        "first_byte_direct_p50_ms": direct_first, "first_byte_p50_ms": first,
        "first_byte_added_ms": first - direct_first, "first_byte_ratio": first / direct_first,
        "first_byte_progress_off_p50_ms": first_no,
        "reply_direct_p50_ms": direct_total, "reply_p50_ms": total, "reply_progress_off_p50_ms": total_no,
        "progress_write_cost_ms": total - total_no, "progress_ratio": total / total_no,
        "resume_p50_ms": resume_p50, "resume_p99_ms": resume_p99,
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
